"""Load: a bounded soak and slow or greedy clients, against a daemon of the
module's own (its default bridge in a network namespace of its own).

- soak: clients in parallel create, start, exec in, read the logs of, stop
  and remove containers on a user-defined bridge network with a named
  volume; every operation is answered (no 5xx, no hang), and afterwards
  nothing is left: containers, mounts, cgroups, network namespaces, veths,
  processes; the daemon's open files are back near their start and its
  memory grew within a generous bound;
- hundreds of idle and half-sent connections plus a slowloris: other clients
  are still answered;
- clients that never read an attach or exec stream or a followed log of containers
  writing as fast as they can: the daemon's memory stays bounded, others
  are answered;
- 100 MB bodies of junk to create, build and load: dockerd's answers, the
  daemon's peak memory barely moves.

Knobs, for longer runs by hand: DOCKYARD_SOAK_SECONDS (5 by default),
DOCKYARD_SOAK_CLIENTS (6).
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import mounts_under
from test_network import own_daemon

SOAK_SECONDS = float(os.environ.get("DOCKYARD_SOAK_SECONDS", "5"))
SOAK_CLIENTS = int(os.environ.get("DOCKYARD_SOAK_CLIENTS", "6"))
TIMEOUT = 60  # an answer slower than this counts as a hang
MiB = 1 << 20


class _Unix(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.unix_path)
        self.sock = s


def call(sock: str, method: str, path: str, body: Any = None,
         timeout: float = TIMEOUT) -> tuple[int, bytes]:
    """One request on a connection of its own: (status, body)."""
    c = _Unix(sock, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        c.request(method, path, body=data,
                  headers={"Content-Type": "application/json"} if data is not None else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def pid_of(d) -> int:
    return int((d.base / "dockyard.pid").read_text())


def status_kib(pid: int, field: str) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss(pid: int) -> int:
    return status_kib(pid, "VmRSS") * 1024


def nfds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid: int) -> list[int]:
    out = []
    for p in os.listdir("/proc"):
        try:
            if p.isdigit() and open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1] \
                    == str(pid):
                out.append(int(p))
        except OSError:
            pass
    return out


def settle(pid: int, limit: int, deadline: float = 20) -> int:
    """The daemon's open files, polled until at most `limit` (or the deadline)."""
    end = time.monotonic() + deadline
    while (n := nfds(pid)) > limit and time.monotonic() < end:
        time.sleep(0.1)
    return n


@pytest.fixture(scope="module")
def ld(tmp_path_factory, busybox_tar):
    with own_daemon(tmp_path_factory, busybox_tar, []) as d:
        d.sockpath = str(d.sock)
        yield d


class Ops:
    """Latencies and failures per operation, from many threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {}
        self.failures: list[str] = []
        self.ids: set[str] = set()

    def do(self, op: str, sock: str, method: str, path: str, body: Any = None,
           want: int = 200) -> bytes | None:
        t = time.monotonic()
        try:
            st, data = call(sock, method, path, body)
        except OSError as e:
            with self.lock:
                self.failures.append(f"{op}: {e!r}")
            return None
        with self.lock:
            self.times.setdefault(op, []).append(time.monotonic() - t)
            if st != want:
                self.failures.append(f"{op}: {st} {data[:200]!r}")
                return None
        return data


def cycle(ops: Ops, sock: str, network: str, volume: str) -> None:
    """One container's life, each step checked."""
    body = ops.do("create", sock, "POST", "/containers/create", {
        "Image": "busybox",
        "Cmd": ["sh", "-c", "trap 'exit 0' TERM; echo hello; sleep 600 & wait"],
        "HostConfig": {"NetworkMode": network, "Binds": [f"{volume}:/data"]}}, 201)
    if body is None:
        return
    cid = json.loads(body)["Id"]
    with ops.lock:
        ops.ids.add(cid)
    try:
        if ops.do("start", sock, "POST", f"/containers/{cid}/start", want=204) is None:
            return
        body = ops.do("exec_create", sock, "POST", f"/containers/{cid}/exec", {
            "Cmd": ["sh", "-c", f"echo {cid[:12]} > /data/{cid[:12]}; cat /data/{cid[:12]}"],
            "AttachStdout": True, "AttachStderr": True}, 201)
        if body is not None:
            eid = json.loads(body)["Id"]
            out = ops.do("exec_start", sock, "POST", f"/exec/{eid}/start", {"Detach": False})
            if out is not None and cid[:12].encode() not in out:
                ops.failures.append(f"exec output: {out[:200]!r}")
            body = ops.do("exec_inspect", sock, "GET", f"/exec/{eid}/json")
            if body is not None and json.loads(body)["ExitCode"] != 0:
                ops.failures.append(f"exec exit: {body[:300]!r}")
        for _ in range(100):  # the echo may not be in the log yet
            out = ops.do("logs", sock, "GET", f"/containers/{cid}/logs?stdout=1&stderr=1")
            if out is None or b"hello" in out:
                break
            time.sleep(0.05)
        else:
            ops.failures.append(f"logs: no hello in {out!r}")
        ops.do("stop", sock, "POST", f"/containers/{cid}/stop?t=5", want=204)
    finally:
        ops.do("rm", sock, "DELETE", f"/containers/{cid}?force=1", want=204)


def soak(sock: str, network: str, volume: str, seconds: float, clients: int) -> Ops:
    ops = Ops()
    end = time.monotonic() + seconds

    def client() -> None:
        while time.monotonic() < end:
            cycle(ops, sock, network, volume)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ops


def container_cgroups(ids: set[str]) -> list[str]:
    cg = Path("/sys/fs/cgroup")
    return [str(p) for p in [*cg.glob("dockyard/*"), *cg.glob("*/dockyard/*")]
            if p.name in ids]


def test_soak_leaves_nothing(ld):
    sock, pid = ld.sockpath, pid_of(ld)
    assert call(sock, "POST", "/networks/create", {"Name": "soaknet"})[0] == 201
    assert call(sock, "POST", "/volumes/create", {"Name": "soakvol"})[0] == 201
    try:
        warm = Ops()  # one cycle first: caches, pools, lazy imports
        cycle(warm, sock, "soaknet", "soakvol")
        assert warm.failures == []
        mounts = set(mounts_under(ld.base))
        fds0, rss0, kids0 = nfds(pid), rss(pid), len(children(pid))

        ops = soak(sock, "soaknet", "soakvol", SOAK_SECONDS, SOAK_CLIENTS)
        assert ops.failures == []
        assert set(ops.times) == {"create", "start", "exec_create", "exec_start",
                                  "exec_inspect", "logs", "stop", "rm"}
        assert len(ops.times["rm"]) == len(ops.ids) >= SOAK_CLIENTS

        st, body = call(sock, "GET", "/containers/json?all=1")
        assert (st, json.loads(body)) == (200, [])
        assert set(mounts_under(ld.base)) - mounts == set()
        assert container_cgroups(ops.ids) == []
        assert list((ld.base / "exec" / "netns").glob("*")) == []
        end = time.monotonic() + 20  # veths go with their namespace, asynchronously
        while "dyv" in (links := ld.ns("ip", "-o", "link").stdout) and time.monotonic() < end:
            time.sleep(0.1)
        assert "dyv" not in links
        shims = [p for p in os.listdir("/proc") if p.isdigit() and any(
            c in _cmdline(p) for c in ops.ids)]
        assert shims == []
        assert len(children(pid)) <= kids0
        assert settle(pid, fds0 + 4) <= fds0 + 4
        assert rss(pid) - rss0 < 64 * MiB
    finally:
        call(sock, "DELETE", "/volumes/soakvol?force=1")
        call(sock, "DELETE", "/networks/soaknet")


def _cmdline(pid: str) -> str:
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
    except OSError:
        return ""


def answered(sock: str, n: int = 10) -> None:
    """Other clients' pings and listings are answered, all of them."""
    for _ in range(n):
        assert call(sock, "GET", "/_ping", timeout=30) == (200, b"OK")
        assert call(sock, "GET", "/containers/json", timeout=30)[0] == 200


def test_idle_half_sent_and_slowloris_connections(ld):
    sock, pid = ld.sockpath, pid_of(ld)
    # The accept backlog is the kernel's somaxconn, as Go's listeners have it:
    # a connect to a unix socket whose backlog is full fails at once (EAGAIN)
    # for a non-blocking client (Go's, the docker CLI's) instead of waiting.
    line = next(ln for ln in ld.ns("ss", "-xlnH").stdout.splitlines() if sock in ln)
    assert int(line.split()[3]) == int(Path("/proc/sys/net/core/somaxconn").read_text())
    fds0 = nfds(pid)
    conns: list[socket.socket] = []
    stop = threading.Event()

    def slowloris() -> None:
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        conns.append(s)
        head = b"GET /_ping HTTP/1.1\r\nHost: d\r\n" + b"X-Slow: " + b"a" * 10000
        for b in head:
            if stop.wait(0.02):
                return
            s.send(bytes((b,)))

    try:
        for i in range(300):
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            conns.append(s)
            if i % 3 == 1:  # a request line and half the headers
                s.send(b"GET /containers/json HTTP/1.1\r\nHost: d\r\n")
            elif i % 3 == 2:  # a body announced, a bit of it sent
                s.send(b"POST /containers/create HTTP/1.1\r\nHost: d\r\nContent-Type: "
                       b"application/json\r\nContent-Length: 100000\r\n\r\n{\"Image\":")
        t = threading.Thread(target=slowloris)
        t.start()
        answered(sock)
        stop.set()
        t.join()
    finally:
        stop.set()
        for s in conns:
            s.close()
    assert settle(pid, fds0 + 4) <= fds0 + 4
    answered(sock, 1)


def test_clients_that_never_read(ld):
    """An attach, an exec and a followed log of containers writing as fast as
    they can, read by nobody: the daemon holds a few MiB for them, not what they wrote.
    (dockerd blocks the container's output behind such an attach; Dockyard's
    shim drops the attach past 8 MiB instead, see rust/shim supervisor/attach.rs.)"""
    sock, pid = ld.sockpath, pid_of(ld)
    ids = []
    held: list[socket.socket] = []
    try:
        for cmd, log in ((["sh", "-c", "while :; do head -c 400000 /dev/zero; usleep 10000; done"],
                          {"Type": "none", "Config": {}}),
                         (["yes", "a" * 100], {"Type": "json-file",
                                               "Config": {"max-size": "1m", "max-file": "2"}})):
            st, body = call(sock, "POST", "/containers/create", {
                "Image": "busybox", "Cmd": cmd, "HostConfig": {"LogConfig": log,
                                                              "NetworkMode": "none"}})
            assert st == 201, body
            ids.append(json.loads(body)["Id"])
        rss0 = rss(pid)
        for cid, path in ((ids[0], "attach?stream=1&stdout=1&stderr=1"),
                          (ids[1], "logs?follow=1&stdout=1&stderr=1")):
            s = socket.socket(socket.AF_UNIX)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(sock)
            held.append(s)
            verb = "POST" if path.startswith("attach") else "GET"
            up = "Upgrade: tcp\r\nConnection: Upgrade\r\n" if verb == "POST" else ""
            s.send(f"{verb} /containers/{cid}/{path} HTTP/1.1\r\nHost: d\r\n{up}\r\n".encode())
        for cid in ids:
            assert call(sock, "POST", f"/containers/{cid}/start")[0] == 204
        st, body = call(sock, "POST", f"/containers/{ids[0]}/exec", {
            "Cmd": ["sh", "-c", "while :; do head -c 400000 /dev/zero; usleep 10000; done"],
            "AttachStdout": True})
        assert st == 201, body
        s = socket.socket(socket.AF_UNIX)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(sock)
        held.append(s)
        start = json.dumps({"Detach": False}).encode()
        s.send(f"POST /exec/{json.loads(body)['Id']}/start HTTP/1.1\r\nHost: d\r\n"
               "Content-Type: application/json\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n"
               f"Content-Length: {len(start)}\r\n\r\n".encode() + start)
        peak = 0
        end = time.monotonic() + 3
        while time.monotonic() < end:
            answered(sock, 1)
            peak = max(peak, rss(pid) - rss0)
            time.sleep(0.1)
        assert peak < 32 * MiB
        for cid in ids:  # still running, still served
            st, body = call(sock, "GET", f"/containers/{cid}/json")
            assert st == 200 and json.loads(body)["State"]["Running"]
    finally:
        for s in held:
            s.close()
        for cid in ids:
            call(sock, "DELETE", f"/containers/{cid}?force=1")


def send_big(sock: str, path: str, ctype: str, size: int = 100 * MiB,
             fill: bytes = b"x") -> tuple[int, bytes, bytes]:
    """`size` bytes of `fill` as the body; the answer (status, head, body),
    also when the daemon answers before taking all of it (as dockerd does)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(TIMEOUT)
    s.connect(sock)
    try:
        s.sendall(f"POST {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n"
                  f"Content-Type: {ctype}\r\nContent-Length: {size}\r\n\r\n".encode())
        chunk = fill * MiB
        try:
            for _ in range(size // MiB):
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while d := s.recv(65536):
                data += d
        except ConnectionResetError:
            pass
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if b"chunked" in head.lower():
        out, rest = b"", body
        while rest:
            n, _, rest = rest.partition(b"\r\n")
            if int(n, 16) == 0:
                break
            out, rest = out + rest[:int(n, 16)], rest[int(n, 16) + 2:]
        body = out
    return status, head, body


@pytest.mark.parametrize("path,ctype,fill,want", [
    # dockerd 20.10 answers these with 500s; Dockyard's decode errors are 400s
    # (tests/test_bad_input.py), the message is dockerd's
    ("/containers/create", "application/json", b"x",
     (400, {"message": "invalid character 'x' looking for beginning of value"})),
    ("/build", "application/x-tar", b"x", (500, {"message": "archive/tar: invalid tar header"})),
    ("/build", "application/x-tar", b"\0",
     (500, {"message": "Cannot locate specified Dockerfile: Dockerfile"})),
    ("/images/load", "application/x-tar", b"x",
     (200, {"errorDetail": {"message": "Error processing tar file(exit status 1): "
                                       "archive/tar: invalid tar header"},
            "error": "Error processing tar file(exit status 1): archive/tar: invalid tar header"})),
])
def test_100mb_bodies(ld, path, ctype, fill, want):
    sock, pid = ld.sockpath, pid_of(ld)
    base = rss(pid)
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")  # the peak (VmHWM) starts again from now
    st, head, body = send_big(sock, path, ctype, fill=fill)
    assert (st, json.loads(body)) == want
    # dockerd's headers, on a stream (load's) too
    assert b"\r\nApi-Version: 1.41\r\n" in head and b"\r\nServer: Dockyard/" in head
    assert status_kib(pid, "VmHWM") * 1024 - base < 48 * MiB
    answered(sock, 1)
