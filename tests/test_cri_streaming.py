"""The CRI streaming server (`Exec`, `Attach`, `PortForward`): the RPCs answer
with a one-time URL, and a client of the tests' own (the SPDY/3.1 framer of
dockyard.cri.spdy, WebSocket from aiohttp's client) speaks kubelet's
remotecommand and port-forward protocols there, against real containers.

The pods' containers run with the host's network (NamespaceMode NODE): the
port-forward into a pod's own network namespace is checked with a listener
entered into the pod's pinned namespace file. Pods of their own network are on
a CNI network of the loopback plugin alone: nothing is made in the host's."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from urllib.parse import urlsplit

import aiohttp
import grpc
import pytest

from conftest import BUSYBOX, Daemon, assert_no_network_left, stop_and_check

from dockyard.cri import proto, spdy

pb, svc = proto.load()
NODE_NET = pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
    namespace_options=pb.NamespaceOption(network=pb.NODE)))


@pytest.fixture(scope="module")
def cri(tmp_path_factory, busybox_tar):
    base = tmp_path_factory.mktemp("cristream")
    sock = base / "cri.sock"
    # pods on a network of the loopback plugin only: a namespace of their own,
    # nothing made in the host's
    conf = base / "net.d"
    conf.mkdir()
    (conf / "10-lo.conflist").write_text(json.dumps(
        {"cniVersion": "1.0.0", "name": "lo", "plugins": [{"type": "loopback"}]}))
    d = Daemon(base, "overlay", ["--cri", f"unix://{sock}", "--cni-conf-dir", str(conf)])
    pods = []
    try:
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        with grpc.insecure_channel(f"unix://{sock}") as ch:
            rt = svc.RuntimeServiceStub(ch)
            yield d, rt, pods
            for pid in pods:
                rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid))
                rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid))
    finally:
        stop_and_check(d, base)
        assert_no_network_left()


@pytest.fixture(scope="module")
def pod(cri):
    _, rt, pods = cri
    cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(
        name="stream", namespace="default", uid="uid-stream"), hostname="stream", linux=NODE_NET)
    pid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    pods.append(pid)
    return pid


def container(rt, pod: str, name: str, *cmd: str, **kw) -> str:
    cfg = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=name),
                             image=pb.ImageSpec(image="busybox"), command=list(cmd), **kw)
    cid = rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pod, config=cfg)
                             ).container_id
    rt.StartContainer(pb.StartContainerRequest(container_id=cid))
    return cid


@pytest.fixture(scope="module")
def sleeper(cri, pod):
    return container(cri[1], pod, "sleeper", "sleep", "1000")


# --- the client -------------------------------------------------------------------------
class SpdyClient:
    def __init__(self, session: spdy.Session, writer: asyncio.StreamWriter,
                 reader_task: asyncio.Task, protocol: str) -> None:
        self.session = session
        self.writer = writer
        self.reader_task = reader_task
        self.protocol = protocol

    def close(self) -> None:
        self.reader_task.cancel()
        self.writer.close()


async def spdy_connect(url: str, *protocols: str) -> SpdyClient:
    u = urlsplit(url)
    reader, writer = await asyncio.open_connection(u.hostname, u.port)
    head = [f"POST {u.path} HTTP/1.1", f"Host: {u.netloc}", "Connection: Upgrade",
            "Upgrade: SPDY/3.1", "Content-Length: 0"]
    head += [f"X-Stream-Protocol-Version: {p}" for p in protocols]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    answer = (await reader.readuntil(b"\r\n\r\n")).decode()
    status = answer.split("\r\n")[0]
    if " 101 " not in status:
        writer.close()
        raise ConnectionRefusedError(answer)
    headers = {k.lower(): v.strip() for k, _, v in
               (line.partition(":") for line in answer.split("\r\n")[1:] if line)}
    session = spdy.Session(writer.write, writer.drain, server=False)

    async def pump() -> None:
        try:
            while data := await reader.read(1 << 16):
                session.feed(data)
        finally:
            session.end()

    return SpdyClient(session, writer, asyncio.ensure_future(pump()),
                      headers.get("x-stream-protocol-version", ""))


async def read_all(s: spdy.Stream | None) -> bytes:
    out = bytearray()
    while s is not None and (chunk := await s.read()):
        out += chunk
    return bytes(out)


async def remotecommand(url: str, stdin: bytes | None = None, tty: bool = False,
                        stderr: bool = True, resize: tuple[int, int] | None = None,
                        protocols: tuple[str, ...] = ("v4.channel.k8s.io",),
                        until: bytes | None = None) -> tuple[bytes, bytes, dict | bytes]:
    """Run an exec/attach session as kubectl does: (stdout, stderr, status).
    With `until`, stdin is sent a line at a time until stdout holds `until`."""
    c = await spdy_connect(url, *protocols)
    try:
        s = c.session
        err = await s.open_stream({"streamtype": ["error"]})
        sin = await s.open_stream({"streamtype": ["stdin"]}) if stdin is not None else None
        sout = await s.open_stream({"streamtype": ["stdout"]})
        serr = await s.open_stream({"streamtype": ["stderr"]}) if stderr and not tty else None
        sres = await s.open_stream({"streamtype": ["resize"]}) if tty else None
        if resize and sres is not None:
            await sres.write(json.dumps({"Width": resize[0], "Height": resize[1]}).encode())
        out = bytearray()
        if sin is not None and until is not None:
            deadline = time.monotonic() + 20
            while until not in out and time.monotonic() < deadline:
                await sin.write(stdin)
                try:
                    out += await asyncio.wait_for(sout.read(), 1)
                except asyncio.TimeoutError:
                    pass
            sin.close()
        elif sin is not None:
            await sin.write(stdin)
            sin.close()
        rest, errs, status = await asyncio.wait_for(asyncio.gather(
            read_all(sout), read_all(serr), read_all(err)), 30)
        out += rest
        if c.protocol == "v4.channel.k8s.io":
            return bytes(out), errs, json.loads(status)
        return bytes(out), errs, status
    finally:
        c.close()


def exec_url(rt, cid: str, *cmd: str, **kw) -> str:
    kw.setdefault("stdout", True)
    return rt.Exec(pb.ExecRequest(container_id=cid, cmd=list(cmd), **kw)).url


def exit_code(status: dict) -> int:
    if status["status"] == "Success":
        return 0
    assert status["reason"] == "NonZeroExitCode", status
    return int(status["details"]["causes"][0]["message"])


# --- tests ------------------------------------------------------------------------------
def test_exec_output_and_exit_code(cri, sleeper):
    _, rt, _ = cri
    url = exec_url(rt, sleeper, "sh", "-c", "echo out; echo err >&2; exit 3", stderr=True)
    assert url.startswith("http://127.0.0.1:") and "/exec/" in url
    out, err, status = asyncio.run(remotecommand(url))
    assert (out, err, exit_code(status)) == (b"out\n", b"err\n", 3)
    assert status["details"]["causes"][0]["reason"] == "ExitCode"
    # the URL is good once
    with pytest.raises(ConnectionRefusedError, match="404"):
        asyncio.run(remotecommand(url))
    url = exec_url(rt, sleeper, "true")
    assert asyncio.run(remotecommand(url, stderr=False))[2] == {"metadata": {},
                                                                 "status": "Success"}


def test_exec_older_protocol_and_big_output(cri, sleeper):
    _, rt, _ = cri
    url = exec_url(rt, sleeper, "sh", "-c", "head -c 1000000 /dev/zero; exit 2", stderr=True)
    out, _, status = asyncio.run(remotecommand(
        url, protocols=("v9.channel.k8s.io", "v3.channel.k8s.io")))
    # v3's error channel holds the error's text, not a Status
    assert len(out) == 1000000 and b"non-zero exit code" in status


def test_exec_stdin(cri, sleeper):
    _, rt, _ = cri
    url = exec_url(rt, sleeper, "sh", "-c", "wc -c; cat >&2", stdin=True, stderr=True)
    out, err, status = asyncio.run(remotecommand(url, stdin=b"hello\n"))
    assert (out.strip(), err, exit_code(status)) == (b"6", b"", 0)


def test_exec_tty_and_resize(cri, sleeper):
    _, rt, _ = cri
    url = exec_url(rt, sleeper, "sh", "-c", "while read x; do stty size; done", stdin=True,
                   tty=True)
    out, err, status = asyncio.run(remotecommand(url, stdin=b"\n", tty=True, resize=(100, 30),
                                                 until=b"30 100"))
    assert b"30 100" in out and exit_code(status) == 0


def test_rpc_validation(cri, sleeper):
    _, rt, _ = cri
    cases = [dict(container_id=sleeper, cmd=["true"], tty=True, stdout=True, stderr=True),
             dict(container_id=sleeper, cmd=["true"]),
             dict(container_id="", cmd=["true"], stdout=True)]
    for kw in cases:
        with pytest.raises(grpc.RpcError) as e:
            rt.Exec(pb.ExecRequest(**kw))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as e:
        rt.Exec(pb.ExecRequest(container_id="nope", cmd=["true"], stdout=True))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        rt.PortForward(pb.PortForwardRequest(pod_sandbox_id="nope", port=[1]))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND


def wait_exited(rt, cid: str) -> pb.ContainerStatus:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        st = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
        if st.state == pb.CONTAINER_EXITED:
            break
        time.sleep(0.05)
    return st


def test_attach_stdin_once(cri, pod):
    _, rt, _ = cri
    # stdin_once: the client's end of input closes the container's, and the
    # attach lasts as long as the container
    cid = container(rt, pod, "once", "sh", "-c", "cat; echo e >&2; exit 4", stdin=True,
                    stdin_once=True)
    url = rt.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True,
                                     stderr=True)).url
    out, err, status = asyncio.run(remotecommand(url, stdin=b"hi\n"))
    assert (out, err, status["status"]) == (b"hi\n", b"e\n", "Success")
    assert wait_exited(rt, cid).exit_code == 4
    with pytest.raises(grpc.RpcError) as e:  # no attach to a stopped container
        rt.Attach(pb.AttachRequest(container_id=cid, stdout=True))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_attach_detaches_at_end_of_input(cri, pod):
    _, rt, _ = cri
    cid = container(rt, pod, "reader", "sh", "-c", "while read l; do echo got:$l; done",
                    stdin=True)
    url = rt.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True,
                                     stderr=True)).url
    out, err, status = asyncio.run(remotecommand(url, stdin=b"x\n", until=b"got:x"))
    assert b"got:x" in out and status["status"] == "Success"
    # the container goes on: its input stays open for the next attach
    st = rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status
    assert st.state == pb.CONTAINER_RUNNING
    url = rt.Attach(pb.AttachRequest(container_id=cid, stdin=True, stdout=True,
                                     stderr=True)).url
    out, _, _ = asyncio.run(remotecommand(url, stdin=b"y\n", until=b"got:y"))
    assert b"got:y" in out


async def port_forward(url: str, port: int, payloads: list[bytes]) -> list[tuple[bytes, bytes]]:
    """One connection per payload, sent with a half-close: (reply, error) each."""
    c = await spdy_connect(url, "portforward.k8s.io")
    try:
        out = []
        for i, data in enumerate(payloads):
            h = {"port": [str(port)], "requestid": [str(i)]}
            err = await c.session.open_stream({"streamtype": ["error"], **h})
            dat = await c.session.open_stream({"streamtype": ["data"], **h})
            await dat.write(data)
            dat.close()
            reply, error = await asyncio.wait_for(asyncio.gather(read_all(dat), read_all(err)), 30)
            out.append((reply, error))
        return out
    finally:
        c.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_forward_host_network(cri, pod):
    _, rt, _ = cri
    port = free_port()
    # a host-network pod's container listens on the host's loopback
    container(rt, pod, "server", "nc", "-ll", "-p", str(port), "-e", "sh", "-c",
              "read l; echo pong:$l")
    url = rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod, port=[port])).url
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    res = asyncio.run(port_forward(url, port, [b"a\n", b"b\n"]))
    assert res == [(b"pong:a\n", b""), (b"pong:b\n", b"")]
    url = rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod, port=[1])).url
    [(data, err)] = asyncio.run(port_forward(url, 1, [b"x"]))
    assert data == b"" and b"error forwarding port 1" in err


def test_port_forward_pod_network(cri):
    d, rt, pods = cri
    cfg = pb.PodSandboxConfig(metadata=pb.PodSandboxMetadata(
        name="pfnet", namespace="default", uid="uid-pfnet"), hostname="pfnet")
    pid = rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
    pods.append(pid)
    netns = next((d.base / "exec" / "pods" / pid).glob("net"))
    # a listener in the pod's network namespace, on its loopback only
    srv = subprocess.Popen(["nsenter", f"--net={netns}", BUSYBOX, "nc", "-ll", "-p", "8080",
                            "-e", "sh", "-c", "read l; echo inpod:$l"])
    try:
        url = rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pid, port=[8080])).url
        deadline = time.monotonic() + 20
        while True:
            [(data, err)] = asyncio.run(port_forward(url, 8080, [b"x\n"]))
            if data or time.monotonic() > deadline:
                break
            url = rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pid, port=[8080])).url
            time.sleep(0.05)
        assert (data, err) == (b"inpod:x\n", b"")
    finally:
        srv.kill()
        srv.wait()


async def ws_session(url: str, protocol: str, stdin: bytes | None
                     ) -> tuple[bytes, bytes, dict]:
    out, err, status = bytearray(), bytearray(), {}
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, protocols=(protocol,)) as ws:
            assert ws.protocol == protocol
            if stdin is not None:
                await ws.send_bytes(b"\x00" + stdin)
                await ws.send_bytes(b"\xff\x00")  # v5: close stdin
            async for msg in ws:
                if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
                    continue
                ch, data = msg.data[0], msg.data[1:]
                if ch == 1:
                    out += data
                elif ch == 2:
                    err += data
                elif ch == 3:
                    status = json.loads(data)
    return bytes(out), bytes(err), status


def test_exec_over_websocket(cri, sleeper):
    _, rt, _ = cri
    url = exec_url(rt, sleeper, "sh", "-c", "cat; echo e >&2; exit 5", stdin=True, stderr=True)
    out, err, status = asyncio.run(ws_session(url, "v5.channel.k8s.io", b"via ws\n"))
    assert (out, err, exit_code(status)) == (b"via ws\n", b"e\n", 5)


def test_exec_ends_with_its_client(cri, sleeper):
    _, rt, _ = cri
    url = exec_url(rt, sleeper, "sh", "-c", "echo started; exec sleep 1000")

    async def go() -> None:
        c = await spdy_connect(url, "v4.channel.k8s.io")
        await c.session.open_stream({"streamtype": ["error"]})
        out = await c.session.open_stream({"streamtype": ["stdout"]})
        assert await asyncio.wait_for(out.read(), 20) == b"started\n"
        c.close()  # the client goes away: so does its process

    asyncio.run(go())
    deadline = time.monotonic() + 20
    while True:
        r = rt.ExecSync(pb.ExecSyncRequest(container_id=sleeper, cmd=["ps", "-o", "args"]))
        if b"sleep 1000\n" not in r.stdout.replace(b"sleep 1000\n", b"", 1):
            break  # only the container's own sleep is left
        assert time.monotonic() < deadline, r.stdout
        time.sleep(0.05)


def test_stream_addr_setting(tmp_path):
    from dockyard.daemon import config as daemon_config

    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({"cri-stream-addr": "[::1]:10010"}))
    assert daemon_config.load({}, str(f)).cri_stream_addr == "[::1]:10010"
    (tmp_path / "empty.json").write_text("{}")
    assert daemon_config.load({}, str(tmp_path / "empty.json")).cri_stream_addr == "127.0.0.1:0"
    f.write_text(json.dumps({"cri-stream-addr": "10010"}))
    with pytest.raises(daemon_config.ConfigError, match="cri-stream-addr: want host:port"):
        daemon_config.load({}, str(f))


async def port_forward_ws(url: str, port: int, data: bytes) -> tuple[bytes, bytes]:
    """Port-forward as newer clients tunnel it: SPDY inside WebSocket messages."""
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(url, protocols=("SPDY/3.1+portforward.k8s.io",)) as ws:
            assert ws.protocol == "SPDY/3.1+portforward.k8s.io"
            out: asyncio.Queue[bytes] = asyncio.Queue()

            async def send() -> None:
                while True:
                    await ws.send_bytes(await out.get())

            async def drain() -> None:
                pass

            session = spdy.Session(out.put_nowait, drain, server=False)

            async def pump() -> None:
                async for msg in ws:
                    if msg.type == aiohttp.WSMsgType.BINARY:
                        session.feed(msg.data)
                session.end()

            tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(send())]
            try:
                h = {"port": [str(port)], "requestid": ["0"]}
                err, dat = [await asyncio.wait_for(session.open_stream(
                    {"streamtype": [k], **h}), 30) for k in ("error", "data")]
                await dat.write(data)
                dat.close()
                reply, error = await asyncio.wait_for(
                    asyncio.gather(read_all(dat), read_all(err)), 30)
                return reply, error
            finally:
                for t in tasks:
                    t.cancel()


def test_port_forward_over_websocket(cri, pod):
    _, rt, _ = cri
    port = free_port()
    container(rt, pod, "wsserver", "nc", "-ll", "-p", str(port), "-e", "sh", "-c",
              "read l; echo ws:$l")
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    url = rt.PortForward(pb.PortForwardRequest(pod_sandbox_id=pod, port=[port])).url
    assert asyncio.run(port_forward_ws(url, port, b"hi\n")) == (b"ws:hi\n", b"")


def test_request_cache_tokens_expire():
    from dockyard.cri.streaming import RequestCache

    cache = RequestCache()
    a, b = cache.insert("exec", {"x": 1}), cache.insert("exec", {"x": 2})
    assert a != b and cache.consume("attach", a) is None  # a URL is for its kind only
    assert cache.consume("exec", a).request == {"x": 1}
    assert cache.consume("exec", a) is None  # once
    cache.entries[b].expires = time.monotonic() - 1
    assert cache.consume("exec", b) is None
