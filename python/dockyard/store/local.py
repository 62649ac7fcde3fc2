"""The local store as one object: the database, the storage driver, the layer
and image stores over them, and scratch space for tarballs in flight.

This is what the services that read or write images (pull, push, save/load,
a container's create and commit) are handed instead of the whole engine;
`dockyard.engine` builds it once and shares it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..graphdriver.base import GraphDriver
from .db import Database
from .images import ImageStore
from .layers import LayerStore


@dataclass(frozen=True)
class LocalStore:
    db: Database
    driver: GraphDriver
    layers: LayerStore
    images: ImageStore
    #: Emptied at every engine start: nothing in it outlives an operation.
    tmp: Path

    def new_tempdir(self) -> Path:
        return Path(tempfile.mkdtemp(dir=self.tmp))
