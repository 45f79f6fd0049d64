"""Window behaviour without long jobs: settings, File > Open, paste, devices, models."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QSettings, QSize, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QImage
from PySide6.QtWidgets import QFileDialog
from upscaler_edge_gui.devices import DeviceProbe, auto_choice, parse_devices
from upscaler_edge_gui.model_choice import model_entries
from upscaler_edge_gui.outputs import output_path_for
from upscaler_edge_gui.queue_model import ItemState
from upscaler_edge_gui.settings import GuiSettings, load_settings, save_settings


def test_settings_round_trip(qtbot, make_window, settings_file, tmp_path):
    window, _controller = make_window()
    p = window.panel
    p.set_model_name("realesrgan-x4plus-anime")
    p.scale_buttons[3].click()
    p.format_combo.setCurrentIndex(p.format_combo.findData("webp"))
    p.quality_spin.setValue(80)
    p.set_output_dir(str(tmp_path / "out"))
    p.device_combo.setCurrentIndex(p.device_combo.findData("cpu"))
    p.tile_spin.setValue(128)
    p.tta_check.setChecked(True)
    window.resize(1111, 777)
    window.close()  # saves on close

    stored = load_settings(QSettings(str(settings_file), QSettings.Format.IniFormat))
    assert (stored.model, stored.scale, stored.format, stored.quality) == (
        "realesrgan-x4plus-anime",
        3,
        "webp",
        80,
    )
    assert stored.output_dir == str(tmp_path / "out")
    assert (stored.device, stored.tile, stored.tta) == ("cpu", 128, True)

    again, _ = make_window(QSettings(str(settings_file), QSettings.Format.IniFormat))
    v = again.panel.values()
    assert (v.model, v.scale, v.format, v.quality, v.output_dir, v.device, v.tile, v.tta) == (
        "realesrgan-x4plus-anime",
        3,
        "webp",
        80,
        str(tmp_path / "out"),
        "cpu",
        128,
        True,
    )
    assert again.panel.scale_buttons[3].isChecked()
    assert again.panel.quality_spin.isEnabled()  # webp is lossy: quality applies
    assert not stored.geometry.isEmpty()
    screen = again.screen().availableGeometry()
    if screen.width() >= 1200 and screen.height() >= 850:
        assert again.size() == QSize(1111, 777)
    else:  # a small (offscreen) screen: Qt shrinks the restored geometry to fit it
        assert again.size() != QSize(1440, 900) and again.width() < 1200


def test_window_state_and_splitter_are_restored(qtbot, make_window, settings_file, monkeypatch):
    from upscaler_edge_gui.main_window import MainWindow

    window, _controller = make_window()
    window.splitter.setSizes([520, 700])
    sizes = window.splitter.sizes()
    window.close()  # saves on close
    stored = load_settings(QSettings(str(settings_file), QSettings.Format.IniFormat))
    assert not stored.window_state.isEmpty() and not stored.splitter.isEmpty()

    restored: list[bytes] = []
    real = MainWindow.restoreState

    def restore_state(self, state, version=0):
        restored.append(bytes(state.data()))
        return real(self, state, version)

    monkeypatch.setattr(MainWindow, "restoreState", restore_state)
    again, _ = make_window(QSettings(str(settings_file), QSettings.Format.IniFormat))
    assert restored == [bytes(stored.window_state.data())]
    screen = again.screen().availableGeometry()
    if screen.width() >= 1500 and screen.height() >= 950:  # else Qt shrinks the window to fit
        assert again.splitter.sizes() == sizes


def test_bad_stored_settings_fall_back_to_defaults(tmp_path):
    qs = QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat)
    for key, value in (("scale", 7), ("format", "tiff"), ("quality", 900), ("advanced/tile", 5)):
        qs.setValue(key, value)
    qs.setValue("advanced/tta", "true")
    s = load_settings(qs)
    assert (s.scale, s.format, s.quality, s.tile, s.tta) == (4, "png", 100, 0, True)


def test_user_settings_use_organisation_and_app_name(qapp, tmp_path):
    """Without an explicit file, settings go under the organisation/app names (redirected to
    a temp folder by the autouse fixture in conftest)."""
    qs = QSettings(QSettings.Format.IniFormat, QSettings.Scope.UserScope, "upscaler-edge", "x")
    save_settings(qs, GuiSettings(model="m"))
    assert "upscaler-edge" in qs.fileName()
    assert not qs.fileName().startswith(str(Path.home() / ".config"))


def test_file_open_queues_the_chosen_files(qtbot, make_window, images, monkeypatch):
    window, controller = make_window()
    monkeypatch.setattr(
        QFileDialog, "getOpenFileNames", lambda *a, **k: ([str(p) for p in images], "")
    )
    window.open_action.trigger()
    assert [i.src for i in controller.model] == images


def test_open_folder_queues_its_images(qtbot, make_window, images, monkeypatch):
    window, controller = make_window()
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(images[0].parent))
    window.open_folder_action.trigger()
    assert sorted(i.name for i in controller.model) == ["alpha.png", "beta.jpg"]


def test_paste_file_urls_from_the_clipboard(qtbot, make_window, images):
    window, controller = make_window()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(images[1]))])
    QGuiApplication.clipboard().setMimeData(mime)
    window.paste_action.trigger()
    assert [i.src for i in controller.model] == [images[1]]


def test_paste_a_copied_image_saves_it_and_queues_it(qtbot, make_window, tmp_path):
    window, controller = make_window()
    image = QImage(24, 16, QImage.Format.Format_RGB32)
    image.fill(QColor("#3080c0"))
    QGuiApplication.clipboard().setImage(image)
    window.paste_action.trigger()
    items = list(controller.model)
    assert len(items) == 1
    src = items[0].src
    assert src.parent == tmp_path / "pasted" and src.suffix == ".png"
    assert QImage(str(src)).size() == QSize(24, 16)


def test_paste_with_nothing_useful_says_so(qtbot, make_window):
    window, controller = make_window()
    QGuiApplication.clipboard().setText("no such file anywhere")
    window.paste_action.trigger()
    assert len(controller.model) == 0
    assert "Nothing to paste" in window.status.currentMessage()


def test_queue_shows_size_in_and_predicted_out(qtbot, make_window, images):
    window, controller = make_window()
    controller.add_paths(images[:1])
    qtbot.waitUntil(lambda: controller.model.item_at(0).thumbnail is not None, timeout=5000)
    item = controller.model.item_at(0)
    assert item.in_size == (48, 40) and item.out_size == (192, 160)
    assert item.size_text() == "48×40 → 192×160"
    window.panel.scale_buttons[2].click()  # the prediction follows the scale
    assert controller.model.item_at(0).out_size == (96, 80)
    assert item.state_text() == "Queued"


def test_model_picker_lists_families_with_descriptions(qtbot, make_window):
    window, _ = make_window()
    combo = window.panel.model_combo
    names = [combo.itemData(i).name for i in range(combo.count())]
    assert "realesrgan-x4plus" in names and "realesr-animevideov3" in names
    assert not any(n.startswith("realesr-animevideov3-x") for n in names)
    window.panel.set_model_name("realesr-animevideov3")
    assert window.panel.model_description.text()  # one-line description from the manifest
    # 2x..4x; 1x only for families with a native x1 model (waifu2x-cunet's denoisers)
    assert all(b.isEnabled() for s, b in window.panel.scale_buttons.items() if s > 1)
    assert not window.panel.scale_buttons[1].isEnabled()


def test_model_entries_are_the_registrys_families_with_their_largest_scale():
    from upscaler_edge.models import ModelFamily

    def family(
        name: str, scales: tuple[int, ...], description: str, kind: str = "custom"
    ) -> ModelFamily:
        return ModelFamily(
            name=name,
            scales=scales,
            default_scale=scales[-1],
            denoise=(),
            default_denoise=None,
            description=description,
            kind=kind,
            members=(name,),
        )

    families = [  # the registry lists families before single models
        family("fast", (2, 3), "Fast (tiny), x2/x3", "fast"),
        family("photo", (4,), "Photos", "photo"),
        family("mine-x2", (2,), "User model"),
    ]
    entries = model_entries(families)
    assert [(e.name, e.max_scale) for e in entries] == [("photo", 4), ("fast", 3), ("mine-x2", 2)]
    assert entries[1].description == "Fast (tiny), x2/x3"  # photos first, user models last


def test_scale_buttons_follow_the_models_largest_scale(qtbot, make_window):
    from upscaler_edge_gui.panels import ModelEntry

    window, _ = make_window()
    panel = window.panel
    panel.set_models([ModelEntry("big", "big", "", 4), ModelEntry("small-x2", "small-x2", "", 2)])
    panel.set_model_name("big")
    panel.scale_buttons[4].click()
    panel.set_model_name("small-x2")
    assert not panel.scale_buttons[3].isEnabled() and not panel.scale_buttons[4].isEnabled()
    assert panel.values().scale == 2


def test_output_path_rules(tmp_path):
    src = tmp_path / "cat.jpeg"
    assert output_path_for(src, GuiSettings(scale=4, format="png")) == tmp_path / "cat_x4.png"
    out = tmp_path / "out"
    s = GuiSettings(scale=2, format="jpg", output_dir=str(out))
    assert output_path_for(src, s) == out / "cat_x2.jpg"
    out.mkdir()
    (out / "cat_x2.jpg").write_bytes(b"x")
    assert output_path_for(src, s) == out / "cat_x2-2.jpg"
    s.overwrite = True
    assert output_path_for(src, s) == out / "cat_x2.jpg"


def test_device_probe_lists_auto_first_and_cpu_last(qtbot):
    probe = DeviceProbe()
    with qtbot.waitSignal(probe.ready, timeout=30_000) as blocker:
        probe.start()
    choices = blocker.args[0]
    assert choices[0].value == "auto"
    assert choices[-1].value == "cpu"
    assert auto_choice(choices) is not None


def test_device_list_parsing_and_auto_rule():
    choices = parse_devices(
        '[[0, "llvmpipe", "software"], [1, "Arc A770", "discrete"], [-1, "CPU: x", "cpu"]]'
    )
    assert [c.value for c in choices] == ["auto", "0", "1", "cpu"]
    assert "slow" in choices[1].label
    assert auto_choice(choices).value == "1"
    assert (
        auto_choice(parse_devices('[[0, "llvmpipe", "software"], [-1, "CPU", "cpu"]]')).value
        == "cpu"
    )


def test_all_gpus_is_offered_with_two_hardware_gpus():
    two = parse_devices('[[0, "A", "discrete"], [1, "B", "integrated"], [-1, "CPU", "cpu"]]')
    assert [c.value for c in two] == ["auto", "all", "0", "1", "cpu"]
    assert two[1].label == "All GPUs (2)"
    assert auto_choice(two).value == "0"
    one = parse_devices('[[0, "llvmpipe", "software"], [1, "A", "discrete"], [-1, "C", "cpu"]]')
    assert "all" not in [c.value for c in one]


def test_devices_ready_fills_the_picker_and_status(qtbot, make_window):
    window, _controller = make_window(probe_devices=True)
    qtbot.waitUntil(lambda: window.device_status.text() != "", timeout=30_000)
    combo = window.panel.device_combo
    assert combo.itemData(0) == "auto" and combo.itemData(combo.count() - 1) == "cpu"
    assert window.device_status.text().startswith("Auto device:")


def test_failed_item_shows_its_reason_in_the_compare_pane(qtbot, make_window, images):
    window, controller = make_window()
    (item_id,) = controller.add_paths(images[:1])
    controller.model.update(item_id, state=ItemState.FAILED, error="the file is truncated")
    controller.select(item_id)
    assert not window.compare.has_images()
    assert window.compare.message() == "Failed: the file is truncated"
    assert not window.open_result_button.isEnabled()


def test_remove_and_clear_finished(qtbot, make_window, images):
    window, controller = make_window()
    a, b = controller.add_paths(images)
    controller.model.update(a, state=ItemState.DONE)
    window.clear_finished_button.click()
    assert [i.id for i in controller.model] == [b]
    controller.select(b)
    window.remove_action.trigger()
    assert len(controller.model) == 0
    assert window.queue_stack.currentWidget() is window.drop_zone


def test_main_opens_the_window_with_files_and_exits_cleanly(qtbot, tmp_path, images):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication
    from upscaler_edge_gui.app import main
    from upscaler_edge_gui.main_window import MainWindow

    seen: list[int] = []

    def close_it() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow)]
        shown = [w for w in windows if w.isVisible()]
        for w in shown:
            seen.append(w.queue_view.model().rowCount())
            w.close()

    QTimer.singleShot(500, close_it)
    guard = QTimer()  # never hang the suite; stopped after, so it cannot quit later tests' loops
    guard.setSingleShot(True)
    guard.timeout.connect(QApplication.quit)
    guard.start(20_000)
    try:
        assert main(["--settings", str(tmp_path / "s.ini"), str(images[0].parent)]) == 0
    finally:
        guard.stop()
    assert seen == [2]
    assert (tmp_path / "s.ini").is_file()
