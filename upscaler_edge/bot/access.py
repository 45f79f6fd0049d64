"""Who may use the bot: an allowlist of Telegram user ids, the owner first.

Anyone else gets one polite refusal per bot run (later messages are ignored, so a stranger
cannot make the bot spam them or anyone) and never causes a job, a row or a download.
``/id`` is the exception: it answers everyone, so the owner can learn a friend's id.
"""

from __future__ import annotations

import logging

__all__ = ["REFUSAL", "Access"]

log = logging.getLogger(__name__)

REFUSAL = (
    "Sorry, this is a private bot that runs on its owner's computer, so it only works for "
    "people they have added. If you know them, send /id and give them the number it shows."
)


class Access:
    """The allowlist (owner = first id) and the record of strangers already refused."""

    def __init__(self, allowed_users: tuple[int, ...]) -> None:
        self.allowed = tuple(allowed_users)
        self._refused: set[int] = set()

    @property
    def owner(self) -> int | None:
        """The first allowed user, or None."""
        return self.allowed[0] if self.allowed else None

    def allows(self, user_id: int | None) -> bool:
        """True if ``user_id`` may send jobs and commands."""
        return user_id is not None and user_id in self.allowed

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
