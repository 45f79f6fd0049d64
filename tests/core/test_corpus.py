"""The real CLI over a folder of several hundred odd files (see corpus.py).

It must finish, exit 1 (some files are broken on purpose), print exactly one stderr line per
refused file and nothing else (no warnings, no library noise, no traceback), write one
distinct output per upscaled file, leave no temporary files and leave the inputs unchanged.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
from corpus import Entry, build

from upscaler_edge.naming import find_images

FAST = ["-m", "realesr-animevideov3-x2", "-d", "cpu"]


@dataclass
class Run:
    root: Path
    out: Path
    entries: dict[Path, Entry]
    inputs: list[Path]
    hashes_before: dict[Path, str]
    returncode: int
    stderr: list[str]
    seconds: float


def _hashes(root: Path) -> dict[Path, str]:
    return {
        p: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    base = tmp_path_factory.mktemp("corpus")
    root, out = base / "inputs", base / "out"
    entries = {root / e.name: e for e in build(root)}
    inputs = find_images(root, recursive=True)
    before = _hashes(root)
    env = {
        **os.environ,
        "PYTHONWARNINGS": "default",  # show any warning that escapes
        # one inference thread: on a busy 2-core machine OpenMP's spin-waiting made the run
        # 3x slower (85 s against 29 s); what is tested here is I/O, not inference speed
        "OMP_NUM_THREADS": "1",
    }
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "upscaler_edge", str(root), "-r", "-o", str(out), *FAST, "-q"],
        capture_output=True,
        text=True,
        timeout=280,
        env=env,
        check=False,
    )
    seconds = time.perf_counter() - started
    return Run(
        root,
        out,
        entries,
        inputs,
        before,
        proc.returncode,
        proc.stderr.splitlines(),
        seconds,
    )


def _named_input(line: str, inputs: list[Path]) -> Path | None:
    """The input a stderr line is about: the longest input path followed by ': '."""
    found = [p for p in inputs if f"{p}: " in line]
    return max(found, key=lambda p: len(str(p))) if found else None


def _failures(run: Run) -> tuple[dict[Path, str], list[str]]:
    """stderr -> ({input: its line}, lines naming no input)."""
    failed: dict[Path, str] = {}
    strays: list[str] = []
    for line in run.stderr:
        src = _named_input(line, run.inputs)
        if src is None or src in failed:
            strays.append(line)
        else:
            failed[src] = line
    return failed, strays


def _outputs(run: Run) -> list[Path]:
    return sorted(p for p in run.out.rglob("*") if p.is_file()) if run.out.exists() else []


def test_corpus_is_big_and_odd(run: Run) -> None:
    assert len(run.inputs) >= 300
    assert set(run.inputs) == set(run.entries)  # the scan finds exactly what was written
    kinds = Counter(e.expect for e in run.entries.values())
    assert kinds["ok"] >= 250 and kinds["fail"] >= 40 and kinds["either"] >= 100


def test_cli_finishes_with_exit_1_and_reports(run: Run) -> None:
    failed, _ = _failures(run)
    outputs = _outputs(run)
    print(
        f"\ncorpus: {len(run.inputs)} files, {len(outputs)} upscaled, {len(failed)} refused, "
        f"{run.seconds:.1f} s"
    )
    assert run.returncode == 1, "\n".join(run.stderr[-20:])


def test_one_stderr_line_per_refused_file_and_nothing_else(run: Run) -> None:
    failed, strays = _failures(run)
    assert strays == [], "stderr lines that are not one line per refused file"
    for src, line in failed.items():
        reason = line.split(f"{src}: ", 1)[1]
        assert reason.strip(), line
        for noise in ("Traceback", "Warning", "warnings.warn", "TIFFRead", "libtiff"):
            assert noise not in line, line


def test_valid_files_are_upscaled_and_broken_ones_refused(run: Run) -> None:
    failed, _ = _failures(run)
    wrongly_refused = {
        str(p.relative_to(run.root)): failed[p]
        for p, e in run.entries.items()
        if e.expect == "ok" and p in failed
    }
    wrongly_accepted = [
        str(p.relative_to(run.root))
        for p, e in run.entries.items()
        if e.expect == "fail" and p not in failed
    ]
    assert wrongly_refused == {}
    assert wrongly_accepted == []


def test_one_distinct_output_per_upscaled_file(run: Run) -> None:
    failed, _ = _failures(run)
    outputs = _outputs(run)
    assert len(outputs) == len(run.inputs) - len(failed)
    assert len({str(p).lower() for p in outputs}) == len(outputs)


def test_same_stem_inputs_get_their_own_outputs(run: Run) -> None:
    stems = [p for p in run.inputs if p.parent.name == "stems"]
    written = [p for p in _outputs(run) if p.parent.name == "stems"]
    assert len(stems) == 7 and len(written) == len(stems)
    hoppers = sorted(p.name for p in written if p.name.lower().startswith("hopper"))
    assert len(hoppers) == 5 and len({n.lower() for n in hoppers}) == 5


def test_no_temporary_files_left(run: Run) -> None:
    leftovers = [p for p in [*run.root.rglob("*"), *run.out.rglob("*")] if p.name.endswith(".tmp")]
    assert leftovers == []


def test_inputs_unchanged(run: Run) -> None:
    assert _hashes(run.root) == run.hashes_before
