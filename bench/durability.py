"""What the durability promise (docs/durability.md) costs: the same operations
on two Dockyard trees, one without the syncs and one with them, each daemon on
an ext4 of its own (a loop file in /var/tmp, whose flushes reach the disk).

    python3 bench/durability.py [--before /work/main/python] [--runs 5]

`--before` is the tree without the syncs (default /work/main/python), the
tree this file is in is the one with them. Runs of the two alternate; medians
are reported. Work: `docker import` of a ~54 MB layer of 1400 files (a copy of
/usr/lib/python3.*, one syncfs before its row), `docker run --rm busybox true`,
`docker create` + `rm`, `docker tag`, `volume create` + `rm`. Results: a table
on stdout and JSON in bench/results/durability.json.
"""

from __future__ import annotations

import argparse
import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import drop_fs, engine_env, fresh_fs, median, save  # noqa: E402
from containers import busybox_tar  # noqa: E402

AFTER = str(Path(__file__).resolve().parent.parent / "python")


class Engine:
    def __init__(self, name: str, pythonpath: str) -> None:
        self.name = name
        self.base = fresh_fs(f"dy-durable-{name}-", 4 << 30)
        self.sock = self.base / "s.sock"
        self.env = engine_env(self.sock, self.base)
        self.env["PYTHONPATH"] = pythonpath
        cmd = [sys.executable, "-m", "dockyard", "daemon", "-H", f"unix://{self.sock}",
               "-g", str(self.base / "root"), "-p", str(self.base / "pid"),
               "--exec-root", str(self.base / "exec"), "-s", "overlay", "--bridge", "none",
               "--iptables=false"]
        self.proc = subprocess.Popen(cmd, stdout=open(self.base / "log", "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     env=self.env)
        for _ in range(600):
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                break
            time.sleep(0.1)
        self.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar(self.base)), "busybox")

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=self.env, check=check, capture_output=True)

    def timed(self, *cmds: tuple[str, ...]) -> float:
        t = time.perf_counter()
        for c in cmds:
            self.docker(*c)
        return time.perf_counter() - t

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        drop_fs(self.base)


def layer_tar(work: Path) -> Path:
    tar = work / "layer.tar"
    src = sorted(glob.glob("/usr/lib/python3.*"))[0]
    subprocess.run(["tar", "-C", src, "--numeric-owner", "-cf", str(tar), "."], check=True)
    return tar


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="/work/main/python")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    engines = [Engine("before", args.before), Engine("after", AFTER)]
    work = engines[0].base
    tar = layer_tar(work)
    work_items = {
        "import (54 MB, 1400 files)": lambda e, i: e.timed(("import", str(tar), f"big:{i}")),
        "run --rm busybox true": lambda e, i: e.timed(("run", "--rm", "busybox", "true")),
        "create + rm": lambda e, i: e.timed(("create", "--name", f"c{i}", "busybox", "true"),
                                            ("rm", f"c{i}")),
        "tag": lambda e, i: e.timed(("tag", "busybox", f"t:{i}")),
        "volume create + rm": lambda e, i: e.timed(("volume", "create", f"v{i}"),
                                                   ("volume", "rm", f"v{i}")),
    }
    results: dict[str, dict[str, float]] = {}
    try:
        for what, fn in work_items.items():
            times: dict[str, list[float]] = {e.name: [] for e in engines}
            for i in range(args.runs + 1):
                for e in engines if i % 2 else reversed(engines):
                    t = fn(e, i)
                    if i:  # the first round warms up
                        times[e.name].append(t)
                if what.startswith("import"):
                    for e in engines:  # a new layer each time, not a known one
                        e.docker("rmi", f"big:{i}")
            results[what] = {k: median(v) for k, v in times.items()}
    finally:
        for e in engines:
            e.close()
    print(f"\n{'work':32} {'before':>10} {'after':>10} {'cost':>10}")
    for what, r in results.items():
        print(f"{what:32} {r['before']:10.4f} {r['after']:10.4f} "
              f"{(r['after'] - r['before']) * 1000:8.1f}ms")
    save("durability", {"runs": args.runs, "results": results})


if __name__ == "__main__":
    os.umask(0o022)
    main()
