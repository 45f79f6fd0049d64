"""End-to-end window tests: real drops, real upscaling with the small animevideov3 model."""

from __future__ import annotations

import logging
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QTimer
from qt_helpers import JOB_TIMEOUT_MS, drop_paths, run_queue, states
from upscaler_edge_gui.queue_model import ItemState

from upscaler_edge.errors import InputError
from upscaler_edge.worker import Worker


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_drop_two_images_upscales_them_4x(qtbot, make_window, images):
    window, controller = make_window()
    assert window.queue_stack.currentWidget() is window.drop_zone  # empty: the big drop zone

    drop_paths(window.drop_zone, images)

    assert [i.src for i in controller.model] == images
    assert window.queue_stack.currentIndex() == 1  # the list replaces the big drop zone
    assert all(i.state is ItemState.QUEUED for i in controller.model)
    qtbot.waitUntil(lambda: all(i.in_size for i in controller.model), timeout=5000)

    run_queue(qtbot, controller)

    for item, src in zip(controller.model, images, strict=True):
        assert item.state is ItemState.DONE, item.state_text()
        assert item.dst == src.with_name(f"{src.stem}_x4.png")
        assert item.dst.is_file()
        w, h = _size(src)
        assert _size(item.dst) == (4 * w, 4 * h)
        assert item.in_size == (w, h) and item.out_size == (4 * w, 4 * h)
        assert item.state_text().startswith("Done")
    assert window.queue_count.text() == "2 of 2 done"
    # the last finished image is shown in the compare view
    last = controller.model.item_at(1)
    qtbot.waitUntil(lambda: controller.compare_shown == last.id, timeout=10_000)
    assert window.compare.has_images()
    assert window.panel.overall_progress.value() == 100
    assert "Finished: 2 done" in window.status.currentMessage()


def test_drop_on_window_and_folder_collects_images(qtbot, make_window, tmp_path, images):
    window, controller = make_window()
    nested = images[0].parent / "more" / "deeper"
    nested.mkdir(parents=True)
    (nested / "gamma.png").write_bytes(images[0].read_bytes())
    (images[0].parent / "notes.txt").write_text("not an image")
    (images[0].parent / ".hidden.png").write_bytes(images[0].read_bytes())

    drop_paths(window, [images[0].parent])  # anywhere on the window, a folder

    names = [i.name for i in controller.model]
    assert sorted(names) == ["alpha.png", "beta.jpg", "gamma.png"]

    drop_paths(window.add_more_zone, images)  # the same files again: not queued twice
    assert len(controller.model) == 3


def test_corrupt_file_fails_with_reason_while_others_finish(
    qtbot, make_window, images, corrupt_image
):
    window, controller = make_window()
    drop_paths(window.drop_zone, [images[0], corrupt_image, images[1]])

    run_queue(qtbot, controller)

    by_name = {i.name: i for i in controller.model}
    broken = by_name["broken.jpg"]
    assert broken.state is ItemState.FAILED
    assert broken.error and len(broken.error) > 5
    assert broken.state_text() == f"Failed: {broken.error}"
    assert not broken.src.with_name("broken_x4.png").exists()
    assert by_name["alpha.png"].state is ItemState.DONE
    assert by_name["beta.jpg"].state is ItemState.DONE
    assert "1 failed" in window.queue_count.text()
    assert "failed" in window.status.currentMessage()


class _BreaksOn(Worker):
    """A real worker, except that the file named ``broken_name`` raises ``error``."""

    broken_name = ""
    error: Exception = RuntimeError()

    def run(self, src, dst, options=None, **kwargs):  # type: ignore[override]
        if Path(src).name == self.broken_name:
            raise self.error
        return super().run(src, dst, options, **kwargs)


def test_unexpected_error_in_one_file_fails_its_row_and_the_batch_goes_on(
    qtbot, make_window, images, caplog
):
    class BreaksOnAlpha(_BreaksOn):
        broken_name = "alpha.png"
        error = struct.error("unpack requires a buffer of 4 bytes")

    window, controller = make_window(worker_factory=BreaksOnAlpha)
    drop_paths(window.drop_zone, images)  # alpha first: the next file must still run
    with caplog.at_level(logging.ERROR):
        run_queue(qtbot, controller)

    alpha, beta = list(controller.model)
    assert alpha.state is ItemState.FAILED
    assert alpha.error == "internal error: unpack requires a buffer of 4 bytes"
    assert beta.state is ItemState.DONE, beta.state_text()
    assert beta.dst is not None and beta.dst.is_file()
    # the traceback goes to the log
    assert any(r.exc_info and r.exc_info[0] is struct.error for r in caplog.records)
    assert "1 failed" in window.queue_count.text()
    assert "1 done, 1 failed" in window.status.currentMessage()


def test_unexpected_error_before_a_file_starts_fails_only_that_file(
    qtbot, make_window, images, monkeypatch
):
    from upscaler_edge_gui import run_controller

    real = run_controller.output_path_for

    def output_path_for(src, s):
        if src.name == "alpha.png":
            raise struct.error("bad settings blob")
        return real(src, s)

    monkeypatch.setattr(run_controller, "output_path_for", output_path_for)
    window, controller = make_window()
    drop_paths(window.drop_zone, images)
    run_queue(qtbot, controller)

    alpha, beta = list(controller.model)
    assert (alpha.state, alpha.error) == (ItemState.FAILED, "internal error: bad settings blob")
    assert beta.state is ItemState.DONE, beta.state_text()


def test_a_bad_files_message_is_one_line(qtbot, make_window, images, corrupt_image):
    class MultiLine(_BreaksOn):
        broken_name = "alpha.png"
        error = InputError("cannot read alpha.png:\n  the header is damaged\n")

    window, controller = make_window(worker_factory=MultiLine)
    drop_paths(window.drop_zone, [images[0], corrupt_image])
    failed: list[str] = []

    def note_status(item_id: int) -> None:
        failed.append(window.status.currentMessage())

    controller.item_finished.connect(note_status)
    run_queue(qtbot, controller)

    alpha, broken = list(controller.model)
    assert alpha.error == "cannot read alpha.png: the header is damaged"
    assert broken.state is ItemState.FAILED and broken.error
    for item in (alpha, broken):
        assert "\n" not in item.state_text()
    assert failed and all(m.startswith("Failed: ") and "\n" not in m for m in failed)
    controller.select(alpha.id)
    assert window.compare.message() == "Failed: cannot read alpha.png: the header is damaged"


@pytest.fixture
def slow_image(tmp_path: Path, photo: np.ndarray) -> Path:
    """320x320: with 32 px tiles, 100 tiles (about 1-2 s on two CPU cores)."""
    folder = tmp_path / "slow"
    folder.mkdir()
    path = folder / "slow.png"
    Image.fromarray(np.tile(photo, (2, 2, 1))).save(path)
    return path


def _small_tiles(window) -> None:
    window.panel.advanced_toggle.setChecked(True)
    window.panel.tile_spin.setValue(32)


def _slow_tiles(window) -> None:
    """32 px tiles with TTA: each tile takes well over 50 ms. ``Worker.run`` only looks at the
    cancel token when no message arrived for 50 ms, so with faster tiles a cancel can wait for
    the end of the job (see test_cancel_with_fast_tiles)."""
    _small_tiles(window)
    window.panel.tta_check.setChecked(True)


def test_cancel_mid_job_leaves_no_partial_output(qtbot, make_window, slow_image, images):
    window, controller = make_window()
    _slow_tiles(window)
    drop_paths(window.drop_zone, [slow_image, images[0]])
    slow_id = controller.model.item_at(0).id

    def cancel_on_first_progress(item_id: int) -> None:
        item = controller.model.item(item_id)
        if item_id == slow_id and item.state is ItemState.RUNNING and item.progress > 0:
            controller.cancel_current()

    controller.model.item_changed.connect(cancel_on_first_progress)
    run_queue(qtbot, controller)

    slow = controller.model.item(slow_id)
    assert slow.state is ItemState.CANCELLED, slow.state_text()
    assert sorted(p.name for p in slow_image.parent.iterdir()) == ["slow.png"]  # no partial file
    # cancel stops only the current image: the next one still ran
    assert states(controller)["alpha.png"] is ItemState.DONE


def test_cancel_with_fast_tiles(qtbot, make_window, slow_image):
    window, controller = make_window()
    _small_tiles(window)  # about 20 ms a tile on two cores: progress never pauses 50 ms
    drop_paths(window.drop_zone, [slow_image])
    item_id = controller.model.item_at(0).id

    def cancel_on_progress(changed: int) -> None:
        item = controller.model.item(changed)
        if item.state is ItemState.RUNNING and item.progress > 0:
            controller.cancel_current()

    controller.model.item_changed.connect(cancel_on_progress)
    run_queue(qtbot, controller)
    assert controller.model.item(item_id).state is ItemState.CANCELLED


def test_cancel_all_clears_the_rest(qtbot, make_window, slow_image, images):
    window, controller = make_window()
    _slow_tiles(window)
    drop_paths(window.drop_zone, [slow_image, *images])
    slow_id = controller.model.item_at(0).id

    def cancel_all_on_progress(item_id: int) -> None:
        item = controller.model.item(item_id)
        if item_id == slow_id and item.state is ItemState.RUNNING and item.progress > 0:
            window.panel.clear_rest_button.click()

    controller.model.item_changed.connect(cancel_all_on_progress)
    run_queue(qtbot, controller)

    assert set(states(controller).values()) == {ItemState.CANCELLED}
    assert sorted(p.name for p in slow_image.parent.iterdir()) == ["slow.png"]
    assert not any(p.name.endswith("_x4.png") for p in images[0].parent.iterdir())
    assert window.panel.start_button.isEnabled() is False  # nothing queued any more


def test_worker_crash_fails_the_item_not_the_window(qtbot, make_window, images):
    from worker_faults import faulty_child

    class CrashOnce(Worker):
        crashed = False

        def __init__(self, *args, **kwargs):
            super().__init__(*args, child_entry=faulty_child, **kwargs)

        def run(self, src, *args, **kwargs):  # type: ignore[override]
            marker = Path(src).parent / ".fault-abort"
            if not CrashOnce.crashed:
                CrashOnce.crashed = True
                marker.touch()
            else:
                marker.unlink(missing_ok=True)
            return super().run(src, *args, **kwargs)

    window, controller = make_window(worker_factory=CrashOnce)
    drop_paths(window.drop_zone, images)
    run_queue(qtbot, controller)

    first, second = list(controller.model)
    assert first.state is ItemState.FAILED and "crash" in (first.error or "")
    assert second.state is ItemState.DONE
    assert window.isVisible()


def test_ui_thread_heartbeat_while_a_job_runs(qtbot, make_window, big_image, capsys):
    """The UI thread must keep serving events while ncnn works (target: gaps under 100 ms)."""
    window, controller = make_window()
    _small_tiles(window)
    drop_paths(window.drop_zone, [big_image])
    qtbot.waitUntil(lambda: controller.model.item_at(0).thumbnail is not None, timeout=5000)

    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(15)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start()
    try:
        run_queue(qtbot, controller)
    finally:
        timer.stop()

    assert controller.model.item_at(0).state is ItemState.DONE
    gaps = np.diff(ticks)
    worst_ms = 1000 * float(gaps.max())
    with capsys.disabled():
        print(
            f"\nUI heartbeat: {len(ticks)} ticks over {1000 * (ticks[-1] - ticks[0]):.0f} ms, "
            f"worst gap {worst_ms:.1f} ms, median {1000 * float(np.median(gaps)):.1f} ms"
        )
    assert len(ticks) > 10
    # 100 ms is the goal; 250 ms leaves room for a loaded 2-core CI runner
    assert worst_ms < 250, f"the UI thread stalled for {worst_ms:.0f} ms"


def test_output_folder_and_format_are_used(qtbot, make_window, images, tmp_path):
    window, controller = make_window()
    out = tmp_path / "results"
    out.mkdir()
    window.panel.set_output_dir(str(out))
    window.panel.format_combo.setCurrentIndex(window.panel.format_combo.findData("jpg"))
    window.panel.scale_buttons[2].click()
    drop_paths(window.drop_zone, images[:1])
    run_queue(qtbot, controller)

    item = controller.model.item_at(0)
    assert item.state is ItemState.DONE, item.state_text()
    assert item.dst == out / "alpha_x2.jpg"
    assert _size(item.dst) == (96, 80)
    assert item.model == "realesr-animevideov3" and item.scale == 2

    # a second run never overwrites: it picks a free name
    controller.select(item.id)
    window.retry_action.trigger()
    run_queue(qtbot, controller)
    assert controller.model.item_at(0).dst == out / "alpha_x2-2.jpg"
    assert (out / "alpha_x2.jpg").is_file() and (out / "alpha_x2-2.jpg").is_file()


def test_closing_the_window_mid_job_cancels_and_cleans_up(qtbot, make_window, slow_image):
    window, controller = make_window()
    _slow_tiles(window)
    drop_paths(window.drop_zone, [slow_image])
    item_id = controller.model.item_at(0).id
    controller.start()
    qtbot.waitUntil(lambda: controller.model.item(item_id).progress > 0, timeout=JOB_TIMEOUT_MS)

    started = time.monotonic()
    window.close()  # saves settings, cancels, stops the worker thread and process
    assert time.monotonic() - started < 15
    assert not any(host.is_busy() for host in controller.runs.hosts())
    assert sorted(p.name for p in slow_image.parent.iterdir()) == ["slow.png"]
