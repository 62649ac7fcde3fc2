"""Container start, side by side: `docker run --rm busybox true` with the docker
CLI against Dockyard and against dockerd, `dockyard run` with our CLI, the
Python API, and 200 detached containers (start, list, stop, remove) with the
memory the engine holds while they run (daemon + supervisors)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (cgroup_parents, drop_cgroup_parents, drop_fs, engine_env, fresh_fs, median,
                    save, table, timeit)

N_MANY = int(os.environ.get("BENCH_MANY", "200"))



def busybox_tar(work: Path) -> Path:
    tar = work / "busybox.tar"
    if tar.exists():
        return tar
    root = work / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    shutil.copy2(shutil.which("busybox") or "/bin/busybox", root / "bin" / "busybox")
    for a in subprocess.run([str(root / "bin" / "busybox"), "--list"], capture_output=True,
                            text=True).stdout.split():
        if a != "busybox":
            os.symlink("busybox", root / "bin" / a)
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
    return tar


class Engine:
    """A daemon on a fresh filesystem. Without `bridges` neither engine makes a
    bridge or a packet rule (containers get loopback only); with them (only in
    a network namespace of the bench's own, see network.py) both use their
    default bridge and kernel rules."""

    def __init__(self, kind: str, work: Path, extra: tuple[str, ...] = (),
                 bridges: bool = False, disk: str = "fresh") -> None:
        """`disk`: "fresh" (an ext4 of its own) or "root" (a directory in
        /var/tmp, on the disk where /var/lib/dockyard would live)."""
        self.kind = kind
        self.cgroups = cgroup_parents()  # dockerd's, made by it, go at close
        self.base = (fresh_fs(f"dy-bench-{kind}-") if disk == "fresh"
                     else Path(tempfile.mkdtemp(prefix=f"dy-bench-{kind}-", dir="/var/tmp")))
        self.sock = self.base / "s.sock"
        self.env = engine_env(self.sock, self.base)
        net = () if bridges else ("--bridge", "none", "--iptables=false")
        if kind == "dockyard":
            cmd = [sys.executable, "-m", "dockyard", "daemon", "-H", f"unix://{self.sock}",
                   "-g", str(self.base / "root"), "-p", str(self.base / "pid"),
                   "--exec-root", str(self.base / "exec"), "-s", "overlay", *net, *extra]
        else:
            cmd = [shutil.which("dockerd") or "dockerd", "--data-root", str(self.base / "root"),
                   "--exec-root", str(self.base / "exec"), "-H", f"unix://{self.sock}",
                   "--pidfile", str(self.base / "pid"), *net, "--storage-driver", "overlay2",
                   "--containerd-namespace", "dy-bench"]
        self.proc = subprocess.Popen(cmd, stdout=open(self.base / "log", "wb"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        for _ in range(600):
            if self.sock.exists() and self.docker("version", check=False).returncode == 0:
                break
            time.sleep(0.1)
        self.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar(work)), "busybox")

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=self.env, check=check,
                              capture_output=True)

    def rss_mib(self) -> float:
        """RSS of the engine's processes: the daemon's process group plus shims."""
        total = 0
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read()
                if str(self.base).encode() not in cmd and b"containerd-shim" not in cmd \
                        and b"docker-proxy" not in cmd:
                    continue
                if b"docker-proxy" in cmd and self.kind != "dockerd":
                    continue
                if b"containerd-shim" in cmd and self.kind != "dockerd":
                    continue
                for line in open(f"/proc/{pid}/status"):
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                continue
        return total / 1024

    def close(self) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-f", f"containerd.*{self.base}"], check=False)
        subprocess.run(["pkill", "-9", "-f", f"dockyard-shim.*{self.base}"], check=False)
        drop_fs(self.base)
        drop_cgroup_parents(self.cgroups)


def many(e: Engine, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    ids = [e.docker("run", "-d", "busybox", "sleep", "600").stdout.decode().strip()
           for _ in range(n)]
    t1 = time.perf_counter()
    rss = e.rss_mib()
    listed = len(e.docker("ps", "-q").stdout.split())
    t2 = time.perf_counter()
    e.docker("stop", "-t", "0", *ids)
    e.docker("rm", *ids)
    t3 = time.perf_counter()
    assert listed == n, listed
    return {"start_s": t1 - t0, "list_s": t2 - t1, "stop_rm_s": t3 - t2, "total_s": t3 - t0,
            "rss_mib": rss}


def runc_alone(work: Path, runs: int) -> float | None:
    """`runc run` of a busybox bundle with runc's default spec: the standard
    runtime's own cost, no engine, no image store."""
    runc = shutil.which("runc")
    if runc is None:
        return None
    b = work / "runc-bundle"
    rootfs = b / "rootfs"
    if not rootfs.exists():
        rootfs.mkdir(parents=True)
        subprocess.run(["tar", "-xf", str(busybox_tar(work)), "-C", str(rootfs)], check=True)
        subprocess.run([runc, "spec"], cwd=b, check=True)
        import json

        spec = json.loads((b / "config.json").read_text())
        spec["process"]["terminal"] = False
        spec["process"]["args"] = ["true"]
        (b / "config.json").write_text(json.dumps(spec))
    root = work / "runc-state"
    n = [0]

    def once() -> None:
        n[0] += 1
        subprocess.run([runc, "--root", str(root), "run", "--bundle", str(b), f"bench{n[0]}"],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL)

    return median(timeit(once, runs, 2))


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="dy-bench-ctr-"))
    runs = int(os.environ.get("BENCH_RUNS", "15"))
    results: dict[str, dict] = {}
    dy = Engine("dockyard", work)
    try:
        results["docker_cli_dockyard"] = median(timeit(
            lambda: dy.docker("run", "--rm", "busybox", "true"), runs, 2))
        entry = os.path.join(os.path.dirname(sys.executable), "dockyard")  # as pip installs it
        results["dockyard_cli"] = median(timeit(
            lambda: subprocess.run([entry, "run", "--rm", "busybox", "true"], env=dy.env,
                                   check=True, capture_output=True), runs, 2))
        results["idle_rss_mib_dockyard"] = dy.rss_mib()
        results["many_dockyard"] = many(dy, N_MANY)
    finally:
        dy.close()
    rc = Engine("dockyard", work, ("--exec-driver", "runc")) if shutil.which("runc") else None
    if rc is not None:
        try:
            results["docker_cli_dockyard_runc"] = median(timeit(
                lambda: rc.docker("run", "--rm", "busybox", "true"), runs, 2))
        finally:
            rc.close()
    results["runc_alone"] = runc_alone(work, runs)
    from dockyard import Engine as PyEngine

    base = fresh_fs("dy-bench-api-")
    from dockyard.network.service import NetworkOptions

    eng = PyEngine(base / "root", "overlay", exec_root=base / "exec",
                   network_options=NetworkOptions(bridge="none", iptables=False))
    try:
        eng.import_image(str(busybox_tar(work)), repo="busybox")
        c = eng.containers

        def api_run() -> None:
            x = c.create({"Image": "busybox", "Cmd": ["true"]}, {})
            c.start(x.id)
            c.wait_exit(x.id)
            c.remove(x.id)

        results["python_api"] = median(timeit(api_run, runs, 2))
    finally:
        eng.close()
        drop_fs(base)
    if shutil.which("dockerd"):
        ref = Engine("dockerd", work)
        try:
            results["docker_cli_dockerd"] = median(timeit(
                lambda: ref.docker("run", "--rm", "busybox", "true"), runs, 2))
            results["idle_rss_mib_dockerd"] = ref.rss_mib()
            results["many_dockerd"] = many(ref, N_MANY)
        finally:
            ref.close()
    shutil.rmtree(work, ignore_errors=True)
    ref_run = results.get("docker_cli_dockerd", 0.0)
    table(f"Container start, median of {runs}", [
        ("docker run --rm busybox true, docker CLI", results["docker_cli_dockyard"], ref_run,
         "same command against dockerd 20.10"),
        ("dockyard run --rm busybox true", results["dockyard_cli"], ref_run,
         "docker CLI against dockerd"),
        ("Python API create+start+wait+rm", results["python_api"], ref_run,
         "docker CLI against dockerd"),
        ("docker run --rm ... (Dockyard --exec-driver runc)",
         results.get("docker_cli_dockyard_runc") or 0.0, ref_run, "docker CLI against dockerd"),
        ("runc run (a bundle, no engine)", results.get("runc_alone") or 0.0, ref_run,
         "docker CLI against dockerd"),
    ])
    md, mr = results["many_dockyard"], results.get("many_dockerd", {})
    table(f"{N_MANY} containers (run -d sleep), docker CLI", [
        (f"start {N_MANY}", md["start_s"], mr.get("start_s", 0.0), "dockerd"),
        ("ps", md["list_s"], mr.get("list_s", 0.0), "dockerd"),
        ("stop -t 0 + rm", md["stop_rm_s"], mr.get("stop_rm_s", 0.0), "dockerd"),
        ("total", md["total_s"], mr.get("total_s", 0.0), "dockerd"),
    ])
    print(f"RSS with {N_MANY} running: dockyard daemon+shims {md['rss_mib']:.0f} MiB, "
          f"dockerd+containerd+shims {mr.get('rss_mib', 0):.0f} MiB; idle: "
          f"{results['idle_rss_mib_dockyard']:.0f} vs {results.get('idle_rss_mib_dockerd', 0):.0f}"
          " MiB")
    save("containers", results)


if __name__ == "__main__":
    main()
