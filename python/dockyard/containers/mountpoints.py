"""A container's mount points (dockerd's registerMountPoints): its
`--volumes-from`, Binds (`-v`), Mounts (`--mount`) and the image's VOLUMEs,
resolved once at create, in dockerd's order (VolumesFrom, then Binds, then
Mounts; an image volume only where nothing else is mounted), with the volumes
they name created and referenced and new empty volumes filled from the image
(copy-up). The records are kept in the container's state (`MountPoints`);
`runtime_mounts` turns them into the runtime's mounts at each start and
`api_view` into the `Mounts` that inspect and list show.
"""

from __future__ import annotations

import dataclasses
import os
import stat
from typing import Any, Callable

from .. import _core
from ..errors import InvalidParameter
from ..volumes.mounts import (MountPoint, check_duplicates, parse_bind, parse_mount,
                              parse_volumes_from, tmpfs_options)
from ..volumes.service import VolumeService
from .model import Container


def register(c: Container, volumes: VolumeService,
             get_container: Callable[[str], Container]) -> list[dict[str, Any]]:
    """Resolve and create what `c` mounts; returns the records to keep."""
    hc, cfg = c.hostconfig, c.config
    points: dict[str, MountPoint] = {}
    for raw in hc.get("VolumesFrom") or []:
        name, mode = parse_volumes_from(raw)
        other = get_container(name)
        for d in other.state.get("MountPoints") or []:
            mp = MountPoint(**d)
            if mp.type == "tmpfs":
                continue
            points[mp.destination] = dataclasses.replace(
                mp, rw=mp.rw and mode != "ro", nocopy=True,
                mode=mp.mode if mode == "" else mode)
    explicit = [parse_bind(b, hc.get("VolumeDriver") or "") for b in hc.get("Binds") or []]
    mounts = [parse_mount(m) for m in hc.get("Mounts") or []]
    if mounts:
        hc["Mounts"] = [mp.spec for mp in mounts]  # as dockerd stores and shows them
    explicit += mounts
    check_duplicates(explicit, (hc.get("Tmpfs") or {}).keys())
    for mp in explicit:
        points[mp.destination] = mp
    for dest in (cfg.get("Volumes") or {}):
        dest = os.path.normpath("/" + dest.lstrip("/"))  # (not "//x": POSIX keeps that)
        if dest not in points:
            points[dest] = MountPoint(type="volume", source="", destination=dest, rw=True,
                                      mode="", propagation="", nocopy=False)
    for dest, mp in points.items():
        if mp.type != "volume":
            continue
        if not mp.source:
            mp.source = volumes.create(None, mp.volume_driver, mp.volume_driver_opts,
                                       mp.volume_labels, anonymous=True)["Name"]
        elif not volumes.exists(mp.source):
            volumes.create(mp.source, mp.volume_driver, mp.volume_driver_opts,
                           mp.volume_labels)
        volumes.add_ref(mp.source, c.id)
    return [dataclasses.asdict(mp) for mp in points.values()]


def copy_up(records: list[dict[str, Any]], rootfs: str, volumes: VolumeService) -> None:
    """Fill each new, empty volume from the image's content at its path
    (never a bind, never with nocopy, never a volume that holds anything)."""
    for d in records:
        if d["type"] != "volume" or d["nocopy"]:
            continue
        r = _core.copy_up(rootfs, d["destination"], str(volumes.path(d["source"])))
        if r == "file":
            raise InvalidParameter(f"cannot mount volume over existing file, file exists "
                                   f"{rootfs.rstrip('/')}{d['destination']}")


def _interrupted(volumes: VolumeService, name: str) -> bool:
    """A copy-up a crash cut short leaves its marker beside `_data`."""
    return (volumes.path(name).parent / ".copyup-incomplete").exists()


def needs_copy_up(records: list[dict[str, Any]], volumes: VolumeService,
                  layer_dirs: list[str]) -> bool:
    """Whether mounting the rootfs for a copy-up is worth it: some new empty
    volume sits where the image may have something (`layer_dirs`: the image's
    layer trees, uppermost first). Mounting and unmounting a read-write
    overlay costs milliseconds (its upper filesystem is synced at unmount)."""
    return any(d["type"] == "volume" and not d["nocopy"] and (
        _interrupted(volumes, d["source"]) or (
            not any(volumes.path(d["source"]).iterdir()) and
            _image_may_have(layer_dirs, d["destination"])))
        for d in records)


def _image_may_have(layer_dirs: list[str], dest: str) -> bool:
    """False only when no layer has `dest` nor a symlink or file on its way
    (then copy-up has nothing to copy); anything else goes to copy_up, which
    resolves it exactly in the mounted rootfs."""
    parts = [p for p in dest.split("/") if p]
    for d in layer_dirs:
        p = d
        for i, part in enumerate(parts):
            p = os.path.join(p, part)
            try:
                st = os.lstat(p)
            except OSError:
                break
            if i == len(parts) - 1 or not stat.S_ISDIR(st.st_mode):
                return True
    return False


def finish_interrupted(records: list[dict[str, Any]], rootfs: str,
                       volumes: VolumeService) -> None:
    """Before a start: a copy-up a crash interrupted is done again (copy_up
    empties the volume and copies anew when it finds the marker)."""
    todo = [d for d in records if d["type"] == "volume" and not d["nocopy"] and
            _interrupted(volumes, d["source"])]
    if todo:
        copy_up(todo, rootfs, volumes)


def runtime_mounts(records: list[dict[str, Any]], volumes: VolumeService,
                   acquired: list[str]) -> list[dict[str, Any]]:
    """The runtime's mounts for a start; the volumes acquired are appended to
    `acquired` so the caller can release them when the container stops."""
    out = []
    for d in records:
        mp = MountPoint(**d)
        if mp.type == "tmpfs":
            out.append({"destination": mp.destination, "type": "tmpfs", "source": "tmpfs",
                        "options": tmpfs_options(mp)})
            continue
        if mp.type == "bind":
            src = mp.source
            if not os.path.exists(src):
                if not mp.create_source:
                    raise InvalidParameter(f"invalid mount config for type \"bind\": bind source "
                                           f"path does not exist: {src}")
                os.makedirs(src, exist_ok=True)  # as dockerd does for -v
        else:
            src = volumes.acquire(mp.source)
            acquired.append(mp.source)
        opts = ["bind" if mp.bind_nonrecursive else "rbind", "rw" if mp.rw else "ro",
                mp.propagation or "rprivate"]
        out.append({"destination": mp.destination, "type": "bind", "source": src,
                    "options": opts})
    return out


def api_view(records: list[dict[str, Any]], volumes: VolumeService) -> list[dict[str, Any]]:
    """`Mounts` as dockerd shows them (`--tmpfs` ones are not listed)."""
    out = []
    for d in records:
        if d["type"] == "bind":
            out.append({"Type": "bind", "Source": d["source"], "Destination": d["destination"],
                        "Mode": d["mode"], "RW": d["rw"],
                        "Propagation": d["propagation"] or "rprivate"})
        elif d["type"] == "volume":
            mode = d["mode"]  # "z" for a local volume given no mode (setBindModeIfNull)
            out.append({"Type": "volume", "Name": d["source"],
                        "Source": str(volumes.path(d["source"])),
                        "Destination": d["destination"], "Driver": d["volume_driver"],
                        "Mode": mode, "RW": d["rw"], "Propagation": ""})
        else:
            out.append({"Type": "tmpfs", "Source": "", "Destination": d["destination"],
                        "Mode": "", "RW": d["rw"], "Propagation": ""})
    return out
