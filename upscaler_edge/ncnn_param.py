"""Reading ncnn's ``.param`` text graph: layers, blob names, global average pools.

The format (ncnn wiki, "param and model file structure"): a magic line, a line with the layer
and blob counts, then one line per layer: type, name, bottom count, top count, bottoms, tops,
``key=value`` parameters.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["blob_names", "global_pools", "layers"]


def layers(param_path: Path) -> list[tuple[str, list[str], list[str], list[str]]]:
    """(type, bottoms, tops, params) of each layer of an ncnn .param text file."""
    with open(param_path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    layers = []
    for line in lines[2:]:
        parts = line.split()
        if len(parts) < 4:
            continue
        n_in, n_out = int(parts[2]), int(parts[3])
        bottoms = parts[4 : 4 + n_in]
        tops = parts[4 + n_in : 4 + n_in + n_out]
        layers.append((parts[0], bottoms, tops, parts[4 + n_in + n_out :]))
    return layers


def global_pools(param_path: Path) -> list[tuple[str, str]]:
    """(input blob, output blob) of each global average pool in an ncnn .param file, in the
    file's order: the squeeze of squeeze-and-excitation blocks (Real-CUGAN's ``gap0``..)."""
    pools = []
    for kind, bottoms, tops, params in layers(param_path):
        if kind != "Pooling" or len(bottoms) != 1 or len(tops) != 1:
            continue
        opts = dict(p.split("=", 1) for p in params if "=" in p)
        if opts.get("0") == "1" and opts.get("4") == "1":  # average, global
            pools.append((bottoms[0], tops[0]))
    return pools


def blob_names(param_path: Path) -> tuple[str, str]:
    """Input and output blob names read from an ncnn .param text file."""
    inp, out = "data", None
    for kind, _, tops, _ in layers(param_path):
        if kind == "Input" and tops:
            inp = tops[0]
        if tops:
            out = tops[-1]
    return inp, out or "output"
