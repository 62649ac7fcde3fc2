"""The Kubernetes CRI endpoint (`dockyard daemon --cri`), driven through its
socket with a gRPC client made from the same proto: what kubelet does to run
a pod (runtime info, images, pod and container lifecycles, exec, stats,
idempotent stops and removes), on real containers."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import threading
import time

import grpc
import pytest

from conftest import Daemon, assert_no_network_left, stop_and_check
from registries import push_image, sample_layers

from dockyard import _core

from dockyard.cri import proto

pb, svc = proto.load()


class NodeDaemon(Daemon):
    """The daemon in a network namespace of its own, the pods' "node": the CNI
    plugins make their bridge and rules there."""

    def __init__(self, base, netns: str, extra: list[str]) -> None:
        super().__init__(base, "overlay", extra)
        self.netns = netns

    def command(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", *super().command()]

    def ns(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}", *args],
                              capture_output=True, timeout=30, **kw)


CONFLIST = {"cniVersion": "1.0.0", "name": "pods", "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]],
              "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": True}}]}


@pytest.fixture(scope="module")
def cri(tmp_path_factory, busybox_tar):
    base = tmp_path_factory.mktemp("cri")
    sock = base / "cri.sock"
    conf = base / "net.d"
    conf.mkdir()
    plugins = json.loads(json.dumps(CONFLIST))
    plugins["plugins"][0]["ipam"]["dataDir"] = str(base / "ipam")
    (conf / "10-pods.conflist").write_text(json.dumps(plugins))
    ns = f"dyc-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    d = NodeDaemon(base, ns, ["--cri", f"unix://{sock}", "--cni-conf-dir", str(conf)])
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        with grpc.insecure_channel(f"unix://{sock}") as ch:
            yield d, svc.RuntimeServiceStub(ch), svc.ImageServiceStub(ch)
    finally:
        try:
            stop_and_check(d, base)
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False)
        assert_no_network_left()


def pod_config(name: str, **kw) -> pb.PodSandboxConfig:
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, namespace="default", uid=f"uid-{name}",
                                       attempt=0),
        hostname=name, labels={"app": name}, annotations={"a/b": "c"}, **kw)


def ctr_config(name: str, *cmd: str, **kw) -> pb.ContainerConfig:
    return pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name),
                              image=pb.ImageSpec(image="busybox"), command=list(cmd),
                              labels={"ctr": name}, annotations={"x": "y"}, **kw)


@pytest.fixture
def pod(cri):
    _, rt, _ = cri
    ids = []

    def make(name: str, **kw) -> str:
        cfg = pod_config(name, **kw)
        pid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
        ids.append((pid, cfg))
        return pid

    yield make
    for pid, _ in ids:
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid))
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid))


def test_version_and_status(cri):
    _, rt, _ = cri
    v = rt.Version(pb.VersionRequest())
    assert (v.runtime_name, v.runtime_api_version) == ("dockyard", "v1")
    conds = {c.type: c.status for c in rt.Status(pb.StatusRequest()).status.conditions}
    assert conds == {"RuntimeReady": True, "NetworkReady": True}


def test_unimplemented_rpc_answers(cri):
    _, rt, _ = cri
    with pytest.raises(grpc.RpcError) as e:
        rt.CheckpointContainer(pb.CheckpointContainerRequest(container_id="x"), timeout=10)
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_images(cri):
    _, _, im = cri
    images = im.ListImages(pb.ListImagesRequest()).images
    bb = [i for i in images if "busybox:latest" in i.repo_tags]
    assert len(bb) == 1 and bb[0].id.startswith("sha256:") and bb[0].size > 0
    st = im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="busybox")))
    assert st.image.id == bb[0].id
    # an unknown image is no error: the status is just empty (kubelet then pulls)
    st = im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image="nope:1")))
    assert not st.HasField("image")
    im.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image="nope:1")))  # idempotent
    fs = im.ImageFsInfo(pb.ImageFsInfoRequest()).image_filesystems[0]
    assert fs.used_bytes.value > 0 and fs.timestamp > 0 and fs.fs_id.mountpoint


def test_pod_and_container_lifecycle(cri, pod):
    d, rt, _ = cri
    pid = pod("life")
    st = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pid)).status
    assert st.state == pb.SANDBOX_READY and st.metadata.name == "life"
    assert dict(st.labels) == {"app": "life"} and dict(st.annotations) == {"a/b": "c"}
    listed = rt.ListPodSandbox(pb.ListPodSandboxRequest(filter=pb.PodSandboxFilter(
        label_selector={"app": "life"}))).items
    assert [p.id for p in listed] == [pid]
    # the same metadata again is refused while the first pod exists
    with pytest.raises(grpc.RpcError):
        rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("life")))

    cfg = ctr_config("main", "sh", "-c", "echo out; echo err >&2; exec sleep 1000")
    cid = rt.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=pid, config=cfg, sandbox_config=pod_config("life"))).container_id
    s = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert s.state == pb.CONTAINER_CREATED and s.metadata.name == "main"
    assert dict(s.labels) == {"ctr": "main"} and dict(s.annotations) == {"x": "y"}
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    s = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert s.state == pb.CONTAINER_RUNNING and s.started_at > 0

    r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid,
                                       cmd=["sh", "-c", "echo hi; echo no >&2; exit 3"]))
    assert (r.stdout, r.stderr, r.exit_code) == (b"hi\n", b"no\n", 3)
    # the pod's hostname, and its network namespace: the pinned one
    r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["hostname"]))
    assert r.stdout == b"life\n"

    stats = rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
    assert stats.attributes.id == cid and stats.cpu.timestamp > 0
    assert stats.memory.working_set_bytes.value > 0
    listed = rt.ListContainerStats(pb.ListContainerStatsRequest(
        filter=pb.ContainerStatsFilter(pod_sandbox_id=pid))).stats
    assert [x.attributes.id for x in listed] == [cid]

    ctrs = rt.ListContainers(pb.ListContainersRequest(filter=pb.ContainerFilter(
        pod_sandbox_id=pid, state=pb.ContainerStateValue(state=pb.CONTAINER_RUNNING))))
    assert [c.id for c in ctrs.containers] == [cid]

    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0))
    s = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert s.state == pb.CONTAINER_EXITED and s.exit_code == 137 and s.reason == "Error"
    assert s.finished_at >= s.started_at
    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0))  # idempotent
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))  # idempotent
    assert not rt.ListContainers(pb.ListContainersRequest()).containers

    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid))
    st = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pid)).status
    assert st.state == pb.SANDBOX_NOTREADY
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid))
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid))  # idempotent
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid))
    with pytest.raises(grpc.RpcError) as e:
        rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pid))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_containers_share_the_pod_network(cri, pod):
    d, rt, _ = cri
    pid = pod("shared")
    ids = []
    for name in ("a", "b"):
        cid = rt.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=pid, config=ctr_config(name, "sleep", "1000"))).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        ids.append(cid)
    nets = {rt.ExecSync(pb.ExecSyncRequest(container_id=c, cmd=["readlink", "/proc/self/ns/net"]
                                           )).stdout for c in ids}
    pin = next((d.base / "exec" / "pods" / pid).glob("net"))
    assert nets == {f"net:[{os.stat(pin).st_ino}]\n".encode()}
    # a pod's network is its own, not the host's
    assert os.readlink("/proc/self/ns/net") + "\n" != nets.pop().decode()


def test_exec_sync_timeout(cri, pod):
    _, rt, _ = cri
    pid = pod("timeout")
    cid = rt.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=pid, config=ctr_config("t", "sleep", "1000"))).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    t = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sleep", "30"], timeout=1))
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t < 25


def test_pod_without_hostname_gets_the_nodes(cri):
    """No hostname in the config: the node's, as containerd and CRI-O (a pod's
    name can be longer than a hostname may be: critest's are)."""
    _, rt, _ = cri
    cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(
        name="a-pod-whose-name-is-longer-than-the-64-bytes-a-hostname-may-have-" + "x" * 8,
        namespace="default", uid="uid-nohost", attempt=0))
    pid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    try:
        cid = rt.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=pid, config=ctr_config("h", "sleep", "1000"),
            sandbox_config=cfg)).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["hostname"]))
        assert r.stdout.decode() == os.uname().nodename + "\n"
    finally:
        rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid))
        rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid))


def test_pods_on_the_cni_network(cri, pod):
    """Two pods on the CNI bridge reach each other by pod IP, and a hostPort
    reaches a pod from the node (portmap)."""
    d, rt, _ = cri
    server = pod("server", port_mappings=[pb.PortMapping(container_port=8080, host_port=18080)])
    client = pod("client")
    ips = {p: rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=p)).status.network.ip
           for p in (server, client)}
    assert all(ip.startswith("10.88.0.") for ip in ips.values()) and len(set(ips.values())) == 2
    srv = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=server, config=ctr_config(
        "srv", "sh", "-c", "while true; do echo pong | nc -l -p 8080; done"))).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=srv))
    cli = rt.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=client, config=ctr_config("cli", "sleep", "1000"))).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cli))
    deadline = time.monotonic() + 20
    while True:
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cli, cmd=[
            "sh", "-c", f"echo ping | nc -w 2 {ips[server]} 8080"], timeout=10))
        if r.stdout == b"pong\n" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.stdout == b"pong\n"
    # the node reaches the pod through its hostPort
    r = d.ns("python3", "-c", "import socket; s = socket.create_connection(('10.88.0.1', 18080), 5);"
             " s.sendall(b'ping\\n'); print(s.recv(10))")
    assert b"pong" in r.stdout, r.stderr


def _layers(d) -> set[str]:
    home = d.root / "overlay"
    return {p.name for p in home.iterdir()
            if not p.name.startswith(".") and p.name != "l" and (p / "diff").exists()}


def test_first_container_layers_made_while_the_plugins_run(cri, pod):
    """A CNI pod's first container gets layers made while the pod's plugins
    ran: CreateContainer puts them on its image (the container runs on it);
    `system check` counts them as the pod's, and they go with a pod that
    never had a container."""
    d, rt, _ = cri
    before = _layers(d)
    p = pod("reserve")
    ahead = _layers(d) - before
    assert len(ahead) == 2 and {i.removesuffix("-init") for i in ahead} == {min(ahead)}
    r = d.cli("system", "check", check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    first = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=p, config=ctr_config(
        "first", "cat", "/etc/os-release"))).container_id
    assert {first, f"{first}-init"} == ahead
    second = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=p, config=ctr_config(
        "second", "true"))).container_id
    assert second not in ahead
    # the same files as a container made the usual way
    assert d.cli("export", first).stdout == d.cli("export", second).stdout
    lonely = pod("reserve-unused")
    made = _layers(d) - before - {first, f"{first}-init", second, f"{second}-init"}
    assert len(made) == 2
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=lonely))
    assert not made & _layers(d)


def test_shared_pid_ipc_uts_namespaces(cri, pod):
    """A pod asking for one PID namespace gets an init of its own as PID 1
    (no pause image); IPC and UTS namespaces are the pod's pinned ones."""
    d, rt, _ = cri
    shared = pb.LinuxContainerSecurityContext(namespace_options=pb.NamespaceOption(
        pid=pb.POD))
    pid = pod("pidshare", linux=pb.LinuxPodSandboxConfig(security_context=pb.
              LinuxSandboxSecurityContext(namespace_options=pb.NamespaceOption(pid=pb.POD))))
    ids = []
    for name in ("one", "two"):
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pid, config=ctr_config(
            name, "sleep", f"100{len(ids)}", linux=pb.LinuxContainerConfig(
                security_context=shared)))).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        ids.append(cid)

    def run(cid: str, *cmd: str) -> bytes:
        return rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=list(cmd))).stdout

    assert run(ids[1], "cat", "/proc/1/comm") == b"pod-init\n"
    seen = run(ids[1], "sh", "-c", "cat /proc/[0-9]*/cmdline | tr '\\0' ' '")
    assert b"sleep 1000" in seen and b"sleep 1001" in seen
    pins = d.base / "exec" / "pods" / pid
    for kind in ("ipc", "uts"):
        want = f"{kind}:[{os.stat(pins / kind).st_ino}]\n".encode()
        assert {run(c, "readlink", f"/proc/self/ns/{kind}") for c in ids} == {want}
    # one /dev/shm for the pod
    run(ids[0], "sh", "-c", "echo shared > /dev/shm/x")
    assert run(ids[1], "cat", "/dev/shm/x") == b"shared\n"
    # the pod's stop ends its init, and every process of the namespace with it
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid))
    states = {rt.ContainerStatus(pb.ContainerStatusRequest(container_id=c)).status.state
              for c in ids}
    assert states == {pb.CONTAINER_EXITED}


def test_host_network_pod(cri, pod):
    d, rt, _ = cri
    pid = pod("hostnet", linux=pb.LinuxPodSandboxConfig(security_context=pb.
              LinuxSandboxSecurityContext(namespace_options=pb.NamespaceOption(
                  network=pb.NODE))))
    st = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pid)).status
    assert st.linux.namespaces.options.network == pb.NODE
    cid = rt.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=pid, config=ctr_config("h", "sleep", "1000"))).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["readlink", "/proc/self/ns/net"]))
    # the node's namespace: the daemon's own
    assert r.stdout.decode().strip() == d.ns("readlink", "/proc/self/ns/net").stdout.decode().strip()


def test_logs_in_the_cri_format_and_reopen(cri, pod, tmp_path):
    _, rt, _ = cri
    logdir = tmp_path / "logs"
    pid = pod("logs", log_directory=str(logdir))
    cfg = ctr_config("talk", "sh", "-c", "echo one; echo two >&2; read x; echo three; "
                     "exec sleep 1000", log_path="talk/0.log", stdin=True)
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pid,
                                                       config=cfg)).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    s = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    log = logdir / "talk" / "0.log"
    assert s.log_path == str(log)
    deadline = time.monotonic() + 20
    while log.read_text().count("\n") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = log.read_text().splitlines()
    assert [ln.split(" ", 1)[1] for ln in sorted(lines, key=lambda x: x.split()[1])] == \
        ["stderr F two", "stdout F one"]
    assert all(ln.split(" ", 1)[0].endswith("Z") for ln in lines)
    # kubelet's rotation: rename, then ask for a new file at the same path
    log.rename(log.with_suffix(".log.1"))
    rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid))
    assert log.exists() and log.read_text() == ""
    rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0))
    with pytest.raises(grpc.RpcError) as e:
        rt.ReopenContainerLog(pb.ReopenContainerLogRequest(container_id=cid))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def relay(netns: str, port: int) -> socket.socket:
    """127.0.0.1:`port` inside `netns` relayed to the host's 127.0.0.1:`port`
    (a registry on the host's loopback, for a daemon in its own namespace)."""
    fd = _core.netns_socket(netns, socket.AF_INET, socket.SOCK_STREAM)
    lsock = socket.socket(fileno=fd)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", port))
    lsock.listen(8)

    def pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            b.close()
            a.close()

    def serve() -> None:
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", port))
            threading.Thread(target=pipe, args=(conn, up), daemon=True).start()
            threading.Thread(target=pipe, args=(up, conn), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return lsock


def test_pull_with_auth_and_remove(cri, registry_factory):
    d, _, im = cri
    reg = registry_factory(auth="htpasswd", users={"kube": "let-me-in"})
    push_image(reg, "team/app", "v1", sample_layers())
    lsock = relay(f"/run/netns/{d.netns}", int(reg.host.split(":")[1]))
    try:
        ref = f"{reg.host}/team/app:v1"
        with pytest.raises(grpc.RpcError) as e:
            im.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref)))
        assert e.value.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNKNOWN)
        got = im.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=ref), auth=pb.AuthConfig(
            username="kube", password="let-me-in")))
        st = im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=ref))).image
        assert st.id == got.image_ref and ref in st.repo_tags
        im.RemoveImage(pb.RemoveImageRequest(image=pb.ImageSpec(image=got.image_ref)))
        st = im.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=ref)))
        assert not st.HasField("image")
    finally:
        lsock.close()


def test_container_config_mapping(cri, pod, tmp_path):
    """What kubelet asks of a container reaches it: user and groups, env,
    working dir, read-only root, bind mounts, a device, capabilities, no_new_privs."""
    _, rt, _ = cri
    data = tmp_path / "data"
    data.mkdir()
    (data / "f").write_text("hostfile")
    pid = pod("config")
    sc = pb.LinuxContainerSecurityContext(
        run_as_user=pb.Int64Value(value=1000), run_as_group=pb.Int64Value(value=1001),
        supplemental_groups=[2000], readonly_rootfs=True, no_new_privs=True,
        capabilities=pb.Capability(drop_capabilities=["ALL"]))
    cfg = ctr_config("cfg", "sleep", "1000", working_dir="/etc",
                     envs=[pb.KeyValue(key="COLOR", value="blue")],
                     mounts=[pb.Mount(container_path="/data", host_path=str(data), readonly=True,
                                      propagation=pb.PROPAGATION_HOST_TO_CONTAINER)],
                     devices=[pb.Device(container_path="/dev/mynull", host_path="/dev/null",
                                        permissions="rw")],
                     linux=pb.LinuxContainerConfig(security_context=sc))
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pid,
                                                       config=cfg)).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))

    def sh(script: str) -> str:
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script]))
        return r.stdout.decode() + r.stderr.decode() + f"rc={r.exit_code}"

    assert sh("stat -c %t:%T /dev/mynull; echo x > /dev/mynull") == "1:3\nrc=0"

    assert sh("id -u; id -g; id -G") == "1000\n1001\n1001 2000\nrc=0"
    assert sh("echo $COLOR; pwd") == "blue\n/etc\nrc=0"
    assert sh("touch /x 2>/dev/null") == "rc=1"
    assert sh("cat /data/f; touch /data/g 2>/dev/null") == "hostfilerc=1"
    assert sh("grep -E 'CapEff|NoNewPrivs' /proc/self/status | tr -s '\\t' ' '") == \
        "CapEff: 0000000000000000\nNoNewPrivs: 1\nrc=0"
    s = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert [(m.container_path, m.readonly, m.propagation) for m in s.mounts] == \
        [("/data", True, pb.PROPAGATION_HOST_TO_CONTAINER)]


def test_failed_pod_start_is_undone(cri):
    """A RunPodSandbox whose network fails part way (the chain's last plugin)
    leaves nothing: no pod, no pinned namespaces, no address leased; the name
    is free again."""
    d, rt, _ = cri
    conf = d.base / "net.d" / "10-pods.conflist"
    good = conf.read_text()
    bad = json.loads(good)
    bad["plugins"].append({"type": "tuning", "sysctl": {"net.ipv4.dyt_bogus": "1"}})

    def pinned() -> set[str]:
        return {str(p) for p in (d.base / "exec" / "pods").rglob("*")}

    def leases() -> set[str]:
        return {p.name for p in (d.base / "ipam").rglob("10.88.*")}

    before = (pinned(), leases())
    conf.write_text(json.dumps(bad))
    try:
        with pytest.raises(grpc.RpcError) as e:
            rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("broken")))
    finally:
        conf.write_text(good)
    assert "tuning" in e.value.details()
    assert "broken" not in {p.metadata.name for p in
                            rt.ListPodSandbox(pb.ListPodSandboxRequest()).items}
    assert (pinned(), leases()) == before
    pid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=pod_config("broken"))).pod_sandbox_id
    rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid))
    rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid))


def test_pods_outlive_a_daemon_restart(cri, pod):
    """Pods are records with pinned namespaces: a restarted daemon finds them,
    their containers still run, and `system check` finds nothing amiss."""
    d, rt, _ = cri
    pid = pod("restart")
    cid = rt.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=pid, config=ctr_config("r", "sleep", "1000"))).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    ip = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pid)).status.network.ip
    d.stop()
    d.start()
    st = rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pid),
                             wait_for_ready=True, timeout=30).status
    assert (st.state, st.network.ip) == (pb.SANDBOX_READY, ip)
    r = rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=["hostname"]))
    assert r.stdout == b"restart\n"
    check = d.cli("system", "check", check=False)
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_runtime_config_says_cgroupfs(cri):
    _, rt, _ = cri
    r = rt.RuntimeConfig(pb.RuntimeConfigRequest())
    assert r.linux.cgroup_driver == pb.CGROUPFS


def test_bidirectional_mount_propagation(cri, pod, tmp_path):
    """A bind with rshared propagation: a mount made in the container shows on
    the host (the container's / is made rshared, its rootfs mount private)."""
    d, rt, _ = cri
    shared = tmp_path / "shared"
    shared.mkdir()
    subprocess.run(["mount", "--bind", str(shared), str(shared)], check=True)
    try:
        subprocess.run(["mount", "--make-rshared", str(shared)], check=True)
        before = set(open("/proc/self/mountinfo").read().splitlines())
        pid = pod("propagation")
        sc = pb.LinuxContainerSecurityContext(privileged=True)
        cfg = ctr_config("p", "sh", "-c", "mkdir -p /mnt/sub && mount -t tmpfs tmp /mnt/sub && "
                         "echo hi > /mnt/sub/f && exec sleep 1000",
                         mounts=[pb.Mount(container_path="/mnt", host_path=str(shared),
                                          propagation=pb.PROPAGATION_BIDIRECTIONAL)],
                         linux=pb.LinuxContainerConfig(security_context=sc))
        cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pid,
                                                           config=cfg)).container_id
        rt.StartContainer(pb.StartContainerRequest(container_id=cid))
        deadline = time.monotonic() + 20
        while not (shared / "sub" / "f").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (shared / "sub" / "f").read_text() == "hi\n"
        # nothing else of the container's reached the host (the daemon's own
        # mounts, the pod's pins and the container's layers, are its business)
        new = [ln.split()[4] for ln in set(open("/proc/self/mountinfo").read().splitlines())
               - before]
        assert [m for m in new if not m.startswith(str(d.base))] == [str(shared / "sub")], new
        rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
    finally:
        subprocess.run(["umount", "-R", "-l", str(shared)], check=False)


def test_update_resources_and_pod_stats(cri, pod):
    _, rt, _ = cri
    pid = pod("resources")
    cid = rt.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=pid, config=ctr_config("r", "sleep", "1000"))).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    rt.UpdateContainerResources(pb.UpdateContainerResourcesRequest(
        container_id=cid, linux=pb.LinuxContainerResources(memory_limit_in_bytes=64 << 20,
                                                            cpu_shares=512)))
    s = rt.ContainerStats(pb.ContainerStatsRequest(container_id=cid)).stats
    assert s.memory.available_bytes.value <= 64 << 20
    ps = rt.PodSandboxStats(pb.PodSandboxStatsRequest(pod_sandbox_id=pid)).stats
    assert ps.attributes.id == pid and [c.attributes.id for c in ps.linux.containers] == [cid]
    assert ps.linux.memory.working_set_bytes.value > 0
    listed = rt.ListPodSandboxStats(pb.ListPodSandboxStatsRequest(
        filter=pb.PodSandboxStatsFilter(id=pid))).stats
    assert [p.attributes.id for p in listed] == [pid]
