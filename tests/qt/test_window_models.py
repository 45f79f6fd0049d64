"""The window's model controls: scale and denoise follow the chosen family (only shipped
combinations can be picked), File > Import model…, and the theme's arrows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from upscaler_edge_gui.run_controller import options_for
from upscaler_edge_gui.settings import GuiSettings, load_settings, save_settings

from upscaler_edge import integrity


def levels(panel) -> list[int]:
    combo = panel.denoise_combo
    return [combo.itemData(i) for i in range(combo.count())]


def test_denoise_and_scale_follow_the_family(qtbot, make_window):
    window, _ = make_window()
    p = window.panel
    p.set_model_name("realcugan-se")
    assert not p.denoise_combo.isHidden() and not p.denoise_section.isHidden()
    assert [p.scale_buttons[s].isEnabled() for s in (1, 2, 3, 4)] == [False, True, True, True]
    p.scale_buttons[2].click()
    assert levels(p) == [-1, 0, 1, 2, 3] and p.values().denoise == 0  # plain: no denoise
    assert p.denoise_combo.currentText() == "None (0)"
    p.denoise_combo.setCurrentIndex(levels(p).index(1))
    p.scale_buttons[3].click()  # x3 ships -1, 0, 3 only: level 1 falls back to the plain one
    assert levels(p) == [-1, 0, 3] and p.values().denoise == 0
    p.denoise_combo.setCurrentIndex(levels(p).index(-1))
    assert p.denoise_combo.currentText() == "Conservative (-1)"
    p.scale_buttons[4].click()
    assert p.values().denoise == -1  # kept where it exists

    p.set_model_name("waifu2x-cunet")
    assert [p.scale_buttons[s].isEnabled() for s in (1, 2, 3, 4)] == [True, True, False, False]
    assert p.values().scale == 2 and p.values().denoise == -1
    p.scale_buttons[1].click()  # x1 denoises only: no "none" level there
    assert levels(p) == [0, 1, 2, 3] and p.values().denoise == 0

    p.set_model_name("realesrgan-x4plus")
    assert p.denoise_combo.isHidden() and p.values().denoise is None
    assert not p.scale_buttons[1].isEnabled()


def test_every_combination_the_panel_offers_resolves(qtbot, make_window):
    from upscaler_edge.models import default_registry

    window, _ = make_window()
    p = window.panel
    reg = default_registry()
    for i in range(p.model_combo.count()):
        p.set_model_name(p.model_combo.itemData(i).name)
        for scale, button in p.scale_buttons.items():
            if not button.isEnabled():
                continue
            button.click()
            for level in levels(p) or [None]:
                opts = options_for(p.values())
                reg.resolve(opts.model, scale, level)  # never a usage error


def test_denoise_is_remembered_and_reaches_the_options(qtbot, make_window, settings_file):
    window, _ = make_window()
    p = window.panel
    p.set_model_name("waifu2x-upconv7-photo")
    p.denoise_combo.setCurrentIndex(levels(p).index(2))
    window.close()
    stored = load_settings(QSettings(str(settings_file), QSettings.Format.IniFormat))
    assert (stored.model, stored.scale, stored.denoise) == ("waifu2x-upconv7-photo", 2, 2)
    assert options_for(stored).denoise == 2
    again, _ = make_window(QSettings(str(settings_file), QSettings.Format.IniFormat))
    assert again.panel.values().denoise == 2


def test_settings_without_denoise_mean_the_plain_model(tmp_path):
    qs = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    save_settings(qs, GuiSettings(model="realcugan-se", scale=2))
    assert load_settings(qs).denoise is None
    assert options_for(load_settings(qs)).denoise is None


def test_theme_draws_arrows_from_shipped_icons():
    from upscaler_edge_gui import theme

    icons = Path(theme.__file__).parent / "icons"
    for name in ("chevron-down", "chevron-up", "chevron-down-disabled"):
        assert (icons / f"{name}.svg").is_file()
    assert "QComboBox::down-arrow" in theme._STYLE and "QSpinBox::up-arrow" in theme._STYLE


# -- File > Import model… ----------------------------------------------------------------------


@pytest.fixture
def user_models(tmp_path, monkeypatch):
    from upscaler_edge import convert, models

    folder = tmp_path / "user-models"
    monkeypatch.setattr(models, "user_models_dir", lambda: folder)
    monkeypatch.setattr(convert, "user_models_dir", lambda: folder)
    monkeypatch.setattr(integrity, "_cache_file", lambda: tmp_path / "verified.json")
    models.default_registry.cache_clear()
    yield folder
    models.default_registry.cache_clear()


def tiny_onnx(path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="the convert extra is not installed")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal((12, 3, 3, 3)) * 0.3).astype("f4"), "w"),
        numpy_helper.from_array(np.zeros(12, "f4"), "b"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("DepthToSpace", ["c"], ["output"], blocksize=2, mode="CRD"),
    ]
    graph = helper.make_graph(
        nodes,
        "t",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, None, None])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_import_model_adds_it_to_the_picker_and_selects_it(
    qtbot, make_window, tmp_path, user_models
):
    from upscaler_edge.convert.pnnx import find_pnnx

    if find_pnnx() is None:
        pytest.skip("no pnnx converter (the convert extra is not installed)")
    src = tmp_path / "tiny.onnx"
    tiny_onnx(src)
    window, controller = make_window()
    assert window.import_model_action in window.menuBar().actions()[0].menu().actions()
    with qtbot.waitSignal(controller.files.model_imported, timeout=60000) as signal:
        assert controller.files.import_model(src, "my-tiny")
    assert signal.args == ["my-tiny"]
    assert window.panel.model_name() == "my-tiny"
    assert window.import_model_action.isEnabled()
    assert (user_models / "my-tiny.param").is_file()


def test_a_refused_import_says_why_and_adds_nothing(
    qtbot, make_window, tmp_path, user_models, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    shown = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: shown.append(a[2]))
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    window, controller = make_window()
    names = [window.panel.model_combo.itemData(i).name for i in range(7)]
    with qtbot.waitSignal(controller.files.import_failed, timeout=30000) as signal:
        controller.files.import_model(bad, "broken")
    assert "broken.onnx" in signal.args[0] and "\n" not in signal.args[0]
    assert shown == signal.args
    assert [window.panel.model_combo.itemData(i).name for i in range(7)] == names
    assert not user_models.exists() or not any(user_models.iterdir())
