"""Quality evaluation: classic resizes against the models on degraded real images.

    python bench/quality.py            # full run (~4-5 min on 2 cores): prints the tables and
                                       # rewrites docs/eval/results.md and docs/eval/crops_*.png
    python bench/quality.py --families # x2: Real-CUGAN, waifu2x (with denoise levels) and the
                                       # x2-capable Real-ESRGAN models -> docs/eval/x2/
    python bench/quality.py --quick    # smoke run (seconds): two tiny images, nothing written
    python bench/quality.py --no-lavapipe --out /tmp/eval   # skip the software-Vulkan timing

A method is ``bicubic``, ``lanczos``, a model name (``-m``), or ``MODEL:nN`` for a denoise
level (``realcugan-se:n3`` = ``-m realcugan-se -n 3``). ``--scale`` sets the factor (4 by
default, 2 for ``--families``); a model with a larger native scale is brought down with
Lanczos, as ``-s`` does.

Needs the bench extra (``pip install -e '.[bench]'``: scikit-image, which brings scipy).
Nothing is downloaded: the photos are scikit-image's bundled samples, and two drawn images
(anime-style art and an app screenshot) are generated here with Pillow, deterministically.

For each original (cropped so its sides divide by 4):
  degradations  "x4"        Pillow ``resize(..., BICUBIC)`` to a quarter of each side (Pillow
                            widens the kernel by the reduction factor, so this is antialiased)
                "x4+JPEG70" the same, then a JPEG round trip at quality 70 (4:2:0), roughly
                            what Telegram does to a photo sent as a photo
  methods       bicubic, lanczos (Pillow resize x4) and realesrgan-x4plus, realesrgan-x4plus-anime,
                realesr-animevideov3-x4 (``upscaler_edge.pipeline.Upscaler`` on the CPU)
  metrics       PSNR and SSIM against the original (``skimage.metrics``, RGB, data_range=255,
                SSIM with channel_axis=-1, no border shaved); sharpness = variance of
                ``scipy.ndimage.laplace`` of the float luma (0.299 R + 0.587 G + 0.114 B, 0..255),
                reported as a ratio to the original's (1.00 = as sharp as the original);
                speed = median seconds per output megapixel over the runs (CPU, warm engines),
                and once per model on a 48x48 input on the software Vulkan device (lavapipe).
"""

from __future__ import annotations

import argparse
import io
import logging
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

log = logging.getLogger("quality")

SCALE = 4
JPEG_QUALITY = 70
BASELINES: dict[str, int] = {"bicubic": Image.BICUBIC, "lanczos": Image.LANCZOS}
MODELS: tuple[str, ...] = (
    "realesrgan-x4plus",
    "realesrgan-x4plus-anime",
    "realesr-animevideov3-x4",
)
DEGRADATIONS: tuple[str, ...] = ("x4", "x4+JPEG70")
#: --families: the x2 comparison of Real-CUGAN and waifu2x (plain and their strongest
#: denoisers, which target JPEG damage) with the x2-capable Real-ESRGAN models
FAMILY_MODELS: tuple[str, ...] = (
    "realesr-animevideov3-x2",
    "realesrgan-x4plus",
    "realcugan-se",
    "realcugan-se:n-1",
    "realcugan-se:n3",
    "realcugan-pro",
    "realcugan-pro:n3",
    "waifu2x-cunet",
    "waifu2x-cunet:n1",
    "waifu2x-cunet:n3",
    "waifu2x-upconv7-anime",
    "waifu2x-upconv7-photo",
    "waifu2x-upconv7-photo:n1",
)


def set_scale(scale: int) -> None:
    """Run the study at ``scale`` (the degradations' names follow)."""
    global SCALE, DEGRADATIONS  # noqa: PLW0603 - a benchmark script's one study setting
    SCALE = scale
    DEGRADATIONS = (f"x{scale}", f"x{scale}+JPEG{JPEG_QUALITY}")


def parse_method(method: str) -> tuple[str, int | None]:
    """``MODEL:nN`` -> (MODEL, N); a plain name -> (name, None)."""
    model, sep, level = method.partition(":n")
    return (model, int(level)) if sep else (method, None)


LAVAPIPE_SIDE = 48  # input side for the software-Vulkan timing: x4plus there is ~0.5 s/kpx
REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "docs" / "eval"


# --------------------------------------------------------------------------------------------
# Test images


@dataclass(frozen=True)
class TestImage:
    """An original: (H, W, 3) uint8 RGB with H and W divisible by SCALE."""

    name: str
    kind: str  # "photo" | "drawn"
    rgb: np.ndarray
    source: str
    focus: tuple[int, int]  # top-left (x, y) of the region shown in the crops PNG

    __test__ = False  # not a pytest class


# scikit-image sample, crop's top-left (x, y) in the sample, focus inside the crop
PHOTOS: tuple[tuple[str, str, tuple[int, int], tuple[int, int]], ...] = (
    ("astronaut", "astronaut", (96, 0), (88, 28)),
    ("coffee", "coffee", (170, 40), (120, 60)),
    ("chelsea", "chelsea", (100, 6), (16, 56)),
    ("rocket", "rocket", (176, 136), (96, 150)),
    ("camera", "camera", (120, 32), (72, 40)),
    ("motorcycle", "stereo_motorcycle", (290, 190), (96, 96)),
    ("hubble", "hubble_deep_field", (400, 300), (96, 96)),
)


def _sample(loader: str) -> np.ndarray:
    """A bundled scikit-image sample as (H, W, 3) uint8 (gray stacked, alpha dropped)."""
    a = getattr(skdata, loader)()
    if isinstance(a, tuple):  # stereo_motorcycle: (left, right, disparity)
        a = a[0]
    a = np.asarray(a)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    return np.ascontiguousarray(a[:, :, :3].astype(np.uint8))


def crop(a: np.ndarray, x: int, y: int, size: int) -> np.ndarray:
    """A size x size crop at (x, y), shifted inside the image and trimmed to a multiple of SCALE."""
    h, w = a.shape[:2]
    side = min(size, h, w) // SCALE * SCALE
    x = max(0, min(x, w - side))
    y = max(0, min(y, h - side))
    return np.ascontiguousarray(a[y : y + side, x : x + side])


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def make_drawing(size: int = 256) -> np.ndarray:
    """Anime-style art: gradient sky, flat fills, hard black outlines, big eyes, a speech
    bubble with text. Drawn at 2x and reduced with Lanczos so edges are antialiased, like a
    rendered cel frame. Deterministic for a given Pillow (its default font is bundled)."""
    k = 2
    s = size * k
    yy = np.linspace(0.0, 1.0, s)[:, None, None]
    top, bottom = np.array([96, 160, 235.0]), np.array([250, 200, 215.0])
    sky = (top * (1 - yy) + bottom * yy) * np.ones((1, s, 1))
    im = Image.fromarray(sky.astype(np.uint8), "RGB")
    d = ImageDraw.Draw(im)

    def p(v: float) -> int:  # fraction of the side -> pixels at 2x
        return round(v * s)

    ow = 3 * k  # outline width
    d.ellipse([p(0.70), p(0.06), p(0.90), p(0.26)], fill=(255, 214, 60), outline="black", width=ow)
    for i in range(8):  # sun rays
        ang = i * np.pi / 4
        cx, cy = p(0.80), p(0.16)
        d.line(
            [
                cx + np.cos(ang) * p(0.12),
                cy + np.sin(ang) * p(0.12),
                cx + np.cos(ang) * p(0.16),
                cy + np.sin(ang) * p(0.16),
            ],
            fill="black",
            width=k,
        )
    d.ellipse([p(-0.3), p(0.62), p(0.6), p(1.3)], fill=(110, 190, 90), outline="black", width=ow)
    d.ellipse([p(0.35), p(0.70), p(1.3), p(1.4)], fill=(70, 150, 80), outline="black", width=ow)
    for i in range(14):  # grass hatching: thin strokes
        x0 = p(0.05 + i * 0.065)
        d.line([x0, p(0.93), x0 + p(0.02), p(0.87)], fill=(30, 90, 40), width=k)
    # head, hair, eyes, mouth
    d.ellipse([p(0.18), p(0.28), p(0.58), p(0.74)], fill=(255, 224, 196), outline="black", width=ow)
    hair = [
        (0.14, 0.46),
        (0.17, 0.26),
        (0.26, 0.18),
        (0.38, 0.15),
        (0.50, 0.18),
        (0.60, 0.27),
        (0.62, 0.46),
        (0.54, 0.34),
        (0.47, 0.40),
        (0.42, 0.31),
        (0.34, 0.39),
        (0.28, 0.31),
        (0.21, 0.42),
    ]
    d.polygon([(p(x), p(y)) for x, y in hair], fill=(120, 60, 160), outline="black", width=ow)
    for ex in (0.25, 0.41):
        d.ellipse([p(ex), p(0.44), p(ex + 0.11), p(0.59)], fill="white", outline="black", width=ow)
        d.ellipse([p(ex + 0.025), p(0.47), p(ex + 0.095), p(0.58)], fill=(40, 110, 200))
        d.ellipse([p(ex + 0.045), p(0.50), p(ex + 0.075), p(0.55)], fill="black")
        d.ellipse([p(ex + 0.03), p(0.475), p(ex + 0.055), p(0.50)], fill="white")
    d.arc([p(0.33), p(0.58), p(0.43), p(0.67)], start=20, end=160, fill="black", width=ow)
    d.ellipse([p(0.22), p(0.60), p(0.28), p(0.63)], fill=(250, 170, 170))
    d.ellipse([p(0.48), p(0.60), p(0.54), p(0.63)], fill=(250, 170, 170))
    # speech bubble with text in Pillow's default font
    d.rounded_rectangle(
        [p(0.56), p(0.30), p(0.97), p(0.56)],
        radius=p(0.05),
        fill="white",
        outline="black",
        width=ow,
    )
    d.polygon([(p(0.60), p(0.54)), (p(0.55), p(0.62)), (p(0.66), p(0.55))], fill="white")
    d.line([(p(0.60), p(0.555)), (p(0.55), p(0.62)), (p(0.66), p(0.555))], fill="black", width=ow)
    d.text((p(0.60), p(0.33)), "Upscale", font=_font(p(0.055)), fill="black")
    d.text((p(0.60), p(0.41)), "me x4!", font=_font(p(0.07)), fill=(200, 30, 60))
    d.text((p(0.60), p(0.50)), "ep. 04 - 12:34", font=_font(p(0.032)), fill=(60, 60, 60))
    d.text(
        (p(0.03), p(0.02)),
        "Telegram Upscaler",
        font=_font(p(0.045)),
        fill="white",
        stroke_width=k,
        stroke_fill="black",
    )
    return np.asarray(im.resize((size, size), Image.LANCZOS), dtype=np.uint8).copy()


def make_screenshot(size: int = 256) -> np.ndarray:
    """A chat app's screenshot: title bar gradient, avatars, bubbles, small UI text, a bar
    chart. Drawn at 1x with no antialiasing except the font's, like a real screen grab."""
    s = size
    im = Image.new("RGB", (s, s), (236, 239, 244))
    d = ImageDraw.Draw(im)
    bar = np.linspace([40, 90, 160], [70, 140, 210], s).astype(np.uint8)[None].repeat(22, axis=0)
    im.paste(Image.fromarray(bar, "RGB"), (0, 0))
    d.text((8, 5), "Upscaler bot  -  online", font=_font(12), fill="white")
    for i, c in enumerate([(255, 95, 87), (255, 189, 46), (40, 200, 64)]):
        d.ellipse([s - 60 + i * 18, 6, s - 50 + i * 18, 16], fill=c)
    side = s // 3
    d.rectangle([0, 22, side, s], fill=(250, 250, 252))
    d.line([side, 22, side, s], fill=(200, 204, 210))
    names = ["Alice", "Bob", "Carol", "Dmitri", "Eve", "Farida", "Gus"]
    colours = [
        (230, 120, 80),
        (90, 160, 230),
        (150, 110, 200),
        (80, 180, 130),
        (220, 170, 60),
        (200, 90, 140),
        (100, 120, 140),
    ]
    for i, (n, c) in enumerate(zip(names, colours, strict=False)):
        y = 30 + i * 36
        if y + 30 > s:
            break
        if i == 1:
            d.rectangle([0, y - 4, side - 1, y + 30], fill=(220, 232, 248))
        d.ellipse([6, y, 30, y + 24], fill=c)
        d.text((13, y + 5), n[0], font=_font(13), fill="white")
        d.text((36, y + 1), n, font=_font(12), fill=(20, 20, 20))
        d.text(
            (36, y + 15),
            f"{(i * 7) % 12 + 1}:{(i * 13) % 60:02d} pic",
            font=_font(9),
            fill=(120, 120, 120),
        )
    x0 = side + 10
    msgs = [
        ("in", "Can you make this sharper?"),
        ("out", "Queued: realesrgan-x4plus"),
        ("out", "Done in 12.4 s, 1024x768"),
        ("in", "Wow, thanks! 100%"),
    ]
    y = 32
    for who, text in msgs:
        w = int(d.textlength(text, font=_font(11))) + 14
        bx = x0 if who == "in" else s - 10 - w
        fill = (255, 255, 255) if who == "in" else (210, 245, 200)
        d.rounded_rectangle([bx, y, bx + w, y + 24], radius=7, fill=fill, outline=(190, 195, 200))
        d.text((bx + 7, y + 6), text, font=_font(11), fill=(25, 25, 25))
        y += 32
    # a small bar chart with axis labels (when there is room for one)
    cx, cy, cw, ch = x0, y + 8, s - x0 - 10, s - y - 40
    if ch < 20 or cw < 40:
        return np.asarray(im, dtype=np.uint8).copy()
    d.rectangle([cx, cy, cx + cw, cy + ch], fill="white", outline=(180, 180, 180))
    vals = [3, 7, 4, 9, 6, 8, 2, 5]
    bw = cw // (len(vals) * 2)
    for i, v in enumerate(vals):
        bx = cx + bw // 2 + i * 2 * bw
        d.rectangle([bx, cy + ch - v * ch // 10, bx + bw, cy + ch - 1], fill=(60, 130, 220))
        d.text((bx, cy + ch + 3), str(i + 1), font=_font(10), fill=(60, 60, 60))
    for gy in range(1, 5):  # 1 px grid lines
        d.line([cx + 1, cy + gy * ch // 5, cx + cw - 1, cy + gy * ch // 5], fill=(225, 225, 225))
    d.text((cx, s - 18), "jobs per hour  (max 9)", font=_font(10), fill=(90, 90, 90))
    return np.asarray(im, dtype=np.uint8).copy()


def load_images(size: int, names: Sequence[str] | None = None) -> list[TestImage]:
    """The photos (crops of scikit-image samples) and the two drawn images, size x size."""
    out: list[TestImage] = []
    for name, loader, (x, y), focus in PHOTOS:
        if names is not None and name not in names:
            continue
        out.append(
            TestImage(
                name,
                "photo",
                crop(_sample(loader), x, y, size),
                f"skimage.data.{loader}() crop at ({x}, {y})",
                focus,
            )
        )
    side = size // SCALE * SCALE
    drawn = [
        ("drawing", make_drawing, "generated: anime-style art (PIL)", (96, 84)),
        ("screenshot", make_screenshot, "generated: chat-app screenshot (PIL)", (100, 30)),
    ]
    for name, make, source, focus in drawn:
        if names is None or name in names:
            out.append(TestImage(name, "drawn", make(side), source, focus))
    return out


# --------------------------------------------------------------------------------------------
# Degradation, restoration, metrics


def degrade(rgb: np.ndarray, jpeg_quality: int | None = None) -> np.ndarray:
    """Downscale by SCALE (Pillow bicubic, antialiased); optionally a JPEG round trip."""
    h, w = rgb.shape[:2]
    small = Image.fromarray(rgb).resize((w // SCALE, h // SCALE), Image.BICUBIC)
    if jpeg_quality is not None:
        buf = io.BytesIO()
        small.save(buf, "JPEG", quality=jpeg_quality)
        buf.seek(0)
        with Image.open(buf) as j:
            small = j.convert("RGB")
    return np.asarray(small, dtype=np.uint8).copy()


def resize_up(lr: np.ndarray, resample: int) -> np.ndarray:
    """Pillow resize by SCALE with the given filter."""
    h, w = lr.shape[:2]
    up = Image.fromarray(lr).resize((w * SCALE, h * SCALE), resample)
    return np.asarray(up, dtype=np.uint8).copy()


def luma(rgb: np.ndarray) -> np.ndarray:
    """(H, W) float64 luma, 0..255 (ITU-R BT.601 weights)."""
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the Laplacian (scipy.ndimage.laplace, reflect borders) of the luma."""
    return float(ndimage.laplace(luma(rgb)).var())


def fidelity(ref: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of ``out`` against ``ref``, both (H, W, 3) uint8."""
    with np.errstate(divide="ignore"):  # identical images: inf dB, not a warning
        psnr = peak_signal_noise_ratio(ref, out, data_range=255)
    ssim = structural_similarity(ref, out, channel_axis=-1, data_range=255)
    return float(psnr), float(ssim)


class Restorer:
    """Runs one method on a low-resolution image; models through one shared Upscaler."""

    def __init__(self, models: Sequence[str]) -> None:
        from upscaler_edge.pipeline import Upscaler

        self.models = tuple(models)
        self.upscaler = Upscaler()

    def close(self) -> None:
        self.upscaler.close()

    def __enter__(self) -> Restorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def methods(self) -> tuple[str, ...]:
        return (*BASELINES, *self.models)

    def restore(self, method: str, lr: np.ndarray, device: str = "cpu") -> np.ndarray:
        """(h, w, 3) uint8 -> (h*4, w*4, 3) uint8 with ``method``."""
        if method in BASELINES:
            return resize_up(lr, BASELINES[method])
        from upscaler_edge.imageio import Frame, Picture
        from upscaler_edge.options import Options

        pic = Picture(
            frames=[Frame(rgb=np.ascontiguousarray(lr), alpha=None, duration_ms=None)],
            source_format="PNG",
        )
        model, denoise = parse_method(method)
        opts = Options(model=model, device=device, scale=SCALE, denoise=denoise)
        out = self.upscaler.upscale_picture(pic, opts)
        return out.frames[0].rgb

    def timed(self, method: str, lr: np.ndarray, device: str = "cpu") -> tuple[np.ndarray, float]:
        t = time.perf_counter()
        out = self.restore(method, lr, device)
        return out, time.perf_counter() - t

    def warm_up(self, device: str = "cpu") -> None:
        """Load (and hash-check) each model once so the timings below exclude it."""
        tiny = np.full((16, 16, 3), 128, np.uint8)
        tiny[4:12, 4:12] = 30
        for m in self.models:
            t = time.perf_counter()
            self.restore(m, tiny, device)
            log.info("warm-up %s on %s: %.1f s", m, device, time.perf_counter() - t)


# --------------------------------------------------------------------------------------------
# Evaluation


@dataclass(frozen=True)
class Score:
    image: str
    kind: str
    degradation: str
    method: str
    psnr: float
    ssim: float
    sharp: float  # variance of the Laplacian of the output's luma
    sharp_ratio: float  # ... divided by the original's
    seconds: float
    out_mp: float


def evaluate(
    images: Sequence[TestImage],
    restorer: Restorer,
    keep: Callable[[TestImage, str, str, np.ndarray], None] | None = None,
) -> list[Score]:
    """Every image x degradation x method. ``keep(image, degradation, method, out)`` sees
    each output (method "input" is the degraded input) so the caller can build crops."""
    scores: list[Score] = []
    for img in images:
        ref_sharp = sharpness(img.rgb)
        for deg in DEGRADATIONS:
            lr = degrade(img.rgb, JPEG_QUALITY if "JPEG" in deg else None)
            if keep:
                keep(img, deg, "input", lr)
            for method in restorer.methods:
                out, secs = restorer.timed(method, lr)
                assert out.shape == img.rgb.shape, (out.shape, img.rgb.shape)
                psnr, ssim = fidelity(img.rgb, out)
                sh = sharpness(out)
                scores.append(
                    Score(
                        img.name,
                        img.kind,
                        deg,
                        method,
                        psnr,
                        ssim,
                        sh,
                        sh / ref_sharp if ref_sharp else float("nan"),
                        secs,
                        out.shape[0] * out.shape[1] / 1e6,
                    )
                )
                if keep:
                    keep(img, deg, method, out)
                log.info(
                    "%-10s %-9s %-24s PSNR %6.2f  SSIM %.3f  sharp x%.2f  %.2f s",
                    img.name,
                    deg,
                    method,
                    psnr,
                    ssim,
                    scores[-1].sharp_ratio,
                    secs,
                )
    return scores


def software_vulkan() -> tuple[int, str] | None:
    """(index, name) of the software Vulkan device (lavapipe), or None."""
    from upscaler_edge.engine import list_devices

    for dev in list_devices():
        if dev.kind == "software":
            return dev.index, dev.name
    return None


def time_lavapipe(restorer: Restorer, index: int, side: int = LAVAPIPE_SIDE) -> dict[str, float]:
    """Seconds per output megapixel of each model on Vulkan device ``index``: a 16x16 warm-up
    (pipeline creation) then one timed side x side run of a real photo crop."""
    restorer.warm_up(str(index))
    lr = degrade(crop(_sample("astronaut"), 160, 40, side * SCALE))
    out: dict[str, float] = {}
    for m in restorer.models:
        res, secs = restorer.timed(m, lr, str(index))
        out[m] = secs / (res.shape[0] * res.shape[1] / 1e6)
        log.info("lavapipe %s %dx%d: %.2f s (%.0f s/MP)", m, side, side, secs, out[m])
    return out


# --------------------------------------------------------------------------------------------
# Summaries and markdown


def _mean(xs: Sequence[float]) -> float:
    return float(np.mean(xs)) if xs else float("nan")


def summarize(
    scores: Sequence[Score], methods: Sequence[str], kind: str | None = None
) -> dict[str, dict[str, float]]:
    """Per method: mean PSNR/SSIM/sharp ratio per degradation, and median CPU s/MP."""
    out: dict[str, dict[str, float]] = {}
    for m in methods:
        row: dict[str, float] = {}
        mine = [s for s in scores if s.method == m and (kind is None or s.kind == kind)]
        for deg in DEGRADATIONS:
            sel = [s for s in mine if s.degradation == deg]
            row[f"psnr {deg}"] = _mean([s.psnr for s in sel])
            row[f"ssim {deg}"] = _mean([s.ssim for s in sel])
            row[f"sharp {deg}"] = _mean([s.sharp_ratio for s in sel])
        speeds = [s.seconds / s.out_mp for s in mine]
        row["s/MP"] = statistics.median(speeds) if speeds else float("nan")
        row["best s/MP"] = min(speeds) if speeds else float("nan")
        out[m] = row
    return out


def _speed(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "n/a"
    return f"{v:.3g}" if v < 10 else f"{v:.0f}"


def main_table(summary: dict[str, dict[str, float]], lavapipe: dict[str, float] | None) -> str:
    """One row per method: fidelity and sharpness per degradation, CPU and lavapipe speed."""
    head = ["Method"]
    for deg in DEGRADATIONS:
        head += [f"PSNR {deg} (dB)", f"SSIM {deg}", f"Sharpness {deg} (x orig)"]
    head += ["CPU s/MP median (best)", f"lavapipe s/MP ({LAVAPIPE_SIDE}px in)"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|",
    ]
    for m, r in summary.items():
        cells = [m]
        for deg in DEGRADATIONS:
            cells += [
                f"{r[f'psnr {deg}']:.2f}",
                f"{r[f'ssim {deg}']:.3f}",
                f"{r[f'sharp {deg}']:.2f}",
            ]
        cells.append(f"{_speed(r['s/MP'])} ({_speed(r['best s/MP'])})")
        if lavapipe is None:
            cells.append("n/a")
        else:
            cells.append(_speed(lavapipe[m]) if m in lavapipe else "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def kind_table(scores: Sequence[Score], methods: Sequence[str]) -> str:
    """PSNR / SSIM per method, photos and drawn images apart."""
    kinds = [k for k in ("photo", "drawn") if any(s.kind == k for s in scores)]
    head = ["Method"] + [f"{k} {deg}" for k in kinds for deg in DEGRADATIONS]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|",
    ]
    per_kind = {k: summarize(scores, methods, k) for k in kinds}
    for m in methods:
        cells = [m]
        for k in kinds:
            r = per_kind[k][m]
            cells += [f"{r[f'psnr {deg}']:.2f} / {r[f'ssim {deg}']:.3f}" for deg in DEGRADATIONS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def image_table(scores: Sequence[Score], methods: Sequence[str]) -> str:
    """PSNR / SSIM / sharpness ratio for every image and degradation."""
    head = ["Image", "Degradation", *list(methods)]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---", "---"] + ["--:"] * len(methods)) + "|",
    ]
    keys = list(dict.fromkeys((s.image, s.degradation) for s in scores))
    for image, deg in keys:
        cells = [image, deg]
        for m in methods:
            s = next(x for x in scores if (x.image, x.degradation, x.method) == (image, deg, m))
            cells.append(f"{s.psnr:.2f} / {s.ssim:.3f} / x{s.sharp_ratio:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def findings(
    summary: dict[str, dict[str, float]], scores: Sequence[Score], methods: Sequence[str]
) -> list[str]:
    """Plain statements read off the numbers (so they stay true when the script is rerun)."""
    out: list[str] = []
    for deg in DEGRADATIONS:
        best_p = max(summary, key=lambda m: summary[m][f"psnr {deg}"])
        best_s = max(summary, key=lambda m: summary[m][f"ssim {deg}"])
        closest = min(summary, key=lambda m: abs(np.log(summary[m][f"sharp {deg}"])))
        out.append(
            f"{deg}: best mean PSNR {best_p} ({summary[best_p][f'psnr {deg}']:.2f} dB), "
            f"best mean SSIM {best_s} ({summary[best_s][f'ssim {deg}']:.3f}); sharpness "
            f"closest to the original's: {closest} (x{summary[closest][f'sharp {deg}']:.2f})."
        )
    for kind in ("photo", "drawn"):
        sub = summarize(scores, methods, kind)
        if not any(s.kind == kind for s in scores):
            continue
        for deg in DEGRADATIONS:
            best = max(sub, key=lambda m: sub[m][f"ssim {deg}"])
            out.append(
                f"{kind} images, {deg}: best mean SSIM {best} ({sub[best][f'ssim {deg}']:.3f}"
                f", PSNR {sub[best][f'psnr {deg}']:.2f} dB)."
            )
    wins: dict[str, int] = {}
    for s in scores:
        peers = [x for x in scores if (x.image, x.degradation) == (s.image, s.degradation)]
        if s.psnr == max(x.psnr for x in peers):
            wins[s.method] = wins.get(s.method, 0) + 1
    models = [m for m in methods if m not in BASELINES]
    if models:
        slow = max(models, key=lambda m: summary[m]["s/MP"])
        fast = min(models, key=lambda m: summary[m]["s/MP"])
        out.append(
            f"CPU, median (best) seconds per output megapixel: {fast} "
            f"{summary[fast]['s/MP']:.3g} ({summary[fast]['best s/MP']:.3g}), {slow} "
            f"{summary[slow]['s/MP']:.3g} ({summary[slow]['best s/MP']:.3g}); "
            f"a Pillow resize {summary['bicubic']['s/MP']:.2g}."
        )
    n = len({(s.image, s.degradation) for s in scores})
    out.append(
        "Best PSNR per image and degradation ("
        + str(n)
        + " cases): "
        + ", ".join(f"{m} {wins.get(m, 0)}" for m in methods)
        + "."
    )
    return out


CAVEATS = """\
How to read this:
- PSNR and SSIM reward an output that is close to the original pixel by pixel. A blurry
  output that is right on average scores well; a GAN output (the Real-ESRGAN and Real-CUGAN
  models were trained with adversarial and perceptual losses; waifu2x was not) invents
  plausible texture that is not exactly where the original's was, and is penalised for it
  even when it looks better. So a GAN model can lose to bicubic on PSNR/SSIM and still be
  what a user prefers: look at the crops before trusting either number.
- The sharpness column says how much fine contrast the output has relative to the original
  (1.00 = as much). Below 1 is blur; above 1 is extra edges, which can be real-looking
  texture, ringing, or amplified JPEG blocks. It is not a quality score on its own.
- The degradation is synthetic (Pillow bicubic downscale, then JPEG 70). Real phone photos
  and Telegram's own encoder differ; the ranking, not the decimals, is what transfers.
- Speeds are per output megapixel over the runs on a shared 2-core machine: the median,
  and in brackets the best run, which is the closer estimate of an idle machine (ncnn's
  threads slow down many times over when other processes hold the cores; see the load
  average above). lavapipe is the software Vulkan rasteriser (the CPU pretending to be a
  GPU), timed once per model on a 48x48 input: it shows the Vulkan path works, not what a
  GPU does.
"""


def machine_line() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical cores, {platform.system()} {platform.release()}"


def versions() -> str:
    import PIL
    import scipy
    import skimage

    try:
        import ncnn

        ncnn_v = getattr(ncnn, "__version__", "?")
    except ImportError:
        ncnn_v = "missing"
    return (
        f"Python {platform.python_version()}, ncnn {ncnn_v}, Pillow {PIL.__version__}, "
        f"numpy {np.__version__}, scikit-image {skimage.__version__}, scipy {scipy.__version__}"
    )


def render_report(
    images: Sequence[TestImage],
    scores: Sequence[Score],
    methods: Sequence[str],
    lavapipe: dict[str, float] | None,
    lavapipe_note: str,
    command: str,
    wall: float,
    crops: Sequence[str],
) -> str:
    """The whole results.md."""
    summary = summarize(scores, methods)
    h, w = images[0].rgb.shape[:2]
    try:
        load = " / ".join(f"{v:.1f}" for v in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        load = "unknown"
    parts = [
        f"# Super-resolution quality at x{SCALE}: baselines vs models (generated)",
        "",
        "Generated by `bench/quality.py`; do not edit by hand. Rerun with:",
        "",
        "```",
        "python bench/quality.py   # needs: pip install -e '.[bench]'",
        "```",
        "",
        f"- Date: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{command}` (wall time {wall:.0f} s)",
        f"- Machine: {machine_line()}; load average at the end {load}",
        f"- Software: {versions()}",
        f"- lavapipe: {lavapipe_note}",
        f"- Images ({len(images)}, each cropped to {w}x{h} and degraded to "
        f"{w // SCALE}x{h // SCALE}): " + "; ".join(f"{i.name} ({i.source})" for i in images),
        (
            f"- Degradations: `{DEGRADATIONS[0]}` = Pillow bicubic downscale by {SCALE} "
            f"(antialiased); `{DEGRADATIONS[1]}` = the same, then JPEG quality {JPEG_QUALITY} "
            "(4:2:0), as Telegram does to photos."
        ),
        (
            "- Methods: `MODEL:nN` is `-m MODEL -n N` (a denoise level); a model with a larger "
            f"native scale than x{SCALE} is brought down with Lanczos, as `-s {SCALE}` does."
        ),
        (
            "- Metrics: PSNR/SSIM against the original (skimage.metrics, RGB, data_range=255, "
            "SSIM channel_axis=-1, no border shaved; higher is closer). Sharpness = variance of "
            "`scipy.ndimage.laplace` of the luma, divided by the original's (1.00 = as sharp). "
            "CPU s/MP = seconds per output megapixel (median and best of the runs), warm "
            "engine, ncnn CPU path; lavapipe: `-` = not applicable (a Pillow resize has no "
            "Vulkan path)."
        ),
        "",
        "## Mean over all images",
        "",
        main_table(summary, lavapipe),
        "",
        "## By content (PSNR dB / SSIM)",
        "",
        kind_table(scores, methods),
        "",
        "## Findings (computed from the numbers above)",
        "",
        *[f"- {f}" for f in findings(summary, scores, methods)],
        "",
        CAVEATS,
    ]
    if crops:
        parts += [
            "## Crops",
            "",
            (
                "Each panel is a 96x96 region of the original (or the same region of the "
                f"output), shown 2x nearest-neighbour; the input panel is the {96 // SCALE}x"
                f"{96 // SCALE} degraded input at {2 * SCALE}x. Top row: `{DEGRADATIONS[0]}`; "
                f"bottom row: `{DEGRADATIONS[1]}`."
            ),
            "",
        ]
        parts += [f"![{Path(c).stem}]({Path(c).name})\n" for c in crops]
    parts += [
        "## Per image (PSNR dB / SSIM / sharpness x orig)",
        "",
        image_table(scores, methods),
        "",
    ]
    return "\n".join(parts)


# --------------------------------------------------------------------------------------------
# Crops


CROP = 96  # original pixels per panel side
ZOOM = 2  # display scale of a panel


class CropSheet:
    """Collects the focus region of each output of one image into a labelled PNG grid:
    columns original | input | methods...; one row per degradation."""

    def __init__(self, img: TestImage, methods: Sequence[str]) -> None:
        self.img = img
        self.columns = ["original", "input", *methods]
        self.panels: dict[tuple[str, str], Image.Image] = {}

    def _region(self, a: np.ndarray, factor: int) -> Image.Image:
        h, w = self.img.rgb.shape[:2]
        fx = min(self.img.focus[0], w - CROP) // SCALE * SCALE
        fy = min(self.img.focus[1], h - CROP) // SCALE * SCALE
        x, y, n = fx // factor, fy // factor, CROP // factor
        part = Image.fromarray(np.ascontiguousarray(a[y : y + n, x : x + n]))
        return part.resize((CROP * ZOOM, CROP * ZOOM), Image.NEAREST)

    def keep(self, img: TestImage, deg: str, method: str, out: np.ndarray) -> None:
        if img.name != self.img.name:
            return
        self.panels[(deg, method)] = self._region(out, SCALE if method == "input" else 1)
        self.panels[(deg, "original")] = self._region(img.rgb, 1)

    def save(self, path: Path) -> Path:
        p = CROP * ZOOM
        label_h, gap = 18, 4
        font = _font(13)
        rows = [d for d in DEGRADATIONS if any(k[0] == d for k in self.panels)]
        sheet = Image.new(
            "RGB",
            (len(self.columns) * (p + gap) - gap, len(rows) * (p + label_h + gap) - gap),
            "white",
        )
        d = ImageDraw.Draw(sheet)
        for r, deg in enumerate(rows):
            y = r * (p + label_h + gap)
            for c, col in enumerate(self.columns):
                x = c * (p + gap)
                label = f"input ({deg})" if col == "input" else col
                label = label.replace("realesrgan-", "").replace("realesr-", "")
                label = label.replace("waifu2x-", "w2x-").replace("upconv7-", "uc7-")
                if col == "original" and r == 0:
                    label = f"{self.img.name}: original"
                d.text((x + 2, y + 2), label, font=font, fill="black")
                panel = self.panels.get((deg, col))
                if panel is not None:
                    sheet.paste(panel, (x, y + label_h))
        path.parent.mkdir(parents=True, exist_ok=True)
        sheet.save(path, optimize=True)
        return path


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2 images of 64x64, no lavapipe, nothing written unless --out",
    )
    ap.add_argument(
        "--size",
        type=int,
        default=None,
        help="side of each original crop in px (default 256; --quick 64)",
    )
    ap.add_argument("--images", nargs="+", default=None, help="only these images (names)")
    ap.add_argument(
        "--models", nargs="+", default=None, help="methods to compare (MODEL or MODEL:nN)"
    )
    ap.add_argument("--scale", type=int, default=None, help="upscale factor (default 4)")
    ap.add_argument(
        "--families",
        action="store_true",
        help="the x2 study of Real-CUGAN and waifu2x (default out: docs/eval/x2)",
    )
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help=f"where results.md and the crops go (default {DEFAULT_OUT.relative_to(REPO)};"
        " --quick: nowhere)",
    )
    ap.add_argument(
        "--crops",
        nargs="*",
        default=None,
        help="images to make crop sheets of (default drawing astronaut chelsea screenshot)",
    )
    ap.add_argument("--no-lavapipe", action="store_true", help="skip the software-Vulkan timing")
    ap.add_argument("-v", "--verbose", action="store_true", help="per-output log lines")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    log.setLevel(logging.INFO)
    started = time.perf_counter()
    set_scale(args.scale or (2 if args.families else 4))
    models = args.models or list(FAMILY_MODELS if args.families else MODELS)
    if args.families and args.out is None and not args.quick:
        args.out = DEFAULT_OUT / "x2"
    size = args.size or (64 if args.quick else 256)
    names = args.images or (["astronaut", "drawing"] if args.quick else None)
    out_dir: Path | None = args.out if (args.out or args.quick) else DEFAULT_OUT
    crop_names = (
        args.crops
        if args.crops is not None
        else (
            []
            if args.quick and args.out is None
            else ["drawing", "astronaut", "chelsea", "screenshot"]
        )
    )
    if size < CROP:
        crop_names = []  # the crop region would not fit

    images = load_images(size, names)
    if not images:
        log.error("no images selected")
        return 2
    log.info(
        "%d images of %dx%d: %s",
        len(images),
        images[0].rgb.shape[1],
        images[0].rgb.shape[0],
        ", ".join(i.name for i in images),
    )

    with Restorer(models) as restorer:
        restorer.warm_up("cpu")
        sheets = [CropSheet(i, restorer.methods) for i in images if i.name in crop_names]

        def keep(img: TestImage, deg: str, method: str, out: np.ndarray) -> None:
            for sh in sheets:
                sh.keep(img, deg, method, out)

        scores = evaluate(images, restorer, keep)

        lavapipe: dict[str, float] | None = None
        if args.no_lavapipe or args.quick:
            note = "not measured (--no-lavapipe or --quick)"
        else:
            dev = software_vulkan()
            if dev is None:
                note = "no software Vulkan device on this machine; column left n/a"
            else:
                note = f"Vulkan device {dev[0]}: {dev[1]}, {LAVAPIPE_SIDE}x{LAVAPIPE_SIDE} input"
                lavapipe = time_lavapipe(restorer, dev[0])

    crops: list[str] = []
    if out_dir is not None:
        for sh in sheets:
            crops.append(str(sh.save(out_dir / f"crops_{sh.img.name}.png")))
    command = "python bench/quality.py" + "".join(
        f" {a}" for a in (argv if argv is not None else sys.argv[1:])
    )
    report = render_report(
        images,
        scores,
        restorer.methods,
        lavapipe,
        note,
        command,
        time.perf_counter() - started,
        crops,
    )
    print(report)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.md").write_text(report, encoding="utf-8")
        log.info("wrote %s and %d crop sheets", out_dir / "results.md", len(crops))
    log.info("done in %.0f s", time.perf_counter() - started)
    return 0


if __name__ == "__main__":
    sys.exit(main())
