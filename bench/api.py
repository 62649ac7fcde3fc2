"""The API path alone, side by side: create, start, wait and delete of a
`busybox true` container from a small client on one keep-alive connection
(no CLI), against Dockyard's daemon and dockerd, each on the root disk and on
a fresh ext4 (BENCH_DISKS), with loopback only (`--bridge none`), then on the
root disk with each engine's default bridge and its packet rules (BENCH_BRIDGE=0
skips it). Also the same four calls on `dockyard.Engine` in-process: the
difference is the daemon's HTTP path. Medians of BENCH_RUNS (default 40)
after 5 unmeasured, per call and in total.

Everything runs in a network namespace the bench makes for itself: the
bridges and rules exist only there.

    python3 bench/api.py
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from common import drop_fs, fresh_fs, in_own_netns, median, save, table
from containers import Engine, busybox_tar

RUNS = int(os.environ.get("BENCH_RUNS", "40"))
DISKS = os.environ.get("BENCH_DISKS", "root,fresh").split(",")
BRIDGE = os.environ.get("BENCH_BRIDGE", "1") != "0"
INSIDE = "DY_BENCH_API_NETNS"
CALLS = ("create", "start", "wait", "delete")


class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost")
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.unix_path)
        self.sock = s


def call(c: UnixHTTP, method: str, url: str, body: dict | None = None) -> bytes:
    headers = {"Content-Type": "application/json"} if body is not None else {}
    c.request(method, url, body=json.dumps(body) if body is not None else None, headers=headers)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{method} {url}: {r.status} {data[:200]!r}")
    return data


def lifecycle(c: UnixHTTP, into: dict[str, list[float]] | None) -> None:
    """One container's create, start, wait and delete; the time of each
    call (and "total") appended to `into`'s lists unless it is None."""
    t = [time.perf_counter()]
    cid = json.loads(call(c, "POST", "/v1.41/containers/create",
                          {"Image": "busybox", "Cmd": ["true"]}))["Id"]
    t.append(time.perf_counter())
    call(c, "POST", f"/v1.41/containers/{cid}/start")
    t.append(time.perf_counter())
    call(c, "POST", f"/v1.41/containers/{cid}/wait")
    t.append(time.perf_counter())
    call(c, "DELETE", f"/v1.41/containers/{cid}")
    t.append(time.perf_counter())
    if into is not None:
        for k, a, b in zip(CALLS, t, t[1:]):
            into[k].append(b - a)
        into["total"].append(t[-1] - t[0])


def over_api(sock: str) -> dict[str, float]:
    c = UnixHTTP(sock)
    times: dict[str, list[float]] = {k: [] for k in ("total", *CALLS)}
    for i in range(RUNS + 5):
        lifecycle(c, times if i >= 5 else None)
    c.close()
    return {k: median(v) for k, v in times.items()}


def in_process(work: Path, disk: str) -> float:
    from dockyard import Engine as PyEngine
    from dockyard.network.service import NetworkOptions

    base = (fresh_fs("dy-bench-api-") if disk == "fresh"
            else Path(tempfile.mkdtemp(prefix="dy-bench-api-", dir="/var/tmp")))
    eng = PyEngine(base / "root", "overlay", exec_root=base / "exec",
                   network_options=NetworkOptions(bridge="none", iptables=False))
    try:
        eng.import_image(str(busybox_tar(work)), repo="busybox")
        c = eng.containers
        times = []
        for i in range(RUNS + 5):
            t = time.perf_counter()
            x = c.create({"Image": "busybox", "Cmd": ["true"]}, {})
            c.start(x.id)
            c.wait_exit(x.id)
            c.remove(x.id)
            if i >= 5:
                times.append(time.perf_counter() - t)
        return median(times)
    finally:
        eng.close()
        drop_fs(base)


def inside() -> None:
    work = Path(tempfile.mkdtemp(prefix="dy-bench-api-"))
    res: dict[str, dict] = {}
    runs = [(disk, False) for disk in DISKS] + ([("root", True)] if BRIDGE else [])
    try:
        for disk, bridges in runs:
            by = res.setdefault(disk + ("_bridge" if bridges else ""), {})
            for kind in ("dockyard", "dockerd"):
                if kind == "dockerd" and not shutil.which("dockerd"):
                    continue
                e = Engine(kind, work, disk=disk, bridges=bridges)
                try:
                    by[kind] = over_api(str(e.sock))
                finally:
                    e.close()
            if not bridges:
                by["in_process"] = in_process(work, disk)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for key, by in res.items():
        d, r = by["dockyard"], by.get("dockerd", {})
        where = ("the root disk" if key.startswith("root") else "a fresh ext4") + (
            ", each engine's default bridge" if key.endswith("_bridge") else ", loopback only")
        extra = [("the same on dockyard.Engine, in-process", by["in_process"],
                  d["total"], "the same over the API")] if "in_process" in by else []
        table(f"API alone, one keep-alive connection, median of {RUNS}, on {where}",
              [(f"POST /containers/{k}" if k != "delete" else "DELETE /containers/{id}",
                d[k], r.get(k, 0.0), "dockerd") for k in CALLS]
              + [("create+start+wait+delete", d["total"], r.get("total", 0.0), "dockerd")]
              + extra)
    save("api", res)  # type: ignore[arg-type]


def main() -> None:
    """Run the bench in a network namespace of its own, then delete it."""
    in_own_netns(__file__, inside, INSIDE, "dy-bench-api")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
