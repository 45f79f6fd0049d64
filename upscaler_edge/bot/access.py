"""Who may use the bot right now: the owner and the people allowed, held in memory.

The list is loaded from :class:`~.members.Members` at start-up (the config seeds it) and
changed by the owner's ``/allow`` and ``/deny``, which store the change first and then call
:meth:`Access.set`, so it takes effect at the next message, without a restart.

Anyone else gets one polite refusal per bot run (later messages are ignored, so a stranger
cannot make the bot spam them or anyone) and never causes a job, a row or a download.
``/id`` is the exception: it answers everyone, so the owner can learn a friend's id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from .i18n import N_

__all__ = ["REFUSAL", "Access"]

log = logging.getLogger(__name__)

REFUSAL = N_(
    "Sorry, this is a private bot that runs on its owner's computer, so it only works for "
    "people they have added. If you know them, send /id and give them the number it shows."
)


class Access:
    """The allowed user ids (the owner always among them) and the strangers already refused."""

    def __init__(self, owner: int | None, allowed: Iterable[int] = ()) -> None:
        self.owner = owner
        self._allowed = set(allowed)
        if owner is not None:
            self._allowed.add(owner)
        self._refused: set[int] = set()

    @property
    def allowed(self) -> tuple[int, ...]:
        """Everyone allowed, the owner first, then by id."""
        rest = sorted(u for u in self._allowed if u != self.owner)
        return (self.owner, *rest) if self.owner is not None else tuple(rest)

    def allows(self, user_id: int | None) -> bool:
        """True if ``user_id`` may send jobs and commands."""
        return user_id is not None and user_id in self._allowed

    def is_owner(self, user_id: int | None) -> bool:
        """True for the owner (the config's first allowed id)."""
        return user_id is not None and user_id == self.owner

    def set(self, user_id: int, allowed: bool) -> None:
        """Record a change the owner made (and the store already saved)."""
        if allowed:
            self._allowed.add(user_id)
            self._refused.discard(user_id)
        elif user_id != self.owner:
            self._allowed.discard(user_id)

    def should_refuse(self, user_id: int | None) -> bool:
        """True the first time a stranger writes (reply once), False afterwards and for members."""
        if self.allows(user_id):
            return False
        if user_id in self._refused:
            log.info("ignoring another message from unknown user %s", user_id)
            return False
        log.info("refusing unknown user %s", user_id)
        if user_id is not None:
            self._refused.add(user_id)
        return True
