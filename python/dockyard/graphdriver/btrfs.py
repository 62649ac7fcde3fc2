"""btrfs driver: `<home>/subvolumes/<id>` is a subvolume; a child layer is a
(copy-on-write, O(1)) snapshot of its parent. Needs the data root on btrfs."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import _core
from ..errors import StorageDriverError
from .base import GraphDriver, backing_fs, check_id, rmtree


def supported(home: Path) -> tuple[bool, str]:
    try:
        with open("/proc/filesystems") as f:
            if not any(line.split()[-1:] == ["btrfs"] for line in f):
                return False, "btrfs: the kernel does not support btrfs"
    except OSError:
        pass
    fs = backing_fs(home)
    if fs != "btrfs":
        return False, f"btrfs: the data root {home} is on {fs}, not btrfs"
    return True, ""


class BtrfsDriver(GraphDriver):
    name = "btrfs"
    whiteouts = "naive"

    def __init__(self, home: Path | str, options: dict[str, str] | None = None) -> None:
        ok, why = supported(Path(home))
        if not ok:
            raise StorageDriverError(why)
        super().__init__(home, options)
        self.subvolumes = self.home / "subvolumes"
        self.subvolumes.mkdir(exist_ok=True, mode=0o700)
        for stale in self.subvolumes.glob(".removing-*"):
            self._delete(stale)

    def diff_path(self, id: str) -> str:
        return str(self.subvolumes / check_id(id))

    def exists(self, id: str) -> bool:
        return (self.subvolumes / check_id(id)).is_dir()

    def list_ids(self) -> list[str]:
        return sorted(p.name for p in self.subvolumes.iterdir() if not p.name.startswith("."))

    def layer_parents(self) -> list[Path]:
        return [self.subvolumes]

    def _create(self, id: str, parent: str | None) -> None:
        dst = str(self.subvolumes / id)
        if parent is None:
            _core.btrfs_subvolume_create(dst)
        else:
            _core.btrfs_subvolume_snapshot(str(self.subvolumes / parent), dst)

    def _delete(self, path: Path) -> None:
        if _core.is_btrfs_subvolume(str(path)):
            _core.btrfs_subvolume_delete(str(path))
        else:
            shutil.rmtree(path, ignore_errors=True)

    def _remove(self, id: str) -> None:
        p = self.subvolumes / id
        if not p.exists():
            return
        if _core.is_btrfs_subvolume(str(p)):
            _core.btrfs_subvolume_delete(str(p))
        else:
            rmtree(p)

    def status(self) -> list[tuple[str, str]]:
        return [("Backing Filesystem", "btrfs")]
