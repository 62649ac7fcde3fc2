"""The CRI RuntimeService over the engine: pods (PodService), their
containers (ContainerService), exec, stats and logs. Each RPC runs on one of
the gRPC server's threads and calls the (blocking) engine from there."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from google.protobuf.json_format import MessageToDict

import dockyard

from ..containers import stats as cstats
from ..containers.attach import ERR, EXIT, OUT, START, START_RESULT
from ..containers.execs import Exec, ExecStore, spawn_and_connect
from ..containers.model import Container
from ..containers.update import update as update_container
from ..engine import Engine
from ..errors import Conflict, InvalidParameter, NotFound
from ..ids import is_full_id
from ..imageconfig import parse_time
from ..pods.records import READY, Pod, PodContainer
from ..pods.service import PodService
from . import convert
from .errors import rpc
from .streaming import StreamingServer, validate

API_VERSION = "v1"


def to_dict(msg: Any) -> dict[str, Any]:
    return MessageToDict(msg, preserving_proto_field_name=True)


def _has(msg: Any, field: str) -> bool:
    """A filter's optional field set (the stats filters have no state at all)."""
    return field in msg.DESCRIPTOR.fields_by_name and msg.HasField(field)


def _ns(rfc3339: str) -> int:
    t = parse_time(rfc3339) if rfc3339 and not rfc3339.startswith("0001-") else 0.0
    return int(t * 1_000_000_000)


class RuntimeService:
    def __init__(self, pb: Any, engine: Engine, pods: PodService, execs: ExecStore,
                 started: Callable[[str], None], network_ready: Callable[[], tuple[bool, str]]
                 ) -> None:
        self.pb = pb
        self.engine = engine
        self.pods = pods
        self.ctrs = engine.containers
        self.execs = execs
        #: the daemon's exit monitor, told of every container started
        self.started = started
        self.network_ready = network_ready
        #: the server Exec, Attach and PortForward send their clients to (set by CRIServer)
        self.streaming: StreamingServer | None = None
        #: the daemon's event loop (set by CRIServer.start): the handlers run
        #: on the gRPC server's threads
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- runtime ------------------------------------------------------------
    @rpc
    def Version(self, req: Any, ctx: Any) -> Any:
        return self.pb.VersionResponse(version="0.1.0", runtime_name="dockyard",
                                       runtime_version=dockyard.__version__,
                                       runtime_api_version=API_VERSION)

    @rpc
    def Status(self, req: Any, ctx: Any) -> Any:
        ok, why = self.network_ready()
        conds = [self.pb.RuntimeCondition(type="RuntimeReady", status=True),
                 self.pb.RuntimeCondition(type="NetworkReady", status=ok,
                                          reason="" if ok else "NetworkPluginNotReady",
                                          message="" if ok else why)]
        return self.pb.StatusResponse(status=self.pb.RuntimeStatus(conditions=conds))

    # --- pods ---------------------------------------------------------------
    @rpc
    def RunPodSandbox(self, req: Any, ctx: Any) -> Any:
        cfg = to_dict(req.config)
        meta = cfg.get("metadata") or {}
        if not meta.get("name") or not meta.get("namespace") or not meta.get("uid"):
            raise InvalidParameter("pod sandbox metadata needs a name, a namespace and a uid")
        linux = cfg.get("linux") or {}
        modes = convert.ns_modes(linux.get("security_context"))
        pod = Pod(id="", name="_".join((meta["name"], meta["namespace"], meta["uid"],
                                        str(meta.get("attempt", 0)))),
                  namespace=meta["namespace"], uid=meta["uid"],
                  attempt=int(meta.get("attempt", 0)), labels=cfg.get("labels") or {},
                  annotations=cfg.get("annotations") or {}, created=0,
                  hostname=cfg.get("hostname", ""), log_directory=cfg.get("log_directory", ""),
                  network="node" if modes["network"] == convert.NODE else "pod",
                  ipc="node" if modes["ipc"] == convert.NODE else "pod",
                  pid={convert.NODE: "node", convert.POD: "pod"}.get(modes["pid"],
                                                                     "container"),
                  cgroup_parent=linux.get("cgroup_parent", ""),
                  runtime_handler=req.runtime_handler, config=cfg)
        ports = [{"hostPort": int(p.get("host_port", 0)),
                  "containerPort": int(p.get("container_port", 0)),
                  "protocol": p.get("protocol", "TCP").lower(), "hostIP": p.get("host_ip", "")}
                 for p in cfg.get("port_mappings") or []]
        pod = self.pods.run(pod, cfg.get("dns_config"), ports)
        return self.pb.RunPodSandboxResponse(pod_sandbox_id=pod.id)

    @rpc
    def StopPodSandbox(self, req: Any, ctx: Any) -> Any:
        self.pods.stop(req.pod_sandbox_id)
        return self.pb.StopPodSandboxResponse()

    @rpc
    def RemovePodSandbox(self, req: Any, ctx: Any) -> Any:
        self.pods.remove(req.pod_sandbox_id)
        return self.pb.RemovePodSandboxResponse()

    def _pod_meta(self, p: Pod) -> Any:
        meta = p.config.get("metadata") or {}
        return self.pb.PodSandboxMetadata(name=meta.get("name", ""), uid=p.uid,
                                          namespace=p.namespace, attempt=p.attempt)

    def _pod_state(self, p: Pod) -> int:
        return self.pb.SANDBOX_READY if p.state == READY else self.pb.SANDBOX_NOTREADY

    @rpc
    def PodSandboxStatus(self, req: Any, ctx: Any) -> Any:
        p = self.pods.get(req.pod_sandbox_id)
        mode = {"node": self.pb.NODE, "pod": self.pb.POD, "container": self.pb.CONTAINER}
        ns = self.pb.NamespaceOption(network=mode[p.network], ipc=mode[p.ipc], pid=mode[p.pid])
        net = self.pb.PodSandboxNetworkStatus(
            ip=p.ip, additional_ips=[self.pb.PodIP(ip=ip) for ip in p.additional_ips])
        status = self.pb.PodSandboxStatus(
            id=p.id, metadata=self._pod_meta(p), state=self._pod_state(p), created_at=p.created,
            network=net, linux=self.pb.LinuxPodSandboxStatus(
                namespaces=self.pb.Namespace(options=ns)),
            labels=p.labels, annotations=p.annotations, runtime_handler=p.runtime_handler)
        info = {"info": json.dumps({"pid": p.init_pid, "netns": p.ns_paths.get("net", "")})} \
            if req.verbose else {}
        return self.pb.PodSandboxStatusResponse(status=status, info=info,
                                                timestamp=time.time_ns())

    def _pods_matching(self, f: Any | None) -> list[Pod]:
        """The pods a PodSandboxFilter or PodSandboxStatsFilter selects."""
        return [p for p in self.pods.all() if f is None or (
            (not f.id or p.id.startswith(f.id))
            and not (_has(f, "state") and f.state.state != self._pod_state(p))
            and convert.labels_match(p.labels, dict(f.label_selector)))]

    @rpc
    def ListPodSandbox(self, req: Any, ctx: Any) -> Any:
        f = req.filter if req.HasField("filter") else None
        out = []
        for p in self._pods_matching(f):
            out.append(self.pb.PodSandbox(
                id=p.id, metadata=self._pod_meta(p), state=self._pod_state(p),
                created_at=p.created, labels=p.labels, annotations=p.annotations,
                runtime_handler=p.runtime_handler))
        return self.pb.ListPodSandboxResponse(items=out)

    # --- containers ---------------------------------------------------------
    def _create(self, pod_id: str, cfg: dict[str, Any]) -> str:
        pod = self.pods.get(pod_id)
        meta = cfg.get("metadata") or {}
        if not meta.get("name"):
            raise InvalidParameter("container metadata needs a name")
        want = (cfg.get("image") or {}).get("image", "")
        img = self.engine.images.resolve(want)
        config, hostconfig, mounts, log_path = convert.container(cfg, pod.log_directory,
                                                                 img.id)
        pc = PodContainer(id="", pod_id=pod.id, name=meta["name"],
                          attempt=int(meta.get("attempt", 0)), labels=cfg.get("labels") or {},
                          annotations=cfg.get("annotations") or {}, image=want,
                          log_path=log_path, created=0)
        config["Labels"] = dict(config["Labels"]) | {
            "io.kubernetes.sandbox.id": pod.id, "io.kubernetes.pod.namespace": pod.namespace,
            "io.kubernetes.pod.uid": pod.uid, "io.kubernetes.container.name": meta["name"]}
        pc.mounts = mounts
        return self.pods.create_container(pod, pc, config, hostconfig, image=img)

    @rpc
    def CreateContainer(self, req: Any, ctx: Any) -> Any:
        cid = self._create(req.pod_sandbox_id, to_dict(req.config))
        return self.pb.CreateContainerResponse(container_id=cid)

    def _pc(self, ref: str) -> tuple[Container, PodContainer]:
        c = self.ctrs.get(ref)
        pc = self.pods.records.container(c.id)
        if pc is None:
            raise NotFound(f"container {ref!r} is not a CRI container")
        return c, pc

    def _start(self, ref: str) -> str:
        # kubelet's full ID needs no container lookup here: start makes its own
        if not (is_full_id(ref) and self.pods.records.has_container(ref)):
            ref = self._pc(ref)[0].id
        self.ctrs.start(ref)
        return ref

    @rpc
    def StartContainer(self, req: Any, ctx: Any) -> Any:
        cid = self._start(req.container_id)
        loop = self.loop
        assert loop is not None

        def tell() -> None:
            loop.call_soon_threadsafe(self.started, cid)

        # The exit monitor (a DB lookup, in the daemon's loop) is told once
        # the answer is out, not while it goes (the shim outlives an early exit).
        if not ctx.add_callback(tell):
            tell()
        return self.pb.StartContainerResponse()

    @rpc
    def StopContainer(self, req: Any, ctx: Any) -> Any:
        try:
            c, _ = self._pc(req.container_id)
        except NotFound:
            return self.pb.StopContainerResponse()  # idempotent
        self.ctrs.stop(c.id, int(req.timeout))
        return self.pb.StopContainerResponse()

    @rpc
    def RemoveContainer(self, req: Any, ctx: Any) -> Any:
        try:
            c, _ = self._pc(req.container_id)
        except NotFound:
            return self.pb.RemoveContainerResponse()  # idempotent
        self.pods.remove_container(c.id)
        return self.pb.RemoveContainerResponse()

    def _state(self, c: Container) -> int:
        st = c.state
        if st.get("Running") and not st.get("Prepared"):
            return self.pb.CONTAINER_RUNNING
        if _ns(st.get("StartedAt", "")) or _ns(st.get("FinishedAt", "")) or \
                st.get("Status") in ("exited", "dead"):
            return self.pb.CONTAINER_EXITED
        return self.pb.CONTAINER_CREATED

    def _meta(self, pc: PodContainer) -> Any:
        return self.pb.ContainerMetadata(name=pc.name, attempt=pc.attempt)

    def _listed(self, f: Any | None = None) -> list[tuple[Container, PodContainer]]:
        """The CRI containers a ContainerFilter or ContainerStatsFilter selects."""
        out = []
        for pc in self.pods.records.containers():
            try:
                c = self.ctrs.get(pc.id)
            except NotFound:
                continue
            if f is None or (
                    (not f.id or c.id.startswith(f.id))
                    and (not f.pod_sandbox_id or pc.pod_id.startswith(f.pod_sandbox_id))
                    and not (_has(f, "state") and f.state.state != self._state(c))
                    and convert.labels_match(pc.labels, dict(f.label_selector))):
                out.append((c, pc))
        return out

    @rpc
    def ListContainers(self, req: Any, ctx: Any) -> Any:
        f = req.filter if req.HasField("filter") else None
        items = []
        for c, pc in self._listed(f):
            state = self._state(c)
            items.append(self.pb.Container(
                id=c.id, pod_sandbox_id=pc.pod_id, metadata=self._meta(pc),
                image=self.pb.ImageSpec(image=pc.image), image_ref=c.image_id,
                image_id=c.image_id, state=state, created_at=pc.created, labels=pc.labels,
                annotations=pc.annotations))
        return self.pb.ListContainersResponse(containers=items)

    @rpc
    def ContainerStatus(self, req: Any, ctx: Any) -> Any:
        c, pc = self._pc(req.container_id)
        st = c.state
        state = self._state(c)
        reason = ""
        if state == self.pb.CONTAINER_EXITED:
            reason = "OOMKilled" if st.get("OOMKilled") else \
                "Completed" if int(st.get("ExitCode") or 0) == 0 else "Error"
        mounts = [self.pb.Mount(
            container_path=m.get("container_path", ""), host_path=m.get("host_path", ""),
            readonly=bool(m.get("readonly")), selinux_relabel=bool(m.get("selinux_relabel")),
            propagation=getattr(self.pb, m.get("propagation", "PROPAGATION_PRIVATE")))
            for m in pc.mounts]
        status = self.pb.ContainerStatus(
            id=c.id, metadata=self._meta(pc), state=state, created_at=pc.created,
            started_at=_ns(st.get("StartedAt", "")), finished_at=_ns(st.get("FinishedAt", "")),
            exit_code=int(st.get("ExitCode") or 0), image=self.pb.ImageSpec(image=pc.image),
            image_ref=c.image_id, image_id=c.image_id, reason=reason,
            message=st.get("Error", ""), labels=pc.labels, annotations=pc.annotations,
            mounts=mounts, log_path=pc.log_path)
        info = {"info": json.dumps({"pid": int(st.get("Pid") or 0), "sandboxID": pc.pod_id})} \
            if req.verbose else {}
        return self.pb.ContainerStatusResponse(status=status, info=info)

    @rpc
    def UpdateContainerResources(self, req: Any, ctx: Any) -> Any:
        c, _ = self._pc(req.container_id)
        body = convert.resources(to_dict(req.linux)) if req.HasField("linux") else {}
        if body:
            update_container(self.ctrs, c.id, body)
        return self.pb.UpdateContainerResourcesResponse()

    @rpc
    def ReopenContainerLog(self, req: Any, ctx: Any) -> Any:
        c, _ = self._pc(req.container_id)
        self.ctrs.reopen_log(c.id)
        return self.pb.ReopenContainerLogResponse()

    # --- exec ---------------------------------------------------------------
    @rpc
    def ExecSync(self, req: Any, ctx: Any) -> Any:
        c, _ = self._pc(req.container_id)
        if not list(req.cmd):
            raise InvalidParameter("exec needs a command")
        cmd = list(req.cmd)
        e = self.execs.create(c.id, {"Cmd": cmd, "AttachStdout": True, "AttachStderr": True})
        self.execs.begin(e.id)
        # the exec's streams are the daemon loop's
        assert self.loop is not None
        code, out, err = asyncio.run_coroutine_threadsafe(
            self._exec_streams(e, cmd, float(req.timeout) if req.timeout else None),
            self.loop).result()
        return self.pb.ExecSyncResponse(stdout=out, stderr=err, exit_code=code)

    async def _exec_streams(self, e: Exec, cmd: list[str], timeout: float | None
                            ) -> tuple[int, bytes, bytes]:
        """Run exec `e` (created and begun) to its end: exit code, stdout, stderr."""
        conn = await spawn_and_connect(self.execs, e, 6)
        out, err = bytearray(), bytearray()

        async def pump() -> int:
            await conn.send(START)
            while True:
                kind, payload = await conn.recv()
                if kind == OUT:
                    out.extend(payload)
                elif kind == ERR:
                    err.extend(payload)
                elif kind == START_RESULT:
                    res = json.loads(payload or b"{}")
                    if res.get("error"):
                        self.execs.failed(e)
                        raise InvalidParameter(f"exec failed: {res['error']}")
                elif kind == EXIT:
                    info = json.loads(payload or b"{}")
                    self.execs.finish(e, info)
                    return int(e.exit_code or 0)
                elif kind == -1:
                    await asyncio.to_thread(self.execs.reconcile, e)
                    return int(e.exit_code or 0)

        try:
            code = await asyncio.wait_for(pump(), timeout)
        except asyncio.TimeoutError:
            if e.pid:
                try:
                    os.kill(e.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise TimeoutError(f"command {cmd!r} timed out after {timeout:g}s") from None
        finally:
            conn.close()
        return code, bytes(out), bytes(err)

    # --- streaming: URLs of the streaming server ----------------------------------
    def _stream_url(self, kind: str, req: Any) -> str:
        assert self.streaming is not None
        fields = to_dict(req)
        validate(kind, fields)
        if kind != "portforward":
            c, _ = self._pc(req.container_id)
            if self._state(c) != self.pb.CONTAINER_RUNNING:
                raise Conflict(f"container {c.id} is not running")
            fields["container_id"] = c.id
        else:
            fields["pod_sandbox_id"] = (self.pods.get(req.pod_sandbox_id)).id
        return self.streaming.url(kind, fields)

    @rpc
    def Exec(self, req: Any, ctx: Any) -> Any:
        return self.pb.ExecResponse(url=self._stream_url("exec", req))

    @rpc
    def Attach(self, req: Any, ctx: Any) -> Any:
        return self.pb.AttachResponse(url=self._stream_url("attach", req))

    @rpc
    def PortForward(self, req: Any, ctx: Any) -> Any:
        return self.pb.PortForwardResponse(url=self._stream_url("portforward", req))

    # --- stats --------------------------------------------------------------
    def _stats(self, c: Container, pc: PodContainer) -> Any:
        pb = self.pb
        now = time.time_ns()
        cpu = pb.CpuUsage(timestamp=now)
        mem = pb.MemoryUsage(timestamp=now)
        if c.running:
            s = cstats.sample(self.ctrs, c)
            total = ((s.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage", 0)
            cpu.usage_core_nano_seconds.value = int(total)
            m = s.get("memory_stats") or {}
            usage = int(m.get("usage") or 0)
            ms = m.get("stats") or {}
            inactive = int(ms.get("total_inactive_file", ms.get("inactive_file", 0)) or 0)
            mem.working_set_bytes.value = max(0, usage - inactive)
            mem.usage_bytes.value = usage
            mem.rss_bytes.value = int(ms.get("total_rss", ms.get("anon", 0)) or 0)
            if m.get("limit"):
                mem.available_bytes.value = max(0, int(m["limit"]) - mem.working_set_bytes.value)
            mem.page_faults.value = int(ms.get("total_pgfault", ms.get("pgfault", 0)) or 0)
            mem.major_page_faults.value = int(ms.get("total_pgmajfault",
                                                     ms.get("pgmajfault", 0)) or 0)
        fs = pb.FilesystemUsage(timestamp=now, fs_id=pb.FilesystemIdentifier(
            mountpoint=str(self.engine.driver.home)))
        # as `docker ps -s` counts SizeRw: what the container changed over its init layer
        driver, init = self.engine.driver, f"{c.id}-init"
        fs.used_bytes.value = driver.diff_size(c.id, init)
        fs.inodes_used.value = len(driver.changes(c.id, init))
        return pb.ContainerStats(
            attributes=pb.ContainerAttributes(id=c.id, metadata=self._meta(pc),
                                              labels=pc.labels, annotations=pc.annotations),
            cpu=cpu, memory=mem, writable_layer=fs)

    @rpc
    def ContainerStats(self, req: Any, ctx: Any) -> Any:
        c, pc = self._pc(req.container_id)
        return self.pb.ContainerStatsResponse(stats=self._stats(c, pc))

    @rpc
    def ListContainerStats(self, req: Any, ctx: Any) -> Any:
        f = req.filter if req.HasField("filter") else None
        return self.pb.ListContainerStatsResponse(
            stats=[self._stats(c, pc) for c, pc in self._listed(f)])

    def _pod_stats(self, p: Pod) -> Any:
        pb = self.pb
        now = time.time_ns()
        ctrs = [self._stats(c, pc) for c, pc in self._listed() if pc.pod_id == p.id]
        cpu = pb.CpuUsage(timestamp=now)
        cpu.usage_core_nano_seconds.value = sum(
            x.cpu.usage_core_nano_seconds.value for x in ctrs)
        mem = pb.MemoryUsage(timestamp=now)
        for f in ("working_set_bytes", "usage_bytes", "rss_bytes", "page_faults",
                  "major_page_faults"):
            getattr(mem, f).value = sum(getattr(x.memory, f).value for x in ctrs)
        attrs = pb.PodSandboxAttributes(id=p.id, metadata=self._pod_meta(p), labels=p.labels,
                                        annotations=p.annotations)
        return pb.PodSandboxStats(attributes=attrs, linux=pb.LinuxPodSandboxStats(
            cpu=cpu, memory=mem, containers=ctrs))

    @rpc
    def PodSandboxStats(self, req: Any, ctx: Any) -> Any:
        return self.pb.PodSandboxStatsResponse(
            stats=self._pod_stats(self.pods.get(req.pod_sandbox_id)))

    @rpc
    def ListPodSandboxStats(self, req: Any, ctx: Any) -> Any:
        f = req.filter if req.HasField("filter") else None
        return self.pb.ListPodSandboxStatsResponse(
            stats=[self._pod_stats(p) for p in self._pods_matching(f)])

    @rpc
    def RuntimeConfig(self, req: Any, ctx: Any) -> Any:
        # kubelet takes its cgroup driver from here: Dockyard's is cgroupfs.
        return self.pb.RuntimeConfigResponse(linux=self.pb.LinuxRuntimeConfiguration(
            cgroup_driver=self.pb.CGROUPFS))

    @rpc
    def UpdateRuntimeConfig(self, req: Any, ctx: Any) -> Any:
        # kubelet pushes the node's pod CIDR; the CNI configuration already says
        # where pod addresses come from.
        return self.pb.UpdateRuntimeConfigResponse()
