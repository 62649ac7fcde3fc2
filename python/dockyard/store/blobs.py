"""Content-addressed blobs under `<root>/content/sha256/<hex>`.

Blobs are written to a temporary name in the same directory, fsynced and
renamed into place (the directory fsynced after), so a reader never sees a
partial blob and a stored one survives a power cut.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import _core
from ..errors import LayerCorrupt, NotFound
from ..graphdriver.base import fsync_dir


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.dir = root / "content" / "sha256"
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        algo, _, hexpart = digest.partition(":")
        if algo != "sha256" or len(hexpart) != 64:
            raise NotFound(f"invalid digest {digest}")
        return self.dir / hexpart

    def has(self, digest: str) -> bool:
        return self.path(digest).exists()

    def get(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found") from None

    def put(self, data: bytes, expected: str | None = None) -> str:
        digest = _core.sha256_bytes(data)
        if expected and expected != digest:
            raise LayerCorrupt(f"digest mismatch: expected {expected}, got {digest}")
        dest = self.path(digest)
        if dest.exists():
            return digest
        tmp = dest.with_name(f".tmp-{os.getpid()}-{dest.name}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
        fsync_dir(self.dir)  # the name, not only the bytes, survives a power cut
        return digest

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)
