"""The pod lifecycle: run (pin namespaces, write the pod's /etc files, set up
its network), stop (kill its containers, tear the network down), remove; and
containers created into a pod, joining its namespaces.

Blocking, like the container service it drives; the CRI server calls it from
worker threads.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

from .. import _core
from ..containers.model import Container
from ..containers.service import ContainerService
from ..errors import Conflict, DockyardError, MountError, NotFound
from ..graphdriver import remove_container_layers, reserve_container_layers
from ..graphdriver.initlayer import init_id
from ..ids import generate_id
from ..network import etcfiles
from ..network.cni import CNI, PendingAdd, PodRef
from ..store.db import Database
from ..store.images import Image
from .records import NOTREADY, READY, Pod, PodContainer, PodRecords, now_ns

#: A stopped pod's containers get this long to exit on SIGTERM... none: the
#: kubelet stops them itself first; what is left is killed (containerd too).
STOP_TIMEOUT = 0
#: the pod's /dev/shm, as Docker's default
SHM_SIZE = 64 << 20


class PodService:
    def __init__(self, db: Database, containers: ContainerService, root: Path,
                 exec_root: Path, network: CNI | None = None) -> None:
        self.records = PodRecords(db)
        self.containers = containers
        self.dir = root / "pods"
        self.ns_dir = exec_root / "pods"
        self.dir.mkdir(mode=0o711, exist_ok=True)
        self.ns_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
        self.network = network
        self._lock = threading.RLock()
        #: pod id: the ID of its next container, whose layers were made while
        #: the pod's CNI plugins ran (`reserve_container_layers`)
        self._reserved: dict[str, str] = {}
        self._sweep_pins()

    def _sweep_pins(self) -> None:
        """Namespace pins no pod record names go (a crash between a pod's
        network namespace pin and its first commit, see `run`)."""
        known = {p.id for p in self.records.all()}
        for d in self.ns_dir.iterdir():
            if d.name in known or not d.is_dir():
                continue
            for f in d.iterdir():
                _core.ns_unpin(str(f))
            shutil.rmtree(d, ignore_errors=True)

    def pod_dir(self, pod_id: str) -> Path:
        return self.dir / pod_id

    # --- pods ---------------------------------------------------------------
    def run(self, pod: Pod, dns: dict[str, list[str]] | None,
            port_mappings: list[dict[str, Any]]) -> Pod:
        """Make `pod` (its id is chosen here) ready: namespaces pinned, /etc
        files written, network set up. Undone entirely if any step fails."""
        pod.id = generate_id()
        pod.created = now_ns()
        kinds = (["ipc"] if pod.ipc != "node" else []) + \
            (["uts", "net"] if pod.network != "node" else [])
        pod.ns_paths = {kind: str(self.ns_dir / pod.id / kind) for kind in kinds}
        pod.cni_attached = pod.network != "node" and self.network is not None
        # The first CNI plugin starts now and loads (most of a small Go
        # plugin's run) while the record and the namespace below are made;
        # it acts only once run() gives it its config.
        pending = self.network.begin_add(
            pod.id, pod.ns_paths["net"], pod=self._ref(pod), port_mappings=port_mappings,
            cgroup_path=pod.cgroup_parent or None) if pod.cni_attached and self.network else None
        nsdir = self.ns_dir / pod.id
        pin: _core.Job | None = None
        try:
            nsdir.mkdir(mode=0o700)
            # The network namespace (a millisecond) is made while the record
            # below is synced: the plugin, waiting on both, acts sooner. A crash
            # between the two leaves a pin no record names (see _sweep_pins).
            if "net" in pod.ns_paths:
                pin = _core.ns_pin_async(pod.ns_paths["net"], "net")
            with self._lock:
                other = self.records.by_name(pod.name)
                if other is not None:
                    raise Conflict(f"the pod sandbox name {pod.name!r} is already reserved "
                                   f"for {other.id}")
                # What the pod will hold (pinned namespaces, a CNI attachment)
                # is recorded in this one DB commit before any of it is made
                # (but the network namespace's pin, above):
                # a failure (or a crash) part way still releases what exists,
                # and releasing what was never made is no error (unpinning a
                # missing file; CNI DEL, which the spec makes idempotent).
                # Not ready until made whole: a pod a crash cut short stays
                # NOTREADY, which kubelet stops and removes.
                pod.state = NOTREADY
                self.records.save(pod)
        except BaseException:
            if pending is not None:
                pending.abort()
            if pin is not None:
                pin.wait()
            for path in pod.ns_paths.values():
                _core.ns_unpin(path)
            shutil.rmtree(nsdir, ignore_errors=True)
            raise
        try:
            self._setup(pod, dns, pending, pin)
        except BaseException:
            if pending is not None:
                pending.abort()
            self._teardown(pod)
            self._forget(pod)
            raise
        pod.state = READY
        # Not synced: after a power cut the pod's namespaces and network are
        # gone, and so it is rightly NOTREADY if this commit is lost with them.
        self.records.save(pod, durable=False)
        return pod

    def _setup(self, pod: Pod, dns: dict[str, list[str]] | None,
               pending: PendingAdd | None, pin: _core.Job | None) -> None:
        pdir = self.pod_dir(pod.id)
        # No hostname given: the node's, as containerd and CRI-O do (a pod's
        # name may be longer than the kernel's 64-byte limit; kubelet sets one).
        hostname = pod.hostname or os.uname().nodename

        def rest() -> None:
            pdir.mkdir(mode=0o711)
            etcfiles.write(pdir / "hostname", hostname + "\n")
            etcfiles.write(pdir / "resolv.conf", resolv_conf(dns))
            if pod.pid == "pod":
                self._start_init(pod)
            if pod.ipc != "node":
                # One /dev/shm for the pod (the pause container's, elsewhere).
                (pdir / "shm").mkdir(mode=0o700)
                _core.mount_tmpfs(str(pdir / "shm"), SHM_SIZE)
                os.chmod(pdir / "shm", 0o1777)
            for kind, path in pod.ns_paths.items():  # recorded by run()
                if kind != "net":
                    _core.ns_pin(path, kind, hostname if kind == "uts" else None)

        if pin is not None and not pin.wait():
            _core.ns_pin(pod.ns_paths["net"], "net", None)  # again, for its error
        if pending is not None:
            # The CNI plugins (most of a pod's making, ~15 ms of execs) set
            # the namespace up while the rest is made, in this thread, as
            # soon as the first one has its config.
            ips = list(pending.run(meanwhile=lambda: (rest(), self._reserve(pod))).ips)
            pod.ip, pod.additional_ips = (ips[0], ips[1:]) if ips else ("", [])
        else:
            rest()
        etcfiles.write(pdir / "hosts", Path("/etc/hosts").read_text()
                       if pod.network == "node" else
                       etcfiles.hosts([(pod.ip, hostname)] if pod.ip else [], []))

    def _reserve(self, pod: Pod) -> None:
        """The layers of the pod's first container, made while its CNI
        plugins run (this thread waits on them anyway): CreateContainer then
        only puts them on its image. Not kept anywhere but here: a daemon
        restart sweeps them (container layers no row names)."""
        cid = generate_id()
        try:
            if not reserve_container_layers(self.containers.driver, cid):
                return
        except (OSError, DockyardError):
            return  # made as usual at CreateContainer
        with self._lock:
            self._reserved[pod.id] = cid

    def _drop_reserved(self, pod_id: str) -> None:
        with self._lock:
            cid = self._reserved.pop(pod_id, None)
        if cid is not None:
            remove_container_layers(self.containers.driver, cid)

    def reserved(self) -> set[str]:
        """Layer IDs made ahead for pods' containers (not orphans)."""
        with self._lock:
            ids = set(self._reserved.values())
        return ids | {init_id(i) for i in ids}

    def _start_init(self, pod: Pod) -> None:
        """The shared PID namespace's init (`dockyard-shim pod-init`)."""
        r = subprocess.run([_core.shim_path(), "pod-init"], capture_output=True, timeout=30)
        if r.returncode != 0 or not r.stdout.strip().isdigit():
            raise DockyardError("starting the pod's PID namespace failed: "
                                + (r.stderr.decode(errors="replace").strip() or "no pid"))
        pod.init_pid = int(r.stdout)
        # a daemon crash from here on still kills it (a power cut kills it anyway)
        self.records.save(pod, durable=False)

    def _kill_init(self, pod: Pod) -> None:
        """Kill the pod's init, and with it every process of its PID namespace."""
        if not pod.init_pid:
            return
        try:
            with open(f"/proc/{pod.init_pid}/comm") as f:
                ours = f.read().strip() == "pod-init"
        except OSError:
            ours = False
        if ours:
            os.kill(pod.init_pid, signal.SIGKILL)
        pod.init_pid = 0

    def _teardown(self, pod: Pod) -> None:
        """Release the pod's network (idempotent)."""
        if pod.cni_attached and self.network is not None:
            self.network.delete(pod.id, pod.ns_paths.get("net") or None, pod=self._ref(pod))
        pod.cni_attached = False

    @staticmethod
    def _ref(pod: Pod) -> PodRef:
        meta = pod.config.get("metadata") or {}
        return PodRef(meta.get("name", pod.name), pod.namespace, pod.uid)

    def _forget(self, pod: Pod) -> None:
        self._drop_reserved(pod.id)
        self._kill_init(pod)
        try:
            _core.unmount(str(self.pod_dir(pod.id) / "shm"), detach=True)
        except (OSError, MountError):
            pass
        for path in pod.ns_paths.values():
            _core.ns_unpin(path)
        shutil.rmtree(self.ns_dir / pod.id, ignore_errors=True)
        shutil.rmtree(self.pod_dir(pod.id), ignore_errors=True)
        self.records.delete(pod.id)

    def get(self, pod_id: str) -> Pod:
        return self.records.get(pod_id)

    def all(self) -> list[Pod]:
        return self.records.all()

    def stop(self, pod_id: str) -> None:
        """Kill the pod's containers and release its network; idempotent, and
        a pod already removed is fine (kubelet stops more than once)."""
        try:
            pod = self.records.get(pod_id)
        except NotFound:
            return
        for pc in self.records.containers(pod.id):
            try:
                self.containers.stop(pc.id, STOP_TIMEOUT)
            except NotFound:
                pass
        self._drop_reserved(pod.id)
        with self._lock:
            self._teardown(pod)
            self._kill_init(pod)
            pod.state = NOTREADY
            self.records.save(pod)

    def remove(self, pod_id: str) -> None:
        """Remove the pod and every container in it; idempotent."""
        try:
            pod = self.records.get(pod_id)
        except NotFound:
            return
        for pc in self.records.containers(pod.id):
            self.remove_container(pc.id)
        with self._lock:
            self._teardown(pod)
            self._forget(pod)

    # --- containers in pods ------------------------------------------------
    def create_container(self, pod: Pod | str, pc: PodContainer, config: dict[str, Any],
                         hostconfig: dict[str, Any], image: Image | None = None) -> str:
        """A container of the pod (or its ID): Docker's config and host
        config, to which the pod's namespaces, cgroup parent and /etc files
        are added; `image`: the image config["Image"] names, if looked up already."""
        if isinstance(pod, str):
            pod = self.records.get(pod)
        if not pod.ready:
            raise Conflict(f"pod sandbox {pod.id} is not ready")
        hc = dict(hostconfig)
        hc["NetworkMode"] = "host" if pod.network == "node" else f"ns:{pod.ns_paths['net']}"
        if pod.ipc == "node":
            hc["IpcMode"] = "host"
        elif "ipc" in pod.ns_paths:
            hc["IpcMode"] = f"ns:{pod.ns_paths['ipc']}"
            hc["Binds"] = [*(hc.get("Binds") or []), f"{self.pod_dir(pod.id)}/shm:/dev/shm"]
        if pod.network == "node":
            hc["UTSMode"] = "host"
        elif "uts" in pod.ns_paths:
            hc["UTSMode"] = f"ns:{pod.ns_paths['uts']}"
        if pod.pid == "node":
            hc["PidMode"] = "host"
        elif hc.get("PidMode") == "pod":
            if not pod.init_pid:  # a pod without one shares with its POD-mode containers
                with self._lock:
                    self._start_init(pod)
            hc["PidMode"] = f"ns:/proc/{pod.init_pid}/ns/pid"
        sysctls = (pod.config.get("linux") or {}).get("sysctls") or {}
        if sysctls:
            hc["Sysctls"] = dict(sysctls) | dict(hc.get("Sysctls") or {})
        if pod.cgroup_parent and not hc.get("CgroupParent"):
            hc["CgroupParent"] = pod.cgroup_parent
        pdir = self.pod_dir(pod.id)
        cfg = dict(config)
        if pod.network != "node":  # the host's UTS namespace keeps its own name
            cfg["Hostname"] = (pdir / "hostname").read_text().strip()
        pc.pod_id = pod.id

        def prepare(cdir: Path) -> None:
            # The pod's own /etc files, shared as containerd binds the
            # sandbox's into each container: links, not copies (no inodes
            # to make).
            for f in ("hostname", "hosts", "resolv.conf"):
                try:
                    os.link(pdir / f, cdir / f)
                except OSError:  # elsewhere (another filesystem)
                    shutil.copyfile(pdir / f, cdir / f)

        def record(conn: sqlite3.Connection, c: Container) -> None:  # in the same commit
            pc.id, pc.created = c.id, now_ns()
            self.records.insert_container(conn, pc)

        with self._lock:
            reserved = self._reserved.pop(pod.id, None)
        name = safe_name(f"k8s_{pc.name}_{pod.name}_{pc.attempt}")
        # Not synced: a power cut takes the pod's namespaces, so kubelet
        # removes the pod and makes it again whatever rows it left; a lost
        # row's layers go at the next start (ContainerService._repair_layers).
        try:
            return self.containers.create(cfg, hc, name=name, prepare=prepare, record=record,
                                          durable=False, reserved=reserved, image=image).id
        except BaseException:
            if reserved is not None:  # refused before its layers were taken
                remove_container_layers(self.containers.driver, reserved)
            raise

    def remove_container(self, cid: str) -> None:
        """Idempotent: a container already gone is fine."""
        try:
            self.containers.remove(cid, force=True)
        except NotFound:
            pass
        except DockyardError as e:
            if "is already in progress" not in str(e):
                raise
        self.records.forget_container(cid)


def resolv_conf(dns: dict[str, list[str]] | None) -> str:
    """The pod's resolv.conf: the CRI's DNSConfig, or the host's without one."""
    if not dns or not any(dns.get(k) for k in ("servers", "searches", "options")):
        return etcfiles.host_resolv()
    lines = [f"nameserver {s}" for s in dns.get("servers") or []]
    if dns.get("searches"):
        lines.append("search " + " ".join(dns["searches"]))
    if dns.get("options"):
        lines.append("options " + " ".join(dns["options"]))
    return "\n".join(lines) + "\n"


def safe_name(name: str) -> str:
    """A Docker container name from CRI metadata (which may hold any bytes)."""
    out = "".join(ch if ch.isalnum() or ch in "_.-" else "-" for ch in name)
    if not out[:1].isalnum():
        out = "x" + out
    return out

