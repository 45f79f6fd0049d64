"""Bot configuration: one frozen :class:`BotConfig` built once at start-up.

Sources, later ones winning: built-in defaults, the TOML file (``config_path()`` in the
platformdirs config folder, or ``--config``), the environment (``UPSCALER_API_ID``,
``UPSCALER_API_HASH``, ``UPSCALER_BOT_TOKEN``, ``UPSCALER_ALLOWED_USERS``,
``UPSCALER_DAILY_LIMIT``), then flags.

The bot token is a secret: it never appears in ``repr``, and :class:`RedactingFilter` removes it
from every log record. Files that hold it (the config file, the session) are kept at mode 0600.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs

if TYPE_CHECKING:
    from ..cluster.connect import Address

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

__all__ = [
    "APP_NAME",
    "BotConfig",
    "ConfigError",
    "MissingCredentialsError",
    "RedactingFilter",
    "config_path",
    "create_private",
    "default_data_dir",
    "ensure_private",
    "load_config",
    "parse_user_ids",
    "setup_message",
    "write_config",
]

log = logging.getLogger(__name__)

APP_NAME = "upscaler-edge"
ENV_API_ID = "UPSCALER_API_ID"
ENV_API_HASH = "UPSCALER_API_HASH"
ENV_BOT_TOKEN = "UPSCALER_BOT_TOKEN"
ENV_ALLOWED_USERS = "UPSCALER_ALLOWED_USERS"
ENV_DAILY_LIMIT = "UPSCALER_DAILY_LIMIT"
TELEGRAM_FILE_LIMIT = 2000 * 1024 * 1024  # bytes: the largest file a bot may send


class ConfigError(Exception):
    """The configuration cannot be used; ``str()`` is the whole message for the user."""


class MissingCredentialsError(ConfigError):
    """api_id, api_hash or the bot token is missing."""


def config_path() -> Path:
    """Where the bot looks for its TOML file when ``--config`` is not given."""
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / "bot.toml"


def default_data_dir() -> Path:
    """Session, job database and spool live here unless ``data_dir`` says otherwise."""
    return platformdirs.user_data_path(APP_NAME, appauthor=False) / "bot"


@dataclass(frozen=True)
class BotConfig:
    """Everything the bot needs, validated. ``allowed_users[0]`` is the owner; the list seeds
    the allowlist the owner then edits from the chat (``/allow``, ``/deny``).

    ``max_file_mb`` caps what the bot downloads (Telegram's reported size, checked before the
    download); ``max_megapixels`` caps the input image (checked on the size Telegram reports
    before the download when it reports one, and on the file's header before any work).
    ``max_video_seconds`` caps a video's duration (for when the bot takes videos; 0: no cap).
    ``daily_limit`` is how many jobs a day each user other than the owner may start (0: no
    limit); the day ends at the bot host's local midnight.
    ``oversize`` says what happens when a result would exceed Telegram's 2000 MiB limit:
    ``"jpeg"`` sends it as a high-quality JPEG instead, ``"refuse"`` fails the job.

    Several PCs: ``cluster = true`` sends every job to the cluster whose address
    ``upscaler-edge --coordinator`` (or ``--serve``) saved on this PC; ``cluster_url``,
    ``cluster_token`` and ``cluster_tls_pin`` name another one (and imply ``cluster``).
    ``cluster_slots`` jobs are in flight at once (one per worker is a good start).
    """

    api_id: int
    api_hash: str = field(repr=False)
    bot_token: str = field(repr=False)
    allowed_users: tuple[int, ...] = ()
    data_dir: Path = field(default_factory=default_data_dir)
    model: str = "realesrgan-x4plus"
    device: str = "auto"
    max_file_mb: int = 200
    max_megapixels: float = 50.0
    max_video_seconds: int = 600
    daily_limit: int = 0
    oversize: str = "jpeg"
    progress_interval: float = 2.0
    job_timeout: float = 1800.0
    stop_grace: float = 20.0
    max_attempts: int = 3
    cluster: bool = False
    cluster_url: str = ""
    cluster_token: str = field(default="", repr=False)
    cluster_tls_pin: str = ""
    cluster_slots: int = 4
    config_file: Path | None = None

    def __post_init__(self) -> None:
        if self.oversize not in ("jpeg", "refuse"):
            raise ConfigError(f"oversize must be 'jpeg' or 'refuse', not {self.oversize!r}")
        if self.max_file_mb < 1 or self.max_megapixels <= 0:
            raise ConfigError("max_file_mb and max_megapixels must be positive")
        if self.daily_limit < 0 or self.max_video_seconds < 0:
            raise ConfigError("daily_limit and max_video_seconds must be 0 (no limit) or more")
        if self.cluster_slots < 1:
            raise ConfigError("cluster_slots must be 1 or more")
        if self.cluster_url and not self.cluster_token:
            raise ConfigError("cluster_url needs cluster_token (printed by --coordinator)")
        from ..errors import UsageError
        from ..options import device_names

        try:
            device_names(self.device)
        except UsageError as exc:
            raise ConfigError(f"device: {exc}") from None

    @property
    def devices(self) -> tuple[str, ...]:
        """One device per worker process: "0,1" -> ("0", "1"); "auto", "cpu" and "all" (one
        worker spreading each image's tiles over every GPU) are one each."""
        from ..options import device_names

        return device_names(self.device)

    @property
    def uses_cluster(self) -> bool:
        """Jobs go to the cluster, not to worker processes on this PC."""
        return self.cluster or bool(self.cluster_url)

    def cluster_address(self) -> Address:
        """The cluster's :class:`~upscaler_edge.cluster.connect.Address`: ``cluster_url`` and
        its token and pin, else the address file the coordinator saved; ConfigError if none."""
        from ..cluster.connect import Address
        from ..errors import UsageError

        try:
            if self.cluster_url:
                return Address(self.cluster_url, self.cluster_token, self.cluster_tls_pin or None)
            from ..cluster.cli import address_file

            return Address.load(address_file())
        except UsageError as exc:
            raise ConfigError(f"cluster: {exc}") from None

    @property
    def owner(self) -> int | None:
        """The first allowed user, or None when nobody is allowed yet."""
        return self.allowed_users[0] if self.allowed_users else None

    @property
    def max_pixels(self) -> int:
        """``max_megapixels`` in pixels."""
        return int(self.max_megapixels * 1_000_000)

    @property
    def bot_id(self) -> int | None:
        """The bot's own user id: the digits before ':' in the token (None if malformed)."""
        head = self.bot_token.split(":", 1)[0]
        return int(head) if head.isdigit() else None

    @property
    def session_path(self) -> Path:
        """The bot's own Telethon session (never shared with a user session)."""
        return self.data_dir / "bot.session"

    @property
    def lock_path(self) -> Path:
        """Held while a bot process uses :attr:`session_path`."""
        return self.data_dir / "bot.lock"

    @property
    def jobs_path(self) -> Path:
        """The durable queue's SQLite file."""
        return self.data_dir / "jobs.sqlite3"

    @property
    def prefs_path(self) -> Path:
        """Per-user defaults and measured device speed."""
        return self.data_dir / "prefs.sqlite3"

    @property
    def members_path(self) -> Path:
        """Who may use the bot (the owner's /allow and /deny) and who was seen when."""
        return self.data_dir / "members.sqlite3"

    @property
    def spool_dir(self) -> Path:
        """Per-job input and output files; emptied as jobs end."""
        return self.data_dir / "spool"

    @property
    def max_file_bytes(self) -> int:
        """``max_file_mb`` in bytes."""
        return self.max_file_mb * 1024 * 1024


def parse_user_ids(value: Any) -> tuple[int, ...]:
    """``"1, 2 3"``, ``[1, 2]`` or ``5`` -> ``(1, 2, 3)``; order kept, duplicates dropped."""
    if value is None or value == "":
        return ()
    if isinstance(value, int) and not isinstance(value, bool):
        items: list[Any] = [value]
    elif isinstance(value, str):
        items = value.replace(",", " ").split()
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise ConfigError(f"allowed_users must be a list of numeric ids, not {value!r}")
    out: list[int] = []
    for item in items:
        try:
            uid = int(item)
        except (TypeError, ValueError):
            raise ConfigError(
                f"allowed_users: {item!r} is not a numeric Telegram user id "
                "(send /id to the bot to learn yours)"
            ) from None
        if uid <= 0:
            raise ConfigError(f"allowed_users: {uid} is not a valid user id")
        if uid not in out:
            out.append(uid)
    return tuple(out)


def setup_message(path: Path, missing: list[str]) -> str:
    """The one message shown when credentials are missing (printed by the CLI, exit 2)."""
    return (
        f"The Telegram bot is not set up yet: missing {', '.join(missing)}.\n"
        "  1. Create a bot: open Telegram, talk to @BotFather, send /newbot and copy the token.\n"
        "  2. Get api_id and api_hash: log in at https://my.telegram.org, open\n"
        "     'API development tools' and create an application.\n"
        f"  3. Put them in {path} (it is kept private, mode 0600):\n"
        "       api_id = 1234567\n"
        '       api_hash = "0123456789abcdef0123456789abcdef"\n'
        '       bot_token = "123456789:AA..."\n'
        "       allowed_users = [your numeric Telegram id]\n"
        f"     or set {ENV_API_ID}, {ENV_API_HASH}, {ENV_BOT_TOKEN} and {ENV_ALLOWED_USERS},\n"
        "     or pass --api-id, --api-hash, --bot-token and --allowed-users (add --save-config\n"
        "     to write them to the file).\n"
        "Then start the bot again and send it /id to learn your user id."
    )


_INT_KEYS = {
    "api_id",
    "max_file_mb",
    "max_attempts",
    "daily_limit",
    "max_video_seconds",
    "cluster_slots",
}
_FLOAT_KEYS = {"progress_interval", "job_timeout", "stop_grace", "max_megapixels"}
_STR_KEYS = {
    "api_hash",
    "bot_token",
    "model",
    "device",
    "oversize",
    "cluster_url",
    "cluster_token",
    "cluster_tls_pin",
}
_BOOL_KEYS = {"cluster"}
_KNOWN = _INT_KEYS | _FLOAT_KEYS | _STR_KEYS | _BOOL_KEYS | {"allowed_users", "data_dir"}
_OLD_KEYS = {"max_pixels"}  # read for older config files: max_pixels = N -> max_megapixels


def _coerce(key: str, value: Any) -> Any:
    try:
        if key in _INT_KEYS:
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if key in _FLOAT_KEYS:
            return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be a number, not {value!r}") from None
    if key in _STR_KEYS:
        return str(value).strip()
    if key in _BOOL_KEYS:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{key} must be true or false, not {value!r}")
    if key == "allowed_users":
        return parse_user_ids(value)
    if key == "data_dir":
        return Path(str(value)).expanduser()
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if "bot" in data and isinstance(data["bot"], dict):  # allow a [bot] table too
        data = {**{k: v for k, v in data.items() if k != "bot"}, **data["bot"]}
    if "max_pixels" in data and "max_megapixels" not in data:
        try:
            data["max_megapixels"] = float(data["max_pixels"]) / 1e6
        except (TypeError, ValueError):
            raise ConfigError(f"max_pixels must be a number, not {data['max_pixels']!r}") from None
    unknown = sorted(set(data) - _KNOWN - _OLD_KEYS)
    if unknown:
        log.warning("%s: ignoring unknown setting(s): %s", path, ", ".join(unknown))
    return {k: v for k, v in data.items() if k in _KNOWN}


def load_config(
    *,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> BotConfig:
    """Build the configuration from file, environment and flag ``overrides`` (None = unset).

    Raises :class:`MissingCredentialsError` (message: :func:`setup_message`) when api_id,
    api_hash or the token is missing, :class:`ConfigError` for anything malformed.
    A config file that holds the token and is readable by others is tightened to 0600.
    """
    env = os.environ if env is None else env
    file = Path(path) if path is not None else config_path()
    values: dict[str, Any] = {}
    from_file = _read_toml(file)
    values.update(from_file)
    if from_file.get("bot_token") or from_file.get("cluster_token"):
        ensure_private(file)
    for key, name in (
        ("api_id", ENV_API_ID),
        ("api_hash", ENV_API_HASH),
        ("bot_token", ENV_BOT_TOKEN),
        ("allowed_users", ENV_ALLOWED_USERS),
        ("daily_limit", ENV_DAILY_LIMIT),
    ):
        if env.get(name, "").strip():
            values[key] = env[name]
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
    coerced = {k: _coerce(k, v) for k, v in values.items() if k in _KNOWN}
    missing = [k for k in ("api_id", "api_hash", "bot_token") if not coerced.get(k)]
    if missing:
        raise MissingCredentialsError(setup_message(file, missing))
    token = coerced["bot_token"]
    if ":" not in token or not token.split(":", 1)[0].isdigit():
        raise ConfigError("bot_token does not look like a BotFather token (123456789:AA...)")
    return BotConfig(config_file=file, **coerced)


def ensure_private(path: Path) -> None:
    """Make ``path`` readable by its owner only (POSIX; a no-op elsewhere)."""
    if os.name != "posix":
        return
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        log.warning("%s was readable by others; setting it to 0600", path)
        path.chmod(0o600)


def create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it does not exist; tighten it if it does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        ensure_private(path)
    else:
        os.close(fd)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def write_config(path: Path, values: Mapping[str, Any]) -> None:
    """Write (or replace) the TOML file with ``values`` merged over what it holds, mode 0600.

    Written to a private temporary file first and renamed, so the token is never exposed.
    """
    merged = _read_toml(path)
    merged.update({k: v for k, v in values.items() if v is not None and k in _KNOWN})
    if "data_dir" in merged:
        merged["data_dir"] = str(merged["data_dir"])
    lines = ["# upscaler-edge Telegram bot settings (keep this file private)"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in merged.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


class RedactingFilter(logging.Filter):
    """Replaces each secret with ``[redacted]`` in log records (message and arguments)."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        # a real token or api_hash is 30+ characters; a short value (a typo, a test's "h")
        # would blank out ordinary words in every log line
        self._secrets = [s for s in secrets if s and len(s) >= 8]

    def _clean(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self._secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler
            return True
        cleaned = self._clean(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True
