#!/usr/bin/env python3
"""Two Dockyard trees side by side on the API path of `bench/api.py`
(create, start, wait, delete of `busybox true` on one keep-alive
connection): each tree's daemon on the root disk, in a network namespace of
its own (its default bridge and rules exist only there; or loopback only,
`--no-bridge`), lifecycles alternating between the two, so that both see
the same machine and the same disk. A change smaller than the run-to-run
noise of the whole bench shows here. A tool run by hand, not a benchmark of
record (that is `bench/api.py`, against dockerd).

    python3 tools/api_ab.py base=/tmp/base/python new=python [--runs 40] [--rounds 3]

Each PYDIR is a tree's `python/` directory with its Rust core and shim
in place (see tools/cri_ab.py for making one from a commit).

Prints, per round, each tree's medians (ms) of the lifecycle and its four
calls, and the second tree's difference to the first.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from api import CALLS, UnixHTTP, call, lifecycle  # noqa: E402
from common import median  # noqa: E402
from containers import busybox_tar  # noqa: E402


class Tree:
    """A daemon run from `pydir`, its roots in a directory on the root disk."""

    def __init__(self, name: str, pydir: Path, work: Path, bridge: bool) -> None:
        self.name = name
        self.base = Path(tempfile.mkdtemp(prefix=f"dy-api-ab-{name}-", dir="/var/tmp"))
        self.sock = self.base / "s.sock"
        self.ns = f"dy-api-ab-{secrets.token_hex(3)}"
        self.proc: subprocess.Popen | None = None
        subprocess.run(["ip", "netns", "add", self.ns], check=True)
        try:
            self._launch(pydir, work, bridge)
        except BaseException:
            self.close()
            raise
        self.conn = UnixHTTP(str(self.sock))
        self.times: dict[str, list[float]] = {k: [] for k in ("total", *CALLS)}

    def _launch(self, pydir: Path, work: Path, bridge: bool) -> None:
        subprocess.run(["ip", "-n", self.ns, "link", "set", "lo", "up"], check=True)
        net = () if bridge else ("--bridge", "none", "--iptables=false")
        env = dict(os.environ, PYTHONPATH=str(pydir))
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.ns}",
             sys.executable, "-m", "dockyard", "daemon", "-H", f"unix://{self.sock}",
             "-g", str(self.base / "root"), "-p", str(self.base / "pid"),
             "--exec-root", str(self.base / "exec"), "-s", "overlay", *net],
            env=env, stdout=open(self.base / "log", "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        for _ in range(600):
            if self.sock.exists():
                try:
                    call(UnixHTTP(str(self.sock)), "GET", "/_ping")
                    break
                except (OSError, SystemExit):
                    pass
            time.sleep(0.1)
        tar = busybox_tar(work)
        c = UnixHTTP(str(self.sock))
        c.request("POST", "/v1.41/images/create?fromSrc=-&repo=busybox&tag=latest",
                  body=tar.read_bytes(), headers={"Content-Type": "application/x-tar"})
        c.getresponse().read()

    def lifecycle(self, keep: bool) -> None:
        lifecycle(self.conn, self.times if keep else None)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        subprocess.run(["ip", "netns", "del", self.ns], check=False)
        shutil.rmtree(self.base, ignore_errors=True)


def run(a: argparse.Namespace) -> None:
    trees = [(n, Path(p).resolve()) for n, _, p in (t.partition("=") for t in a.trees)]
    work = Path(tempfile.mkdtemp(prefix="dy-api-ab-"))
    running: list[Tree] = []
    try:
        for n, p in trees:
            running.append(Tree(n, p, work, not a.no_bridge))
        for r in range(a.rounds):
            for t in running:
                t.times = {k: [] for k in t.times}
            for i in range(a.runs + 5):
                for t in running if i % 2 else reversed(running):
                    t.lifecycle(keep=i >= 5)
            med = [{k: median(v) * 1000 for k, v in t.times.items()} for t in running]
            print(f"round {r + 1}: " + "  ".join(
                f"{t.name} " + " ".join(f"{k} {m[k]:.2f}" for k in m) for t, m in zip(running, med)))
            print(f"  {running[1].name} - {running[0].name}: " + " ".join(
                f"{k} {med[1][k] - med[0][k]:+.2f}" for k in med[0]), flush=True)
    finally:
        for t in running:
            t.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs=2, metavar="NAME=PYDIR")
    ap.add_argument("--runs", type=int, default=40, help="lifecycles per tree and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-bridge", action="store_true", help="loopback only")
    run(ap.parse_args())


if __name__ == "__main__":
    main()
