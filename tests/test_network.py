"""Networks and published ports, end to end on the real kernel.

The daemon under test runs in a network namespace of the test's own (`ip netns
add`), with an "upstream" namespace behind it for outbound NAT: its bridges,
veths and nftables table exist only there, and traffic goes only to loopback
and to addresses inside those namespaces. Deleting the namespaces at the end
frees whatever a failing test left; the host's own namespace is checked to be
untouched.
"""

from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
import signal
import subprocess
import sys
import time

import pytest

from conftest import Daemon, assert_no_mounts_left, kill_containers_left

UPSTREAM_IP = "192.0.2.2"  # TEST-NET-1, inside the upstream namespace only
UPLINK_IP = "192.0.2.1"


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{args} failed ({r.returncode}): {r.stderr}")
    return r


class NetDaemon(Daemon):
    def __init__(self, base, netns: str, extra=None) -> None:
        super().__init__(base, "overlay", extra)
        self.netns = netns

    def command(self) -> list[str]:
        return ["nsenter", f"--net=/run/netns/{self.netns}", *super().command()]

    def docker(self, *args: str, input: bytes | None = None, check: bool = True):
        """The docker CLI, its output as text."""
        r = super().docker(*args, input=input, check=check)
        r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
        return r

    def ns(self, *args: str, check: bool = True, timeout: float = 30):
        """A command in the daemon's network namespace (the containers' "host")."""
        return sh("nsenter", f"--net=/run/netns/{self.netns}", *args, check=check,
                  timeout=timeout)

    def api(self, method: str, path: str, body=None, query=None):
        c = self.client()
        r = c.request(method, path, query or {}, body=json.dumps(body).encode()
                      if body is not None else None, check=False)
        data = r.read() if r.status not in (204, 304) else b""
        r.close()
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data


def wire_upstream(ns: str, up: str) -> None:
    """lo up in both namespaces, and a veth between them: `uplink`
    (UPLINK_IP) in `ns`, `wan` (UPSTREAM_IP) in the upstream `up`."""
    for n in (ns, up):
        sh("ip", "-n", n, "link", "set", "lo", "up")
    sh("ip", "-n", ns, "link", "add", "uplink", "type", "veth", "peer", "name", "wan",
       "netns", up)
    sh("ip", "-n", ns, "addr", "add", f"{UPLINK_IP}/24", "dev", "uplink")
    sh("ip", "-n", up, "addr", "add", f"{UPSTREAM_IP}/24", "dev", "wan")
    sh("ip", "-n", ns, "link", "set", "uplink", "up")
    sh("ip", "-n", up, "link", "set", "wan", "up")


def _host_clean() -> None:
    assert sh("ip", "link", "show", "dockyard0", check=False).returncode != 0
    assert "dockyard" not in sh("nft", "list", "tables").stdout


@pytest.fixture(scope="module")
def net(tmp_path_factory, busybox_tar):
    tag = secrets.token_hex(3)
    ns, up = f"dyt-{tag}", f"dyu-{tag}"
    base = tmp_path_factory.mktemp("netdaemon")
    sh("ip", "netns", "add", ns)
    sh("ip", "netns", "add", up)
    d = NetDaemon(base, ns, ["--bridge", "dockyard0", "--dns", UPSTREAM_IP])
    links, netns_files = "", []
    try:
        # lo, and an uplink to the upstream namespace as the default route
        wire_upstream(ns, up)
        sh("ip", "-n", ns, "route", "add", "default", "via", UPSTREAM_IP)
        d.upstream = up
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d
    finally:
        try:
            if d.proc:
                for c in d.client().get_json("/containers/json", {"all": 1}):
                    d.client().request("DELETE", f"/containers/{c['Id']}", {"force": 1},
                                       check=False).close()
                for n in d.client().get_json("/networks"):
                    if n["Name"] not in ("bridge", "host", "none"):
                        d.client().request("DELETE", f"/networks/{n['Id']}",
                                           check=False).close()
                for _ in range(100):  # veths go with their namespace, asynchronously
                    links = d.ns("ip", "-o", "link").stdout
                    if "dyv" not in links:
                        break
                    time.sleep(0.1)
                netns_files = list((base / "exec" / "netns").glob("*"))
        finally:
            d.stop()
            kill_containers_left(base)
            assert_no_mounts_left(base)
            sh("ip", "netns", "del", ns, check=False)
            sh("ip", "netns", "del", up, check=False)
        assert "dyv" not in links, links
        assert netns_files == []
        _host_clean()


@pytest.fixture
def clean(net):
    yield
    for c in net.client().get_json("/containers/json", {"all": 1}):
        net.client().request("DELETE", f"/containers/{c['Id']}", {"force": 1},
                             check=False).close()



@contextmanager
def own_daemon(tmp_path_factory, busybox_tar, extra: list[str],
               env: dict[str, str] | None = None, setup: tuple = ()):
    """A daemon with its default bridge in a network namespace of its own (lo
    up, then each `ip -n <ns> ...` command of `setup`), busybox imported; its
    containers, mounts and namespace removed after, even when the test fails."""
    ns = f"dyo-{secrets.token_hex(3)}"
    base = tmp_path_factory.mktemp("owndaemon")
    sh("ip", "netns", "add", ns)
    d = NetDaemon(base, ns, ["--bridge", "dockyard0", *extra])
    d.daemon_env.update(env or {})
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        for cmd in setup:
            sh("ip", "-n", ns, *cmd)
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d
    finally:
        try:
            if d.proc and d.proc.poll() is None:
                for c in d.client().get_json("/containers/json", {"all": 1}):
                    d.client().request("DELETE", f"/containers/{c['Id']}", {"force": 1},
                                       check=False).close()
        finally:
            d.stop()
            kill_containers_left(base)
            assert_no_mounts_left(base)
            sh("ip", "netns", "del", ns, check=False)

def wget(net, url: str, timeout: int = 3) -> str:
    """An HTTP GET from the daemon's namespace (curl: static busybox's wget
    crashes in glibc's resolver on some hosts)."""
    r = net.ns("curl", "-sS", "-m", str(timeout), url, check=False, timeout=timeout + 10)
    return r.stdout if r.returncode == 0 else f"FAILED: {r.stderr}"


PEER_SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(1)
s.settimeout(20)
print("ready", flush=True)
c, addr = s.accept()
c.sendall(addr[0].encode() + b"\\n")
c.close()
print(addr[0], flush=True)
"""


def upstream_server(net, port: int) -> subprocess.Popen:
    """A one-connection TCP server in the upstream namespace that tells the
    client the address it came from."""
    p = subprocess.Popen(["nsenter", f"--net=/run/netns/{net.upstream}", sys.executable, "-c",
                          PEER_SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


def http_from_container(net, url_host: str, port: int = 80, *args: str,
                        check: bool = True) -> str:
    """The body of GET / from inside a new container (busybox nc: its wget
    crashes in static glibc's resolver on some hosts)."""
    r = net.docker("run", "--rm", *args, "busybox", "sh", "-c",
                   f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {url_host} {port}",
                   check=check)
    return r.stdout.split("\r\n\r\n", 1)[-1] if r.returncode == 0 else ""


def web(net, *args: str, name: str | None = None) -> str:
    """A detached busybox httpd answering its hostname."""
    r = net.docker("run", "-d", *(["--name", name] if name else []), *args, "busybox", "sh",
                   "-c", "hostname > /index.html && exec httpd -f -p 80 -h /")
    cid = r.stdout.strip()
    # ready once httpd listens (port 80 = 0050, LISTEN = 0A in /proc/net/tcp or tcp6)
    for _ in range(100):
        if net.docker("exec", cid, "grep", "-qs", ":0050 [0-9A-F]*:0000 0A",
                      "/proc/net/tcp", "/proc/net/tcp6", check=False).returncode == 0:
            break
        time.sleep(0.05)
    return cid


def inspect(net, ref: str) -> dict:
    return json.loads(net.docker("inspect", ref).stdout)[0]


def test_builtin_networks_listed(net):
    nets = net.client().get_json("/networks")
    assert sorted(n["Name"] for n in nets) == ["bridge", "host", "none"]
    by = {n["Name"]: n for n in nets}
    assert by["bridge"]["Driver"] == "bridge" and by["host"]["Driver"] == "host"
    assert by["none"]["Driver"] == "null"
    assert by["bridge"]["Options"]["com.docker.network.bridge.name"] == "dockyard0"
    assert all(n["Scope"] == "local" for n in nets)
    out = net.docker("network", "ls", "--format", "{{.Name}} {{.Driver}} {{.Scope}}").stdout
    assert out.split("\n")[:3] == ["bridge bridge local", "host host local", "none null local"]


def test_default_bridge_container(net, clean):
    cid = web(net)
    ins = inspect(net, cid)
    ns = ins["NetworkSettings"]
    ip = ns["IPAddress"]
    assert ip and ns["Networks"]["bridge"]["IPAddress"] == ip
    assert ns["MacAddress"] == "02:42:" + ":".join(f"{int(b):02x}" for b in ip.split("."))
    assert ns["Networks"]["bridge"]["NetworkID"] == net.client().get_json(
        "/networks/bridge")["Id"]
    assert ns["Gateway"].endswith(".1") and ns["Ports"] == {}
    assert wget(net, f"http://{ip}/").strip() == cid[:12]
    hosts = net.docker("exec", cid, "cat", "/etc/hosts").stdout
    assert f"{ip}\t{cid[:12]}" in hosts
    assert "nameserver" in net.docker("exec", cid, "cat", "/etc/resolv.conf").stdout
    members = net.client().get_json("/networks/bridge")["Containers"]
    assert members[cid]["IPv4Address"].startswith(ip + "/")


def test_published_ports(net, clean):
    cid = web(net, "-p", "127.0.0.1:18080:80", "-p", "18081:80", name="pub")
    assert wget(net, "http://127.0.0.1:18080/").strip() == cid[:12]
    assert wget(net, f"http://{UPLINK_IP}:18081/").strip() == cid[:12]
    ports = inspect(net, cid)["NetworkSettings"]["Ports"]
    assert ports == {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "18080"},
                                {"HostIp": "0.0.0.0", "HostPort": "18081"}]}
    assert net.docker("port", cid).stdout.splitlines() == [
        "80/tcp -> 127.0.0.1:18080", "80/tcp -> 0.0.0.0:18081"]
    ps = net.docker("ps", "--format", "{{.Ports}}", "-f", "name=pub").stdout.strip()
    assert "127.0.0.1:18080->80/tcp" in ps and "0.0.0.0:18081->80/tcp" in ps
    # hairpin: another container reaches it through the host's address
    assert http_from_container(net, UPLINK_IP, 18081).strip() == cid[:12]
    # the port is taken: dockerd's error, and nothing half-started
    r = net.docker("run", "-d", "--name", "pub2", "-p", "18081:80", "busybox", "true",
                   check=False)
    assert r.returncode == 125
    assert "Bind for 0.0.0.0:18081 failed: port is already allocated" in r.stderr
    assert inspect(net, "pub2")["State"]["Running"] is False
    assert inspect(net, "pub2")["NetworkSettings"]["IPAddress"] == ""


def test_publish_all_and_upstream_masquerade(net, clean):
    cid = web(net, "-P", "--expose", "80")
    port = inspect(net, cid)["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"]
    lo, hi = map(int, open("/proc/sys/net/ipv4/ip_local_port_range").read().split())
    assert lo <= int(port) <= hi
    assert wget(net, f"http://127.0.0.1:{port}/").strip() == cid[:12]
    # outbound: the upstream sees the uplink's address, not the container's
    srv = upstream_server(net, 7777)
    try:
        out = net.docker("run", "--rm", "busybox", "nc", "-w", "5", UPSTREAM_IP,
                         "7777").stdout
    finally:
        srv.kill()
        srv.wait()
    assert out.strip() == UPLINK_IP


def test_user_networks_isolated(net, clean):
    net.docker("network", "create", "--subnet", "10.77.0.0/24", "--label", "t=1", "front")
    net.docker("network", "create", "back")
    try:
        a = web(net, "--network", "front", "--ip", "10.77.0.50", name="web-a")
        assert inspect(net, a)["NetworkSettings"]["Networks"]["front"]["IPAddress"] == \
            "10.77.0.50"
        assert http_from_container(net, "10.77.0.50", 80, "--network", "front").strip() \
            == a[:12]
        assert http_from_container(net, "10.77.0.50", 80, "--network", "back",
                                   check=False) == ""
        ins = net.client().get_json("/networks/front")
        assert ins["IPAM"]["Config"] == [{"Subnet": "10.77.0.0/24"}]
        assert ins["Labels"] == {"t": "1"} and a in ins["Containers"]
        r = net.docker("network", "rm", "front", check=False)
        assert "has active endpoints" in r.stderr
    finally:
        net.docker("rm", "-f", "web-a", check=False)
        net.docker("network", "rm", "front", "back", check=False)


def test_internal_network_has_no_way_out(net, clean):
    net.docker("network", "create", "--internal", "sealed")
    try:
        srv = upstream_server(net, 7778)
        try:
            r = net.docker("run", "--rm", "--network", "sealed", "busybox", "nc", "-w", "2",
                           UPSTREAM_IP, "7778", check=False)
        finally:
            srv.kill()
            srv.wait()
        assert UPLINK_IP not in r.stdout
    finally:
        net.docker("network", "rm", "sealed", check=False)


def test_host_none_and_container_modes(net, clean):
    links = net.docker("run", "--rm", "--network", "host", "busybox", "ip", "-o",
                       "link").stdout
    assert "uplink" in links
    links = net.docker("run", "--rm", "--network", "none", "busybox", "ip", "-o",
                       "link").stdout.splitlines()
    assert len(links) == 1 and links[0].startswith("1: lo:")
    cid = web(net, name="target")
    assert http_from_container(net, "127.0.0.1", 80, "--network",
                               "container:target").strip() == cid[:12]
    r = net.docker("run", "--rm", "--network", "container:target", "-p", "80:80", "busybox",
                   "true", check=False)
    assert "conflicting options: port publishing and the container type network mode" \
        in r.stderr
    assert inspect(net, cid)["NetworkSettings"]["Networks"]["bridge"]["IPAddress"]


def test_connect_disconnect_running(net, clean):
    net.docker("network", "create", "--subnet", "10.82.0.0/24", "extra")
    try:
        cid = web(net, name="hot")
        net.docker("network", "connect", "--alias", "web", "--ip", "10.82.0.9", "extra", "hot")
        ns = inspect(net, cid)["NetworkSettings"]["Networks"]
        assert set(ns) == {"bridge", "extra"} and "web" in ns["extra"]["Aliases"]
        assert ns["extra"]["IPAddress"] == "10.82.0.9"
        assert "eth1" in net.docker("exec", "hot", "ip", "-o", "link").stdout
        r = net.docker("network", "connect", "extra", "hot", check=False)
        assert "endpoint with name hot already exists in network extra" in r.stderr
        net.docker("network", "disconnect", "-f", "extra", "hot")
        assert "eth1" not in net.docker("exec", "hot", "ip", "-o", "link").stdout
    finally:
        net.docker("rm", "-f", "hot", check=False)
        net.docker("network", "rm", "extra", check=False)


@pytest.mark.parametrize("body,status,message", [
    ({"Name": "x1", "IPAM": {"Config": [{"Subnet": "10.5.0.0/33"}]}}, 400,
     "Invalid subnet 10.5.0.0/33 : invalid CIDR address: 10.5.0.0/33"),
    ({"Name": "x2", "IPAM": {"Config": [{"Subnet": "10.5.0.0/24", "Gateway": "10.6.0.1"}]}}, 400,
     "failed to allocate gateway (10.6.0.1): Requested address is out of range"),
    ({"Name": "host"}, 403, "operation is not permitted on predefined host network "),
    ({"Name": "x3", "Driver": "host"}, 403, 'only one instance of "host" network is allowed'),
    ({"Name": "x4", "Driver": "foo"}, 404, 'plugin "foo" not found'),
])
def test_network_create_errors(net, body, status, message):
    assert net.api("POST", "/networks/create", body) == (status, {"message": message})
    assert body["Name"] not in [n["Name"] for n in net.client().get_json("/networks")] or \
        body["Name"] == "host"


def test_network_conflicts(net):
    assert net.api("POST", "/networks/create", {"Name": "dup", "IPAM": {"Config": [
        {"Subnet": "10.88.0.0/24"}]}})[0] == 201
    try:
        assert net.api("POST", "/networks/create", {"Name": "dup"}) == \
            (409, {"message": "network with name dup already exists"})
        assert net.api("POST", "/networks/create", {"Name": "dup2", "IPAM": {"Config": [
            {"Subnet": "10.88.0.128/25"}]}}) == \
            (403, {"message": "Pool overlaps with other one on this address space"})
        assert net.api("DELETE", "/networks/bridge") == \
            (403, {"message": "bridge is a pre-defined network and cannot be removed"})
        assert net.api("GET", "/networks/nope") == (404, {"message": "network nope not found"})
    finally:
        net.api("DELETE", "/networks/dup")


def test_daemon_restart_keeps_networking(net, clean):
    cid = web(net, "-p", "127.0.0.1:18090:80", name="survivor")
    ip = inspect(net, cid)["NetworkSettings"]["IPAddress"]
    rules = net.ns("nft", "list", "table", "inet", "dockyard").stdout
    net.proc.send_signal(signal.SIGKILL)
    net.proc.wait()
    net.start()
    assert inspect(net, cid)["NetworkSettings"]["IPAddress"] == ip
    assert wget(net, "http://127.0.0.1:18090/").strip() == cid[:12]
    assert net.ns("nft", "list", "table", "inet", "dockyard").stdout == rules
    r = net.docker("run", "--rm", "-p", "127.0.0.1:18090:80", "busybox", "true", check=False)
    assert "port is already allocated" in r.stderr


UPSTREAM_DNS = """
import socket, sys
import dns.message, dns.rrset
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 53))
print("ready", flush=True)
while True:
    data, addr = s.recvfrom(4096)
    q = dns.message.from_wire(data)
    r = dns.message.make_response(q)
    if q.question[0].name.to_text() == "outside.test.":
        r.answer.append(dns.rrset.from_text("outside.test.", 60, "IN", "A", "192.0.2.99"))
    s.sendto(r.to_wire(), addr)
"""


def nslookup(net, name: str, *args: str) -> str:
    r = net.docker("run", "--rm", *args, "busybox", "nslookup", name, check=False)
    return r.stdout if r.returncode == 0 else ""


def test_embedded_dns_on_user_networks(net, clean):
    net.docker("network", "create", "--subnet", "10.78.0.0/24", "dnsnet")
    net.docker("network", "create", "othernet")
    srv = subprocess.Popen(["nsenter", f"--net=/run/netns/{net.upstream}", sys.executable,
                            "-c", UPSTREAM_DNS], stdout=subprocess.PIPE, text=True)
    try:
        assert srv.stdout.readline().strip() == "ready"
        cid = net.docker("run", "-d", "--name", "srv", "--network", "dnsnet",
                         "--network-alias", "db", "busybox", "sleep", "300").stdout.strip()
        ip = inspect(net, cid)["NetworkSettings"]["Networks"]["dnsnet"]["IPAddress"]
        for name in ("srv", "db", cid[:12], "srv.dnsnet"):
            assert f"Address: {ip}" in nslookup(net, name, "--network", "dnsnet"), name
        conf = net.docker("run", "--rm", "--network", "dnsnet", "busybox", "cat",
                          "/etc/resolv.conf").stdout
        assert "nameserver 127.0.0.11" in conf and "ndots:0" in conf
        # other names go to the upstream resolver (--dns of the daemon)
        assert "Address: 192.0.2.99" in nslookup(net, "outside.test", "--network", "dnsnet")
        # no names across networks, nor on the default bridge
        assert ip not in nslookup(net, "srv", "--network", "othernet")
        assert ip not in nslookup(net, "srv")
        # the names survive a daemon restart
        net.proc.send_signal(signal.SIGKILL)
        net.proc.wait()
        net.start()
        out = net.docker("exec", "srv", "nslookup", "db").stdout
        assert f"Address: {ip}" in out
    finally:
        srv.kill()
        srv.wait()
        net.docker("rm", "-f", "srv", check=False)
        net.docker("network", "rm", "dnsnet", "othernet", check=False)


def test_ipv6_user_network(net, clean):
    net.docker("network", "create", "--ipv6", "--subnet", "fd00:d0c::/64", "v6net")
    try:
        cid = web(net, "--network", "v6net", name="six")
        ep = inspect(net, cid)["NetworkSettings"]["Networks"]["v6net"]
        assert ep["GlobalIPv6Address"].startswith("fd00:d0c::") and ep["IPAddress"]
        out = net.docker("run", "--rm", "--network", "v6net", "busybox", "sh", "-c",
                         f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 "
                         f"{ep['GlobalIPv6Address']} 80").stdout
        assert out.endswith(cid[:12] + "\n")
        members = net.client().get_json("/networks/v6net")["Containers"]
        assert members[cid]["IPv6Address"] == f"{ep['GlobalIPv6Address']}/64"
    finally:
        net.docker("rm", "-f", "six", check=False)
        net.docker("network", "rm", "v6net", check=False)


def test_reachable_from_another_host_but_not_loopback_ports(net, clean):
    cid = web(net, "-p", "18083:80", "-p", "127.0.0.1:18084:80")
    out = sh("nsenter", f"--net=/run/netns/{net.upstream}", "curl", "-sS", "-m", "3",
             f"http://{UPLINK_IP}:18083/").stdout
    assert out.strip() == cid[:12]
    r = sh("nsenter", f"--net=/run/netns/{net.upstream}", "curl", "-sS", "-m", "2",
           f"http://{UPLINK_IP}:18084/", check=False)
    assert r.returncode != 0


def test_port_forms(net, clean):
    cid = net.docker("run", "-d", "-p", "127.0.0.1::80", "-p", "18100-18101:80-81",
                     "-p", "18102:53/udp", "busybox", "sleep", "300").stdout.strip()
    ports = inspect(net, cid)["NetworkSettings"]["Ports"]
    assert ports["80/tcp"][0]["HostIp"] == "127.0.0.1" and int(ports["80/tcp"][0]["HostPort"])
    assert ports["80/tcp"][1] == {"HostIp": "0.0.0.0", "HostPort": "18100"}
    assert ports["81/tcp"] == [{"HostIp": "0.0.0.0", "HostPort": "18101"}]
    assert ports["53/udp"] == [{"HostIp": "0.0.0.0", "HostPort": "18102"}]
    listed = {(p["PrivatePort"], p["Type"]) for p in
              net.client().get_json("/containers/json", {"filters": json.dumps(
                  {"id": [cid]})})[0]["Ports"]}
    assert listed == {(80, "tcp"), (81, "tcp"), (53, "udp")}
    bad = {"Image": "busybox", "HostConfig": {"PortBindings": {"80/tcp": [
        {"HostPort": "99999"}]}}}
    assert net.api("POST", "/containers/create", bad) == \
        (400, {"message": 'invalid port specification: "99999"'})


def test_forward_policy_drop_still_forwards(net, clean):
    net.ns("iptables", "-P", "FORWARD", "DROP")
    try:
        net.docker("network", "create", "guarded")
        srv = upstream_server(net, 7779)
        try:
            out = net.docker("run", "--rm", "--network", "guarded", "busybox", "nc", "-w", "5",
                             UPSTREAM_IP, "7779").stdout
        finally:
            srv.kill()
            srv.wait()
        assert out.strip() == UPLINK_IP
        net.docker("network", "rm", "guarded")
        assert "dockyard" not in net.ns("iptables", "-S", "FORWARD").stdout
    finally:
        net.ns("iptables", "-P", "FORWARD", "ACCEPT")
        net.docker("network", "rm", "guarded", check=False)


def test_concurrent_runs_get_distinct_addresses(net, clean):
    import concurrent.futures

    net.docker("network", "create", "crowd")
    try:
        with concurrent.futures.ThreadPoolExecutor(8) as ex:
            ids = list(ex.map(lambda i: net.docker("run", "-d", "--network", "crowd", "busybox",
                                                   "sleep", "300").stdout.strip(), range(12)))
        ips = [inspect(net, c)["NetworkSettings"]["Networks"]["crowd"]["IPAddress"]
               for c in ids]
        assert len(set(ips)) == 12 and all(ips)
    finally:
        net.docker("rm", "-f", *[c for c in locals().get("ids", [])], check=False)
        net.docker("network", "rm", "crowd", check=False)


def test_network_ls_filters_prune_and_events(net, clean):
    since = str(int(time.time()) - 1)
    net.docker("network", "create", "--label", "app=x", "lab1")
    net.docker("network", "create", "lab2")
    cid = net.docker("run", "-d", "--network", "lab2", "busybox", "sleep", "300").stdout.strip()
    try:
        def names(*f):
            return net.docker("network", "ls", "--format", "{{.Name}}",
                              *[a for x in f for a in ("-f", x)]).stdout.split()
        assert names("label=app=x") == ["lab1"]
        assert names("name=lab") == ["lab1", "lab2"]
        assert names("type=builtin") == ["bridge", "host", "none"]
        assert names("dangling=true") == ["lab1"]
        assert names("driver=null") == ["none"]
        out = net.docker("network", "prune", "-f").stdout
        assert out == "Deleted Networks:\nlab1\n\n"
        assert net.cli("network", "ls", "-q", "-f", "name=lab1").stdout == b""
        net.docker("rm", "-f", cid)
        net.docker("network", "rm", "lab2")
        ev = net.docker("events", "--since", since, "--until", str(int(time.time()) + 1),
                        "--filter", "type=network", "--format",
                        "{{.Action}} {{.Actor.Attributes.name}}").stdout.splitlines()
        for want in ("create lab1", "create lab2", "connect lab2", "disconnect lab2",
                     "destroy lab1", "destroy lab2"):
            assert want in ev, (want, ev)
    finally:
        net.docker("rm", "-f", cid, check=False)
        net.docker("network", "rm", "lab1", "lab2", check=False)


def test_etc_files_and_dns_options(net, clean):
    out = net.docker("run", "--rm", "--hostname", "box", "--add-host", "db.local:10.1.2.3",
                     "--add-host", "gw:host-gateway", "--dns", "192.0.2.53", "--dns-search",
                     "corp.test", "--dns-option", "ndots:2", "--mac-address",
                     "02:42:de:ad:be:ef", "busybox", "sh", "-c",
                     "cat /etc/hosts /etc/resolv.conf; hostname; cat /sys/class/net/eth0/address"
                     ).stdout
    assert "10.1.2.3\tdb.local" in out
    gw = net.client().get_json("/networks/bridge")["IPAM"]["Config"][0]["Subnet"]
    assert any(line.endswith("\tgw") and line.split("\t")[0].endswith(".1")
               for line in out.splitlines()), out
    assert gw
    assert "nameserver 192.0.2.53" in out and "search corp.test" in out
    assert "options ndots:2" in out
    assert "\nbox\n" in out and "02:42:de:ad:be:ef" in out


def test_daemon_bridge_options(tmp_path_factory, busybox_tar):
    """--bip, --mtu and --icc=false, in a namespace of their own."""
    with own_daemon(tmp_path_factory, busybox_tar, [
            "--bip", "10.55.0.1/24", "--mtu", "1400", "--icc=false", "--dns", UPSTREAM_IP,
            "--fixed-cidr", "10.55.0.128/25", "--default-address-pool",
            "base=10.60.0.0/16,size=24", "--ip", "127.0.0.1"]) as d:
        assert d.client().get_json("/networks/bridge")["IPAM"]["Config"] == [
            {"Subnet": "10.55.0.0/24", "Gateway": "10.55.0.1", "IPRange": "10.55.0.128/25"}]
        a = web(d, "-p", "18400:80", name="icc-a")
        ip = inspect(d, a)["NetworkSettings"]["IPAddress"]
        assert ip == "10.55.0.129"  # --fixed-cidr
        assert inspect(d, a)["NetworkSettings"]["Ports"]["80/tcp"] == [  # --ip
            {"HostIp": "127.0.0.1", "HostPort": "18400"}]
        d.docker("network", "create", "pooled")
        assert d.client().get_json("/networks/pooled")["IPAM"]["Config"][0]["Subnet"] == \
            "10.60.0.0/24"  # --default-address-pool
        assert d.docker("exec", a, "cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1400"
        assert wget(d, f"http://{ip}/").strip() == a[:12]  # from the host: allowed
        assert http_from_container(d, ip, 80, check=False) == ""  # container to container: not


def test_no_bridge_daemon_has_no_bridge_network(daemon):
    names = sorted(n["Name"] for n in daemon.client().get_json("/networks"))
    assert names == ["host", "none"]


def test_our_cli_matches_docker(net, clean):
    """`dockyard network ...` prints what the docker CLI prints."""
    nid = net.cli("network", "create", "--subnet", "10.79.0.0/24", "--label", "k=v",
                  "ours").stdout.decode().strip()
    try:
        assert len(nid) == 64
        for args in (["network", "ls"], ["network", "ls", "--no-trunc", "-f", "label=k=v"],
                     ["network", "ls", "-q"],
                     ["network", "ls", "--format", "{{.Name}}\t{{.Driver}}\t{{.Labels}}"],
                     ["network", "inspect", "ours"],
                     ["network", "inspect", "-f", "{{.Name}} {{.Labels}} {{json .IPAM}}", "ours"]):
            assert net.cli(*args).stdout.decode() == net.docker(*args).stdout, args
        r = net.cli("network", "inspect", "nope", check=False)
        d = net.docker("network", "inspect", "nope", check=False)
        assert (r.returncode, r.stderr.decode()) == (d.returncode, d.stderr)
        web(net, name="cli-web")
        net.cli("network", "connect", "--alias", "w", "ours", "cli-web")
        assert "ours" in inspect(net, "cli-web")["NetworkSettings"]["Networks"]
        net.cli("network", "disconnect", "ours", "cli-web")
        assert net.cli("port", "cli-web").stdout == b""
    finally:
        net.docker("rm", "-f", "cli-web", check=False)
        assert net.cli("network", "rm", "ours").stdout == b"ours\n"


def test_docker_sdk_networks(net, clean):
    """What docker-py's own network tests (api_network_test, models_networks_test)
    check, through the docker SDK (their suite is not shipped on PyPI)."""
    import docker
    from docker.types import IPAMConfig, IPAMPool

    client = docker.DockerClient(base_url=net.host, version="1.41")
    api = client.api
    nid = api.create_network("sdk-ipam", ipam=IPAMConfig(pool_configs=[IPAMPool(
        subnet="172.28.0.0/16", iprange="172.28.5.0/24", gateway="172.28.5.254",
        aux_addresses={"a": "172.28.1.5"})]))["Id"]
    try:
        ipam = api.inspect_network(nid)["IPAM"]
        assert ipam.pop("Options", None) is None and ipam["Driver"] == "default"
        assert ipam["Config"] == [{"Subnet": "172.28.0.0/16", "IPRange": "172.28.5.0/24",
                                   "Gateway": "172.28.5.254",
                                   "AuxiliaryAddresses": {"a": "172.28.1.5"}}]
        c = api.create_container("busybox", "top")
        api.connect_container_to_network(c, "sdk-ipam", mac_address="02:42:ac:11:00:02",
                                         ipv4_address="172.28.5.24")
        ep = api.inspect_container(c)["NetworkSettings"]["Networks"]["sdk-ipam"]
        assert ep["MacAddress"] == "02:42:ac:11:00:02"
        assert ep["IPAMConfig"] == {"IPv4Address": "172.28.5.24"}
        api.start(c)
        ep = api.inspect_container(c)["NetworkSettings"]["Networks"]["sdk-ipam"]
        assert ep["IPAddress"] == "172.28.5.24" and ep["Gateway"] == "172.28.5.254"
        api.remove_container(c, force=True)
        # a link's alias resolves for the linking container (embedded DNS)
        foo = api.create_container("busybox", "top", name="sdk-foo", host_config=api.
                                   create_host_config(network_mode="sdk-ipam"))
        api.start(foo)
        bar = api.create_container(
            "busybox", "nslookup bar", host_config=api.create_host_config(
                network_mode="sdk-ipam"),
            networking_config=api.create_networking_config({"sdk-ipam": api.
                                                           create_endpoint_config(
                                                               links=[("sdk-foo", "bar")])}))
        api.start(bar)
        assert api.wait(bar)["StatusCode"] == 0
        assert b"172.28.5." in api.logs(bar)
        # an exited container keeps the aliases it was given, without its short ID
        ran = client.containers.run("busybox", "true", network="sdk-ipam", detach=True,
                                    networking_config={"sdk-ipam": api.create_endpoint_config(
                                        aliases=["hello"])})
        ran.wait()
        ran.reload()
        assert ran.attrs["NetworkSettings"]["Networks"]["sdk-ipam"]["Aliases"] == ["hello"]
        # docker-py's tests tear down through swarm/leave and accept only 503/406
        assert net.api("POST", "/swarm/leave", query={"force": "1"}) == \
            (503, {"message": "This node is not part of a swarm"})
    finally:
        for x in api.containers(all=True):
            api.remove_container(x["Id"], force=True)
        api.remove_network(nid)
        client.close()


def test_iptables_fallback(tmp_path_factory, busybox_tar):
    """Where nftables is missing: the same rules as iptables chains of our own."""
    with own_daemon(tmp_path_factory, busybox_tar, ["--dns", UPSTREAM_IP],
                    env={"DOCKYARD_FIREWALL": "iptables"}) as d:
        d.docker("network", "create", "iptnet")
        a = web(d, "-p", "127.0.0.1:18200:80", "--network", "iptnet", "--network-alias", "w",
                name="ipt-web")
        assert wget(d, "http://127.0.0.1:18200/").strip() == a[:12]
        assert http_from_container(d, "w", 80, "--network", "iptnet").strip() == a[:12]
        nat = d.ns("iptables", "-t", "nat", "-S").stdout
        assert "-j DNAT --to-destination" in nat and "-A PREROUTING -j DOCKYARD-PREROUTING" in nat
        assert d.ns("nft", "list", "tables").stdout.count("dockyard") == 0
        d.docker("rm", "-f", "ipt-web")
        d.docker("network", "rm", "iptnet")
        assert "DOCKYARD" not in d.ns("iptables", "-t", "nat", "-S").stdout


TESTCONTAINERS = """
import sys, urllib.request
from testcontainers.core.config import testcontainers_config
testcontainers_config.ryuk_disabled = True
from testcontainers.core.container import DockerContainer
c = DockerContainer("busybox").with_command(
    ["sh", "-c", "echo tc > /index.html; exec httpd -f -p 80 -h /"]).with_exposed_ports(80)
with c:
    host, port = c.get_container_host_ip(), c.get_exposed_port(80)
    for _ in range(50):
        try:
            print(host, urllib.request.urlopen(f"http://{host}:{port}/", timeout=2).read().decode())
            break
        except OSError:
            import time; time.sleep(0.1)
"""


def test_testcontainers_published_port(net, clean):
    """testcontainers-python maps a port and talks to it, from the daemon's
    namespace (its reaper needs a registry image, so it is off)."""
    r = net.ns("env", f"DOCKER_HOST={net.host}", "TESTCONTAINERS_RYUK_DISABLED=true",
               f"PYTHONPATH={os.pathsep.join(sys.path)}", sys.executable, "-c", TESTCONTAINERS,
               timeout=60)
    # the host it names depends on where testcontainers thinks it runs; it reaches it
    assert r.stdout.split()[-1:] == ["tc"], r.stdout + r.stderr


def test_container_gone_while_daemon_was_down(net, clean):
    """A container that dies while the daemon is away leaves nothing behind once
    the daemon is back: no namespace, no veth, no address, no port, no rule."""
    cid = web(net, "-p", "18300:80", "--network", "bridge", name="doomed")
    ins = inspect(net, cid)
    pid, ip = ins["State"]["Pid"], ins["NetworkSettings"]["IPAddress"]
    net.proc.send_signal(signal.SIGKILL)
    net.proc.wait()
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    net.start()
    assert inspect(net, cid)["State"]["Running"] is False
    assert not (net.base / "exec" / "netns" / cid).exists()
    assert "18300" not in net.ns("nft", "list", "ruleset").stdout
    again = web(net, "-p", "18300:80")
    assert wget(net, "http://127.0.0.1:18300/").strip() == again[:12]
    assert inspect(net, again)["NetworkSettings"]["IPAddress"] == ip  # the address was freed


def test_start_without_ports_leaves_the_rules_alone(net, clean):
    """A container without published ports changes no packet rule at its
    start or exit (the rules depend on the bridges and the ports alone, which
    is why a start renders them only when one of those changed): no new
    nftables generation; one with a port makes some."""
    net.docker("run", "--rm", "busybox", "true")  # the default bridge is in the rules
    mon = subprocess.Popen(["nsenter", f"--net=/run/netns/{net.netns}", "nft", "monitor"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.3)  # subscribed
        net.docker("run", "--rm", "busybox", "true")
        cid = net.docker("run", "-d", "busybox", "sleep", "30").stdout.strip()
        net.docker("rm", "-f", cid)
        pub = net.docker("run", "-d", "-p", "18400:80", "busybox", "sleep", "30").stdout.strip()
        net.docker("rm", "-f", pub)
        time.sleep(0.3)
    finally:
        mon.terminate()
        out = mon.communicate(timeout=10)[0]
    before, port, _ = out.partition("18400")
    assert port, out  # the published port's rules came and went
    assert "new generation" not in before, out


def test_veth_failure_at_start_leaves_nothing(net, clean):
    """The namespace and veths are made on a thread while the rootfs is
    mounted and the spec built: a failure there (the network's bridge gone
    under the daemon) fails the start with the kernel's words and leaves no
    namespace, veth, address or mount; the network can then be removed."""
    net.docker("network", "create", "flaky")
    try:
        nid = net.client().get_json("/networks/flaky")["Id"]
        br = "dy-" + nid[:12]
        net.docker("run", "--rm", "--network", "flaky", "busybox", "true")  # bridge made
        net.ns("ip", "link", "del", br)
        r = net.docker("run", "--name", "noveth", "--network", "flaky", "busybox", "true",
                       check=False)
        # as dockerd: the attach goes through, the start fails with the words
        assert r.returncode == 125, r
        assert "failed to set up container networking" in r.stderr, r.stderr
        assert f"bridge {br} not found" in r.stderr, r.stderr
        ins = inspect(net, "noveth")
        assert ins["State"]["Running"] is False and ins["NetworkSettings"]["IPAddress"] == ""
        assert f"bridge {br} not found" in ins["State"]["Error"]
        assert not (net.base / "exec" / "netns" / ins["Id"]).exists()
        for _ in range(100):  # the peer goes with the namespace, asynchronously
            if "dyv" not in net.ns("ip", "-o", "link").stdout:
                break
            time.sleep(0.05)
        assert "dyv" not in net.ns("ip", "-o", "link").stdout
        assert str(net.base / "overlay" / ins["Id"]) not in open("/proc/self/mountinfo").read()
    finally:
        net.docker("rm", "-f", "noveth", check=False)
        net.docker("network", "rm", "flaky")


def test_bridge_options_and_bad_addresses(net, clean):
    net.docker("network", "create", "-o", "com.docker.network.bridge.name=br-custom", "-o",
               "com.docker.network.bridge.host_binding_ipv4=127.0.0.1", "-o",
               "com.docker.network.driver.mtu=1450", "--subnet", "10.81.0.0/24", "custom")
    try:
        cid = web(net, "--network", "custom", "-p", "18500:80", name="opt-web")
        assert "br-custom" in net.ns("ip", "-o", "link", "show", "br-custom").stdout
        assert inspect(net, cid)["NetworkSettings"]["Ports"]["80/tcp"] == [
            {"HostIp": "127.0.0.1", "HostPort": "18500"}]
        assert wget(net, "http://127.0.0.1:18500/").strip() == cid[:12]
        assert net.docker("exec", cid, "cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1450"
        r = net.docker("run", "-d", "--name", "outside", "--network", "custom", "--ip",
                       "10.99.0.5", "busybox", "true", check=False)
        assert r.returncode == 125
        assert "Invalid address 10.99.0.5: It does not belong to any of this network's " \
            "subnets" in r.stderr
        assert inspect(net, "outside")["State"]["Running"] is False
        r = net.docker("run", "--rm", "--network", "nonet", "busybox", "true", check=False)
        assert "network nonet not found" in r.stderr
    finally:
        net.docker("rm", "-f", "opt-web", "outside", check=False)
        net.docker("network", "rm", "custom", check=False)
    assert net.ns("ip", "link", "show", "br-custom", check=False).returncode != 0


def test_default_pool_skips_routed_ranges(tmp_path_factory, busybox_tar):
    """A range already routed on the host (a VPN, a dockerd's bridge) is skipped."""
    with own_daemon(tmp_path_factory, busybox_tar, ["--iptables=false"],
                    setup=(("route", "add", "10.231.0.0/24", "dev", "lo"),)) as d:
        assert d.client().get_json("/networks/bridge")["IPAM"]["Config"] == [
            {"Subnet": "10.231.1.0/24"}]
        d.docker("network", "create", "next")
        assert d.client().get_json("/networks/next")["IPAM"]["Config"] == [
            {"Subnet": "10.231.2.0/24"}]


def test_network_options_in_daemon_json(tmp_path):
    from dockyard.daemon.config import load

    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({"bridge": "br-x", "bip": "10.70.0.1/24", "fixed-cidr":
                             "10.70.0.128/25", "default-address-pools": [
                                 {"base": "10.71.0.0/16", "size": 24}], "icc": False,
                             "ip": "127.0.0.1", "ip-forward": False, "ip-masq": False,
                             "iptables": False, "mtu": 1400, "dns": ["192.0.2.53"],
                             "dns-search": ["corp.test"], "dns-opts": ["ndots:2"]}))
    c = load({}, str(f))
    assert (c.bridge, c.bip, c.fixed_cidr, c.icc, c.ip, c.ip_forward, c.ip_masq, c.iptables,
            c.mtu, c.dns, c.dns_search, c.dns_opts) == (
        "br-x", "10.70.0.1/24", "10.70.0.128/25", False, "127.0.0.1", False, False, False,
        1400, ["192.0.2.53"], ["corp.test"], ["ndots:2"])
    assert c.default_address_pools == [{"base": "10.71.0.0/16", "size": 24}]
