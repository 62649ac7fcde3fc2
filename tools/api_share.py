#!/usr/bin/env python3
"""Where a container's lifecycle spends its time: the four calls of
`bench/api.py` (create, start, wait, delete of `busybox true`) on
`dockyard.Engine` in-process, on the root disk, each engine call's time split
between the Rust core's calls (the kernel's work: namespaces, veths, mounts,
cgroups, the shim's start, process waits), the filesystem calls made from
Python (`os.*`, `open`), SQLite (its statements and commits, the disk syncs
included), and the rest (Python itself: JSON, objects, locks). Only the
calling thread's time is split: work the engine left to other threads (the
removal of a container's files) is not on the calls' path. A tool run by
hand, not a benchmark of record.

    python3 tools/api_share.py [--runs 40] [--no-bridge]

Runs in a network namespace of its own (the default bridge and its rules
exist only there). The timing wrappers add about a microsecond per wrapped
call (a few hundred per lifecycle) to the share they time.
"""

from __future__ import annotations

import argparse
import builtins
import io
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from common import in_own_netns, median  # noqa: E402
from containers import busybox_tar  # noqa: E402

INSIDE = "DY_API_SHARE_INSIDE"
#: os functions that are one system call (or a few) each
OS_CALLS = ("mkdir", "rmdir", "unlink", "rename", "replace", "stat", "lstat", "open",
            "close", "read", "write", "pwrite", "truncate", "ftruncate", "fsync", "chmod",
            "chown", "symlink", "readlink", "listdir", "scandir", "statvfs", "makedirs",
            "utime", "link", "access", "fstat", "kill", "waitpid")

spent: dict[str, float] = defaultdict(float)
MAIN = threading.get_ident()
_depth = [0]  # a timed call inside another (os.makedirs' os.mkdir) counts once


def timed(key: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*a: Any, **kw: Any) -> Any:
        if _depth[0] or threading.get_ident() != MAIN:  # the calls' own thread only
            return fn(*a, **kw)
        _depth[0] += 1
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            spent[key] += time.perf_counter() - t
            _depth[0] -= 1
    return call


class Proxy:
    """A core object (a Job, a ShimStart) whose methods are timed."""

    def __init__(self, name: str, obj: Any) -> None:
        self._name, self._obj = name, obj

    def __getattr__(self, attr: str) -> Any:
        v = getattr(self._obj, attr)
        return timed(f"core {self._name}.{attr}", v) if callable(v) else v


class TimedConnection:
    """The database's connection, its statements timed."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def __getattr__(self, attr: str) -> Any:
        v = getattr(self._conn, attr)
        return timed("sqlite", v) if attr in ("execute", "executescript", "executemany") else v


def instrument(eng: Any) -> None:
    from dockyard import _core
    for name in dir(_core):
        fn = getattr(_core, name)
        if name.startswith("_") or not callable(fn) or isinstance(fn, type):
            continue

        def wrap(*a: Any, _fn: Callable[..., Any] = timed(f"core {name}", fn), _n: str = name,
                 **kw: Any) -> Any:
            r = _fn(*a, **kw)
            return Proxy(_n, r) if type(r).__module__ == "dockyard._core" else r
        setattr(_core, name, wrap)
    for name in OS_CALLS:
        if hasattr(os, name):
            setattr(os, name, timed(f"fs {name}", getattr(os, name)))
    builtins.open = io.open = timed("fs open()", builtins.open)  # pathlib's is io's
    eng.db._conn = TimedConnection(eng.db._conn)


def inside(runs: int, bridge: bool) -> None:
    from dockyard import Engine
    from dockyard.network.service import NetworkOptions

    work = Path(tempfile.mkdtemp(prefix="dy-api-share-"))
    base = Path(tempfile.mkdtemp(prefix="dy-api-share-", dir="/var/tmp"))
    opts = NetworkOptions() if bridge else NetworkOptions(bridge="none", iptables=False)
    eng = Engine(base / "root", "overlay", exec_root=base / "exec", network_options=opts)
    calls: dict[str, list[dict[str, float]]] = defaultdict(list)
    try:
        eng.import_image(str(busybox_tar(work)), repo="busybox")
        instrument(eng)
        c = eng.containers
        for i in range(runs + 5):
            made: dict[str, Any] = {}
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("create", lambda: made.update(x=c.create({"Image": "busybox", "Cmd": ["true"]},
                                                          {}))),
                ("start", lambda: c.start(made["x"].id)),
                ("wait", lambda: c.wait_exit(made["x"].id)),
                ("delete", lambda: c.remove(made["x"].id))]
            for name, step in steps:
                spent.clear()
                t = time.perf_counter()
                step()
                total = time.perf_counter() - t
                if i >= 5:
                    calls[name].append(dict(spent, total=total))
    finally:
        eng.close()
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
    report(calls, runs, bridge)


def report(calls: dict[str, list[dict[str, float]]], runs: int, bridge: bool) -> None:
    where = "the default bridge" if bridge else "loopback only"
    print(f"dockyard.Engine in-process, root disk, {where}: medians of {runs}, ms")
    cols = ("total", "core", "fs", "sqlite", "python")
    print(f"{'':10}" + "".join(f"{k:>8}" for k in cols))
    sums: dict[str, float] = defaultdict(float)
    parts: dict[str, float] = defaultdict(float)  # each core and fs call's mean
    for name, rows in calls.items():
        core = [sum(v for k, v in r.items() if k.startswith("core ")) for r in rows]
        fs = [sum(v for k, v in r.items() if k.startswith("fs ")) for r in rows]
        share = {"total": median([r["total"] for r in rows]), "core": median(core),
                 "fs": median(fs), "sqlite": median([r.get("sqlite", 0.0) for r in rows])}
        share["python"] = median([r["total"] - c - f - r.get("sqlite", 0.0)
                                  for r, c, f in zip(rows, core, fs)])
        for k, v in share.items():
            sums[k] += v
        for r in rows:
            for k, v in r.items():
                if k.startswith(("core ", "fs ")):
                    parts[f"{name}: {k}"] += v / len(rows)
        print(f"{name:10}" + "".join(f"{share[k] * 1000:8.2f}" for k in cols))
    print(f"{'sum':10}" + "".join(f"{sums[k] * 1000:8.2f}" for k in cols))
    print("the core's calls and the filesystem's, mean ms per lifecycle:")
    for k, v in sorted(parts.items(), key=lambda kv: -kv[1]):
        if v >= 0.02e-3:
            print(f"  {v * 1000:6.2f}  {k}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--no-bridge", action="store_true", help="loopback only")
    if os.environ.get(INSIDE):  # run again in the namespace, the arguments in the environment
        a = ap.parse_args(os.environ.get(INSIDE + "_ARGS", "").split())
        inside(a.runs, not a.no_bridge)
        return
    ap.parse_args()
    os.environ[INSIDE + "_ARGS"] = " ".join(sys.argv[1:])
    in_own_netns(__file__, lambda: None, INSIDE, "dy-api-share")


if __name__ == "__main__":
    main()
