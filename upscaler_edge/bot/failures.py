"""Why a job failed, in one line for its user.

:class:`Refused`: the job cannot be done (a bad file, over a limit), with the reason in any
language; :func:`core_error`: a refusal by the core; :func:`internal_error`: anything
unexpected (the traceback goes to the log, not to the user).
"""

from __future__ import annotations

from ..errors import InputError, UpscalerError
from .i18n import Text, Translator

__all__ = ["Refused", "core_error", "internal_error", "one_line"]


class Refused(Exception):
    """The job cannot be done; ``text`` is the reason for the user, in any language."""

    def __init__(self, text: Text | str) -> None:
        super().__init__(text if isinstance(text, str) else text.msgid)
        self.text = text

    def render(self, tr: Translator) -> str:
        return self.text if isinstance(self.text, str) else self.text.render(tr)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines too) made one space."""
    return " ".join(text.split())


def internal_error(exc: BaseException, tr: Translator | None = None) -> str:
    """The reply for an unexpected exception: its type and message, one line."""
    kind = type(exc)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    detail = one_line(str(exc))[:200]
    what = f"{name}: {detail}" if detail else name
    if tr is None:
        return f"Sorry: internal error: {what} (the details are in the bot's log)"
    return tr.gettext("Sorry: internal error: {what} (the details are in the bot's log)", what=what)


def core_error(exc: UpscalerError, tr: Translator) -> str:
    """A refusal by the core (its reason is English, one line) in the user's language."""
    if isinstance(exc, InputError):
        return tr.gettext("Sorry: I can't read that picture: {reason}.", reason=str(exc))
    return tr.gettext("Sorry: {reason}", reason=exc)
