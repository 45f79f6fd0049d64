"""Starting the window where PySide6 is missing: one line saying what to install, exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# A meta path finder that refuses PySide6, as if the gui extra were not installed.
_BLOCK_PYSIDE = """
import sys

class _NoPySide:
    def find_spec(self, name, path=None, target=None):
        if name == "PySide6" or name.startswith("PySide6."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NoPySide())
"""

# What the ``upscaler-edge-gui`` console script runs.
_GUI_SCRIPT = """
from upscaler_edge_gui.app import main
sys.argv[0] = "upscaler-edge-gui"
sys.exit(main())
"""

_CLI_GUI = """
from upscaler_edge.cli import main
sys.exit(main(["--gui"]))
"""


def _run(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-c", _BLOCK_PYSIDE + code],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("code", [_GUI_SCRIPT, _CLI_GUI], ids=["gui-script", "cli-gui"])
def test_without_pyside6_one_line_and_exit_2(code: str, tmp_path: Path) -> None:
    proc = _run(code, tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "pip install" in lines[0] and "upscaler-edge[gui]" in lines[0]
    assert proc.stdout == ""


def test_gui_script_names_the_install_command_exactly(tmp_path: Path) -> None:
    proc = _run(_GUI_SCRIPT, tmp_path)
    assert proc.stderr.strip() == (
        'upscaler-edge-gui: the desktop window needs PySide6: pip install "upscaler-edge[gui]"'
    )


def test_the_package_imports_without_pyside6(tmp_path: Path) -> None:
    """Importing ``upscaler_edge_gui`` (what the console script does first) is silent."""
    proc = _run("import upscaler_edge_gui, upscaler_edge_gui.app\nprint('ok')\n", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok" and proc.stderr == ""
