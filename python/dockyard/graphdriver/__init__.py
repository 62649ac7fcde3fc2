"""Storage (graph) drivers: overlay (alias overlay2), btrfs, vfs.

    driver = select_driver(data_root, name=None, options={})   # what the daemon does
    driver = get_driver("overlay", data_root / "overlay", {})   # a given one
    ok, why = supported("btrfs", data_root)

Selection (`select_driver`), as Docker: `DOCKYARD_DRIVER`/`DOCKER_DRIVER`, then
the name asked for (`-s`), then a driver whose directory already holds layers
in the data root, then the first supported one in `priority` (btrfs/zfs only
when the data root is on that filesystem, then overlay, then vfs).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import StorageDriverError
from ..idmap import IDMap
from .base import GraphDriver, backing_fs
from .btrfs import BtrfsDriver
from .btrfs import supported as _btrfs_supported
from .initlayer import (create_container_layers, remove_container_layers,
                        reserve_container_layers)
from .overlay import OverlayDriver
from .overlay import supported as _overlay_supported
from .vfs import VfsDriver

__all__ = [
    "GraphDriver", "OverlayDriver", "VfsDriver", "BtrfsDriver", "DRIVERS", "ALIASES",
    "priority", "canonical", "get_driver", "supported", "select_driver",
    "create_container_layers", "remove_container_layers", "reserve_container_layers",
]

DRIVERS: dict[str, type[GraphDriver]] = {
    "overlay": OverlayDriver,
    "btrfs": BtrfsDriver,
    "vfs": VfsDriver,
}
ALIASES = {"overlay2": "overlay"}

#: Recognised Docker drivers that Dockyard does not implement, and why.
UNAVAILABLE = {
    "aufs": "aufs is not supported: it is not in mainline kernels (and was removed from "
            "Docker 24); use overlay2",
    "zfs": "zfs is not supported by Dockyard: it needs the data root on a ZFS dataset, the "
           "zfs kernel module and zfs tools; use overlay2 or btrfs",
    "devicemapper": "devicemapper is not supported: it needs an LVM thin pool and was removed "
                    "from Docker 25; use overlay2",
    "fuse-overlayfs": "fuse-overlayfs is not supported; use overlay2 (root has kernel overlayfs)",
}

#: Docker's order; btrfs and zfs only win when the data root is on them.
priority = ["btrfs", "zfs", "overlay", "vfs"]


def canonical(name: str) -> str:
    n = name.strip().lower()
    return ALIASES.get(n, n)


def supported(name: str, home: str | os.PathLike) -> tuple[bool, str]:
    """Whether driver `name` can run with its data under `home` (the data root
    or the driver's home), and if not, why."""
    n = canonical(name)
    home = Path(home)
    if n == "vfs":
        return True, ""
    if n == "overlay":
        return _overlay_supported(home)
    if n == "btrfs":
        return _btrfs_supported(home)
    if n in UNAVAILABLE:
        return False, UNAVAILABLE[n]
    return False, f"unknown storage driver {name!r} (known: overlay2, btrfs, vfs)"


def get_driver(name: str, home: str | os.PathLike, options: dict[str, str] | None = None
               ) -> GraphDriver:
    """Driver `name` with its data in `home` (e.g. /var/lib/dockyard/overlay)."""
    n = canonical(name)
    if n in UNAVAILABLE:
        raise StorageDriverError(UNAVAILABLE[n])
    cls = DRIVERS.get(n)
    if cls is None:
        raise StorageDriverError(f"unknown storage driver {name!r} (known: overlay2, btrfs, vfs)")
    ok, why = supported(n, home)
    if not ok:
        raise StorageDriverError(why)
    return cls(Path(home), _options_for(n, options or {}))


def _options_for(name: str, options: dict[str, str]) -> dict[str, str]:
    """Keep the options addressed to `name` (`overlay2.x`, `btrfs.x`...); others
    are refused by the driver itself."""
    prefixes = {name, *[a for a, t in ALIASES.items() if t == name]}
    out = {}
    for k, v in options.items():
        head = k.split(".", 1)[0].lower()
        if head in prefixes or "." not in k:
            out[k] = v
        elif head in DRIVERS or head in ALIASES or head in UNAVAILABLE:
            continue  # for another driver
        else:
            out[k] = v
    return out


def _in_use(root: Path, name: str) -> bool:
    home = root / name
    try:
        return any(not p.name.startswith(".") for p in home.iterdir()
                   if not (name == "overlay" and p.name == "l")) if home.is_dir() else False
    except OSError:
        return False


def select_driver(root: str | os.PathLike, name: str | None = None,
                  options: dict[str, str] | None = None,
                  idmap: IDMap | None = None) -> GraphDriver:
    """Pick and open the storage driver for data root `root` (see the module
    doc); `idmap`: --userns-remap's maps."""
    driver = _select(root, name, options)
    if idmap is not None:
        driver.set_idmap(idmap)
    return driver


def _select(root: str | os.PathLike, name: str | None = None,
            options: dict[str, str] | None = None) -> GraphDriver:
    root = Path(root)
    options = options or {}
    chosen = os.environ.get("DOCKYARD_DRIVER") or os.environ.get("DOCKER_DRIVER") or name
    if chosen:
        n = canonical(chosen)
        return get_driver(n, root / n, options)
    # A driver that already holds data wins (so layers aren't lost silently).
    prior = [n for n in DRIVERS if _in_use(root, n)]
    if len(prior) > 1:
        raise StorageDriverError(
            f"{root} contains data of several storage drivers ({', '.join(prior)}); "
            "choose one with --storage-driver")
    if prior:
        return get_driver(prior[0], root / prior[0], options)
    fs = backing_fs(root)
    reasons = []
    for n in priority:
        if n in ("btrfs", "zfs") and fs != n:
            continue
        ok, why = supported(n, root)
        if ok:
            return get_driver(n, root / n, options)
        reasons.append(why)
    raise StorageDriverError("no storage driver is supported: " + "; ".join(reasons))
