"""Videos in the window: dropped like images, upscaled frame by frame, cancelled, compared."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QSettings
from qt_helpers import drop_paths, run_queue
from upscaler_edge_gui.queue_model import ItemState
from upscaler_edge_gui.settings import GuiSettings, save_settings

av = pytest.importorskip("av", reason="the video extra (PyAV) is not installed")

FAST_MODEL = "realesr-animevideov3"  # with scale 2: the cheapest real model


def _write_video(path: Path, width: int, height: int, frames: int) -> Path:
    """An H.264 MP4 whose frame i is a flat grey of brightness 20 + 30 * i (mod 256) with a
    moving bar, so each frame can be told apart."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=12)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.options = {"crf": "10", "g": "3"}
        for i in range(frames):
            rgb = np.full((height, width, 3), (20 + 30 * i) % 256, np.uint8)
            x = (4 * i) % (width - 4)
            rgb[:, x : x + 4] = (255, 0, 0)
            for packet in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return path


def _decode(path: Path) -> tuple[int, tuple[int, int]]:
    """(frame count, (width, height)) by decoding every frame."""
    with av.open(str(path)) as c:
        frames = [f for f in c.decode(video=0)]
    return len(frames), (frames[0].width, frames[0].height)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    folder = tmp_path / "vid"
    folder.mkdir()
    return _write_video(folder / "clip.mp4", 32, 24, 6)


@pytest.fixture
def qsettings_x2(settings_file: Path) -> QSettings:
    qs = QSettings(str(settings_file), QSettings.Format.IniFormat)
    save_settings(qs, GuiSettings(model=FAST_MODEL, scale=2, format="png"))
    return qs


def test_dropped_video_is_upscaled_2x_with_every_frame(qtbot, make_window, qsettings_x2, video):
    window, controller = make_window(qsettings_x2)
    drop_paths(window.drop_zone, [video])
    item = controller.model.item_at(0)
    assert item.is_video and item.state is ItemState.QUEUED
    # the thumbnail is the first frame, the size the video's
    qtbot.waitUntil(lambda: controller.model.item_at(0).thumbnail is not None, timeout=5000)
    assert controller.model.item_at(0).in_size == (32, 24)

    texts: list[str] = []
    controller.model.item_changed.connect(
        lambda i: texts.append(controller.model.item(i).state_text())
    )
    run_queue(qtbot, controller)

    item = controller.model.item_at(0)
    assert item.state is ItemState.DONE, item.state_text()
    assert item.dst == video.with_name("clip_x2.mp4")
    assert _decode(item.dst) == (6, (64, 48))
    assert item.frames == 6 and item.out_size == (64, 48)
    assert any("frame " in t and "/6" in t for t in texts), texts
    assert not (video.parent / ".clip_x2.mp4.parts").exists()

    # the compare view: a timeline slider over the 6 frames, the chosen frame before/after
    qtbot.waitUntil(lambda: controller.compare_shown == item.id, timeout=10_000)
    pane = window.compare_pane
    assert pane.frame_row.isVisible()
    assert pane.frame_slider.maximum() == 5
    assert pane.shown_frame == 0
    with qtbot.waitSignal(controller.compare_ready, timeout=10_000):
        pane.frame_slider.setValue(4)
    assert pane.shown_frame == 4
    before, after = pane.shown_pair.before, pane.shown_pair.after
    assert (before.width(), before.height()) == (32, 24)
    assert (after.width(), after.height()) == (64, 48)
    # frame 4 is the grey of brightness 140 (far from the red bar): not the first frame's 20
    grey = before.pixelColor(31, 12)
    assert abs(grey.green() - 140) < 20, grey.getRgb()


def test_cancelled_video_leaves_no_output_and_runs_again(
    qtbot, make_window, qsettings_x2, tmp_path
):
    src = _write_video(tmp_path / "long.mp4", 48, 32, 12)
    window, controller = make_window(qsettings_x2)
    window.panel.advanced_toggle.setChecked(True)
    window.panel.tile_spin.setValue(32)
    window.panel.tta_check.setChecked(True)  # slow frames: the cancel lands mid-job
    drop_paths(window.drop_zone, [src])
    item_id = controller.model.item_at(0).id

    def cancel_on_progress(changed: int) -> None:
        item = controller.model.item(changed)
        if item.state is ItemState.RUNNING and item.progress > 0:
            controller.cancel_current()

    controller.model.item_changed.connect(cancel_on_progress)
    run_queue(qtbot, controller)
    controller.model.item_changed.disconnect(cancel_on_progress)

    assert controller.model.item(item_id).state is ItemState.CANCELLED
    assert not (tmp_path / "long_x2.mp4").exists()  # no partial output

    # running it again (other settings: no resume) finishes it
    window.panel.tta_check.setChecked(False)
    window.panel.tile_spin.setValue(0)
    controller.select(item_id)
    controller.retry_selected()
    run_queue(qtbot, controller)
    item = controller.model.item(item_id)
    assert item.state is ItemState.DONE, item.state_text()
    assert _decode(tmp_path / "long_x2.mp4") == (12, (96, 64))


def test_video_without_pyav_fails_its_row_with_the_install_line(
    qtbot, make_window, qsettings_x2, video, monkeypatch
):
    import upscaler_edge_gui.run_controller as rc

    monkeypatch.setattr(rc, "video_available", lambda: False)
    window, controller = make_window(qsettings_x2)
    drop_paths(window.drop_zone, [video])
    run_queue(qtbot, controller)
    item = controller.model.item_at(0)
    assert item.state is ItemState.FAILED
    assert 'pip install "upscaler-edge[video]"' in item.state_text()
    assert "\n" not in item.state_text()


def test_cancelled_video_keeps_its_segments_and_running_it_again_resumes(
    qtbot, make_window, qsettings_x2, tmp_path, monkeypatch
):
    import time

    from upscaler_edge.pipeline import Upscaler
    from upscaler_edge.video import VideoOptions

    real = Upscaler.upscale_picture

    def slow(self, *a, **k):  # frames slow enough that the cancel lands before the end
        time.sleep(0.05)
        return real(self, *a, **k)

    monkeypatch.setattr(Upscaler, "upscale_picture", slow)

    src = _write_video(tmp_path / "seg.mp4", 48, 32, 12)
    window, controller = make_window(qsettings_x2)
    controller.runs.video_options = VideoOptions(segment_seconds=0.25)  # 3 frames a segment
    drop_paths(window.drop_zone, [src])
    item_id = controller.model.item_at(0).id

    def cancel_after_two_segments(changed: int) -> None:
        item = controller.model.item(changed)
        if item.state is ItemState.RUNNING and item.progress >= 0.5:
            controller.cancel_current()

    controller.model.item_changed.connect(cancel_after_two_segments)
    run_queue(qtbot, controller)
    controller.model.item_changed.disconnect(cancel_after_two_segments)
    assert controller.model.item(item_id).state is ItemState.CANCELLED
    assert not (tmp_path / "seg_x2.mp4").exists()
    assert (tmp_path / ".seg_x2.mp4.parts").is_dir()  # kept for a resume

    results: list[object] = []
    controller.runs.hosts()[0].runner.returned.connect(lambda _i, r: results.append(r))
    controller.select(item_id)
    controller.retry_selected()
    run_queue(qtbot, controller)
    assert controller.model.item(item_id).state is ItemState.DONE
    assert results and results[0].frames_resumed >= 3, results
    assert _decode(tmp_path / "seg_x2.mp4") == (12, (96, 64))
    assert not (tmp_path / ".seg_x2.mp4.parts").exists()
