"""An in-process fake Telegram that drives the REAL ``telethon.TelegramClient``.

The fake works at the TL-request level. :func:`attach` replaces four things on one client
instance: ``connect``, ``is_connected``, ``disconnect`` and ``_call(sender, request, ...)``
(plus ``_sender``, whose ``disconnected`` future the client exposes). Everything above
``_call`` is Telethon's own code: ``download_media`` really runs through ``GetFileRequest``
parts, ``upload_file`` through ``SaveFilePartRequest``/``SaveBigFilePartRequest``, events are
built by Telethon from raw updates. Incoming messages are fed the way Telethon's update loop
does it: the bot's own user goes in the entity cache (``_mb_entity_cache.set_self_user``),
then ``_preprocess_updates([update], users, chats)`` attaches entities, then
``_dispatch_update(update)`` runs the handlers. ``test_faketg.py`` fails loudly if any of
these private hooks changes in a Telethon release.

:class:`FakeTelegram` is the "server": it answers requests by type, records every request,
keeps the bot's sent messages (with edits, deletions, reassembled uploads; documents, photos
and albums: ``uploadMedia`` then ``sendMultiMedia``), serves downloads, rejects a repeated
``random_id`` with ``RANDOM_ID_DUPLICATE`` like Telegram does (for an album, if any of its ids
was used), records the command menus and bot descriptions per language (``bot_commands``,
``bot_info``), and lets tests inject errors (``fail``), drop connections (``drop``) or refuse
them (``down``). Users carry a ``lang_code``; incoming messages may be albums (``album``),
replies and forwards.

For a bot running in another process, :class:`TcpFakeServer` serves the same
:class:`FakeTelegram` over a loopback socket and :func:`attach_remote` connects a client to it
(requests, results, errors and pushed updates travel pickled; test-only, loopback only).
Not modelled: pts/getDifference bookkeeping (missed updates are handed to a ``catch_up``
client once it is logged in), channels, CDN redirects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import pickle
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from telethon import TelegramClient, errors, functions, types, utils
from telethon.crypto import AuthKey
from telethon.tl.tlobject import TLRequest

__all__ = [
    "BOT_ID",
    "BOT_TOKEN",
    "HOOKS",
    "FakeTelegram",
    "SentMessage",
    "TcpFakeServer",
    "attach",
    "attach_remote",
    "is_document_send",
]

BOT_ID = 7000001
BOT_TOKEN = f"{BOT_ID}:AAFakeTokenForTests_do_not_log_me"
DC_ID = 2

# The private Telethon names this fake relies on (checked by test_faketg.py).
HOOKS = (
    "_call",
    "_preprocess_updates",
    "_dispatch_update",
    "_mb_entity_cache",
    "_sender",
    "_catch_up",
    "_loop",
    "_authorized",
    "_event_handler_tasks",
)


def is_document_send(request: Any) -> bool:
    """True for a ``SendMediaRequest`` that sends a file as a document."""
    return isinstance(request, functions.messages.SendMediaRequest) and isinstance(
        request.media, types.InputMediaUploadedDocument
    )


def _now() -> dt.datetime:
    return dt.datetime.now(tz=dt.timezone.utc).replace(microsecond=0)


@dataclass
class SentMessage:
    """A message the bot sent, as the server stores it."""

    id: int
    chat_id: int
    text: str
    reply_to: int | None
    random_id: int | None = None
    file_name: str | None = None
    file_bytes: bytes | None = None
    mime_type: str | None = None
    force_file: bool | None = None
    attributes: list[Any] = field(default_factory=list)  # of a sent document
    kind: str = "text"  # "text", "document" or "photo"
    grouped_id: int | None = None  # sent in an album
    buttons: Any = None
    edits: list[str] = field(default_factory=list)
    deleted: bool = False
    sent_at: float = field(default_factory=time.monotonic)

    @property
    def current_text(self) -> str:
        """The text after the last edit."""
        return self.edits[-1] if self.edits else self.text


@dataclass
class _Fault:
    kind: type
    make: Callable[[Any], BaseException]
    times: int
    after: bool  # perform the request, then raise (a lost response)
    when: Callable[[Any], bool] | None = None  # only requests this accepts


class FakeTelegram:
    """The server side. Safe to use from one event loop (or one server thread) at a time."""

    def __init__(self, *, bot_id: int = BOT_ID) -> None:
        self.bot = types.User(
            id=bot_id,
            is_self=True,
            bot=True,
            access_hash=99_000 + bot_id,
            first_name="Upscaler",
            username="upscaler_test_bot",
        )
        self.users: dict[int, types.User] = {}
        self.requests: list[TLRequest] = []
        self.sent: dict[int, SentMessage] = {}
        self.incoming: dict[int, types.Message] = {}
        self.files: dict[int, bytes] = {}
        self.uploads: dict[int, dict[int, bytes]] = {}
        self.callback_answers: list[functions.messages.SetBotCallbackAnswerRequest] = []
        # (scope type name, lang_code) -> [(command, description)]; lang_code -> (about, text)
        self.bot_commands: dict[tuple[str, str], list[tuple[str, str]]] = {}
        self.bot_info: dict[str, tuple[str | None, str | None]] = {}
        self.media: dict[int, tuple[str, bytes, str | None, str]] = {}  # uploadMedia results
        self.authorized: set[int] = set()
        self.down = False
        self.connections: list[Any] = []
        self.backlog: list[tuple[Any, list[Any]]] = []
        self._random_ids: dict[tuple[int, int], int] = {}
        self._faults: list[_Fault] = []
        self._ids = itertools.count(1000)
        self._media_ids = itertools.count(500_000)
        self._pts = 1

    # -- test controls --------------------------------------------------------------------
    def user(
        self, user_id: int, first_name: str = "User", *, lang_code: str | None = None
    ) -> types.User:
        """Register (or return) a Telegram user who can write to the bot; ``lang_code`` is
        their app's language, as Telegram tells bots."""
        if user_id not in self.users:
            self.users[user_id] = types.User(
                id=user_id,
                access_hash=31_000 + user_id,
                first_name=first_name,
                username=f"u{user_id}",
                lang_code=lang_code,
            )
        return self.users[user_id]

    def fail(
        self,
        kind: type,
        make: Callable[[Any], BaseException],
        *,
        times: int = 1,
        after: bool = False,
        when: Callable[[Any], bool] | None = None,
    ) -> None:
        """Make the next ``times`` requests of type ``kind`` (that ``when`` accepts, if
        given) raise ``make(request)``."""
        self._faults.append(_Fault(kind, make, times, after, when))

    def drop(self) -> None:
        """Cut every connection, as if Telethon gave up reconnecting."""
        for conn in list(self.connections):
            conn.lose(ConnectionError("fake Telegram dropped the connection"))

    def messages_to(self, chat_id: int, *, include_deleted: bool = False) -> list[SentMessage]:
        """The bot's messages in a chat, oldest first."""
        return [
            m
            for m in sorted(self.sent.values(), key=lambda m: m.id)
            if m.chat_id == chat_id and (include_deleted or not m.deleted)
        ]

    def documents_to(self, chat_id: int) -> list[SentMessage]:
        """The bot's file messages in a chat (deleted or not)."""
        return [m for m in self.messages_to(chat_id, include_deleted=True) if m.kind == "document"]

    def photos_to(self, chat_id: int) -> list[SentMessage]:
        """The bot's photo messages in a chat (deleted or not)."""
        return [m for m in self.messages_to(chat_id, include_deleted=True) if m.kind == "photo"]

    def texts_to(self, chat_id: int) -> list[str]:
        """The current text of the bot's visible text messages in a chat."""
        return [m.current_text for m in self.messages_to(chat_id) if m.kind == "text"]

    def count(self, kind: type) -> int:
        """How many requests of this type were made."""
        return sum(isinstance(r, kind) for r in self.requests)

    def document_sends(self) -> int:
        """How many ``SendMediaRequest``s carried a document (not a photo)."""
        return sum(is_document_send(r) for r in self.requests)

    # -- incoming updates -------------------------------------------------------------------
    def _new_message(
        self, user: types.User, text: str, media: Any, **extra: Any
    ) -> types.UpdateNewMessage:
        msg = types.Message(
            id=next(self._ids),
            peer_id=types.PeerUser(user.id),
            date=_now(),
            message=text,
            media=media,
            out=False,
            **extra,
        )
        self.incoming[msg.id] = msg
        self._pts += 1
        return types.UpdateNewMessage(message=msg, pts=self._pts, pts_count=1)

    def text(
        self, user: types.User, text: str, *, reply_to: int | None = None
    ) -> types.UpdateNewMessage:
        """An update: ``user`` sends ``text`` (in reply to their message ``reply_to``)."""
        header = None if reply_to is None else types.MessageReplyHeader(reply_to_msg_id=reply_to)
        return self._new_message(user, text, None, reply_to=header)

    def forward(
        self, user: types.User, original: types.User | None, text: str, *, from_name: str = ""
    ) -> types.UpdateNewMessage:
        """An update: ``user`` forwards a message ``original`` wrote (None: its author hides
        their account in forwards, only ``from_name`` shows)."""
        header = types.MessageFwdHeader(
            date=_now(),
            from_id=None if original is None else types.PeerUser(original.id),
            from_name=from_name or None,
        )
        return self._new_message(user, text, None, fwd_from=header)

    def document(
        self,
        user: types.User,
        data: bytes,
        file_name: str,
        *,
        mime_type: str = "image/png",
        caption: str = "",
        declared_size: int | None = None,
        grouped_id: int | None = None,
        image_size: tuple[int, int] | None = None,
        attributes: list[Any] | None = None,
    ) -> types.UpdateNewMessage:
        """An update: ``user`` sends ``data`` as a file (``declared_size`` may lie;
        ``image_size`` is the width and height Telegram reports, if it does)."""
        media_id = next(self._media_ids)
        self.files[media_id] = data
        doc = types.Document(
            id=media_id,
            access_hash=media_id * 7,
            file_reference=b"ref",
            date=_now(),
            mime_type=mime_type,
            size=len(data) if declared_size is None else declared_size,
            dc_id=DC_ID,
            attributes=[types.DocumentAttributeFilename(file_name)],
        )
        if image_size is not None:
            doc.attributes.append(types.DocumentAttributeImageSize(*image_size))
        doc.attributes.extend(attributes or [])
        return self._new_message(
            user, caption, types.MessageMediaDocument(document=doc), grouped_id=grouped_id
        )

    def video(
        self,
        user: types.User,
        data: bytes,
        file_name: str = "clip.mp4",
        *,
        duration: float,
        size: tuple[int, int],
        animated: bool = False,
        round_message: bool = False,
        caption: str = "",
    ) -> types.UpdateNewMessage:
        """An update: ``user`` sends a video (``animated``: a GIF, as Telegram delivers it:
        an MP4 with ``DocumentAttributeAnimated``; ``round_message``: a round video)."""
        attrs: list[Any] = [
            types.DocumentAttributeVideo(
                duration=duration, w=size[0], h=size[1], round_message=round_message or None
            )
        ]
        if animated:
            attrs.append(types.DocumentAttributeAnimated())
        return self.document(
            user, data, file_name, mime_type="video/mp4", caption=caption, attributes=attrs
        )

    def album(
        self, user: types.User, files: list[tuple[bytes, str]], *, caption: str = ""
    ) -> list[types.UpdateNewMessage]:
        """Updates: ``user`` sends ``files`` (data, name) as one album, the caption on the
        first, as Telegram apps do."""
        grouped_id = next(self._media_ids) * 1_000_003
        return [
            self.document(
                user, data, name, caption=caption if i == 0 else "", grouped_id=grouped_id
            )
            for i, (data, name) in enumerate(files)
        ]

    def photo(
        self,
        user: types.User,
        jpeg: bytes,
        width: int,
        height: int,
        *,
        caption: str = "",
        grouped_id: int | None = None,
    ) -> types.UpdateNewMessage:
        """An update: ``user`` sends a (Telegram-compressed) photo."""
        media_id = next(self._media_ids)
        self.files[media_id] = jpeg
        photo = types.Photo(
            id=media_id,
            access_hash=media_id * 7,
            file_reference=b"ref",
            date=_now(),
            sizes=[types.PhotoSize(type="y", w=width, h=height, size=len(jpeg))],
            dc_id=DC_ID,
        )
        return self._new_message(
            user, caption, types.MessageMediaPhoto(photo=photo), grouped_id=grouped_id
        )

    def button_press(self, user: types.User, message_id: int, data: bytes) -> Any:
        """An update: ``user`` presses an inline button under the bot's message."""
        return types.UpdateBotCallbackQuery(
            query_id=next(self._ids),
            user_id=user.id,
            peer=types.PeerUser(user.id),
            msg_id=message_id,
            chat_instance=1,
            data=data,
        )

    async def deliver(self, update: Any, user: types.User) -> None:
        """Hand an update to every connected, logged-in client (or keep it for catch-up)."""
        live = [c for c in self.connections if c.connected and c.logged_in]
        if not live:
            self.backlog.append((update, [user, self.bot]))
            return
        for conn in live:
            await conn.feed(update, [user, self.bot])

    async def deliver_together(self, updates: list[Any], user: types.User) -> None:
        """Hand several updates (an album) to the bot at once: their handlers run
        concurrently, as Telethon runs them."""
        live = [c for c in self.connections if c.connected and c.logged_in]
        if not live:
            self.backlog.extend((u, [user, self.bot]) for u in updates)
            return
        await asyncio.gather(*(c.feed(u, [user, self.bot]) for c in live for u in updates))

    # -- the request handler ----------------------------------------------------------------
    async def handle(self, request: TLRequest, conn: Any) -> Any:
        """Answer one (resolved) request like Telegram would; records it first."""
        self.requests.append(request)
        fault = next(
            (
                f
                for f in self._faults
                if isinstance(request, f.kind)
                and f.times > 0
                and (f.when is None or f.when(request))
            ),
            None,
        )
        if fault is not None:
            fault.times -= 1
            if not fault.after:
                raise fault.make(request)
        result = self._answer(request, conn)
        if fault is not None:
            raise fault.make(request)
        return result

    def _require_auth(self, request: TLRequest, conn: Any) -> None:
        if conn.key_id not in self.authorized:
            raise errors.AuthKeyUnregisteredError(request)
        conn.on_logged_in()

    def _answer(self, r: TLRequest, conn: Any) -> Any:
        if isinstance(r, functions.auth.ImportBotAuthorizationRequest):
            if r.bot_auth_token.split(":", 1)[0] != str(self.bot.id):
                raise errors.AccessTokenInvalidError(r)
            self.authorized.add(conn.key_id)
            conn.on_logged_in()
            return types.auth.Authorization(user=self.bot)
        if isinstance(r, functions.users.GetUsersRequest):
            self._require_auth(r, conn)
            out = []
            for item in r.id:
                if isinstance(item, types.InputUserSelf):
                    out.append(self.bot)
                elif getattr(item, "user_id", None) in self.users:
                    out.append(self.users[item.user_id])
            return out
        self._require_auth(r, conn)
        if isinstance(r, functions.updates.GetStateRequest):
            return types.updates.State(pts=self._pts, qts=0, date=_now(), seq=0, unread_count=0)
        if isinstance(r, functions.updates.GetDifferenceRequest):
            return types.updates.DifferenceEmpty(date=_now(), seq=0)
        if isinstance(r, functions.messages.SendMessageRequest):
            msg = self._store(r, text=r.message)
            msg.buttons = r.reply_markup
            return types.UpdateShortSentMessage(
                id=msg.id, pts=self._pts, pts_count=1, date=_now(), out=True
            )
        if isinstance(r, functions.messages.SendMediaRequest):
            kind, data, name, mime = self._uploaded(r.media)
            msg = self._store(
                r,
                text=r.message,
                file_name=name,
                file_bytes=data,
                mime_type=mime,
                force_file=getattr(r.media, "force_file", None),
                attributes=list(getattr(r.media, "attributes", None) or []),
                kind=kind,
            )
            return self._sent_updates([(msg, r.random_id)])
        if isinstance(r, functions.messages.UploadMediaRequest):
            kind, data, name, mime = self._uploaded(r.media)
            media_id = next(self._media_ids)
            self.media[media_id] = (kind, data, name, mime or "image/jpeg")
            if kind == "photo":
                return types.MessageMediaPhoto(photo=self._photo_object(media_id, data))
            return types.MessageMediaDocument(
                document=types.Document(
                    id=media_id,
                    access_hash=media_id * 7,
                    file_reference=b"up",
                    date=_now(),
                    mime_type=mime or "application/octet-stream",
                    size=len(data),
                    dc_id=DC_ID,
                    attributes=list(getattr(r.media, "attributes", [])),
                )
            )
        if isinstance(r, functions.messages.SendMultiMediaRequest):
            if not 2 <= len(r.multi_media) <= 10:
                raise errors.MultiMediaTooLongError(r)
            chat_id = getattr(r.peer, "user_id", None)
            if any((chat_id, item.random_id) in self._random_ids for item in r.multi_media):
                raise errors.RandomIdDuplicateError(r)
            grouped_id = next(self._media_ids)
            stored = []
            for item in r.multi_media:
                media_id = item.media.id.id
                if media_id not in self.media:
                    raise errors.MediaInvalidError(r)
                kind, data, name, mime = self.media[media_id]
                if isinstance(item.media, types.InputMediaPhoto) != (kind == "photo"):
                    raise errors.MediaInvalidError(r)
                msg = self._store(
                    r,
                    random_id=item.random_id,
                    text=item.message,
                    file_name=name,
                    file_bytes=data,
                    mime_type=mime,
                    force_file=kind == "document" or None,
                    kind=kind,
                    grouped_id=grouped_id,
                )
                stored.append((msg, item.random_id))
            return self._sent_updates(stored)
        if isinstance(r, functions.bots.SetBotCommandsRequest):
            key = (type(r.scope).__name__, r.lang_code)
            self.bot_commands[key] = [(c.command, c.description) for c in r.commands]
            return True
        if isinstance(r, functions.bots.SetBotInfoRequest):
            self.bot_info[r.lang_code] = (r.about, r.description)
            return True
        if isinstance(r, functions.messages.EditMessageRequest):
            msg = self.sent.get(r.id)
            if msg is None or msg.deleted:
                raise errors.MessageIdInvalidError(r)
            if r.message is not None:
                if r.message == msg.current_text:
                    raise errors.MessageNotModifiedError(r)
                msg.edits.append(r.message)
            if r.reply_markup is not None:
                msg.buttons = r.reply_markup
            message = types.Message(
                id=msg.id,
                peer_id=types.PeerUser(msg.chat_id),
                date=_now(),
                message=msg.current_text,
                out=True,
                edit_date=_now(),
            )
            return types.Updates(
                updates=[types.UpdateEditMessage(message=message, pts=self._pts, pts_count=1)],
                users=[self.bot],
                chats=[],
                date=_now(),
                seq=0,
            )
        if isinstance(r, functions.messages.DeleteMessagesRequest):
            for mid in r.id:
                if mid in self.sent:
                    self.sent[mid].deleted = True
            self._pts += 1
            return types.messages.AffectedMessages(pts=self._pts, pts_count=len(r.id))
        if isinstance(r, functions.messages.GetMessagesRequest):
            found = []
            for item in r.id:
                mid = item.id
                if isinstance(item, types.InputMessageReplyTo):  # the message it replies to
                    header = getattr(self.incoming.get(mid), "reply_to", None)
                    mid = getattr(header, "reply_to_msg_id", None) or 0
                found.append(self.incoming.get(mid) or types.MessageEmpty(id=mid))
            return types.messages.Messages(
                messages=found, topics=[], chats=[], users=[self.bot, *self.users.values()]
            )
        if isinstance(
            r, (functions.upload.SaveFilePartRequest, functions.upload.SaveBigFilePartRequest)
        ):
            self.uploads.setdefault(r.file_id, {})[r.file_part] = r.bytes
            return True
        if isinstance(r, functions.upload.GetFileRequest):
            loc = r.location
            if not isinstance(loc, (types.InputDocumentFileLocation, types.InputPhotoFileLocation)):
                raise NotImplementedError(f"fake Telegram: location {type(loc).__name__}")
            data = self.files.get(loc.id)
            if data is None:
                raise errors.FileReferenceExpiredError(r)
            return types.upload.File(
                type=types.storage.FileUnknown(), mtime=0, bytes=data[r.offset : r.offset + r.limit]
            )
        if isinstance(r, functions.messages.SetBotCallbackAnswerRequest):
            self.callback_answers.append(r)
            return True
        raise NotImplementedError(f"fake Telegram does not answer {type(r).__name__}")

    def _store(self, r: Any, random_id: int | None = None, **fields: Any) -> SentMessage:
        peer = r.peer
        chat_id = getattr(peer, "user_id", None) or getattr(peer, "chat_id", None)
        if chat_id not in self.users:
            raise errors.PeerIdInvalidError(r)
        random_id = r.random_id if random_id is None else random_id
        key = (chat_id, random_id)
        if key in self._random_ids:
            raise errors.RandomIdDuplicateError(r)
        reply_to = getattr(r.reply_to, "reply_to_msg_id", None)
        msg = SentMessage(
            id=next(self._ids), chat_id=chat_id, reply_to=reply_to, random_id=random_id, **fields
        )
        self._random_ids[key] = msg.id
        self.sent[msg.id] = msg
        self._pts += 1
        return msg

    def _uploaded(self, media: Any) -> tuple[str, bytes, str | None, str | None]:
        """(kind, bytes, file name, mime type) of an InputMediaUploaded{Document,Photo}."""
        if isinstance(media, types.InputMediaUploadedPhoto):
            return "photo", self._assemble(media.file), None, "image/jpeg"
        if isinstance(media, types.InputMediaUploadedDocument):
            name = next(
                (
                    a.file_name
                    for a in media.attributes
                    if isinstance(a, types.DocumentAttributeFilename)
                ),
                media.file.name,
            )
            return "document", self._assemble(media.file), name, media.mime_type
        raise NotImplementedError(f"fake Telegram: media {type(media).__name__}")

    @staticmethod
    def _photo_object(media_id: int, data: bytes) -> types.Photo:
        return types.Photo(
            id=media_id,
            access_hash=media_id * 7,
            file_reference=b"up",
            date=_now(),
            sizes=[types.PhotoSize(type="y", w=1, h=1, size=len(data))],
            dc_id=DC_ID,
        )

    def _sent_updates(self, sent: list[tuple[SentMessage, int]]) -> types.Updates:
        """What Telegram answers to a send: the new ids by random_id, and the messages."""
        updates: list[Any] = []
        for msg, random_id in sent:
            updates.append(types.UpdateMessageID(id=msg.id, random_id=random_id))
        for msg, _ in sent:
            if msg.kind == "photo":
                media: Any = types.MessageMediaPhoto(photo=self._photo_object(msg.id, b""))
            else:
                media = types.MessageMediaDocument(
                    document=types.Document(
                        id=next(self._media_ids),
                        access_hash=1,
                        file_reference=b"r",
                        date=_now(),
                        mime_type=msg.mime_type or "application/octet-stream",
                        size=len(msg.file_bytes or b""),
                        dc_id=DC_ID,
                        attributes=[types.DocumentAttributeFilename(msg.file_name or "file")],
                    )
                )
            message = types.Message(
                id=msg.id,
                peer_id=types.PeerUser(msg.chat_id),
                date=_now(),
                message=msg.text,
                out=True,
                media=media,
                grouped_id=msg.grouped_id,
            )
            self._pts += 1
            updates.append(types.UpdateNewMessage(message=message, pts=self._pts, pts_count=1))
        return types.Updates(
            updates=updates,
            users=[self.bot, *self.users.values()],
            chats=[],
            date=_now(),
            seq=0,
        )

    def _assemble(self, file: Any) -> bytes:
        parts = self.uploads.get(file.id)
        if parts is None or len(parts) != file.parts:
            raise errors.FilePartMissingError(None, 0)
        return b"".join(parts[i] for i in range(file.parts))


# -- the client side ----------------------------------------------------------------------------
class _FakeSender:
    """Stands in for MTProtoSender where the client reads it directly (``disconnected``)."""

    def __init__(self) -> None:
        self._disconnected: asyncio.Future[None] | None = None
        self.auth_key = AuthKey(None)

    @property
    def disconnected(self) -> asyncio.Future[None]:
        assert self._disconnected is not None, "not connected yet"
        return asyncio.shield(self._disconnected)

    def is_connected(self) -> bool:
        return self._disconnected is not None and not self._disconnected.done()

    def _transport_connected(self) -> bool:
        return self.is_connected()

    async def disconnect(self) -> None:
        if self._disconnected is not None and not self._disconnected.done():
            self._disconnected.set_result(None)


class _Connection:
    """One client's link to the server; the four overridden client methods live here."""

    def __init__(self, client: TelegramClient, server: FakeTelegram | None) -> None:
        self.client = client
        self.server = server
        self.sender = _FakeSender()
        self.connected = False
        self.logged_in = False
        self.key_id = 0

    # overrides ------------------------------------------------------------------------------
    async def connect(self) -> None:
        client = self.client
        if self.connected:
            return
        client._loop = asyncio.get_running_loop()
        await self._open()
        session = client.session
        if not session.server_address:
            session.set_dc(DC_ID, "127.0.0.1", 443)
        if session.auth_key is None:  # a "new login": Telegram would create an auth key
            session.auth_key = AuthKey(os.urandom(256))
        session.save()
        self.key_id = session.auth_key.key_id
        self.sender.auth_key = session.auth_key
        self.sender._disconnected = client._loop.create_future()
        self.connected = True

    def is_connected(self) -> bool:
        return self.connected

    def disconnect(self) -> Any:
        self.lose(None)
        return asyncio.ensure_future(self.client._disconnect_coro())

    async def call(
        self,
        sender: Any,
        request: Any,
        ordered: bool = False,
        flood_sleep_threshold: int | None = None,
    ) -> Any:
        if not self.connected:
            raise ConnectionError("Cannot send requests while disconnected")
        requests = list(request) if utils.is_list_like(request) else [request]
        results = []
        for r in requests:
            await r.resolve(self.client, utils)
            result = await self._send(r)
            self.client.session.process_entities(result)
            results.append(result)
        return results if utils.is_list_like(request) else results[0]

    # link-specific ---------------------------------------------------------------------------
    async def _open(self) -> None:
        assert self.server is not None
        if self.server.down:
            raise ConnectionError("fake Telegram is down")
        self.server.connections.append(self)

    async def _send(self, request: Any) -> Any:
        assert self.server is not None
        await asyncio.sleep(0)  # a network round trip yields to other tasks
        if not self.connected:
            raise ConnectionError("connection lost")
        return await self.server.handle(request, self)

    def lose(self, error: BaseException | None) -> None:
        """The link is gone (error: as seen by the client's ``disconnected`` future)."""
        self.connected = False
        self.logged_in = False
        if self.server is not None and self in self.server.connections:
            self.server.connections.remove(self)
        fut = self.sender._disconnected
        if fut is not None and not fut.done():
            if error is None:
                fut.set_result(None)
            else:
                fut.set_exception(error)

    def on_logged_in(self) -> None:
        """Called by the server on the first authorised request: hand over missed updates."""
        if self.logged_in:
            return
        self.logged_in = True
        if self.server is not None and self.client._catch_up and self.server.backlog:
            backlog, self.server.backlog = self.server.backlog, []

            async def replay() -> None:
                for update, users in backlog:
                    await self.feed(update, users)

            asyncio.get_running_loop().create_task(replay())

    async def feed(self, update: Any, users: list[Any]) -> None:
        """Dispatch an update the way Telethon's update loop does."""
        client = self.client
        bot = next(u for u in users if getattr(u, "bot", False))
        client._mb_entity_cache.set_self_user(bot.id, True, bot.access_hash)
        processed = await client._preprocess_updates([update], users, [])
        for item in processed:
            await client._dispatch_update(item)


def _install(client: TelegramClient, conn: _Connection) -> _Connection:
    client._sender = conn.sender
    client.connect = conn.connect  # type: ignore[method-assign]
    client.is_connected = conn.is_connected  # type: ignore[method-assign]
    client.disconnect = conn.disconnect  # type: ignore[method-assign]
    client._call = conn.call  # type: ignore[method-assign]
    client._fake = conn  # type: ignore[attr-defined]
    return conn


def attach(client: TelegramClient, server: FakeTelegram) -> TelegramClient:
    """Make ``client`` talk to ``server`` in this process; returns the client."""
    _install(client, _Connection(client, server))
    return client


# -- over a loopback socket (for a bot in a subprocess) -------------------------------------------
def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj)
    return struct.pack(">I", len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    size = struct.unpack(">I", await reader.readexactly(4))[0]
    return pickle.loads(await reader.readexactly(size))


class _RemoteConnection(_Connection):
    """Client side of the socket link: requests go out, results and updates come in."""

    def __init__(self, client: TelegramClient, address: tuple[str, int]) -> None:
        super().__init__(client, None)
        self.address = address
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._ids = itertools.count(1)
        self._reader_task: asyncio.Task[None] | None = None

    async def _open(self) -> None:
        reader, writer = await asyncio.open_connection(*self.address)
        self._writer = writer
        writer.write(_frame(("hello", bool(self.client._catch_up))))
        self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                kind, *rest = await _read_frame(reader)
                if kind == "result":
                    fut = self._pending.pop(rest[0], None)
                    if fut is not None and not fut.done():
                        ok, value = rest[1], rest[2]
                        if ok:
                            fut.set_result(value)
                        else:
                            fut.set_exception(value)
                elif kind == "update":
                    self.logged_in = True
                    asyncio.get_running_loop().create_task(self.feed(rest[0], rest[1]))
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("fake Telegram closed the connection"))
        self._pending.clear()
        self.lose(ConnectionError("fake Telegram closed the connection"))

    async def _send(self, request: Any) -> Any:
        assert self._writer is not None
        rid = next(self._ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._writer.write(_frame(("call", rid, request, self.key_id)))
        await self._writer.drain()
        return await fut

    def lose(self, error: BaseException | None) -> None:
        super().lose(error)
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def attach_remote(client: TelegramClient, address: tuple[str, int]) -> TelegramClient:
    """Make ``client`` talk to a :class:`TcpFakeServer` at ``address``."""
    _install(client, _RemoteConnection(client, address))
    return client


class _ServerSide:
    """The server's view of one socket client (what ``FakeTelegram.handle`` calls ``conn``)."""

    def __init__(self, writer: asyncio.StreamWriter, catch_up: bool, server: FakeTelegram) -> None:
        self.writer = writer
        self.catch_up = catch_up
        self.server = server
        self.connected = True
        self.logged_in = False
        self.key_id = 0

    def on_logged_in(self) -> None:
        if self.logged_in:
            return
        self.logged_in = True
        if self.catch_up and self.server.backlog:
            backlog, self.server.backlog = self.server.backlog, []
            for update, users in backlog:
                self.writer.write(_frame(("update", update, users)))

    async def feed(self, update: Any, users: list[Any]) -> None:
        self.writer.write(_frame(("update", update, users)))
        await self.writer.drain()

    def lose(self, error: BaseException | None) -> None:
        self.connected = False
        self.writer.close()


class TcpFakeServer:
    """Serves a :class:`FakeTelegram` on 127.0.0.1 from a background thread.

    Use :meth:`run` to execute a coroutine (or function) on the server's loop, e.g. to deliver
    an update or read the server's state consistently.
    """

    def __init__(self, fake: FakeTelegram) -> None:
        self.fake = fake
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="fake-telegram", daemon=True
        )
        self._server: asyncio.AbstractServer | None = None
        self.address: tuple[str, int] = ("127.0.0.1", 0)

    def __enter__(self) -> TcpFakeServer:
        self._thread.start()
        self._server = self.run(asyncio.start_server(self._client, "127.0.0.1", 0))
        sock: socket.socket = self._server.sockets[0]
        self.address = sock.getsockname()[:2]
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for conn in list(self.fake.connections):
                conn.lose(None)

        self.run(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def run(self, work: Any, timeout: float = 30) -> Any:
        """Run a coroutine, or call a function, on the server loop; returns its result."""
        if not asyncio.iscoroutine(work):
            fn = work

            async def call() -> Any:
                return fn()

            work = call()
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _, catch_up = await _read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        conn = _ServerSide(writer, catch_up, self.fake)
        if self.fake.down:
            writer.close()
            return
        self.fake.connections.append(conn)
        try:
            while True:
                _, rid, request, key_id = await _read_frame(reader)
                conn.key_id = key_id
                try:
                    value, ok = await self.fake.handle(request, conn), True
                except Exception as exc:  # errors travel back to the client
                    value, ok = exc, False
                writer.write(_frame(("result", rid, ok, value)))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            conn.connected = False
            if conn in self.fake.connections:
                self.fake.connections.remove(conn)
            writer.close()
