"""Build, side by side with dockerd's classic builder (docker CLI, DOCKER_BUILDKIT=0,
on both engines), on the root disk first and on a fresh ext4 second:

- 25 metadata instructions (ENV, LABEL, CMD, EXPOSE, ...), --no-cache;
- 50 RUN steps, --no-cache;
- COPY of a 10 000-file context, --no-cache;
- the same build again with the cache: every step a hit;
- three independent stages of 4 RUN steps each (writing files) and a final
  stage copying from each, --no-cache: stages in parallel, against dockerd and
  against Dockyard building one stage after the other (DOCKYARD_BUILD_JOBS=1).

BENCH_BUILD_CASES picks cases (metadata,run50,copy,copy_cached,stages; all
by default).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from common import median, save, table
from containers import Engine

RUNS = int(os.environ.get("BENCH_RUNS", "5"))
DISKS = os.environ.get("BENCH_DISKS", "root,fresh").split(",")

METADATA = "FROM busybox\n" + "".join(
    (f"ENV V{i}=value{i}\n", f"LABEL l{i}=v{i}\n", f"EXPOSE {8000 + i}\n",
     f"WORKDIR /w{i}\n", f'CMD ["echo", "{i}"]\n')[i % 5] for i in range(25))
RUNS50 = "FROM busybox\n" + "".join(f"RUN echo {i} > /f{i}\n" for i in range(50))
COPY = "FROM busybox\nCOPY data /data\n"
STAGES = "".join(
    f"FROM busybox AS s{s}\n" + "".join(
        f"RUN mkdir -p /out/{r} && for i in $(seq 1 200); do echo {s}-{r}-$i > /out/{r}/f$i; done\n"
        for r in range(4)) for s in range(3)
) + "FROM busybox\n" + "".join(f"COPY --from=s{s} /out /s{s}\n" for s in range(3))
CASES = os.environ.get("BENCH_BUILD_CASES", "metadata,run50,copy,copy_cached,stages").split(",")


def contexts(work: Path) -> dict[str, Path]:
    out = {}
    for name, dockerfile in (("metadata", METADATA), ("run50", RUNS50), ("copy", COPY),
                             ("stages", STAGES)):
        d = work / f"ctx-{name}"
        d.mkdir()
        (d / "Dockerfile").write_text(dockerfile)
        out[name] = d
    data = out["copy"] / "data"
    for i in range(100):
        sub = data / f"d{i:02}"
        sub.mkdir(parents=True)
        for f in range(100):
            (sub / f"f{f:03}").write_bytes(os.urandom(512 + (i * 100 + f) % 2048))
    return out


# The docker CLI on PATH (28.x) and Debian's 20.10, the classic builder's own
# era: a cached rebuild is mostly the CLI's upload (28 takes ~0.7 s to tar and
# send the 10 000 files, 20.10 ~0.3 s), so both are shown.
DEBIAN_CLI = "/usr/bin/docker"


def build(e: Engine, ctx: Path, *args: str, cli: str = "docker") -> float:
    env = dict(e.env, DOCKER_BUILDKIT="0")
    t = time.perf_counter()
    r = subprocess.run([cli, "build", "-q", *args, str(ctx)], env=env, capture_output=True)
    if r.returncode:
        raise SystemExit(f"{e.kind}: docker build {' '.join(args)} failed: "
                         f"{r.stderr.decode(errors='replace')}")
    return time.perf_counter() - t


def no_cache(e: Engine, ctx: Path, name: str) -> float:
    times = []
    for i in range(RUNS + 1):
        times.append(build(e, ctx, "--no-cache", "-t", f"b-{name}"))
        e.docker("image", "prune", "-f")
        subprocess.run(["sync"], check=True)
    return median(times[1:])


def measure(e: Engine, ctxs: dict[str, Path], cases: list[str]) -> dict[str, float]:
    res = {}
    for name in ("metadata", "run50", "copy", "stages"):
        if name in cases:
            res[name] = no_cache(e, ctxs[name], name)
    if "copy_cached" not in cases:
        return res
    build(e, ctxs["copy"], "-t", "b-copy")  # the cache to hit
    res["copy_cached"] = median([build(e, ctxs["copy"], "-t", "b-copy")
                                 for _ in range(RUNS)])
    if os.path.exists(DEBIAN_CLI):
        res["copy_cached_2010"] = median([build(e, ctxs["copy"], "-t", "b-copy", cli=DEBIAN_CLI)
                                          for _ in range(RUNS)])
    return res


def stages_side_by_side(e: Engine, ctx: Path, work: Path, disk: str) -> tuple[float, float]:
    """The stages case on `e` and on a second Dockyard building one stage
    after the other (DOCKYARD_BUILD_JOBS=1), their builds alternated so that
    both see the same load; the medians (parallel, sequential)."""
    os.environ["DOCKYARD_BUILD_JOBS"] = "1"
    try:
        seq = Engine("dockyard", work, disk=disk)
    finally:
        del os.environ["DOCKYARD_BUILD_JOBS"]
    times: dict[str, list[float]] = {"par": [], "seq": []}
    try:
        for i in range(RUNS + 1):
            pair = [("par", e), ("seq", seq)]
            for key, eng in pair if i % 2 else pair[::-1]:
                times[key].append(build(eng, ctx, "--no-cache", "-t", "b-stages"))
                eng.docker("image", "prune", "-f")
                subprocess.run(["sync"], check=True)
    finally:
        seq.close()
    return median(times["par"][1:]), median(times["seq"][1:])


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="dy-bench-build-"))
    ctxs = contexts(work)
    res: dict[str, dict[str, dict[str, float]]] = {}
    for disk in DISKS:
        for kind in ("dockyard", "dockerd"):
            if kind == "dockerd" and not shutil.which("dockerd"):
                continue
            e = Engine(kind, work, disk=disk)
            try:
                by = res.setdefault(disk, {})
                if kind == "dockerd":
                    by[kind] = measure(e, ctxs, CASES)
                    continue
                by[kind] = measure(e, ctxs, [c for c in CASES if c != "stages"])
                if "stages" in CASES:
                    par, seq = stages_side_by_side(e, ctxs["stages"], work, disk)
                    by[kind]["stages"] = par
                    by["dockyard_sequential"] = {"stages": seq}
            finally:
                e.close()
    shutil.rmtree(work, ignore_errors=True)
    for disk, by in res.items():
        d, r = by["dockyard"], by.get("dockerd", {})
        seq = by.get("dockyard_sequential", {})
        where = "the root disk" if disk == "root" else "a fresh ext4"
        rows = [
            ("25 metadata instructions", "metadata", r, "dockerd"),
            ("50 RUN steps", "run50", r, "dockerd"),
            ("COPY of 10 000 files", "copy", r, "dockerd"),
            ("the same, all cached", "copy_cached", r, "dockerd"),
            ("the same, all cached, Debian's docker 20.10 CLI", "copy_cached_2010", r,
             "dockerd"),
            ("3 independent stages of 4 RUN + final COPY", "stages", r, "dockerd"),
            ("the same", "stages", seq, "dockyard, one stage at a time"),
        ]
        table(f"docker build (classic builder, docker CLI), median of {RUNS}, on {where}",
              [(what, d[key], ref.get(key, 0.0), name) for what, key, ref, name in rows
               if key in d])
    save("build", res)  # type: ignore[arg-type]


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    main()
