"""Rootless networking (issue 18): the rootless daemon's own network
namespace with the default bridge and user networks in it, slirp4netns as its
way out, published ports forwarded in-process, embedded DNS, as an ordinary
user of the test's own (tests/test_rootless.py's user and helpers).

The daemon runs in a network namespace the test makes (`ip netns add`,
entered with `nsenter --net`, so /sys stays the host's), which is its "host":
published ports are reached from that namespace's loopback, and outbound
traffic leaves through slirp4netns towards an "upstream" namespace behind a
veth. Traffic goes only to loopback and those namespaces. /dev/net/tun is
made usable by the user (0666, as Debian's udev does; this host has no udev)
and its mode restored at the end. One daemon for the module; it is killed
with SIGKILL and started again (joining the namespaces its running
containers kept) to check the forwarders come back. At the end nothing may
be left: slirp4netns, the rootless namespace's file, mounts, links.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import busybox_rootfs, make_tar
from test_network import UPLINK_IP, UPSTREAM_IP, wire_upstream
from test_rootless import RootlessUser, user  # noqa: F401 - the module's user fixture

from dockyard import _core


pytestmark = pytest.mark.skipif(shutil.which("slirp4netns") is None,
                                reason="slirp4netns is not installed (.ci/setup installs it)")


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}): {r.stderr}")
    return r


class NetUser(RootlessUser):
    """The test user's commands, run in the test's "host" namespace."""

    def __init__(self, *args, netns: str, **kw) -> None:
        super().__init__(*args, **kw)
        self.netns = netns

    def argv(self, *cmd: str) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", *super().argv(*cmd)]


def _user_pids(uid: int, comm: str) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        try:
            if d.isdigit() and os.stat(f"/proc/{d}").st_uid == uid and \
                    Path(f"/proc/{d}/comm").read_text().strip() == comm:
                out.append(int(d))
        except OSError:
            continue
    return out


def _wait(cond, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def rl(user):
    pw, base = user
    tag = secrets.token_hex(3)
    ns, up = f"dyr-{tag}", f"dyq-{tag}"
    tun_mode = os.stat("/dev/net/tun").st_mode & 0o7777
    sh("ip", "netns", "add", ns)
    sh("ip", "netns", "add", up)
    u = NetUser(pw, base, "net", netns=ns)
    leftovers: dict[str, object] = {}
    try:
        os.chmod("/dev/net/tun", 0o666)
        wire_upstream(ns, up)
        root = busybox_rootfs(base / "net-rootfs")
        tar = make_tar(root, base / "net-bb.tar")
        tar.chmod(0o644)
        u.start()
        u.cli("import", "-c", 'CMD ["sh"]', str(tar), "busybox:latest")
        yield u, ns, up
        # torn down here, so that what is left can be asserted
        for c in u.cli("ps", "-aq").stdout.split():
            u.cli("rm", "-f", c, check=False)
        for n in u.cli("network", "ls", "-q", "--filter", "type=custom").stdout.split():
            u.cli("network", "rm", n, check=False)
        u.stop()
        leftovers["slirp4netns"] = _user_pids(pw.pw_uid, "slirp4netns")
        leftovers["netns file"] = (u.run / "dockyard" / "rootless-netns").exists()
        leftovers["links"] = len(sh("ip", "-n", ns, "-o", "link").stdout.splitlines()) - 2  # lo, uplink
        leftovers["mounts"] = [line for line in Path("/proc/self/mountinfo").read_text()
                               .splitlines() if str(u.base) in line]
    finally:
        u.stop()
        if u.log.exists():
            print(u.log.read_text()[-6000:])  # shown when something failed
        os.chmod("/dev/net/tun", tun_mode)
        sh("ip", "netns", "del", ns, check=False)
        sh("ip", "netns", "del", up, check=False)
    assert leftovers == {"slirp4netns": [], "netns file": False, "links": 0, "mounts": []}


def connect(ns: str, port: int, send: bytes = b"", host: str = "127.0.0.1") -> bytes:
    """What a TCP server at host:port in namespace `ns` says, `send` sent first."""
    s = socket.socket(fileno=_core.netns_socket(f"/run/netns/{ns}", socket.AF_INET,
                                                 socket.SOCK_STREAM))
    with s:
        s.settimeout(10)
        s.connect((host, port))
        if send:
            s.sendall(send)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out


ECHO = "while :; do nc -l -p 8080 -e sh -c 'read l; echo \"$HOSTNAME got $l\"'; done"


def test_user_network_dns_published_port_and_restart(rl):
    u, ns, _ = rl
    u.cli("network", "create", "app")
    port = 20000 + secrets.randbelow(20000)
    u.cli("run", "-d", "--name", "srv", "--hostname", "srv", "--network", "app",
          "-p", f"127.0.0.1:{port}:8080", "busybox", "sh", "-c", ECHO)
    # by name through the embedded DNS server, container to container
    r = u.cli("run", "--rm", "--network", "app", "busybox", "sh", "-c",
              "echo hi | nc -w 5 srv 8080")
    assert r.stdout == "srv got hi\n"
    # the published port, from the daemon's host's loopback
    _wait(lambda: _try(lambda: connect(ns, port, b"one\n")) == b"srv got one\n",
          "the published port")
    assert u.cli("port", "srv").stdout == f"8080/tcp -> 127.0.0.1:{port}\n"
    assert f"127.0.0.1:{port}->8080/tcp" in u.cli("ps", "--filter", "name=srv").stdout
    ins = json.loads(u.cli("inspect", "srv").stdout)[0]["NetworkSettings"]
    assert ins["Ports"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert ins["Networks"]["app"]["IPAddress"]
    # the same port again: taken
    r = u.cli("run", "-d", "--name", "again", "--network", "app", "-p",
              f"127.0.0.1:{port}:8080", "busybox", "true", check=False)
    assert r.returncode == 125 and "failed: port is already allocated" in r.stderr
    u.cli("rm", "-f", "again")

    # The daemon killed: slirp4netns goes with it, the container stays; the
    # next daemon joins the namespaces it kept and serves its port again.
    daemon = u.daemon_pid()
    os.kill(daemon, signal.SIGKILL)
    _wait(lambda: not os.path.exists(f"/proc/{daemon}"), "the daemon to die")
    _wait(lambda: not _user_pids(u.pw.pw_uid, "slirp4netns"), "slirp4netns to exit")
    if u.proc:
        u.proc.wait(20)
    u.proc = None
    (u.run / "dockyard.sock").unlink(missing_ok=True)
    u.start()
    assert "rootless: joined the user and mount namespaces of shim" in u.log.read_text()
    _wait(lambda: _try(lambda: connect(ns, port, b"two\n")) == b"srv got two\n",
          "the published port after the restart")
    assert len(_user_pids(u.pw.pw_uid, "slirp4netns")) == 1
    r = u.cli("run", "--rm", "--network", "app", "busybox", "sh", "-c",
              "echo back | nc -w 5 srv 8080")
    assert r.stdout == "srv got back\n"
    u.cli("rm", "-f", "srv")
    # the port is free again
    _wait(lambda: _try(lambda: connect(ns, port)) is None, "the port to close")


def _try(f):
    try:
        return f()
    except OSError:
        return None


def _upstream_server(up: str, port: int) -> tuple[threading.Thread, list[str]]:
    """One connection in the upstream namespace: it answers with the
    address the connection came from."""
    s = socket.socket(fileno=_core.netns_socket(f"/run/netns/{up}", socket.AF_INET,
                                                 socket.SOCK_STREAM))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((UPSTREAM_IP, port))
    s.listen(1)
    s.settimeout(20)
    seen: list[str] = []

    def serve() -> None:
        with s:
            try:
                c, addr = s.accept()
            except OSError:
                return
            with c:
                seen.append(addr[0])
                c.sendall(f"from {addr[0]}\n".encode())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t, seen


def test_outbound_through_slirp4netns_default_bridge(rl):
    """The default bridge (dockyard0 in the rootless namespace) masquerades
    through slirp4netns, whose connections leave from the daemon's host."""
    u, _, up = rl
    t, seen = _upstream_server(up, 7777)
    r = u.cli("run", "--rm", "busybox", "sh", "-c",
              f"nc -w 5 {UPSTREAM_IP} 7777 </dev/null; cat /etc/resolv.conf; ip -4 -o addr")
    t.join(20)
    assert r.stdout.startswith(f"from {UPLINK_IP}\n"), r.stdout
    assert seen == [UPLINK_IP]
    assert "nameserver 10.0.2.3\n" in r.stdout   # slirp4netns's DNS proxy, as Docker rootless
    assert "eth0" in r.stdout
    # the daemon's host has no bridge: it is in the rootless namespace; --network
    # host is the daemon's host itself
    assert "dockyard0" not in sh("ip", "-n", rl[1], "-o", "link").stdout
    r = u.cli("run", "--rm", "--network", "host", "busybox", "ip", "-o", "link")
    assert "uplink" in r.stdout and "dockyard0" not in r.stdout


def test_forwarder_udp_both_ways(tmp_path):
    """The forwarder's UDP flows (busybox has no UDP server to publish): a
    reserved host port here, an echo server on the loopback of a namespace
    standing for the rootless one."""
    from dockyard.network.forward import PortForwarder
    from dockyard.network.ports import Binding, PortReservations

    ns = tmp_path / "ns"
    _core.netns_create(str(ns))
    echo = socket.socket(fileno=_core.netns_socket(str(ns), socket.AF_INET, socket.SOCK_DGRAM))
    echo.bind(("127.0.0.1", 9090))
    echo.settimeout(20)

    def serve() -> None:
        for _ in range(2):
            data, peer = echo.recvfrom(100)
            echo.sendto(data.upper(), peer)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    fwd, res = PortForwarder(str(ns)), PortReservations()
    try:
        held = res.reserve("c", "c", "", [Binding("udp", 9090, "127.0.0.1", 0)])
        fwd.serve("c", list(zip(held, res.sockets("c"))), "127.0.0.1")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
            c.settimeout(10)
            for word in (b"one", b"two"):  # the second through the same flow
                c.sendto(word, ("127.0.0.1", held[0].host_port))
                assert c.recvfrom(100)[0] == word.upper()
    finally:
        fwd.stop("c")
        res.release("c")
        fwd.close()
        echo.close()
        _core.netns_remove(str(ns))


def _upstream_dns(up: str) -> socket.socket:
    """A resolver in the upstream namespace that knows outside.test (its
    thread ends once the caller closes the socket)."""
    import dns.message
    import dns.rrset

    s = socket.socket(fileno=_core.netns_socket(f"/run/netns/{up}", socket.AF_INET,
                                                 socket.SOCK_DGRAM))
    s.bind((UPSTREAM_IP, 53))
    s.settimeout(0.2)  # notices the close

    def serve() -> None:
        while s.fileno() != -1:
            try:
                data, addr = s.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            q = dns.message.from_wire(data)
            r = dns.message.make_response(q)
            if q.question[0].name.to_text() == "outside.test.":
                r.answer.append(dns.rrset.from_text("outside.test.", 60, "IN", "A", "192.0.2.99"))
            s.sendto(r.to_wire(), addr)

    threading.Thread(target=serve, daemon=True).start()
    return s


def test_dns_upstream(rl):
    """A user network's embedded server asks the upstream from the daemon's
    side (the host's namespace); on the default bridge the container asks it
    itself, through slirp4netns."""
    u, _, up = rl
    s = _upstream_dns(up)
    try:
        u.cli("network", "create", "dnsnet")
        for net in ("dnsnet", "bridge"):
            r = u.cli("run", "--rm", "--network", net, "--dns", UPSTREAM_IP, "busybox",
                      "nslookup", "outside.test")
            assert "Address: 192.0.2.99" in r.stdout, (net, r.stdout)
    finally:
        s.close()
        u.cli("network", "rm", "dnsnet", check=False)


def test_privileged_port_refused(rl):
    u, _, _ = rl
    r = u.cli("run", "-d", "--name", "low", "-p", "80:80", "busybox", "true", check=False)
    cid = u.cli("ps", "-aq", "--no-trunc", "--filter", "name=low").stdout.strip()
    u.cli("rm", "-f", "low", check=False)
    assert r.returncode == 126  # docker's CLI: "permission denied" in the error
    ep = r.stderr.split("endpoint low (", 1)[1].split(")", 1)[0]
    assert cid and r.stderr.startswith(
        "dockyard: Error response from daemon: driver failed programming external "
        f"connectivity on endpoint low ({ep}): Error starting userland proxy: error while "
        "calling PortManager.AddPort(): cannot expose privileged port 80, you might need to "
        'add "net.ipv4.ip_unprivileged_port_start=0" (currently 1024) to /etc/sysctl.conf, or '
        "choose a larger port number (>= 1024): listen tcp 0.0.0.0:80: bind: permission "
        "denied"), r.stderr
    r = u.cli("run", "--rm", "-p", "30000:30000/sctp", "busybox", "true", check=False)
    assert r.returncode == 125 and "rootless: publishing SCTP ports is not supported in " \
        "rootless mode (the forwarder relays TCP and UDP)" in r.stderr
