#!/usr/bin/env python3
"""Two Dockyard trees side by side on the CRI pod start: each tree's daemon
in a network namespace of its own (as `bench/cri.py` runs them), CNI pods
alternating between the two, one at a time, so that both see the same
machine. A change worth less than the run-to-run noise of the whole bench
(a millisecond or two of a pod start) shows here. A tool run by hand, not a
benchmark of record (that is `bench/cri.py`, against containerd).

    python3 tools/cri_ab.py base=/tmp/base/python new=python [--runs 50] [--rounds 3]

Each PYDIR is a tree's `python/` directory with its Rust core and shim
built in place. For a commit of this repository:

    git worktree add --detach /tmp/base <commit>
    cp -a target /tmp/base/      # the dependencies need no rebuild
    (cd /tmp/base && cargo build --release -p dockyard-core &&
     cp target/release/lib_core.so python/dockyard/_core.abi3.so)

Prints, per round, each tree's medians (ms) of the pod start and its three
calls, and the second tree's difference to the first.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
import cri  # noqa: E402  (bench/cri.py: the runtimes, the pods, the medians)

PARTS = ("start", "run", "create", "start_ctr")


def tree(name: str, pydir: Path) -> type[cri.Dockyard]:
    """bench/cri.py's Dockyard runtime, its daemon run from `pydir`."""

    class Tree(cri.Dockyard):
        kind = name

        def launch(self, archive: Path) -> None:
            saved, cri.PYDIR = cri.PYDIR, pydir
            try:
                super().launch(archive)
            finally:
                cri.PYDIR = saved

    return Tree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("trees", nargs=2, metavar="NAME=PYDIR")
    ap.add_argument("--runs", type=int, default=50, help="pods per tree and round")
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    trees = [(n, Path(p).resolve()) for n, _, p in (t.partition("=") for t in a.trees)]
    if trees[0][0] == trees[1][0] or not all((p / "dockyard").is_dir() for _, p in trees):
        ap.error("two trees of different names, each NAME=<a tree's python/ directory>")
    work = Path(tempfile.mkdtemp(prefix=f"{cri.TAG}-"))
    rts: list[cri.Runtime] = []
    try:
        archive = cri.docker_archive(cri.busybox_tar(work), work / "images.tar",
                                     {"busybox:latest": {"Cmd": ["sh"]}})
        for name, pydir in trees:
            rts.append(tree(name, pydir)("root"))
            rts[-1].launch(archive)
        print(f"medians of {a.runs} CNI pods per tree and round (ms): "
              + ", ".join(PARTS))
        for i in range(a.rounds):
            res = cri.pod_runs(rts, a.runs, False)
            med = {n: [res[n][p]["median"] * 1000 for p in PARTS] for n, _ in trees}
            (n0, _), (n1, _) = trees
            diff = " ".join(f"{y - x:+.2f}" for x, y in zip(med[n0], med[n1]))
            print(f"round {i + 1}: " + "  ".join(
                f"{n} " + " ".join(f"{v:.2f}" for v in med[n]) for n, _ in trees)
                + f"  {n1}-{n0} {diff}")
    finally:
        for r in rts:
            r.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
