from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from upscaler_edge import integrity, models
from upscaler_edge.errors import ModelIntegrityError, UnknownModelError, UsageError
from upscaler_edge.models import Registry, verify_model


def resolve_model(name, scale=None, models_dirs=()):
    return Registry.load(models_dirs).resolve(name, scale)


OFFICIAL = [
    "realesrgan-x4plus",
    "realesrgan-x4plus-anime",
    "realesr-animevideov3-x2",
    "realesr-animevideov3-x3",
    "realesr-animevideov3-x4",
]


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    """Keep the user's model folder and verification cache out of the tests."""
    monkeypatch.setattr(models, "user_models_dir", lambda: tmp_path / "user-models")
    monkeypatch.setattr(integrity, "_cache_file", lambda: tmp_path / "cache" / "verified.json")


def test_manifest_lists_the_official_models_with_real_files():
    specs = {s.name: s for s in Registry.load().specs()}
    for name in OFFICIAL:
        s = specs[name]
        assert s.param_path.is_file() and s.bin_path.is_file()
        assert s.input_blob == "data" and s.output_blob == "output"
        assert len(s.param_sha256) == 64 and len(s.bin_sha256) == 64
        assert s.description
    assert specs["realesrgan-x4plus"].scale == 4
    assert specs["realesr-animevideov3-x3"].scale == 3
    assert specs["realesrgan-x4plus"].context > specs["realesr-animevideov3-x4"].context


@pytest.mark.parametrize(
    "scale,expected",
    [
        (2, "realesr-animevideov3-x2"),
        (3, "realesr-animevideov3-x3"),
        (4, "realesr-animevideov3-x4"),
        (None, "realesr-animevideov3-x4"),
        (1, "realesr-animevideov3-x2"),
    ],
)
def test_family_name_picks_the_variant_from_scale(scale, expected):
    assert resolve_model("realesr-animevideov3", scale).name == expected


def test_family_name_refuses_a_scale_above_its_variants():
    with pytest.raises(UsageError, match="x4, not x8"):
        resolve_model("realesr-animevideov3", 8)


def test_unknown_model_lists_the_valid_names():
    with pytest.raises(UnknownModelError) as info:
        resolve_model("esrgan-9000")
    msg = str(info.value)
    assert "esrgan-9000" in msg and "\n" not in msg and "--list-models" in msg
    # the names a user types: families and models outside one (members stay valid)
    for name in ["realesrgan-x4plus", "realesrgan-x4plus-anime", "realesr-animevideov3"]:
        assert name in msg
    for name in ["realcugan-se", "realcugan-pro", "waifu2x-cunet", "waifu2x-upconv7-photo"]:
        assert name in msg
    assert "realesr-animevideov3-x2" not in msg


def test_official_weights_verify_and_the_verdict_is_cached(monkeypatch):
    calls = []
    real = integrity.sha256
    monkeypatch.setattr(integrity, "sha256", lambda p: calls.append(p) or real(p))
    spec = resolve_model("realesr-animevideov3-x2")
    verify_model(spec)
    assert len(calls) == 2
    verify_model(spec)
    assert len(calls) == 2  # unchanged files are not hashed again


def test_tampered_weights_are_refused(tmp_path):
    spec = resolve_model("realesr-animevideov3-x2")
    bad_bin = tmp_path / "x.bin"
    data = bytearray(spec.bin_path.read_bytes())
    data[1000] ^= 0xFF
    bad_bin.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="does not match its sha256"):
        verify_model(dataclasses.replace(spec, bin_path=bad_bin))


def _drop_model(folder: Path, name: str, sidecar: str | None = None) -> None:
    src = resolve_model("realesr-animevideov3-x2")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(src.param_path, folder / f"{name}.param")
    shutil.copy(src.bin_path, folder / f"{name}.bin")
    if sidecar is not None:
        (folder / f"{name}.toml").write_text(sidecar)


def test_user_model_with_scale_suffix_is_found_by_name(tmp_path):
    extra = tmp_path / "extra"
    _drop_model(extra, "my-anime-x2")
    spec = resolve_model("my-anime-x2", models_dirs=[extra])
    assert spec.scale == 2 and spec.kind == "custom"
    assert (spec.input_blob, spec.output_blob) == ("data", "output")
    assert "my-anime-x2" in Registry.load([extra]).names()


def test_user_model_in_the_user_folder_with_a_sidecar(tmp_path):
    _drop_model(
        tmp_path / "user-models", "cartoon", 'scale = 2\ncontext = 20\ndescription = "mine"\n'
    )
    spec = resolve_model("cartoon")
    assert (spec.scale, spec.context, spec.description) == (2, 20, "mine")


def test_user_model_without_a_scale_is_ignored_with_a_warning(tmp_path, caplog):
    extra = tmp_path / "extra"
    _drop_model(extra, "mystery")
    with pytest.raises(UnknownModelError):
        resolve_model("mystery", models_dirs=[extra])
    assert "scale is unknown" in caplog.text


def test_families_describe_what_each_front_end_offers():
    fams = {f.name: f for f in Registry.load().families()}
    anime = fams["realesr-animevideov3"]
    assert anime.scales == (2, 3, 4) and anime.default_scale == 4 and anime.denoise == ()
    assert anime.kind == "fast" and anime.description
    assert anime.members == tuple(f"realesr-animevideov3-x{s}" for s in (2, 3, 4))
    assert fams["realesrgan-x4plus"].scales == (4,)
    # a family's members are not offered again on their own
    assert "realesr-animevideov3-x2" not in fams


def test_a_scale_above_a_single_model_is_a_usage_error():
    with pytest.raises(UsageError, match="upscales x2; scale 4 is larger"):
        resolve_model("realesr-animevideov3-x2", 4)
    with pytest.raises(UsageError, match="no denoise level 1"):
        Registry.load().resolve("realesrgan-x4plus", None, 1)
