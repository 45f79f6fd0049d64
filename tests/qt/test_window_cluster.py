"""The window as a client of the cluster: "Send to the cluster" sends the whole batch to the
worker PCs (a real ``nats-server`` on loopback and one worker process), with progress per
file and a cancel that reaches the worker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from qt_helpers import drop_paths, run_queue
from upscaler_edge_gui.queue_model import ItemState
from upscaler_edge_gui.settings import GuiSettings, save_settings

from tests.cluster_fixtures import WORKER_DEVICE

pytestmark = pytest.mark.timeout(300)

# not imported from conftest: run with tests/bot, "conftest" would be the bot's
FAST_MODEL = "realesr-animevideov3"


def _size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_without_a_cluster_the_menu_entry_is_not_offered(make_window, tmp_path):
    window, controller = make_window(cluster_address_file=tmp_path / "none.json")
    assert not window.cluster_action.isVisible()
    assert controller.runs._cluster is None


def _cluster_window(make_window, workers, tmp_path):
    workers.start("alpha")
    address_file = tmp_path / "cluster.json"
    workers.address.save(address_file)
    window, controller = make_window(cluster_address_file=address_file)
    assert window.cluster_action.isVisible() and not window.cluster_action.isChecked()
    window.cluster_action.setChecked(True)
    workers.wait_joined("alpha")
    return window, controller


def test_a_batch_goes_to_the_cluster_worker(qtbot, make_window, images, workers, tmp_path):
    window, controller = _cluster_window(make_window, workers, tmp_path)
    twin = images[0].with_suffix(".jpg")  # alpha.jpg beside alpha.png: both want alpha_x4.png
    twin.write_bytes(images[1].read_bytes())
    images = [*images, twin]
    drop_paths(window.drop_zone, images)
    reported: set[int] = set()
    saved: list[str] = []
    window.status.messageChanged.connect(saved.append)
    controller.runs._cluster.progress.connect(lambda i, done, total: reported.add(i))

    run_queue(qtbot, controller, timeout=180_000)

    names = ["alpha_x4.png", "beta_x4.png", "alpha_x4-2.png"]
    for item, src, name in zip(controller.model, images, names, strict=True):
        assert item.state is ItemState.DONE, item.state_text()
        assert item.dst == src.with_name(name)
        w, h = _size(src)
        assert _size(item.dst) == (4 * w, 4 * h)
        assert item.device is not None and item.device.startswith("alpha: "), item.device
    assert workers.log("alpha").count("done image") == 3
    assert reported == {i.id for i in controller.model}  # each file's progress came back
    assert "Finished: 3 done" in window.status.currentMessage()
    assert any(", on alpha: " in m for m in saved)


def test_the_status_bar_lists_the_cluster_workers(qtbot, make_window, workers, tmp_path):
    workers.start("alpha")
    address_file = tmp_path / "cluster.json"
    workers.address.save(address_file)
    window, _ = make_window(cluster_address_file=address_file)
    label = window.cluster_status
    assert not label.isVisible()  # nothing while the option is off
    workers.wait_joined("alpha")

    window.cluster_action.setChecked(True)
    assert label.isVisible()  # "connecting…" at once: the UI thread never waits
    qtbot.waitUntil(lambda: label.text() == "Cluster: 1 worker", timeout=30_000)
    assert label.toolTip() == f"alpha: {WORKER_DEVICE}, 0 jobs done, idle", label.toolTip()

    window.cluster_action.setChecked(False)
    assert not label.isVisible()
    qtbot.wait(200)  # an answer in flight when it was turned off stays dropped
    assert not label.isVisible()


def test_the_cluster_summary_reads_well():
    from upscaler_edge_gui.cluster_status import summary

    from upscaler_edge.cluster.client import WorkerInfo

    assert summary([])[0] == "Cluster: no workers"
    text, details = summary(
        [
            WorkerInfo("alpha", "GPU 0: RTX 4070", 12, 3.456, "job-1", False),
            WorkerInfo("beta", "cpu", 1, None, None, True),
        ]
    )
    assert text == "Cluster: 2 workers (1 busy)"
    assert details.splitlines() == [
        "alpha: GPU 0: RTX 4070, 12 jobs done, 3.46 MP/s, busy",
        "beta: cpu, 1 job done, idle, small pictures only",
    ]


def test_cancel_stops_the_job_on_the_worker(
    qtbot, make_window, workers, tmp_path, qsettings, photo
):
    save_settings(qsettings, GuiSettings(model=FAST_MODEL, scale=4, format="png", tile=32))
    src = tmp_path / "big" / "big.png"
    src.parent.mkdir()
    Image.fromarray(np.tile(photo, (3, 3, 1))[:400, :400]).save(src)  # 169 tiles
    window, controller = _cluster_window(make_window, workers, tmp_path)
    drop_paths(window.drop_zone, [src])
    (item,) = controller.model
    with qtbot.waitSignal(controller.queue_idle, timeout=120_000):
        window.panel.start_button.click()
        qtbot.waitUntil(lambda: controller.model.item(item.id).progress > 0, timeout=60_000)
        window.cancel_action.trigger()
    assert controller.model.item(item.id).state is ItemState.CANCELLED
    # the worker stopped the job (about 18 s of work here): it takes the next one at once
    from upscaler_edge.cluster.client import ClusterClient
    from upscaler_edge.options import Options

    small = tmp_path / "small.png"
    Image.fromarray(photo[:24, :32]).save(small)
    with ClusterClient(workers.address) as client:
        fut = client.submit(small, tmp_path / "small_x2.png", Options(model=FAST_MODEL, scale=2))
        assert fut.result(8).device.startswith("alpha: ")
    assert workers.log("alpha").count("done image") == 1  # the small one only
    assert not src.with_name("big_x4.png").exists()


def test_an_unreachable_cluster_fails_the_files_with_the_reason(
    qtbot, make_window, images, tmp_path
):
    import socket

    pytest.importorskip("nats")
    from upscaler_edge.cluster.connect import Address

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address_file = tmp_path / "cluster.json"
    Address(f"nats://127.0.0.1:{port}", "t" * 20).save(address_file)
    window, controller = make_window(cluster_address_file=address_file)
    window.cluster_action.setChecked(True)
    drop_paths(window.drop_zone, images)

    run_queue(qtbot, controller, timeout=60_000)

    label = window.cluster_status
    qtbot.waitUntil(lambda: label.text().startswith("Cluster: unreachable — "), timeout=60_000)
    assert "cannot reach" in label.text() and "cannot reach" in label.toolTip()
    for item in controller.model:
        assert item.state is ItemState.FAILED
        assert item.error is not None and item.error.startswith("cluster: cannot reach"), item.error
    assert not any(src.with_name(f"{src.stem}_x4.png").exists() for src in images)
