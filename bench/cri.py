"""The Kubernetes CRI endpoint, side by side with containerd's CRI plugin,
driven the way kubelet drives a runtime, through one gRPC client made from
the same proto:

- pod start: RunPodSandbox + CreateContainer + StartContainer of one `sleep`
  container on a CNI bridge (bridge + portmap from /usr/lib/cni, host-local
  addresses), and the teardown (StopPodSandbox + RemovePodSandbox); the same
  with a host-network pod. Runs alternate between the two runtimes, so noise
  from the (shared) machine falls on both alike.
- memory per pod: with K pods running at once, what the runtime's processes
  for them add up to (containerd: a shim per pod, its pause and the workload;
  Dockyard: a dockyard-shim per container and the workload), PSS and RSS,
  and the daemon's own RSS growth.

Each runtime runs in a network namespace of its own, where the CNI plugins
make their bridge and rules. containerd gets its own root, state, socket and
config (CRI on, overlayfs, cgroupfs) and a private mount namespace (its
/run/netns and /run/containerd are tmpfs there, so nothing of it outlives its
processes); its sandbox image is a pause made here from busybox-static
(`sleep` as PID 1). Both import the same docker-archive of busybox. Each
keeps its runtime state (Dockyard's exec root, containerd's state dir) on a
tmpfs of its own, as /run is where an install has them; its data root and
the pods' logs are on the disk measured: the root disk first (/var/tmp), then
a fresh loop ext4 (BENCH_DISKS). As kubelet does, the bench makes each pod's
cgroup before RunPodSandbox and removes it after the pod.

    python3 bench/cri.py [--quick] [--runs N] [--pods K]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
PYDIR = Path(__file__).resolve().parent.parent / "python"
sys.path.insert(0, str(PYDIR))

from common import drop_fs, fresh_fs, save  # noqa: E402
from containers import busybox_tar  # noqa: E402

import grpc  # noqa: E402

from dockyard import _core  # noqa: E402
from dockyard.cri import proto  # noqa: E402

pb, svc = proto.load()
TAG = f"benchcri-{secrets.token_hex(3)}"
CONTAINERD = shutil.which("containerd")


# --- images ------------------------------------------------------------------
def docker_archive(rootfs_tar: Path, out: Path, tags: dict[str, dict[str, Any]]) -> Path:
    """A `docker save` archive: one layer (the busybox rootfs) shared by an
    image per tag, each with the given config (Cmd, Entrypoint)."""
    layer = rootfs_tar.read_bytes()
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    lhex = diff_id[7:]
    manifest, files = [], {f"{lhex}/layer.tar": layer}
    for tag, conf in tags.items():
        cfg = json.dumps({"architecture": "amd64", "os": "linux", "created":
                          "2026-01-01T00:00:00Z",
                          "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                             "/usr/bin:/sbin:/bin"], **conf},
                          "rootfs": {"type": "layers", "diff_ids": [diff_id]}},
                         sort_keys=True).encode()
        chex = hashlib.sha256(cfg).hexdigest()
        files[f"{chex}.json"] = cfg
        manifest.append({"Config": f"{chex}.json", "RepoTags": [tag],
                         "Layers": [f"{lhex}/layer.tar"]})
    files["manifest.json"] = json.dumps(manifest).encode()
    with tarfile.open(out, "w") as t:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mtime = len(data), 0
            t.addfile(ti, io.BytesIO(data))
    return out


# --- processes -----------------------------------------------------------------
def procs() -> dict[int, tuple[int, str, bytes]]:
    """pid -> (ppid, exe, cmdline) of every process."""
    out = {}
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read()
            try:
                exe = os.readlink(f"/proc/{p}/exe")
            except OSError:
                exe = ""
            out[int(p)] = (ppid, exe, cmd)
        except (OSError, IndexError, ValueError):
            continue
    return out


def with_descendants(roots: set[int], table: dict[int, tuple[int, str, bytes]]) -> set[int]:
    out, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo.extend(c for c, (pp, _, _) in table.items() if pp == p)
    return out


def mem_kib(pid: int) -> tuple[int, int]:
    """(PSS, RSS) in KiB; (0, 0) for a process gone."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss = int(line.split()[1])
    except OSError:
        pass
    return pss, rss


def kill_pids(pids: set[int]) -> None:
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass


def cgroup_dirs(parent: str) -> list[Path]:
    """The parent's directory in every cgroup hierarchy (v1 controllers, v2)."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base / parent]
    return [d / parent for d in base.iterdir() if d.is_dir()]


def cgroup_pids(parent: str) -> set[int]:
    out: set[int] = set()
    for d in cgroup_dirs(parent):
        if d.exists():
            for f in d.rglob("cgroup.procs"):
                try:
                    out |= {int(x) for x in f.read_text().split()}
                except OSError:
                    pass
    return out


def make_cgroup(path: str) -> None:
    """The pod's cgroup, made before RunPodSandbox as kubelet's pod container
    manager does (cgroupfs driver): in every hierarchy, a v1 cpuset's cpus
    and mems filled in from its parent's, level by level."""
    for d in cgroup_dirs(path.strip("/")):
        todo = []
        while not d.exists():
            todo.append(d)
            d = d.parent
        for new in reversed(todo):
            new.mkdir()
            for f in ("cpuset.cpus", "cpuset.mems"):
                if (new / f).exists() and not (new / f).read_text().strip():
                    (new / f).write_text((new.parent / f).read_text())


def remove_cgroups(parent: str) -> None:
    for d in cgroup_dirs(parent):
        if not d.exists():
            continue
        for sub in sorted((p for p in d.rglob("*") if p.is_dir()),
                          key=lambda p: len(p.parts), reverse=True):
            try:
                sub.rmdir()
            except OSError:
                pass
        try:
            d.rmdir()
        except OSError:
            pass


# --- the two runtimes ------------------------------------------------------------
def conflist(base: Path, subnet: str) -> Path:
    conf = base / "net.d"
    conf.mkdir()
    (conf / "10-pods.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "pods", "plugins": [
            {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                      "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(base / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}))
    return conf


class Runtime:
    """One CRI runtime in a network namespace of its own, on `base`."""

    kind = ""
    image = ""

    def __init__(self, disk: str) -> None:
        self.disk = disk
        prefix = f"{TAG}-{self.kind}-"
        self.base = (fresh_fs(prefix) if disk == "fresh"
                     else Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")))
        self.sock = self.base / "cri.sock"
        self.netns = f"{TAG}-{self.kind}"
        self.cgroup = f"{TAG}-{self.kind}"
        self.proc: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None
        self.n = 0
        self.pod_cgroups: dict[str, str] = {}  # pod id: its cgroup (made as kubelet does)
        subprocess.run(["ip", "netns", "add", self.netns], check=True)
        subprocess.run(["ip", "-n", self.netns, "link", "set", "lo", "up"], check=True)
        (self.base / "logs").mkdir()
        # runtime state on a tmpfs, as under /run (drop_fs unmounts it)
        self.run = self.base / "run"
        self.run.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0711", "tmpfs", str(self.run)],
                       check=True)

    def start(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{self.netns}", *cmd], env=env,
            stdout=open(self.base / "daemon.log", "ab"), stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"{self.kind} exited:\n"
                                 + (self.base / "daemon.log").read_text()[-3000:])
            if self.sock.exists():
                self.channel = grpc.insecure_channel(f"unix://{self.sock}")
                self.rt = svc.RuntimeServiceStub(self.channel)
                try:
                    v = self.rt.Version(pb.VersionRequest(), timeout=5)
                    conds = {c.type: c.status for c in
                             self.rt.Status(pb.StatusRequest(), timeout=5).status.conditions}
                    if all(conds.values()):
                        self.version = f"{v.runtime_name} {v.runtime_version}"
                        return
                except grpc.RpcError:
                    pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.kind} did not become ready:\n"
                                 + (self.base / "daemon.log").read_text()[-3000:])
            time.sleep(0.1)

    def launch(self, archive: Path) -> None:
        raise NotImplementedError

    def daemon_pid(self) -> int:
        """nsenter, unshare and sh exec the daemon: the pid Popen knows."""
        assert self.proc is not None
        return self.proc.pid

    def family(self) -> set[int]:
        """The processes the runtime runs for its pods (shims and below)."""
        raise NotImplementedError

    # --- a pod, as kubelet makes it ---
    def pod_config(self, host_network: bool) -> Any:
        self.n += 1
        name = f"p{self.n}"
        logdir = self.base / "logs" / f"default_{name}_uid-{name}"
        logdir.mkdir()
        # kubelet's defaults: a PID namespace per container, IPC per pod
        ns = pb.NamespaceOption(network=pb.NODE if host_network else pb.POD,
                                pid=pb.CONTAINER, ipc=pb.POD)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}",
                                           attempt=0),
            # as kubelet: a host-network pod keeps the node's name
            hostname="" if host_network else name, labels={"app": "bench"},
            log_directory=str(logdir),
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"/{self.cgroup}/pod{self.n}",
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=ns)))

    def start_pod(self, host_network: bool = False) -> tuple[str, list[float]]:
        """(pod id, [run, create, start] seconds)."""
        cfg = self.pod_config(host_network)
        ccfg = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name="main", attempt=0),
            image=pb.ImageSpec(image=self.image), command=["sleep", "3600"],
            log_path="main/0.log", labels={"app": "bench"},
            linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
                namespace_options=cfg.linux.security_context.namespace_options)))
        make_cgroup(cfg.linux.cgroup_parent)
        t0 = time.perf_counter()
        pid = self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg),
                                    timeout=60).pod_sandbox_id
        self.pod_cgroups[pid] = cfg.linux.cgroup_parent
        t1 = time.perf_counter()
        cid = self.rt.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=pid, config=ccfg, sandbox_config=cfg), timeout=60).container_id
        t2 = time.perf_counter()
        self.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=60)
        t3 = time.perf_counter()
        return pid, [t1 - t0, t2 - t1, t3 - t2]

    def remove_pod(self, pid: str) -> float:
        t = time.perf_counter()
        self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        took = time.perf_counter() - t
        # kubelet removes the pod's cgroup once the pod is gone
        for d in cgroup_dirs(self.pod_cgroups.pop(pid, "").strip("/")):
            try:
                d.rmdir()
            except OSError:
                pass  # close() takes what is left
        return took

    def close(self) -> None:
        """Everything it made goes, even when it failed half way."""
        try:
            if self.channel is not None and self.proc and self.proc.poll() is None:
                for p in self.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=20).items:
                    self.remove_pod(p.id)
        except grpc.RpcError as e:
            print(f"{self.kind}: removing pods: {e}", file=sys.stderr)
        if self.channel is not None:
            self.channel.close()
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        for _ in range(50):
            left = self.family() | cgroup_pids(self.cgroup)
            if not left:
                break
            kill_pids(left)
            time.sleep(0.1)
        remove_cgroups(self.cgroup)
        subprocess.run(["ip", "netns", "del", self.netns], check=False)
        if os.environ.get("BENCH_LOGS"):  # a directory to keep the daemons' logs in
            shutil.copy(self.base / "daemon.log",
                        Path(os.environ["BENCH_LOGS"]) / f"{self.kind}-{self.disk}.log")
        drop_fs(self.base)


class Dockyard(Runtime):
    kind = "dockyard"
    image = "busybox"

    def launch(self, archive: Path) -> None:
        conf = conflist(self.base, "10.88.0.0/24")
        self.shim = os.path.realpath(_core.shim_path())
        self.host = f"unix://{self.base / 'd.sock'}"
        env = dict(os.environ, PYTHONPATH=str(PYDIR))
        self.start([sys.executable, "-m", "dockyard", "daemon", "-H", self.host,
                    "-g", str(self.base / "root"), "--exec-root", str(self.run / "exec"),
                    "-p", str(self.run / "pid"), "-s", "overlay",
                    *(["-D"] if os.environ.get("BENCH_DEBUG") else []),
                    "--cri", f"unix://{self.sock}", "--cni-conf-dir", str(conf)], env)
        subprocess.run([sys.executable, "-m", "dockyard", "load", "-i", str(archive)],
                       env=dict(env, DOCKYARD_HOST=self.host, DOCKYARD_NO_AUTOSTART="1"),
                       check=True, capture_output=True)

    def family(self) -> set[int]:
        t = procs()
        return with_descendants({p for p, (_, exe, _) in t.items() if exe == self.shim}, t)


class Containerd(Runtime):
    kind = "containerd"
    image = "docker.io/library/busybox:latest"

    def launch(self, archive: Path) -> None:
        conf = conflist(self.base, "10.89.0.0/24")
        cri = '[plugins."io.containerd.grpc.v1.cri"'
        (self.base / "config.toml").write_text(f"""version = 2
root = "{self.base}/root"
state = "{self.run}/state"
[grpc]
  address = "{self.sock}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{self.base}/opt"
{cri}]
  sandbox_image = "docker.io/library/{TAG}-pause:1"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # the sandbox's -998 needs CAP_SYS_RESOURCE, which this host's root lacks
  restrict_oom_score_adj = true
{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{conf}"
  max_conf_num = 1
""")
        # A private mount namespace: the pods' netns files and the shims'
        # sockets live on tmpfs there and vanish with the processes.
        self.start(["unshare", "-m", "--propagation", "private", "sh", "-c",
                    "mount -t tmpfs tmpfs /run/netns && mkdir -p /run/containerd && "
                    "mount -t tmpfs tmpfs /run/containerd && "
                    f"exec {CONTAINERD} --config {self.base}/config.toml"])
        subprocess.run(["ctr", "-n", "k8s.io", "-a", str(self.sock), "images", "import",
                        str(archive)], check=True, capture_output=True)
        # the CRI plugin learns of images from containerd's events
        deadline = time.monotonic() + 30
        im = svc.ImageServiceStub(self.channel)
        while not im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(
                image=f"{TAG}-pause:1")), timeout=10).HasField("image"):
            if time.monotonic() > deadline:
                raise SystemExit("containerd's CRI does not see the imported images")
            time.sleep(0.1)

    def family(self) -> set[int]:
        t = procs()
        return with_descendants({p for p, (_, exe, cmd) in t.items()
                                 if "containerd-shim" in exe and str(self.sock).encode() in cmd},
                                t)


# --- measures ---------------------------------------------------------------------
def stats(xs: list[float]) -> dict[str, float]:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return {"median": statistics.median(xs), "p25": q[0], "p75": q[2], "min": min(xs),
            "max": max(xs), "n": len(xs)}


def pod_runs(rts: list[Runtime], runs: int, host_network: bool) -> dict[str, dict]:
    """Alternating between the runtimes, one pod at a time; 2 unmeasured first."""
    out: dict[str, dict[str, list[float]]] = {
        r.kind: {"start": [], "run": [], "create": [], "start_ctr": [], "teardown": []}
        for r in rts}
    for i in range(runs + 2):
        for r in (rts if i % 2 == 0 else rts[::-1]):
            pid, parts = r.start_pod(host_network)
            down = r.remove_pod(pid)
            if i >= 2:
                o = out[r.kind]
                o["start"].append(sum(parts))
                for k, v in zip(("run", "create", "start_ctr"), parts):
                    o[k].append(v)
                o["teardown"].append(down)
    return {k: {m: stats(v) for m, v in o.items()} for k, o in out.items()}


def family_mem(r: Runtime) -> tuple[int, int, int]:
    pids = r.family()
    pss = rss = 0
    for p in pids:
        a, b = mem_kib(p)
        pss, rss = pss + a, rss + b
    return pss, rss, len(pids)


def memory(r: Runtime, k: int) -> dict[str, float]:
    """What K running pods add: the pods' processes, and the daemon's RSS."""
    dpid = r.daemon_pid()
    pss0, rss0, n0 = family_mem(r)
    d0 = mem_kib(dpid)[1]
    ids = [r.start_pod()[0] for _ in range(k)]
    time.sleep(1)  # let the shims settle (page faults of their first second)
    pss1, rss1, n1 = family_mem(r)
    d1 = mem_kib(dpid)[1]
    for p in ids:
        r.remove_pod(p)
    return {"pss_kib_per_pod": (pss1 - pss0) / k, "rss_kib_per_pod": (rss1 - rss0) / k,
            "procs_per_pod": (n1 - n0) / k, "daemon_rss_kib_per_pod": (d1 - d0) / k,
            "daemon_rss_kib": d1, "pods": k}


def fmt_ms(s: dict[str, float]) -> str:
    return f"{s['median'] * 1000:8.1f} ms [{s['p25'] * 1000:.1f}-{s['p75'] * 1000:.1f}]"


def report(disk: str, res: dict[str, Any], runs: int) -> None:
    where = "the root disk" if disk == "root" else "a fresh ext4"
    print(f"\nCRI, one client, median [p25-p75] of {runs}, on {where}")
    print(f"{'work':52} {'dockyard':>26} {'containerd 1.6':>26} {'ratio':>7}")
    for net in ("cni", "host"):
        if net not in res:
            continue
        d, c = res[net]["dockyard"], res[net]["containerd"]
        label = "CNI bridge" if net == "cni" else "host network"
        for key, what in (("start", f"pod start ({label}): run+create+start"),
                          ("run", "  RunPodSandbox"), ("create", "  CreateContainer"),
                          ("start_ctr", "  StartContainer"),
                          ("teardown", f"pod teardown ({label}): stop+remove")):
            ratio = c[key]["median"] / d[key]["median"]
            print(f"{what:52} {fmt_ms(d[key]):>26} {fmt_ms(c[key]):>26} {ratio:6.1f}x")
    if "memory" in res:
        d, c = res["memory"]["dockyard"], res["memory"]["containerd"]
        print(f"\nMemory per pod, {d['pods']} pods running (KiB)")
        for key, what in (("pss_kib_per_pod", "processes per pod, PSS"),
                          ("rss_kib_per_pod", "processes per pod, RSS"),
                          ("procs_per_pod", "processes per pod"),
                          ("daemon_rss_kib_per_pod", "daemon RSS growth per pod"),
                          ("daemon_rss_kib", "daemon RSS with the pods")):
            ratio = c[key] / d[key] if d[key] > 0 else float("nan")
            print(f"{what:52} {d[key]:26.0f} {c[key]:26.0f} {ratio:6.1f}x")


def interrupted(*_: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="5 runs, 5 pods, the root disk only")
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--pods", type=int, default=10)
    ap.add_argument("--no-host-network", action="store_true")
    a = ap.parse_args()
    runs, pods = (5, 5) if a.quick else (a.runs, a.pods)
    disks = ["root"] if a.quick else os.environ.get("BENCH_DISKS", "root,fresh").split(",")
    if CONTAINERD is None:
        raise SystemExit("containerd is not installed")
    # Ctrl-C and SIGTERM both unwind through the finally blocks below.
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    work = Path(tempfile.mkdtemp(prefix=f"{TAG}-"))
    out: dict[str, Any] = {"runs": runs, "pods": pods, "disks": {}}
    try:
        archive = docker_archive(busybox_tar(work), work / "images.tar", {
            "busybox:latest": {"Cmd": ["sh"]},
            f"{TAG}-pause:1": {"Entrypoint": ["/bin/sleep", "2147483647"]}})
        for disk in disks:
            rts: list[Runtime] = []
            try:
                for cls in (Dockyard, Containerd):
                    rts.append(cls(disk))
                    rts[-1].launch(archive)
                res: dict[str, Any] = {"versions": {r.kind: r.version for r in rts}}
                res["cni"] = pod_runs(rts, runs, False)
                if not a.no_host_network:
                    res["host"] = pod_runs(rts, runs, True)
                res["memory"] = {r.kind: memory(r, pods) for r in rts}
                out["disks"][disk] = res
                report(disk, res, runs)
            finally:
                # a second Ctrl-C must not leave half of it behind
                old = signal.signal(signal.SIGINT, signal.SIG_IGN), \
                    signal.signal(signal.SIGTERM, signal.SIG_IGN)
                for r in rts:
                    r.close()
                signal.signal(signal.SIGINT, old[0])
                signal.signal(signal.SIGTERM, old[1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["load"] = os.getloadavg()
    save("cri", out)


if __name__ == "__main__":
    main()
