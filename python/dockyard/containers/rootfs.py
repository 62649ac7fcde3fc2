"""A container's filesystem as the storage driver has it: mounted for the
duration of an operation, its changes against the image (`docker diff`) and
all of it as a tar (`docker export`)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from .. import _core
from .records import ContainerRecords


def changes(svc: ContainerRecords, ref: str) -> list[dict[str, Any]]:
    c = svc.get(ref)
    out = svc.driver.changes(c.id, f"{c.id}-init")
    return sorted(({"Path": x["Path"], "Kind": x["Kind"]} for x in out),
                  key=lambda x: x["Path"])


@contextmanager
def mounted(svc: ContainerRecords, cid: str) -> Iterator[str]:
    root = svc.driver.get(cid)
    try:
        yield root
    finally:
        try:
            svc.driver.put(cid)
        except Exception:  # noqa: BLE001
            pass


def export(svc: ContainerRecords, ref: str, fd: int) -> None:
    """The whole filesystem of the container as a tar, written to `fd`."""
    c = svc.get(ref)
    with mounted(svc, c.id) as root:
        _core.create_layer(root, fd, "none", id_map=svc.driver.id_ranges)
