"""The few Telegram operations the bot needs beyond Telethon's high-level calls.

* Peers are stored in the job queue as plain strings (``user:ID:HASH``, ``chat:ID``,
  ``channel:ID:HASH``) so that ``upscaler_edge.jobs`` never imports Telethon, and so that a
  restarted bot can reply without the entity cache it lost in the crash.
* Final replies (the result document, or the one-line failure) are sent with the job's fixed
  ``random_id``: if a crash makes the bot send the same reply again, Telegram answers
  ``RANDOM_ID_DUPLICATE`` and :func:`send_document` / :func:`send_text` return None instead
  of posting a second message.
* Albums (:func:`send_album`) upload each file, register it with ``messages.uploadMedia`` and
  send them in one ``messages.sendMultiMedia`` (at most :data:`ALBUM_LIMIT` items), each with its
  own fixed ``random_id``: a repeated album is refused as a whole, like a repeated message.
* :func:`describe_media` reads what Telegram says about an incoming file before any download.
"""

from __future__ import annotations

import logging
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..naming import IMAGE_SUFFIXES
from .telethon_api import TelegramClient, errors, functions, types, utils

__all__ = [
    "ALBUM_LIMIT",
    "AlbumItem",
    "MediaInfo",
    "VideoAttributes",
    "describe_media",
    "peer_from_string",
    "peer_to_string",
    "send_album",
    "send_document",
    "send_photo",
    "send_text",
    "sent_message_id",
    "sent_message_ids",
]

ALBUM_LIMIT = 10  # items Telegram takes in one album

log = logging.getLogger(__name__)


def peer_to_string(peer: Any) -> str:
    """An InputPeer (or entity) -> the string kept in the job row."""
    peer = utils.get_input_peer(peer)
    if isinstance(peer, types.InputPeerUser):
        return f"user:{peer.user_id}:{peer.access_hash}"
    if isinstance(peer, types.InputPeerChat):
        return f"chat:{peer.chat_id}"
    if isinstance(peer, types.InputPeerChannel):
        return f"channel:{peer.channel_id}:{peer.access_hash}"
    raise TypeError(f"cannot store peer {peer!r}")


def peer_from_string(text: str) -> types.TypeInputPeer:
    """Inverse of :func:`peer_to_string`."""
    kind, _, rest = text.partition(":")
    if kind == "user":
        uid, _, access = rest.partition(":")
        return types.InputPeerUser(int(uid), int(access or 0))
    if kind == "chat":
        return types.InputPeerChat(int(rest))
    if kind == "channel":
        cid, _, access = rest.partition(":")
        return types.InputPeerChannel(int(cid), int(access or 0))
    raise ValueError(f"bad stored peer {text!r}")


@dataclass(frozen=True)
class MediaInfo:
    """What Telegram tells us about an incoming image before we download it.

    ``size`` is in bytes (None if unknown); ``width``/``height`` are known for photos and
    for documents that carry an image-size attribute. ``compressed`` is True for photos
    (Telegram re-encoded them), False for files sent as documents. ``duration`` (seconds) is
    known for videos and animations. ``album_id`` is Telegram's ``grouped_id``: the files of
    one album share it. ``video`` is ``"video"``, ``"round"`` (a round video message) or
    ``"animation"`` (a GIF, which Telegram delivers as a silent MP4) from the document's
    attributes, None for anything else.
    """

    file_name: str
    size: int | None
    mime_type: str
    width: int | None
    height: int | None
    compressed: bool
    looks_like_image: bool
    duration: float | None = None
    album_id: int | None = None
    video: str | None = None


def _video_kind(document: Any) -> tuple[str | None, Any]:
    """(``"animation"``/``"round"``/``"video"``/None, the DocumentAttributeVideo or None)."""
    attributes = getattr(document, "attributes", None) or []
    video = next((a for a in attributes if isinstance(a, types.DocumentAttributeVideo)), None)
    if any(isinstance(a, types.DocumentAttributeAnimated) for a in attributes):
        return "animation", video
    if video is not None:
        return ("round" if getattr(video, "round_message", False) else "video"), video
    return None, None


def describe_media(message: Any) -> MediaInfo | None:
    """The image-ish media of a message, or None when it has no photo or document."""
    if message.photo is not None:
        file = message.file
        return MediaInfo(
            file_name=f"photo_{message.id}.jpg",
            size=file.size,
            mime_type="image/jpeg",
            width=file.width,
            height=file.height,
            compressed=True,
            looks_like_image=True,
            album_id=message.grouped_id,
        )
    if message.document is not None:
        file = message.file
        name = file.name or f"file_{message.id}{file.ext or ''}"
        mime = file.mime_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        kind, attr = _video_kind(message.document)
        if kind is None and mime.startswith("video/"):  # a video file Telegram did not probe
            kind = "video"
        image = kind is None and (
            mime.startswith("image/") or Path(name).suffix.lower() in IMAGE_SUFFIXES
        )
        if kind is not None and not Path(name).suffix:
            name += ".mp4"
        return MediaInfo(
            file_name=name,
            size=file.size,
            mime_type=mime,
            width=(attr.w if attr is not None else file.width) or None,
            height=(attr.h if attr is not None else file.height) or None,
            compressed=False,
            looks_like_image=image,
            duration=(attr.duration if attr is not None else file.duration) or None,
            album_id=message.grouped_id,
            video=kind,
        )
    return None


def sent_message_ids(result: Any) -> dict[int, int]:
    """random_id -> new message id, from the ``Updates`` of a send request."""
    updates = getattr(result, "updates", None) or []
    return {u.random_id: u.id for u in updates if isinstance(u, types.UpdateMessageID)}


def sent_message_id(result: Any, random_id: int | None = None) -> int | None:
    """The id of the message a send request created, from its ``Updates`` result."""
    if isinstance(result, types.UpdateShortSentMessage):
        return result.id
    if isinstance(result, types.UpdateShort):
        updates = [result.update]
    elif isinstance(result, (types.Updates, types.UpdatesCombined)):
        updates = result.updates
    else:
        return None
    fallback = None
    for update in updates:
        if isinstance(update, types.UpdateMessageID):
            if random_id is None or update.random_id == random_id:
                return update.id
        elif isinstance(update, (types.UpdateNewMessage, types.UpdateNewChannelMessage)):
            fallback = update.message.id
    return fallback


def _reply_to(message_id: int | None) -> types.InputReplyToMessage | None:
    return None if message_id is None else types.InputReplyToMessage(reply_to_msg_id=message_id)


async def send_text(
    client: TelegramClient, peer: str, text: str, *, random_id: int, reply_to: int | None = None
) -> int | None:
    """Send ``text`` once: returns the new message id, or None if ``random_id`` was used before."""
    request = functions.messages.SendMessageRequest(
        peer=peer_from_string(peer),
        message=text,
        random_id=random_id,
        reply_to=_reply_to(reply_to),
        no_webpage=True,
    )
    try:
        result = await client(request)
    except errors.RandomIdDuplicateError:
        log.info("reply with random id %s was already sent; not sending it again", random_id)
        return None
    return sent_message_id(result, random_id)


async def send_document(
    client: TelegramClient,
    peer: str,
    path: Path,
    *,
    file_name: str,
    caption: str,
    random_id: int,
    reply_to: int | None = None,
    progress: Any = None,
    video: VideoAttributes | None = None,
) -> int | None:
    """Upload ``path`` and send it as a file (never a compressed photo), once.

    With ``video``, an MP4 goes as a streamable video document (``DocumentAttributeVideo``),
    or, for ``kind="animation"``, as a GIF-like silent animation (``DocumentAttributeAnimated``).
    Returns the new message id, or None if a message with ``random_id`` was sent before.
    """
    uploaded = await client.upload_file(path, file_name=file_name, progress_callback=progress)
    mime = mimetypes.guess_type(file_name)[0] or "application/octet-stream"
    attributes: list[Any] = [types.DocumentAttributeFilename(file_name)]
    if video is not None:
        mime = "video/mp4"
        attributes.append(
            types.DocumentAttributeVideo(
                duration=video.duration,
                w=video.width,
                h=video.height,
                supports_streaming=True,
                round_message=None,
                nosound=True if video.kind == "animation" else None,
            )
        )
        if video.kind == "animation":
            attributes.append(types.DocumentAttributeAnimated())
    media = types.InputMediaUploadedDocument(
        file=uploaded,
        mime_type=mime,
        attributes=attributes,
        force_file=video is None,
        nosound_video=True if video is not None and video.kind == "animation" else None,
    )
    request = functions.messages.SendMediaRequest(
        peer=peer_from_string(peer),
        media=media,
        message=caption,
        random_id=random_id,
        reply_to=_reply_to(reply_to),
    )
    try:
        result = await client(request)
    except errors.RandomIdDuplicateError:
        log.info("result with random id %s was already sent; not sending it again", random_id)
        return None
    return sent_message_id(result, random_id)


async def send_photo(
    client: TelegramClient,
    peer: str,
    path: Path,
    *,
    caption: str,
    random_id: int,
    reply_to: int | None = None,
) -> int | None:
    """Send ``path`` (a JPEG) as a compressed photo, once; like :func:`send_document`."""
    uploaded = await client.upload_file(path, file_name=path.name)
    request = functions.messages.SendMediaRequest(
        peer=peer_from_string(peer),
        media=types.InputMediaUploadedPhoto(file=uploaded),
        message=caption,
        random_id=random_id,
        reply_to=_reply_to(reply_to),
    )
    try:
        result = await client(request)
    except errors.RandomIdDuplicateError:
        log.info("photo with random id %s was already sent; not sending it again", random_id)
        return None
    return sent_message_id(result, random_id)


@dataclass(frozen=True)
class VideoAttributes:
    """How to present a video result: ``kind`` (``"video"``, ``"round"``, ``"animation"``),
    its duration in seconds and its size."""

    kind: str
    duration: float
    width: int
    height: int


@dataclass(frozen=True)
class AlbumItem:
    """One file of an album: what to upload, its name, caption and idempotency key."""

    path: Path
    file_name: str
    caption: str
    random_id: int


async def send_album(
    client: TelegramClient,
    peer: str,
    items: Sequence[AlbumItem],
    *,
    as_photos: bool,
    reply_to: int | None = None,
    progress: Any = None,
) -> dict[int, int] | None:
    """Send 2..:data:`ALBUM_LIMIT` files as one album: documents (never recompressed), or
    photos (the previews). Returns random_id -> message id, or None when Telegram had these
    random ids already (the album was sent before). ``progress(done, total)`` counts files."""
    if not 2 <= len(items) <= ALBUM_LIMIT:
        raise ValueError(f"an album holds 2 to {ALBUM_LIMIT} files, not {len(items)}")
    input_peer = peer_from_string(peer)
    singles = []
    for done, item in enumerate(items):
        if progress is not None:
            progress(done, len(items))
        uploaded = await client.upload_file(item.path, file_name=item.file_name)
        media: Any
        if as_photos:
            media = types.InputMediaUploadedPhoto(file=uploaded)
        else:
            mime = mimetypes.guess_type(item.file_name)[0] or "application/octet-stream"
            media = types.InputMediaUploadedDocument(
                file=uploaded,
                mime_type=mime,
                attributes=[types.DocumentAttributeFilename(item.file_name)],
                force_file=True,
            )
        registered = await client(functions.messages.UploadMediaRequest(input_peer, media))
        singles.append(
            types.InputSingleMedia(
                media=utils.get_input_media(registered),
                message=item.caption,
                random_id=item.random_id,
            )
        )
    if progress is not None:
        progress(len(items), len(items))
    request = functions.messages.SendMultiMediaRequest(
        peer=input_peer, multi_media=singles, reply_to=_reply_to(reply_to)
    )
    try:
        result = await client(request)
    except errors.RandomIdDuplicateError:
        log.info("album with random ids %s was already sent", [i.random_id for i in items])
        return None
    return sent_message_ids(result)
