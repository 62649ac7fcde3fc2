"""Soak, side by side with dockerd: N clients in parallel, each in a loop
creating a container on a user-defined bridge network with a named volume,
starting it, exec-ing in it, reading its logs, stopping and removing it (raw
HTTP on the engine's unix socket, the same requests for both engines), for a
fixed time per engine. Prints throughput, p50/p99 latency per operation, the
failures (a 5xx, an unexpected status, a timeout), and the daemon's RSS and
open files before and after (dockerd's figures are dockerd's own process;
containerd and its shims come on top).

Both engines run with their default bridge in a network namespace the bench
makes for itself (as network.py does). Knobs: BENCH_SOAK_SECONDS (60 per
engine), BENCH_SOAK_CLIENTS (8).
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import in_own_netns, save, table

SECONDS = float(os.environ.get("BENCH_SOAK_SECONDS", "60"))
CLIENTS = int(os.environ.get("BENCH_SOAK_CLIENTS", "8"))
INSIDE = "DY_BENCH_SOAK_NETNS"
OPS = ["create", "start", "exec_create", "exec_start", "exec_inspect", "logs", "stop", "rm"]


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


class Load:
    def __init__(self, sock: str) -> None:
        self.sock = sock
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {op: [] for op in OPS}
        self.failures: list[str] = []
        self.cycles = 0

    def do(self, op: str, method: str, path: str, body: Any = None, want: int = 200
           ) -> bytes | None:
        t = time.perf_counter()
        c = _Unix(self.sock)
        try:
            data = json.dumps(body).encode() if body is not None else None
            c.request(method, path, body=data,
                      headers={"Content-Type": "application/json"} if data else {})
            r = c.getresponse()
            st, out = r.status, r.read()
        except OSError as e:
            with self.lock:
                self.failures.append(f"{op}: {e!r}")
            return None
        finally:
            c.close()
        with self.lock:
            self.times[op].append(time.perf_counter() - t)
            if st != want:
                self.failures.append(f"{op}: {st} {out[:200]!r}")
                return None
        return out

    def cycle(self) -> None:
        body = self.do("create", "POST", "/containers/create", {
            "Image": "busybox",
            "Cmd": ["sh", "-c", "trap 'exit 0' TERM; echo hello; sleep 600 & wait"],
            "HostConfig": {"NetworkMode": "soaknet", "Binds": ["soakvol:/data"]}}, 201)
        if body is None:
            return
        cid = json.loads(body)["Id"]
        try:
            if self.do("start", "POST", f"/containers/{cid}/start", want=204) is None:
                return
            body = self.do("exec_create", "POST", f"/containers/{cid}/exec", {
                "Cmd": ["sh", "-c", f"echo {cid[:12]} > /data/{cid[:12]}; cat /data/{cid[:12]}"],
                "AttachStdout": True, "AttachStderr": True}, 201)
            if body is not None:
                eid = json.loads(body)["Id"]
                self.do("exec_start", "POST", f"/exec/{eid}/start", {"Detach": False})
                self.do("exec_inspect", "GET", f"/exec/{eid}/json")
            self.do("logs", "GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
            self.do("stop", "POST", f"/containers/{cid}/stop?t=5", want=204)
        finally:
            self.do("rm", "DELETE", f"/containers/{cid}?force=1", want=204)
            with self.lock:
                self.cycles += 1

    def run(self, seconds: float, clients: int) -> float:
        end = time.monotonic() + seconds

        def client() -> None:
            while time.monotonic() < end:
                self.cycle()

        t = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(clients)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return time.perf_counter() - t


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def proc_figures(pid: int) -> dict[str, float]:
    rss = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return {"rss_mib": rss / 1024, "fds": len(os.listdir(f"/proc/{pid}/fd"))}


def settled_fds(pid: int, limit: int, deadline: float = 20) -> None:
    end = time.monotonic() + deadline
    while len(os.listdir(f"/proc/{pid}/fd")) > limit and time.monotonic() < end:
        time.sleep(0.2)


def one_engine(kind: str, work: Path) -> dict[str, Any]:
    from containers import Engine

    e = Engine(kind, work, bridges=True)
    try:
        sock = str(e.sock)
        e.docker("network", "create", "soaknet")
        e.docker("volume", "create", "soakvol")
        warm = Load(sock)
        warm.cycle()  # caches, pools, lazy imports
        pid = e.proc.pid
        before = proc_figures(pid)
        before["engine_rss_mib"] = e.rss_mib()
        load = Load(sock)
        wall = load.run(SECONDS, CLIENTS)
        settled_fds(pid, int(before["fds"]) + 2)
        after = proc_figures(pid)
        after["engine_rss_mib"] = e.rss_mib()
        left = e.docker("ps", "-aq").stdout.split()
        n_ops = sum(len(v) for v in load.times.values())
        return {"wall_s": wall, "cycles": load.cycles, "ops": n_ops,
                "ops_per_s": n_ops / wall, "cycles_per_s": load.cycles / wall,
                "p50": {k: pct(v, 50) for k, v in load.times.items()},
                "p99": {k: pct(v, 99) for k, v in load.times.items()},
                "failures": load.failures[:20], "n_failures": len(load.failures),
                "containers_left": len(left), "before": before, "after": after}
    finally:
        e.close()


def inside() -> None:
    from containers import busybox_tar

    work = Path(tempfile.mkdtemp(prefix="dy-bench-soak-"))
    busybox_tar(work)
    res: dict[str, Any] = {"seconds": SECONDS, "clients": CLIENTS}
    try:
        for kind in ("dockyard", "dockerd"):
            if kind == "dockerd" and not shutil.which("dockerd"):
                continue
            res[kind] = one_engine(kind, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    d, r = res["dockyard"], res.get("dockerd", {})
    print(f"\nSoak: {CLIENTS} clients, {SECONDS:.0f} s per engine, each cycle create/start/"
          "exec(create,start,inspect)/logs/stop/rm on a user network with a named volume")
    print(f"{'':44} {'dockyard':>10} {'reference':>10} {'ratio':>7}")
    for what, key in (("cycles/s", "cycles_per_s"), ("operations/s", "ops_per_s")):
        ours, ref = d[key], r.get(key, 0.0)
        print(f"{what:44} {ours:10.2f} {ref:10.2f} {ours / ref if ref else float('nan'):6.2f}x")
    for what in ("p50", "p99"):
        table(f"{what} latency per operation, seconds (ratio: dockerd / dockyard)",
              [(op, d[what][op], r.get(what, {}).get(op, 0.0), "dockerd 20.10") for op in OPS])
    print(f"\n{'':44} {'dockyard':>10} {'reference':>10}")
    for what, key in (("failures", "n_failures"), ("containers left", "containers_left")):
        print(f"{what:44} {d[key]:10d} {r.get(key, 0):10d}")
    for when in ("before", "after"):
        for what, key in (("daemon RSS MiB", "rss_mib"), ("daemon open fds", "fds"),
                          ("engine RSS MiB (with shims)", "engine_rss_mib")):
            print(f"{what + ', ' + when:44} {d[when][key]:10.0f} "
                  f"{r.get(when, {}).get(key, 0):10.0f}")
    for kind in ("dockyard", "dockerd"):
        for f in res.get(kind, {}).get("failures", [])[:5]:
            print(f"{kind} failure: {f}")
    save("soak", res)


def main() -> None:
    """Run the bench in a network namespace of its own, then delete it."""
    in_own_netns(__file__, inside, INSIDE, "dy-soak")

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
