"""Keep the image libraries quiet and inside our limits while we decode or encode.

Everything Pillow and its C libraries would say goes to ``logging`` under
``upscaler_edge.imageio.*`` (INFO for Pillow's warnings, DEBUG for the rest), never to the
terminal:

* Pillow's ``warnings.warn`` calls ("Possibly corrupt EXIF data", "Tag data larger than file",
  palette/transparency notes, ...) are recorded inside :func:`library_call` and logged at
  INFO. ``warnings.catch_warnings`` swaps process-wide state, so every such block holds one
  process-wide lock: decoders and encoders of different threads take turns around their
  Pillow calls (pixel conversion work outside Pillow is not serialised).
* Pillow's own loggers (``PIL.TiffImagePlugin`` logs at ERROR for some broken files): the
  ``PIL`` logger gets one handler, installed once at import, and stops propagating. Inside our
  calls its records are logged again at DEBUG under ``upscaler_edge.imageio.pillow``; in any
  other thread (or outside our calls) they go on to the root logger's handlers exactly as
  before. No other logger is touched.
* C libraries writing to file descriptor 2: libtiff prints every warning and error of a
  broken TIFF (hundreds of lines for one fuzzed file). Where the libtiff that Pillow loaded can
  be found (Linux: ``/proc/self/maps``; macOS wheels: ``PIL/.dylibs``), its process-wide error
  and warning handlers are set once to a function that logs at DEBUG
  (``upscaler_edge.imageio.libtiff``). Elsewhere, :func:`library_call` with
  ``capture_fd=True`` points fd 2 at a temporary file around the call (dup2, under the same
  lock) and logs what was written; any other thread's writes to fd 2 in that window land there
  too, which is why the handler route is preferred where it exists.
  ``UPSCALER_EDGE_LIBTIFF_HANDLERS=0`` in the environment turns the handler route off.
* Pillow's decompression-bomb check (``Image.MAX_IMAGE_PIXELS``, 89.5 MP, an error at twice
  that) is not our limit: ``max_pixels`` is. ``Image._decompression_bomb_check`` is wrapped
  once at import; inside :func:`library_call` in *this thread* it checks against the caller's
  ``max_pixels`` instead (:class:`ImageTooLargeError`), in every other thread and outside our
  calls it is Pillow's own check, unchanged. ``Image.MAX_IMAGE_PIXELS`` itself is never
  written.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import glob
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from PIL import Image

from ..errors import ImageTooLargeError

__all__ = ["NO_LIMIT", "check_size", "library_call", "libtiff_quiet"]

logger = logging.getLogger(__name__)
_pillow_log = logging.getLogger("upscaler_edge.imageio.pillow")
_libtiff_log = logging.getLogger("upscaler_edge.imageio.libtiff")
_stderr_log = logging.getLogger("upscaler_edge.imageio.stderr")

#: ``max_pixels`` for calls that must not be refused by any pixel count (encoding).
NO_LIMIT = sys.maxsize

_LOCK = threading.RLock()
_state = threading.local()  # .max_pixels: int | None, .depth: int
_MAX_LOGGED_LINES = 50


def check_size(size: tuple[int, int], max_pixels: int, what: str = "image") -> None:
    """Raise ImageTooLargeError when ``size`` holds more than ``max_pixels`` pixels."""
    width, height = int(size[0]), int(size[1])
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{what} is {width}x{height} = {width * height / 1e6:.1f} MP, "
            f"over the {max_pixels / 1e6:.1f} MP limit"
        )


def _inside() -> bool:
    return getattr(_state, "depth", 0) > 0


@contextlib.contextmanager
def library_call(max_pixels: int = NO_LIMIT, *, capture_fd: bool = False) -> Iterator[None]:
    """Run Pillow calls quietly: warnings and log records to logging, our pixel limit.

    Re-entrant in one thread (nested calls keep the outer limit unless they set their own).
    ``capture_fd`` also redirects file descriptor 2 (see the module docstring); it is only
    done when libtiff could not be silenced through its handlers.
    """
    with _LOCK:
        outer = getattr(_state, "max_pixels", None)
        _state.max_pixels = max_pixels
        _state.depth = getattr(_state, "depth", 0) + 1
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    with _fd2_to_log(capture_fd and not libtiff_quiet()):
                        yield
                finally:
                    _log_warnings(caught)
        finally:
            _state.depth -= 1
            _state.max_pixels = outer


def _log_warnings(caught: list[warnings.WarningMessage]) -> None:
    seen: set[str] = set()
    for item in caught:
        text = " ".join(str(item.message).split())
        if text not in seen:
            seen.add(text)
            _pillow_log.info("%s: %s", item.category.__name__, text)


@contextlib.contextmanager
def _fd2_to_log(active: bool) -> Iterator[None]:
    """Point fd 2 at a temporary file for the duration; log what was written there."""
    if not active:
        yield
        return
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        sink = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the with below
        saved = os.dup(2)
    except OSError as exc:  # no fd 2 (a GUI app on Windows) or out of descriptors
        logger.debug("cannot capture stderr (%s)", exc)
        yield
        return
    with sink:
        try:
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        sink.seek(0)
        text = sink.read(1 << 16).decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines[:_MAX_LOGGED_LINES]:
        _stderr_log.debug("%s", line)
    if len(lines) > _MAX_LOGGED_LINES:
        _stderr_log.debug("... and %d more lines", len(lines) - _MAX_LOGGED_LINES)


# --------------------------------------------------------------------------------------------
# Pillow's decompression-bomb check: our limit inside our calls, Pillow's everywhere else.

_pillow_bomb_check: Callable[..., None] | None = getattr(Image, "_decompression_bomb_check", None)


def _bomb_check(size: tuple[int, int], *args: Any, **kwargs: Any) -> None:
    limit = getattr(_state, "max_pixels", None) if _inside() else None
    if limit is None:
        if _pillow_bomb_check is not None:
            _pillow_bomb_check(size, *args, **kwargs)
        return
    width, height = (max(1, int(v)) for v in size)
    check_size((width, height), limit)


if _pillow_bomb_check is not None and not getattr(_pillow_bomb_check, "_upscaler_edge", False):
    _bomb_check._upscaler_edge = True  # type: ignore[attr-defined]
    Image._decompression_bomb_check = _bomb_check


# --------------------------------------------------------------------------------------------
# Pillow's loggers: demoted to DEBUG inside our calls, untouched elsewhere.


class _PillowRelay(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if _inside():
            if _pillow_log.isEnabledFor(logging.DEBUG):
                _pillow_log.debug("%s: %s", record.name, record.getMessage())
        else:
            logging.getLogger().handle(record)  # what propagation would have done


def _install_pillow_relay() -> None:
    pil = logging.getLogger("PIL")
    if not any(isinstance(h, _PillowRelay) for h in pil.handlers):
        pil.addHandler(_PillowRelay())
        pil.propagate = False


_install_pillow_relay()


# --------------------------------------------------------------------------------------------
# libtiff: its default handlers print to stderr; ours log.

_HANDLER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
_handlers: list[Any] = []  # keep the ctypes callbacks alive for the life of the process
_libtiff: dict[str, bool] = {}  # "ok": whether libtiff's handlers are ours (set once)


def _libtiff_paths() -> list[str]:
    """Where the libtiff that Pillow's _imaging uses is loaded from (best effort)."""
    from PIL import _imaging  # noqa: F401 - make sure the library is loaded

    found: list[str] = []
    with contextlib.suppress(OSError), open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            parts = line.split(None, 5)
            if len(parts) == 6 and os.path.basename(parts[5].strip()).startswith("libtiff"):
                found.append(parts[5].strip())
    if not found and sys.platform == "darwin":
        import PIL

        found = glob.glob(os.path.join(os.path.dirname(PIL.__file__), ".dylibs", "libtiff*"))
    return list(dict.fromkeys(found))


def _formatter() -> Callable[[bytes, int], str] | None:
    """vsnprintf over the handler's va_list, where the C ABI passes it as a pointer."""
    import platform

    if sys.platform not in ("linux", "darwin") or platform.machine().lower() not in (
        "x86_64",
        "amd64",
        "aarch64",
        "arm64",
    ):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        vsnprintf = libc.vsnprintf
    except (OSError, AttributeError):
        return None
    vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    vsnprintf.restype = ctypes.c_int

    def fmt(template: bytes, ap: int) -> str:
        buf = ctypes.create_string_buffer(512)
        vsnprintf(buf, len(buf), template, ap)
        return buf.value.decode("utf-8", "replace")

    return fmt


def _make_handler(kind: str, fmt: Callable[[bytes, int], str] | None) -> Any:
    def handler(module: bytes | None, template: bytes | None, ap: int | None) -> None:
        try:
            text = (template or b"").decode("utf-8", "replace")
            if fmt is not None and template and ap:
                text = fmt(template, ap)
            where = (module or b"").decode("utf-8", "replace")
            _libtiff_log.debug("libtiff %s: %s: %s", kind, where, text)
        except Exception:  # never let an exception cross into C
            pass

    return _HANDLER(handler)


def libtiff_quiet() -> bool:
    """Route libtiff's messages to logging (once); True when that worked."""
    if "ok" in _libtiff:
        return _libtiff["ok"]
    with _LOCK:
        if "ok" not in _libtiff:
            _libtiff["ok"] = _install_libtiff_handlers()
        return _libtiff["ok"]


def _install_libtiff_handlers() -> bool:
    if os.environ.get("UPSCALER_EDGE_LIBTIFF_HANDLERS", "1") == "0":
        return False
    fmt = _formatter()
    ok = False
    for path in _libtiff_paths():
        try:
            lib = ctypes.CDLL(path)
            set_warning, set_error = lib.TIFFSetWarningHandler, lib.TIFFSetErrorHandler
        except (OSError, AttributeError) as exc:
            logger.debug("cannot use %s (%s)", path, exc)
            continue
        warn, err = _make_handler("warning", fmt), _make_handler("error", fmt)
        for setter in (set_warning, set_error):
            setter.argtypes = [_HANDLER]
            setter.restype = ctypes.c_void_p
        set_warning(warn)
        set_error(err)
        _handlers.extend([warn, err])
        ok = True
    if not ok:
        logger.debug("libtiff not found: its messages are captured from fd 2 instead")
    return ok
