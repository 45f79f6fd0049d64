"""Import any convolutional super-resolution model (ONNX or PyTorch) as an ncnn model.

``import_model(FILE)``: open it (``sources``), convert it with pnnx (``pnnx``), check ncnn's
output against the original framework's on a random image (PSNR >= 45 dB, else refused),
measure the context that makes tiles join without seams (tiled against whole on a real
image), then write ``NAME.param``, ``NAME.bin`` and the sidecar ``NAME.toml`` into the user
models folder, where the registry finds ``-m NAME``. A refusal (:class:`ImportRefused`, one
line) adds nothing: all work happens in a temporary folder and the files are moved in last.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..integrity import sha256 as _sha256
from ..models import ModelSpec, Registry, default_registry, user_models_dir
from ..ncnn_param import blob_names, global_pools
from .pnnx import ConversionFailed, to_ncnn
from .sources import ImportRefused, Source, load_source

__all__ = ["ImportRefused", "ImportedModel", "default_name", "import_model"]

log = logging.getLogger(__name__)

#: ncnn against the original framework on a random image: below this, refused.
PARITY_DB = 45.0
#: tiled against whole on a real image: the smallest context reaching this is stored.
SEAM_DB = 45.0
_CONTEXTS = (4, 8, 12, 16, 24, 32, 48, 64)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

Say = Callable[[str], None]


@dataclass(frozen=True)
class ImportedModel:
    """What an import added: ``-m name`` now works."""

    name: str
    scale: int
    kind: str
    channels: int
    context: int
    parity_db: float
    seam_db: float
    param_path: Path
    bin_path: Path
    sidecar_path: Path


def default_name(path: Path) -> str:
    """The name an import gives a model file by default: its stem, cleaned."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", path.stem).strip("-._") or "model"
    return stem[:64]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 1.0) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return 99.0 if mse == 0 else float(10 * np.log10(peak**2 / mse))


def import_model(
    path: Path | str,
    name: str | None = None,
    scale: int | None = None,
    *,
    dest: Path | None = None,
    say: Say | None = None,
) -> ImportedModel:
    """Import the model file ``path`` as ``name`` (default: the file's stem) into ``dest``
    (default: the user models folder). ``scale`` states the model's scale (checked against
    what it does). ``say`` hears progress lines. Raises ImportRefused, nothing added."""
    path = Path(path)
    if not path.is_file():
        raise ImportRefused(f"{path}: no such file")
    name = name or default_name(path)
    if not _NAME.match(name):
        raise ImportRefused(f"model name {name!r}: use letters, digits, '.', '_' and '-'")
    dest = dest or user_models_dir()
    taken = Registry.load((dest,)).names()
    if name in taken or (dest / f"{name}.param").exists():
        raise ImportRefused(f"a model named {name!r} exists; choose another with --name")
    tell = say or (lambda line: log.info("%s", line))
    with tempfile.TemporaryDirectory(prefix="upscaler-edge-import-") as tmp:
        work = Path(tmp)
        tell(f"reading {path.name}")
        try:
            src = load_source(path, work, scale)
            spec, parity = _convert_checked(src, work, name, tell)
        except ImportRefused as exc:  # one line that names the file, whatever the reason
            if path.name in str(exc):
                raise
            raise ImportRefused(f"{path.name}: {exc}") from exc
        tell(f"ncnn matches {src.kind} at {parity:.1f} dB; measuring the seam-free context")
        context, seam = _measure_context(spec)
        spec = dataclasses.replace(spec, context=context)
        return _install(spec, src, path, dest, parity, seam)


def _convert_checked(src: Source, work: Path, name: str, tell: Say) -> tuple[ModelSpec, float]:
    """Convert with pnnx (fp16 weights, then fp32 if that is not faithful enough) and check
    ncnn against the original on a random image."""
    a, c = src.align, src.channels
    shapes = ((1, c, 64 + (-64) % a, 64 + (-64) % a), (1, c, 96 + (-96) % a, 80 + (-80) % a))
    best = 0.0
    for fp16 in (True, False):
        out = work / ("fp16" if fp16 else "fp32")
        out.mkdir()
        tell(f"converting with pnnx ({'fp16' if fp16 else 'fp32'} weights)")
        try:
            param, binf = to_ncnn(src.convertible, out, shapes, fp16=fp16)
        except ConversionFailed as exc:
            raise ImportRefused(str(exc)) from exc
        spec = _spec_for(name, src, param, binf)
        parity = _parity(spec, src)
        if parity < PARITY_DB and _parity(spec, src, odd=False) >= PARITY_DB:
            # faithful at sizes in multiples of 16, not at others (a pixel-unshuffle model
            # traced without its padding): tiles get aligned sizes
            for align in (2, 4, 8, 16):
                trial = dataclasses.replace(spec, align=max(align, spec.align))
                if _parity(trial, src) >= PARITY_DB:
                    spec, parity = trial, _parity(trial, src)
                    break
        best = max(best, parity)
        if parity >= PARITY_DB:
            return spec, parity
    raise ImportRefused(
        f"ncnn's output differs from {src.kind}'s ({best:.1f} dB < {PARITY_DB:.0f} dB on a "
        "random image): this model does not convert faithfully; nothing was added"
    )


def _spec_for(name: str, src: Source, param: Path, binf: Path) -> ModelSpec:

    inp, out = blob_names(param)
    return ModelSpec(
        name=name,
        scale=src.scale,
        param_path=param,
        bin_path=binf,
        input_blob=inp,
        output_blob=out,
        description=f"Imported {src.kind} model",
        channels=src.channels,
        align=src.align,
        se_blobs=tuple(top for _, top in global_pools(param)),
    )


def _parity(spec: ModelSpec, src: Source, *, odd: bool = True) -> float:
    """PSNR of ncnn's output against the original's on random images: 80x64 and, with
    ``odd``, 67x53 (both grown to the model's alignment); the worse of the two."""
    from ..engine import Engine, pick_device

    a = spec.align
    sizes = [(64, 80), (53, 67)] if odd else [(64, 80)]
    worst = 99.0
    try:
        with Engine(spec, pick_device("cpu")) as eng:
            for h0, w0 in sizes:
                h, w = h0 + (-h0) % a, w0 + (-w0) % a
                x = np.random.default_rng(7).random((3, h, w), dtype=np.float32)
                if src.channels == 3:
                    ref = src.run(x[None])[0]
                else:  # a one-plane model upscales each colour on its own, as the engine does
                    ref = np.concatenate([src.run(x[None, c : c + 1])[0] for c in range(3)])
                got = eng.infer(x)
                worst = min(worst, psnr(np.clip(got, 0, 1), np.clip(ref, 0, 1)))
    except (ModelError, ValueError) as exc:
        log.info("ncnn cannot run the converted model: %s", exc)
        return 0.0
    return worst


def _test_image() -> np.ndarray:
    """A 64x64 crop of the bundled sample photo: real edges and texture."""
    import importlib.resources

    from PIL import Image

    with Image.open(str(importlib.resources.files("upscaler_edge") / "data" / "sample.jpg")) as im:
        return np.ascontiguousarray(np.asarray(im.convert("RGB"))[48:112, 48:112])


def _measure_context(spec: ModelSpec) -> tuple[int, float]:
    """The smallest context whose 32 px tiles match the whole image at SEAM_DB, and that
    PSNR (the largest tried, and its PSNR, when none does)."""
    from ..imageio import Frame, Picture
    from ..options import Options
    from ..pipeline import Upscaler

    rgb = _test_image()
    pic = Picture(frames=[Frame(rgb=rgb, alpha=None, duration_ms=None)], source_format="png")
    opts = Options(model=spec.name, device="cpu")
    with Upscaler(opts, Registry([spec])) as up:
        whole = up.upscale_picture(pic, opts.replace(tile=1000)).frames[0].rgb
    seam = 0.0
    for context in _CONTEXTS:
        trial = dataclasses.replace(spec, context=context)
        with Upscaler(opts, Registry([trial])) as up:
            tiled = up.upscale_picture(pic, opts.replace(tile=32)).frames[0].rgb
        seam = psnr(tiled, whole, 255.0)
        if seam >= SEAM_DB:
            return context, seam
    log.warning("%s: tiles still differ at context %d (%.1f dB)", spec.name, context, seam)
    return _CONTEXTS[-1], seam


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, list | tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string


def _install(
    spec: ModelSpec, src: Source, origin: Path, dest: Path, parity: float, seam: float
) -> ImportedModel:
    """Move the pair in and write the sidecar: .bin, then .toml, then .param (the registry
    looks for .param files, so the model appears complete or not at all)."""
    dest.mkdir(parents=True, exist_ok=True)
    param, binf, side = (dest / f"{spec.name}{ext}" for ext in (".param", ".bin", ".toml"))
    fields: dict[str, object] = {
        "scale": spec.scale,
        "context": spec.context,
        "channels": spec.channels,
        "align": spec.align,
        "input_blob": spec.input_blob,
        "output_blob": spec.output_blob,
        "description": f"Imported from {origin.name} ({src.kind})",
        "licence": "unknown: see the original model's licence",
        "source": str(origin.resolve()),
        "source_sha256": _sha256(origin),
        "param_sha256": _sha256(spec.param_path),
        "bin_sha256": _sha256(spec.bin_path),
        "parity_psnr_db": round(parity, 2),
        "seam_psnr_db": round(seam, 2),
    }
    if spec.se_blobs:
        fields["se_blobs"] = list(spec.se_blobs)
    text = "# written by upscaler-edge --import-model\n" + "".join(
        f"{k} = {_toml_value(v)}\n" for k, v in fields.items()
    )
    try:
        _move(spec.bin_path, binf)
        tmp = side.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, side)
        _move(spec.param_path, param)
    except OSError as exc:
        for p in (param, binf, side):
            p.unlink(missing_ok=True)
        raise ImportRefused(f"cannot write into {dest}: {exc.strerror or exc}") from exc
    default_registry.cache_clear()
    return ImportedModel(
        name=spec.name,
        scale=spec.scale,
        kind=src.kind,
        channels=spec.channels,
        context=spec.context,
        parity_db=parity,
        seam_db=seam,
        param_path=param,
        bin_path=binf,
        sidecar_path=side,
    )


def _move(src: Path, dst: Path) -> None:
    """Move across file systems, atomically at the destination."""
    tmp = dst.with_suffix(f"{dst.suffix}.{os.getpid()}.tmp")
    try:
        os.replace(src, tmp)
    except OSError:
        import shutil

        shutil.copyfile(src, tmp)
    os.replace(tmp, dst)
