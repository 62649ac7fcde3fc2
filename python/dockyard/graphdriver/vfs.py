"""vfs driver: every layer is a full copy of its parent (`<home>/dir/<id>`),
made with `_core.copy_tree` (reflinks when the filesystem can). Works on any
filesystem; slow and big, but simple — the fallback and the test driver."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import _core
from .base import GraphDriver, check_id, rmtree


class VfsDriver(GraphDriver):
    name = "vfs"
    whiteouts = "naive"

    def __init__(self, home: Path | str, options: dict[str, str] | None = None) -> None:
        super().__init__(home, options)
        self.dir = self.home / "dir"
        self.dir.mkdir(exist_ok=True, mode=0o700)
        for stale in self.dir.glob(".removing-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def diff_path(self, id: str) -> str:
        return str(self.dir / check_id(id))

    def exists(self, id: str) -> bool:
        return (self.dir / check_id(id)).is_dir()

    def list_ids(self) -> list[str]:
        return sorted(p.name for p in self.dir.iterdir() if not p.name.startswith("."))

    def layer_parents(self) -> list[Path]:
        return [self.dir]

    def _create(self, id: str, parent: str | None) -> None:
        dst = self.dir / id
        if parent is None:
            dst.mkdir(mode=0o755)
        else:
            _core.copy_tree(str(self.dir / parent), str(dst))

    def _remove(self, id: str) -> None:
        rmtree(self.dir / id)

    def status(self) -> list[tuple[str, str]]:
        return []

    def metadata(self, id: str) -> dict[str, str]:
        return {}
