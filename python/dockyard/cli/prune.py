"""The prune commands' shared work (docker's RunPrune functions): each asks
the daemon to prune one kind of object and returns the space reclaimed and
the report to print, so that `system prune` prints exactly what the single
commands do, one after another."""

from __future__ import annotations

import json
import sys

from .common import call, client
from .opts import filters_param


def confirm(message: str) -> bool:
    """docker's PromptForConfirmation: `<message> [y/N] `, yes on y/Y."""
    sys.stdout.write(f"{message} [y/N] ")
    sys.stdout.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _listing(title: str, names: list[str]) -> str:
    return f"{title}:\n" + "".join(n + "\n" for n in names) if names else ""


def containers(filters: list[str] | None) -> tuple[int, str]:
    r = call(lambda: client().post_json("/containers/prune", {"filters": filters_param(filters)}))
    return r.get("SpaceReclaimed") or 0, _listing("Deleted Containers", r.get("ContainersDeleted") or [])


def networks(filters: list[str] | None) -> tuple[int, str]:
    r = call(lambda: client().post_json("/networks/prune", {"filters": filters_param(filters)}))
    return 0, _listing("Deleted Networks", r.get("NetworksDeleted") or [])


def volumes(filters: list[str] | None) -> tuple[int, str]:
    r = call(lambda: client().post_json("/volumes/prune", {"filters": filters_param(filters)}))
    return r.get("SpaceReclaimed") or 0, _listing("Deleted Volumes", r.get("VolumesDeleted") or [])


def images(all: bool, filters: list[str] | None) -> tuple[int, str]:
    f = json.loads(filters_param(filters) or "{}")
    if all:
        f["dangling"] = {"false": True}
    r = call(lambda: client().post_json("/images/prune",
                                        {"filters": json.dumps(f) if f else None}))
    lines = [f"untagged: {d['Untagged']}" if d.get("Untagged") else f"deleted: {d.get('Deleted', '')}"
             for d in r.get("ImagesDeleted") or []]
    return r.get("SpaceReclaimed") or 0, _listing("Deleted Images", lines)


def build_cache(all: bool, filters: list[str] | None) -> tuple[int, str]:
    params = {"filters": filters_param(filters), "all": "1" if all else None}
    r = call(lambda: client().post_json("/build/prune", params))
    return (r.get("SpaceReclaimed") or 0,
            _listing("Deleted build cache objects", r.get("CachesDeleted") or []))


def report(space: int, output: str) -> None:
    """A single prune command's ending: its report, then the space."""
    from ..units import human_size

    if output:
        print(output)
    print(f"Total reclaimed space: {human_size(space)}")
