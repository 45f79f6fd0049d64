"""One exception tree for the whole core.

Front ends turn these into exit codes (CLI), replies (bot) or messages (GUI). Every
``str(exc)`` is a single line meant for the user: what went wrong and, where it helps,
what to do about it. Tracebacks are for logs only.
"""

from __future__ import annotations

import enum

__all__ = [
    "Cancelled",
    "DeviceError",
    "ExitStatus",
    "ImageTooLargeError",
    "InputError",
    "JobFailed",
    "ModelError",
    "ModelIntegrityError",
    "OutputError",
    "OutputExistsError",
    "SegmentError",
    "UnknownModelError",
    "UpscalerError",
    "UsageError",
    "error_from",
]


class UpscalerError(Exception):
    """Base of every error the core raises on purpose."""


class UsageError(UpscalerError):
    """Options that make no sense together (bad tile size, bad scale, ...)."""


class InputError(UpscalerError):
    """The input cannot be read as an image we accept (empty, truncated, wrong format)."""


class ImageTooLargeError(InputError):
    """The image header declares more pixels than the configured cap."""


class SegmentError(InputError):
    """A video segment made elsewhere is missing, damaged or does not fit its plan.

    ``index`` says which one (None when the worker process passed the error on), so the
    caller can have it done again."""

    def __init__(self, message: str, index: int | None = None) -> None:
        super().__init__(message)
        self.index = index


class ModelError(UpscalerError):
    """A model cannot be found, loaded or trusted."""


class UnknownModelError(ModelError):
    """No model of that name; the message lists the valid names."""


class ModelIntegrityError(ModelError):
    """A weight file does not match the sha256 in the manifest."""


class DeviceError(UpscalerError):
    """The compute device failed and no fallback was left."""


class OutputError(UpscalerError):
    """The result cannot be written where asked."""


class OutputExistsError(OutputError):
    """The output exists and overwriting was not asked for."""


class Cancelled(UpscalerError):
    """The job was cancelled by the user; nothing was written."""


class JobFailed(UpscalerError):
    """The worker process died or timed out while running a job."""


class ExitStatus(enum.IntEnum):
    """Process exit statuses of the CLI and the bot (``python -m upscaler_edge ...``)."""

    OK = 0  # everything done (or skipped)
    FAILED = 1  # some input failed; the others were still done
    USAGE = 2  # bad arguments or configuration, a missing extra: nothing was run
    ALREADY_RUNNING = 3  # the bot: another process already uses the session
    INTERRUPTED = 130  # Ctrl-C / SIGTERM


def error_from(name: str | None, message: str | None) -> UpscalerError:
    """The error a child process or another PC named (by class name), re-created here; an
    unknown name (or not one of ours) becomes a plain UpscalerError."""
    cls = globals().get(name or "", UpscalerError)
    if not (isinstance(cls, type) and issubclass(cls, UpscalerError)):
        cls = UpscalerError
    return cls(message or "failed")
