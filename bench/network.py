"""Container networking, side by side with dockerd on its default bridge:

- network setup per container in-process (namespace, veth, address, routes;
  then with one published port: its rules and reservation), Dockyard only;
- `docker run --rm busybox true` on the default bridge, and with `-p`;
- 100 containers each publishing a port: time, and the memory the engine
  holds meanwhile (dockerd's docker-proxy is a process per port).

Everything runs in a network namespace the bench makes for itself (both
engines' bridges and rules exist only there), and traffic stays in it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import in_own_netns, median, save, table, timeit

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
N_PORTS = int(os.environ.get("BENCH_PORTS", "100"))
INSIDE = "DY_BENCH_NETNS"


def setup_cost(runs: int = 40) -> dict[str, float]:
    """NetworkService.setup + teardown for one container, no engine around it."""
    from dockyard.network.service import NetworkOptions, NetworkService
    from dockyard.events import EventLog
    from dockyard.store.db import Database

    base = Path(tempfile.mkdtemp(prefix="dy-bench-net-"))
    svc = NetworkService(Database(base / "db"), EventLog(), base / "exec", NetworkOptions())
    out: dict[str, float] = {}
    try:
        for label, hc, cfg in (
                ("setup_no_ports", {}, {}),
                ("setup_one_port", {"PortBindings": {"80/tcp": [{"HostPort": "18080"}]}},
                 {"ExposedPorts": {"80/tcp": {}}})):
            times = []
            for i in range(runs + 2):
                cid = secrets.token_hex(32)
                cdir = base / cid
                cdir.mkdir()
                svc.container_created(cid, hc, None)
                t = time.perf_counter()
                svc.setup(cid, f"/b{i}", cfg, hc, cdir)
                times.append(time.perf_counter() - t)
                svc.container_removed(cid)
                shutil.rmtree(cdir)
            out[label] = median(times[2:])
    finally:
        svc.close()
        shutil.rmtree(base, ignore_errors=True)
    return out


def many_ports(e, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    ids = [e.docker("run", "-d", "-p", f"{20000 + i}:80", "busybox", "sleep", "600"
                    ).stdout.decode().strip() for i in range(n)]
    t1 = time.perf_counter()
    rss = e.rss_mib()
    e.docker("rm", "-f", *ids)
    t2 = time.perf_counter()
    return {"start_s": t1 - t0, "rm_s": t2 - t1, "rss_mib": rss}


def inside() -> None:
    from containers import Engine, busybox_tar

    work = Path(tempfile.mkdtemp(prefix="dy-bench-netw-"))
    res: dict[str, object] = {"setup": setup_cost()}
    for kind in ("dockyard", "dockerd"):
        if kind == "dockerd" and not shutil.which("dockerd"):
            continue
        e = Engine(kind, work, bridges=True)
        try:
            busybox_tar(work)
            res[f"run_{kind}"] = median(timeit(
                lambda: e.docker("run", "--rm", "busybox", "true"), RUNS, 2))
            res[f"run_p_{kind}"] = median(timeit(
                lambda: e.docker("run", "--rm", "-p", "18080:80", "busybox", "true"), RUNS, 2))
            res[f"ports_{kind}"] = many_ports(e, N_PORTS)
        finally:
            e.close()
    shutil.rmtree(work, ignore_errors=True)
    s = res["setup"]
    print(f"\nnetwork setup per container, in-process, median of 40: "
          f"{s['setup_no_ports'] * 1000:.2f} ms without ports, "  # type: ignore[index]
          f"{s['setup_one_port'] * 1000:.2f} ms with one published port")  # type: ignore[index]
    table(f"docker run on the default bridge, docker CLI, median of {RUNS}", [
        ("run --rm busybox true", res["run_dockyard"], res.get("run_dockerd", 0.0),
         "dockerd 20.10, its bridge"),  # type: ignore[list-item]
        ("run --rm -p 18080:80 busybox true", res["run_p_dockyard"],
         res.get("run_p_dockerd", 0.0), "dockerd 20.10, its bridge"),  # type: ignore[list-item]
    ])
    d, r = res["ports_dockyard"], res.get("ports_dockerd", {})
    table(f"{N_PORTS} containers, each publishing a port (run -d -p)", [
        (f"start {N_PORTS}", d["start_s"], r.get("start_s", 0.0), "dockerd"),  # type: ignore
        ("rm -f all", d["rm_s"], r.get("rm_s", 0.0), "dockerd"),  # type: ignore
    ])
    print(f"RSS with {N_PORTS} running: dockyard daemon+shims {d['rss_mib']:.0f} MiB, "  # type: ignore
          f"dockerd+containerd+shims+docker-proxy {r.get('rss_mib', 0):.0f} MiB")  # type: ignore
    save("network", res)  # type: ignore[arg-type]


def main() -> None:
    """Run the bench in a network namespace of its own, then delete it."""
    in_own_netns(__file__, inside, INSIDE, "dy-bench")

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    main()
