"""Why no Vulkan GPU was found, and what to install: for ``--list-devices`` and the log.

No ncnn import here: this looks at the machine the way the Vulkan loader does (the loader
library, the driver manifests it reads, the NVIDIA container hooks) and says which piece is
missing, in one line a user can act on.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["diagnose"]

_LOADERS = {"linux": "libvulkan.so.1", "win32": "vulkan-1.dll", "darwin": "libvulkan.1.dylib"}
_ICD_DIRS = (
    "/etc/vulkan/icd.d",
    "/usr/local/share/vulkan/icd.d",
    "/usr/share/vulkan/icd.d",
    "/usr/local/nvidia/share/vulkan/icd.d",
)


def _loader_present(load: Callable[[str], object]) -> bool:
    name = _LOADERS.get(sys.platform, "libvulkan.so.1")
    try:
        load(name)  # as ncnn's loader does: by its soname
    except OSError:
        return False
    return True


def _icd_files(dirs: Iterable[str], env: dict[str, str]) -> list[Path]:
    named = env.get("VK_DRIVER_FILES") or env.get("VK_ICD_FILENAMES")
    if named:
        return [Path(p) for p in named.split(os.pathsep) if Path(p).is_file()]
    found: list[Path] = []
    for folder in dirs:
        found += sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []
    home = Path(env.get("XDG_DATA_HOME", Path.home() / ".local" / "share")) / "vulkan" / "icd.d"
    found += sorted(home.glob("*.json")) if home.is_dir() else []
    return found


def _nvidia_without_graphics(env: dict[str, str], icds: list[Path]) -> bool:
    """An NVIDIA GPU is visible (driver loaded, or a container given one) but its Vulkan
    driver is not: the usual cause is a container started without the graphics capability."""
    gpu_visible = Path("/proc/driver/nvidia/version").exists() or bool(
        env.get("NVIDIA_VISIBLE_DEVICES", "") not in ("", "void", "none")
    )
    has_vulkan = any("nvidia" in p.name.lower() for p in icds)
    return gpu_visible and not has_vulkan


def diagnose(
    env: dict[str, str] | None = None,
    *,
    icd_dirs: Iterable[str] = _ICD_DIRS,
    load: Callable[[str], object] = ctypes.CDLL,
) -> str:
    """One line: why Vulkan found no GPU here and what to do (call when none was found)."""
    env = dict(os.environ if env is None else env)
    if sys.platform == "darwin":
        if not _loader_present(load):
            return "no Vulkan loader: install MoltenVK (brew install molten-vk, or the Vulkan SDK)"
        return "MoltenVK is installed but reports no GPU"
    if not _loader_present(load):
        if sys.platform == "win32":
            return "no Vulkan loader (vulkan-1.dll): install or update your GPU driver"
        return (
            "no Vulkan loader (libvulkan.so.1): install it, e.g. "
            "sudo apt install libvulkan1 mesa-vulkan-drivers (AMD/Intel) or the NVIDIA driver"
        )
    icds = _icd_files(icd_dirs, env) if sys.platform != "win32" else []
    caps = env.get("NVIDIA_DRIVER_CAPABILITIES", "")
    if sys.platform != "win32" and _nvidia_without_graphics(env, icds):
        return (
            "an NVIDIA GPU is present but not its Vulkan driver: in a container, start it with "
            f"NVIDIA_DRIVER_CAPABILITIES=graphics (or all){f' (now: {caps})' if caps else ''}; "
            "elsewhere install the full NVIDIA driver (it ships nvidia_icd.json)"
        )
    if sys.platform != "win32" and not icds:
        return (
            "the Vulkan loader finds no driver (no ICD manifest in /usr/share/vulkan/icd.d): "
            "install mesa-vulkan-drivers (AMD/Intel) or the NVIDIA driver"
        )
    return "the Vulkan drivers found report no usable GPU (vulkaninfo --summary tells more)"
