"""Pull and push through a local docker-registry, side by side: a reference
dockerd (overlay2), skopeo, the docker CLI against Dockyard's daemon, and
`dockyard pull/push`.

    python3 bench/pull.py [--quick] [--runs N] [--only pull|push]
    BENCH_QUICK=1 python3 bench/run.py pull

The image: 4 layers tarred from the host's /usr (shared libraries, data, binaries,
already-compressed archives), about 321 MB unpacked and 190 MB gzipped, built
once with fixed owners and times and cached under /var/tmp/dockyard-bench/pull
(--quick: about 16 MB gzipped). It is uploaded by tests/registries.py's raw uploader,
so no tool under test helped make it. Both engines' data roots are on the root disk first (a directory in /var/tmp,
where /var/lib/dockyard would live: a long-used filesystem), then on a fresh
ext4 of their own (BENCH_DISKS=root,fresh picks). Every pull starts from a clean store
(rmi between runs; skopeo into a new dir: directory, which keeps blobs
as they are, so skopeo does no unpacking); every push goes to a new, empty
registry, the engines' copy having come from `docker load` (again before
each run) so that no engine knows or keeps the blobs, and then (rows
"(pulled)", on engines of their own) from a `docker pull` of the source
registry: an engine that kept the pulled blobs sends them, one that didn't
compresses again. "x floor" is a push's time over skopeo's from a dir:
(blobs ready to send). After each timed run, untimed, the result is checked
(the engine has the image under its ID; the registry has a manifest of that
config). A tool that fails either way shows "n/a" and its
error, so the bench runs before Dockyard can pull or push. Dockyard is run
from this checkout's python/ (or $DOCKYARD_PYTHON). Results: a table on
stdout and bench/results/pull.json (or pull-quick.json)."""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import drop_fs, engine_env, fresh_fs, median, save

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))

from registries import (  # noqa: E402
    EPOCH,
    Image,
    Layer,
    Registry,
    gzip_layer_file,
    push_image,
    start_registry,
)

CACHE = Path("/var/tmp/dockyard-bench/pull")
DISKS = os.environ.get("BENCH_DISKS", "root,fresh").split(",")
MB = 1_000_000
# (name, source directories, bytes of file content, only these suffixes): host
# files that compress as real images' layers do, from shared objects and
# binaries (~0.37) and text (~0.5) to an application's jars and archives (~0.95).
ARCHIVES = (".jar", ".jmod", ".zip", ".whl", ".gz", ".png")
FULL = [("base", ["/usr/lib/x86_64-linux-gnu"], 100 * MB, ()),
        ("share", ["/usr/share/doc", "/usr/share/perl", "/usr/share/locale", "/usr/share"],
         80 * MB, ()),
        ("bin", ["/usr/bin", "/usr/sbin"], 40 * MB, ()),
        ("app", ["/usr/lib/jvm", "/usr/share/java", "/usr/lib", "/usr/share"], 99 * MB,
         ARCHIVES)]
QUICK = [(n, srcs, size // 13, only) for n, srcs, size, only in FULL]
SRC_REPO = "bench/big"
DOCKERD_DRIVER = "overlay2"


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


# --- the image ------------------------------------------------------------------


def layer_tar(out: Path, sources: list[str], budget: int, taken: set[str],
              only: tuple[str, ...] = ()) -> None:
    """Tar regular files, symlinks and their directories from `sources` in
    sorted order until `budget` bytes of content; fixed owners and mtime so
    the same host gives the same digests. `taken` keeps layers disjoint."""
    used = 0
    dirs_done: set[str] = set()
    tmp = out.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as t:

        def add(path: str) -> tarfile.TarInfo | None:
            ti = t.gettarinfo(path, arcname=path.lstrip("/"))
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = "root"
            ti.mtime = EPOCH
            return ti

        def add_parents(path: str) -> None:
            parts = path.strip("/").split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/" + "/".join(parts[:i])
                if d not in dirs_done:
                    dirs_done.add(d)
                    ti = add(d)
                    if ti is not None:
                        t.addfile(ti)

        for src in sources:
            if used >= budget:
                break
            for root, dirs, files in os.walk(src):
                dirs.sort()
                for name in sorted(files):
                    path = os.path.join(root, name)
                    if path in taken or used >= budget or only and not name.endswith(only):
                        continue
                    try:
                        ti = add(path)
                    except OSError:
                        continue
                    if ti is not None and ti.islnk():  # a hard link: store the file again
                        ti.type, ti.linkname, ti.size = tarfile.REGTYPE, "", os.stat(path).st_size
                    if ti is None or not (ti.isreg() or ti.issym()):
                        continue
                    if ti.isreg() and (ti.size > budget - used or ti.size > 64 * MB):
                        continue
                    taken.add(path)
                    add_parents(path)
                    if ti.isreg():
                        with open(path, "rb") as f:
                            t.addfile(ti, f)
                        used += ti.size
                    else:
                        t.addfile(ti)
                if used >= budget:
                    break
    os.replace(tmp, out)


def build_layers(quick: bool) -> tuple[list[Layer], float]:
    """The image's layers, built once per host (all of them, or none cached)."""
    spec = QUICK if quick else FULL
    d = CACHE / ("quick" if quick else "full")
    index = d / "layers.txt"  # name digest diff_id tar_bytes, one line per layer
    if not index.exists():
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        taken: set[str] = set()
        lines = []
        for name, sources, budget, only in spec:
            log(f"building layer {name} ({budget / MB:.0f} MB from {', '.join(sources)})...")
            tar = d / f"{name}.tar"
            layer_tar(tar, [s for s in sources if os.path.isdir(s)], budget, taken, only)
            layer = gzip_layer_file(tar, d / f"{name}.tar.gz")
            lines.append(f"{name} {layer.digest} {layer.diff_id} {tar.stat().st_size}\n")
            tar.unlink()
        index.write_text("".join(lines))
    layers, tar_bytes = [], 0
    for line in index.read_text().splitlines():
        name, digest, diff_id, size = line.split()
        gz = d / f"{name}.tar.gz"
        layers.append(Layer(gz, digest, diff_id, gz.stat().st_size))
        tar_bytes += int(size)
    return layers, tar_bytes / MB


# --- engines and tools ------------------------------------------------------------


Result = dict[str, list[float] | str]  # tool -> seconds per run, or "n/a (error: ...)"


class ToolError(Exception):
    pass


class EngineStartError(ToolError):
    pass


def dockyard_env(env: dict[str, str]) -> dict[str, str]:
    """The Dockyard in this checkout (or $DOCKYARD_PYTHON), whatever the
    editable install points at."""
    py = os.environ.get("DOCKYARD_PYTHON", str(REPO / "python"))
    return dict(env, PYTHONPATH=py + os.pathsep + env.get("PYTHONPATH", ""))


def run(cmd: list[str], env: dict[str, str] | None = None, timeout: float = 900) -> str:
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        lines = (r.stderr or r.stdout).strip().splitlines() or [f"exit {r.returncode}"]
        raise ToolError(lines[-1][:160])
    return r.stdout


class Engine:
    """A daemon on a private socket and data root: "dockerd" or "dockyard"."""

    def __init__(self, kind: str, disk: str) -> None:
        self.kind = kind
        self.base = (fresh_fs(f"dy-bench-pull-{kind}-") if disk == "fresh" else
                     Path(tempfile.mkdtemp(prefix=f"dy-bench-pull-{kind}-", dir="/var/tmp")))
        self.sock = self.base / "s.sock"
        self.env = engine_env(self.sock, self.base)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        if self.kind == "dockyard":
            self.env = dockyard_env(self.env)
            cmd = [sys.executable, "-m", "dockyard", "daemon", "-H", f"unix://{self.sock}",
                   "-g", str(self.base / "root"), "-p", str(self.base / "pid"),
                   "--exec-root", str(self.base / "exec"), "-s", "overlay",
                   "--bridge", "none", "--iptables=false"]
        else:
            cmd = [shutil.which("dockerd") or "dockerd", "--data-root", str(self.base / "root"),
                   "--exec-root", str(self.base / "exec"), "-H", f"unix://{self.sock}",
                   "--pidfile", str(self.base / "pid"), "--bridge", "none",
                   "--iptables=false", "--ip6tables=false", "--storage-driver", DOCKERD_DRIVER,
                   "--containerd-namespace", "dy-bench-pull"]
        self.proc = subprocess.Popen(cmd, stdout=open(self.base / "log", "wb"),
                                     stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        for _ in range(600):
            if self.proc.poll() is not None:
                last = (self.base / "log").read_text().strip().splitlines()[-1:] or ["?"]
                raise EngineStartError(f"{self.kind} exited: {last[0][:160]}")
            if self.sock.exists() and subprocess.run(["docker", "version"], env=self.env,
                                                     capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise EngineStartError(f"{self.kind} did not answer in 60 s")

    def docker(self, *args: str) -> str:
        return run(["docker", *args], self.env)

    def dockyard(self, *args: str) -> str:
        return run([sys.executable, "-m", "dockyard", *args], self.env)

    def rmi(self, *refs: str) -> None:
        for ref in refs:
            subprocess.run(["docker", "rmi", "-f", ref], env=self.env, capture_output=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # The process group: dockerd's own containerd goes with it.
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        drop_fs(self.base)


def on_engine(kind: str, labels: list[str], body: Callable[[Engine], Result],
              disk: str) -> Result:
    """body's results on a new daemon whose root is on `disk` ("root" or
    "fresh"), or n/a for each of `labels` when it won't start."""
    e = Engine(kind, disk)
    try:
        try:
            e.start()
        except EngineStartError as err:
            return {label: f"n/a (error: {err})" for label in labels}
        return body(e)
    finally:
        e.stop()


def timed(runs: int, work: Callable[[int], object],
          before: Callable[[int], None] = lambda i: None,
          after: Callable[[int], None] = lambda i: None,
          check: Callable[[int], None] = lambda i: None) -> list[float] | str:
    """Seconds of `work` for each run (untimed: `before`, then `check` that the
    work really happened, then `after`), or "n/a (error: ...)" at the first failure."""
    out = []
    for i in range(runs):
        try:
            before(i)
            t = time.perf_counter()
            work(i)
            out.append(time.perf_counter() - t)
            check(i)
        except (ToolError, subprocess.TimeoutExpired, RuntimeError) as e:
            return f"n/a (error: {e})"
        finally:
            try:
                after(i)
            except (ToolError, RuntimeError):
                pass
    return out


# --- the benchmark --------------------------------------------------------------


def has_image(e: Engine, ref: str, image_id: str) -> None:
    got = e.docker("image", "inspect", "-f", "{{.Id}}", ref).strip()
    if got != image_id:
        raise ToolError(f"{ref} is {got}, not {image_id}")


def registry_has(reg: Registry | None, repo: str, image_id: str) -> None:
    """The registry serves repo:latest, a manifest of the image with this config."""
    assert reg is not None
    r = reg.client().get_manifest(repo, "latest")
    if r.status != 200 or r.json().get("config", {}).get("digest") != image_id:
        raise ToolError(f"the registry has no {repo}:latest of {image_id} ({r.status})")


def bench_pull(image: Image, runs: int, work: Path, disk: str) -> Result:
    res: Result = {}
    src, out = image.ref, work / "dir"

    def dir_has_image(i: int) -> None:
        if not (out / image.image_id.removeprefix("sha256:")).exists():
            raise ToolError("skopeo left no image config in the dir: directory")

    res["skopeo copy → dir:"] = timed(
        runs, lambda i: run(["skopeo", "--insecure-policy", "copy", "-q",
                             "--src-tls-verify=false", f"docker://{src}", f"dir:{out}"]),
        before=lambda i: shutil.rmtree(out, ignore_errors=True),
        after=lambda i: shutil.rmtree(out, ignore_errors=True), check=dir_has_image)
    ref = f"docker pull → dockerd ({DOCKERD_DRIVER})"

    def pulls(e: Engine, tools: dict[str, Callable[[], object]]) -> Result:
        def clean(i: int) -> None:
            e.rmi(src)
            os.sync()  # the last run's writeback must not slow this one

        return {label: timed(runs, lambda i: pull(), before=clean,
                             after=lambda i: e.rmi(src),
                             check=lambda i: has_image(e, src, image.image_id))
                for label, pull in tools.items()}

    res |= on_engine("dockerd", [ref], lambda e: pulls(e, {ref: lambda: e.docker("pull", "-q",
                                                                                 src)}), disk)
    res |= on_engine("dockyard", ["docker pull → Dockyard daemon", "dockyard pull"],
                     lambda e: pulls(e, {"docker pull → Dockyard daemon":
                                         lambda: e.docker("pull", "-q", src),
                                         "dockyard pull": lambda: e.dockyard("pull", src)}),
                     disk)
    return res


class Scratch:
    """One empty registry per push run, so every push uploads every blob."""

    def __init__(self) -> None:
        self.reg: Registry | None = None
        self.base: Path | None = None

    def new(self, i: int = 0) -> None:
        self.drop()
        self.base = Path(tempfile.mkdtemp(prefix="dy-bench-registry-", dir="/var/tmp"))
        self.reg = start_registry(self.base)

    def drop(self, i: int = 0) -> None:
        if self.reg is not None:
            self.reg.stop()
            self.reg = None
        if self.base is not None:
            shutil.rmtree(self.base, ignore_errors=True)
            self.base = None

    @property
    def dest(self) -> str:
        assert self.reg is not None
        return f"{self.reg.host}/bench/pushed:latest"


def bench_push(image: Image, runs: int, work: Path, disk: str) -> Result:
    res: Result = {}
    src = image.ref
    seed, archive = work / "seed-dir", work / "seed.tar"
    local = "bench/big:latest"
    # dir: and docker-archive: keep the config's bytes (oci: would rewrite it,
    # and with it the image ID the checks expect).
    shutil.rmtree(seed, ignore_errors=True)  # made for an earlier disk's column
    archive.unlink(missing_ok=True)
    for dest in (f"dir:{seed}", f"docker-archive:{archive}:{local}"):
        run(["skopeo", "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
             f"docker://{src}", dest])
    scratch = Scratch()

    def pushed(i: int) -> None:
        registry_has(scratch.reg, "bench/pushed", image.image_id)

    try:
        res["skopeo copy dir: →"] = timed(
            runs, lambda i: run(["skopeo", "--insecure-policy", "copy", "-q",
                                 "--dest-tls-verify=false", f"dir:{seed}",
                                 f"docker://{scratch.dest}"]),
            before=scratch.new, after=scratch.drop, check=pushed)

        def engine_push(e: Engine, push: Callable[[str], object],
                        pulled: bool) -> list[float] | str:
            def before(i: int) -> None:
                scratch.new()
                if not pulled and i:
                    # Loaded again: an engine keeps what it compressed for a
                    # push, and this row is about compressing.
                    e.rmi(local)
                    e.docker("load", "-q", "-i", str(archive))
                e.docker("tag", local, scratch.dest)
                os.sync()

            def after(i: int) -> None:
                e.rmi(scratch.dest)
                scratch.drop()

            return timed(runs, lambda i: push(scratch.dest), before=before, after=after,
                         check=pushed)

        def pushes(e: Engine, tools: dict[str, Callable[[str], object]],
                   pulled: bool = False) -> Result:
            try:
                if pulled:
                    e.docker("pull", "-q", src)
                    e.docker("tag", src, local)
                else:
                    e.docker("load", "-q", "-i", str(archive))
            except ToolError as err:
                return {label: f"n/a (error: {'pull' if pulled else 'load'}: {err})"
                        for label in tools}
            out: Result = {}
            for label, push in tools.items():
                if out and not pulled:  # the previous tool's push kept its blobs
                    e.rmi(local)
                    e.docker("load", "-q", "-i", str(archive))
                out[label] = engine_push(e, push, pulled)
            return out

        for pulled in (False, True):
            tag = " (pulled)" if pulled else ""
            ref = f"docker push ← dockerd ({DOCKERD_DRIVER}){tag}"
            res |= on_engine("dockerd", [ref],
                             lambda e: pushes(e, {ref: lambda r: e.docker("push", "-q", r)},
                                              pulled), disk)
            cli, own = f"docker push ← Dockyard daemon{tag}", f"dockyard push{tag}"
            res |= on_engine("dockyard", [cli, own],
                             lambda e: pushes(e, {cli: lambda r: e.docker("push", "-q", r),
                                                  own: lambda r: e.dockyard("push", r)},
                                              pulled), disk)
    finally:
        scratch.drop()
    return res


def report(title: str, res: Result, mb: float) -> dict[str, object]:
    """Print one table (median seconds, MB/s of the compressed image, dockerd's
    time over each tool's: >1 means faster than dockerd, the "(pulled)" rows
    against dockerd's "(pulled)" one; for pushes, the time over skopeo's from
    a dir:, the upload floor) and return it as JSON."""
    def ref_of(tool: str) -> float:
        return next((median(v) for k, v in res.items() if "dockerd" in k
                     and isinstance(v, list) and k.endswith("(pulled)") == tool.endswith(
                         "(pulled)")), 0.0)

    floor = next((median(v) for k, v in res.items() if k.startswith("skopeo copy dir:")
                  and isinstance(v, list)), 0.0)
    print(f"\n{title}")
    print(f"{'tool':44} {'median s':>9} {'MB/s':>7} {'vs dockerd':>10}"
          + (f" {'x floor':>8}" if floor else "") + "  runs")
    out: dict[str, object] = {}
    for tool, v in res.items():
        if isinstance(v, str):
            print(f"{tool:44} {v}")
            out[tool] = {"error": v}
            continue
        m = median(v)
        ref = ref_of(tool)
        ratio = f"{ref / m:9.2f}x" if ref else f"{'n/a':>10}"
        over = f" {m / floor:7.2f}x" if floor else ""
        print(f"{tool:44} {m:9.2f} {mb / m:7.1f} {ratio}{over}  "
              + " ".join(f"{x:.2f}" for x in v))
        out[tool] = {"median_s": m, "runs_s": v} | ({"over_floor": m / floor} if floor else {})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a ~14 MB image, one run")
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--only", choices=["pull", "push"])
    args, _ = ap.parse_known_args()  # bench/run.py's own arguments pass through
    args.quick = args.quick or os.environ.get("BENCH_QUICK") == "1"
    runs = args.runs or int(os.environ.get("BENCH_RUNS", "1" if args.quick else "3"))
    layers, tar_mb = build_layers(args.quick)
    gz_mb = sum(x.size for x in layers) / MB
    work = Path(tempfile.mkdtemp(prefix="dy-bench-pull-", dir="/var/tmp"))
    source = Scratch()  # the registry every pull reads from
    try:
        source.new()
        assert source.reg is not None
        image = push_image(source.reg, SRC_REPO, "latest", layers)
        size = f"{gz_mb:.0f} MB gzipped / {tar_mb:.0f} MB of tar, {len(layers)} layers"
        log(f"image {image.ref}: {size}")
        data: dict[str, object] = {"image_gz_mb": gz_mb, "image_tar_mb": tar_mb,
                                   "layers": len(layers), "runs": runs,
                                   "dockerd_driver": DOCKERD_DRIVER}
        for disk in DISKS:
            where = "the root disk" if disk == "root" else "a fresh ext4"
            key = "" if disk == "root" else "_fresh"
            if args.only in (None, "pull"):
                data["pull" + key] = report(
                    f"Pull ({size}) from a local registry, median of {runs}, on {where}",
                    bench_pull(image, runs, work, disk), gz_mb)
            if args.only in (None, "push"):
                data["push" + key] = report(
                    f"Push ({size}) to an empty local registry, median of {runs}, on {where}",
                    bench_push(image, runs, work, disk), gz_mb)
        save("pull-quick" if args.quick else "pull", data)
    finally:
        source.drop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
