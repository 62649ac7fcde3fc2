"""The CNI invoker (dockyard.network.cni) with Debian's real plugins
(/usr/lib/cni: loopback, bridge, host-local, portmap, tuning).

Plugins act on the network namespace of the process that runs them: the
bridge, the veths' host ends and portmap's iptables rules land there. So every
ADD/DEL/CHECK runs in a driver process inside a "node" namespace this module
pins (`_core.netns_create`), never in the host's; pods are namespaces pinned
under the test's tmp dir. Traffic goes only between those namespaces. Removing
them at the end takes the bridge, veths and rules along; the host is checked
to hold none of them. host-local keeps its leases under the tmp dir
(`dataDir`), the invoker its result cache too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dockyard import _core
from dockyard.network import cni

PLUGINS = "/usr/lib/cni"
NET = "dytcni"            # network name (also in portmap's rule comments)
BRIDGE = "dytcni0"
SUBNET = "10.77.0.0/24"
GATEWAY = "10.77.0.1"

pytestmark = pytest.mark.skipif(not os.path.exists(f"{PLUGINS}/bridge"),
                                reason="containernetworking-plugins not installed")

# Runs inside the node namespace: one CNI call per request line, a fresh CNI
# object each time (so every call starts from the files, as after a restart).
DRIVER = r"""
import json, sys
from dataclasses import asdict
from dockyard.network import cni
for line in sys.stdin:
    req = json.loads(line)
    inv = cni.CNI(**req["conf"])
    kwargs = req["kwargs"]
    if kwargs.get("pod"):
        kwargs["pod"] = cni.PodRef(**kwargs["pod"])
    calls = []
    if kwargs.get("meanwhile"):  # "count" or "raise": the calls come back in the reply
        how = kwargs["meanwhile"]
        def meanwhile():
            calls.append(1)
            if how == "raise":
                raise RuntimeError("meanwhile failed")
        kwargs["meanwhile"] = meanwhile
    try:
        if req["op"] == "begin_abort":  # an ADD begun, then given up
            out = inv.begin_add(*req["args"], **kwargs).abort()
        else:
            out = getattr(inv, req["op"])(*req["args"], **kwargs)
        if isinstance(out, cni.Attachment):
            out = asdict(out)
        reply = {"ok": out}
    except cni.CNIError as e:
        reply = {"error": {"message": str(e), "code": e.code, "msg": e.msg,
                           "details": e.details, "plugin": e.plugin, "stderr": e.stderr}}
    except RuntimeError as e:
        reply = {"error": {"message": str(e)}}
    reply["meanwhile"] = len(calls)
    print(json.dumps(reply), flush=True)
"""


class PluginFailed(Exception):
    def __init__(self, err: dict[str, Any]) -> None:
        super().__init__(err["message"])
        self.err = err


class Node:
    """The node namespace and the invoker running in it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.netns = str(base / "node")
        self.conf_dir = base / "net.d"
        self.cache_dir = base / "cache"
        self.ipam_dir = base / "ipam"
        self.conf_dir.mkdir()
        _core.netns_create(self.netns)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        try:
            self.proc = subprocess.Popen(
                ["nsenter", f"--net={self.netns}", sys.executable, "-c", DRIVER],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        except BaseException:
            _core.netns_remove(self.netns)
            raise

    def call(self, op: str, *args: Any, bin_dirs: list[str] | None = None,
             conf_dir: Path | None = None, timeout: float = 20, **kwargs: Any) -> Any:
        conf = {"conf_dir": str(conf_dir or self.conf_dir), "cache_dir": str(self.cache_dir),
                "bin_dirs": bin_dirs or [str(self.base / "nobin"), PLUGINS],
                "timeout": timeout}
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"conf": conf, "op": op, "args": args,
                                          "kwargs": kwargs}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the CNI driver died"
        reply = json.loads(line)
        self.meanwhile_calls = reply["meanwhile"]
        if "error" in reply:
            raise PluginFailed(reply["error"])
        return reply["ok"]

    def sh(self, *args: str) -> str:
        return subprocess.run(["nsenter", f"--net={self.netns}", *args], check=True,
                              capture_output=True, text=True, timeout=30).stdout

    def veths(self) -> list[str]:
        return [ln.split(":")[1].strip().split("@")[0]
                for ln in self.sh("ip", "-o", "link", "show", "type", "veth").splitlines()]

    def leases(self) -> list[str]:
        d = self.ipam_dir / NET
        return sorted(p.name for p in d.iterdir() if p.name != "lock"
                      and not p.name.startswith("last_reserved_ip")) if d.exists() else []

    def cached(self) -> list[str]:
        d = self.cache_dir / "results"
        return sorted(p.name for p in d.iterdir()) if d.exists() else []

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        _core.netns_remove(self.netns)


def conflist(plugins: list[dict[str, Any]], version: str = "1.0.0") -> str:
    return json.dumps({"cniVersion": version, "name": NET, "plugins": plugins})


def bridge(ipam_dir: Path, v6: bool = False) -> dict[str, Any]:
    ranges = [[{"subnet": "fd77::/64"}]] if v6 else []  # v6 first: ips still list v4 first
    return {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True,
            "hairpinMode": True,
            "ipam": {"type": "host-local", "ranges": ranges + [[{"subnet": SUBNET}]],
                     "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(ipam_dir)}}


PORTMAP = {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    base = tmp_path_factory.mktemp("cni")
    n = Node(base)
    try:
        yield n
    finally:
        n.close()
        assert not _core.link_names(BRIDGE), "the bridge leaked into the host"
        nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True,
                             text=True).stdout
        assert NET not in nat, "CNI rules leaked into the host"


@pytest.fixture
def pods(node):
    """Pinned pod namespaces: pods(name) -> path; all removed at the end, and
    the conf dir emptied."""
    made: list[str] = []

    def make(name: str) -> str:
        path = str(node.base / f"pod-{name}")
        _core.netns_create(path)
        made.append(path)
        return path

    yield make
    for p in made:
        _core.netns_remove(p)
    for f in node.conf_dir.iterdir():
        f.unlink()


def serve(netns: str, port: int) -> socket.socket:
    s = socket.socket(fileno=_core.netns_socket(netns, socket.AF_INET, socket.SOCK_STREAM))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen()
    s.settimeout(10)
    return s


def talk(netns: str, server: socket.socket, addr: tuple[str, int]) -> str:
    """Connect from `netns` to `addr`; the peer's address as `server` saw it."""
    c = socket.socket(fileno=_core.netns_socket(netns, socket.AF_INET, socket.SOCK_STREAM))
    c.settimeout(10)
    try:
        c.connect(addr)
        conn, peer = server.accept()
        with conn:
            conn.sendall(b"pong")
        assert c.recv(4) == b"pong"
        return peer[0]
    finally:
        c.close()


# -- config, without running plugins ------------------------------------------


def test_ready_and_config_choice(tmp_path):
    conf_dir = tmp_path / "net.d"
    inv = cni.CNI(str(conf_dir), [PLUGINS], str(tmp_path / "cache"))
    assert inv.ready() == (False, f"no network config found in {conf_dir}")
    conf_dir.mkdir()
    (conf_dir / "README").write_text("not a config")
    assert inv.ready() == (False, f"no network config found in {conf_dir}")
    (conf_dir / "05-broken.conflist").write_text("{")
    ok, reason = inv.ready()
    assert not ok and reason.startswith(f"no valid network config found in {conf_dir}: ")
    assert "05-broken.conflist" in reason

    (conf_dir / "20-single.conf").write_text(json.dumps(
        {"cniVersion": "0.4.0", "name": "single", "type": "bridge",
         "ipam": {"type": "host-local", "subnet": SUBNET}}))
    assert inv.ready() == (True, "")
    net = inv.network()   # a plain .conf is wrapped as a one-plugin list
    assert (net.name, net.cni_version, [p["type"] for p in net.plugins]) == \
        ("single", "0.4.0", ["bridge"])
    (conf_dir / "10-list.conflist").write_text(conflist([{"type": "bridge"}, PORTMAP]))
    assert inv.network().name == NET   # the first by file name

    nobin = cni.CNI(str(conf_dir), [str(tmp_path / "empty"), "/nonexistent"],
                    str(tmp_path / "cache"))
    assert nobin.ready() == (False, f'failed to find plugin "bridge" in path '
                                    f'[{tmp_path / "empty"} /nonexistent]')
    (conf_dir / "10-list.conflist").write_text(conflist(
        [{"type": "bridge", "ipam": {"type": "no-such-ipam"}}]))
    assert inv.ready() == (False, f'failed to find plugin "no-such-ipam" in path [{PLUGINS}]')


def test_plugin_config_and_capabilities():
    net = cni.NetworkConfigList.parse(conflist([bridge(Path("/x")), PORTMAP]).encode())
    caps = {"portMappings": cni.port_mappings_arg([
        {"hostPort": 8080, "containerPort": 80, "protocol": "TCP", "hostIP": ""},
        {"hostPort": 0, "containerPort": 53, "protocol": "udp"},
        {"host_port": 5353, "container_port": 53, "protocol": "UDP", "host_ip": "127.0.0.1"}]),
        "bandwidth": {"ingressRate": 1}}
    prev = {"cniVersion": "1.0.0", "ips": []}
    first = cni.plugin_config(net.plugins[0], net, None, caps)
    assert first["name"] == NET and first["cniVersion"] == "1.0.0"
    assert "runtimeConfig" not in first and "prevResult" not in first
    second = cni.plugin_config(net.plugins[1], net, prev, caps)
    assert second["prevResult"] == prev
    # only what the plugin declares, only mappings with a host port
    assert second["runtimeConfig"] == {"portMappings": [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
        {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}]}

    result = {"cniVersion": "1.0.0",
              "interfaces": [{"name": "cni0"}, {"name": "eth0", "sandbox": "/x"},
                             {"name": "net1", "sandbox": "/x"}],
              "ips": [{"interface": 1, "address": "fd00::5/64"},
                      {"interface": 2, "address": "10.9.0.5/24"},
                      {"interface": 1, "address": "10.77.0.5/24"},
                      {"interface": 0, "address": "10.77.0.1/24"}]}
    assert cni.result_ips(result, "eth0") == ("10.77.0.5", "fd00::5")
    assert cni.result_ips({"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.2/16"}},
                          "eth0") == ("10.1.0.2",)


def test_leaf_module():
    """cni.py imports the standard library and dockyard.errors only."""
    import ast
    tree = ast.parse(Path(cni.__file__).read_text())
    ours = [n.module for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.level > 0]
    assert ours == ["errors"]
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0
                and n.module and n.module.startswith("dockyard")]


# -- plugins in the node namespace ---------------------------------------------


def test_two_pods_bridge_portmap_and_delete(node, pods):
    (node.conf_dir / "10-net.conflist").write_text(
        conflist([{"type": "loopback"}, bridge(node.ipam_dir), PORTMAP]))
    assert node.call("ready") == [True, ""]
    a, b = pods("a"), pods("b")
    pod_a = {"name": "web", "namespace": "default", "uid": "uid-a"}
    att_a = node.call("add", "sandbox-a", a, pod=pod_a, port_mappings=[
        {"hostPort": 18080, "containerPort": 8080, "protocol": "TCP"},
        {"hostPort": 0, "containerPort": 9090, "protocol": "TCP"}])
    att_b = node.call("add", "sandbox-b", b, pod={"name": "client", "namespace": "default",
                                                  "uid": "uid-b"})
    ip_a, ip_b = att_a["ips"][0], att_b["ips"][0]
    assert att_a["network"] == NET and att_a["ifname"] == "eth0"
    assert ip_a.startswith("10.77.0.") and ip_b.startswith("10.77.0.") and ip_a != ip_b
    assert node.leases() == sorted([ip_a, ip_b])
    assert len(node.veths()) == 2
    assert f"{ip_a}/24" in _core.link_info(a, "eth0")["addrs"]

    # the cache, in libcni's format, carries the pod's CNI_ARGS
    assert node.cached() == [f"{NET}-sandbox-a-eth0", f"{NET}-sandbox-b-eth0"]
    doc = json.loads((node.cache_dir / "results" / f"{NET}-sandbox-a-eth0").read_text())
    assert doc["kind"] == "cniCacheV1" and doc["netns"] == a
    assert doc["cniArgs"] == [["IgnoreUnknown", "1"], ["K8S_POD_NAMESPACE", "default"],
                              ["K8S_POD_NAME", "web"], ["K8S_POD_INFRA_CONTAINER_ID", "sandbox-a"],
                              ["K8S_POD_UID", "uid-a"]]
    assert doc["capabilityArgs"]["portMappings"] == [
        {"hostPort": 18080, "containerPort": 8080, "protocol": "tcp", "hostIP": ""}]
    assert node.call("attachment", "sandbox-a")["ips"] == [ip_a]

    srv = serve(a, 8080)
    try:
        assert talk(b, srv, (ip_a, 8080)) == ip_b                # pod to pod
        assert talk(node.netns, srv, ("127.0.0.1", 18080))      # hostPort via loopback
        assert talk(node.netns, srv, (GATEWAY, 18080))          # and the bridge's address
    finally:
        srv.close()
    assert "18080" in node.sh("iptables-save", "-t", "nat")

    node.call("delete", "sandbox-a", a, pod=pod_a)
    assert node.leases() == [ip_b]
    assert node.cached() == [f"{NET}-sandbox-b-eth0"]
    assert len(node.veths()) == 1
    assert "18080" not in node.sh("iptables-save", "-t", "nat")
    assert node.call("attachment", "sandbox-a") is None
    with pytest.raises(PluginFailed, match="no cached result"):
        node.call("check", "sandbox-a", a)
    node.call("delete", "sandbox-a", a)                       # again: no error
    _core.netns_remove(a)
    node.call("delete", "sandbox-a", a)                       # netns gone: no error

    # B's namespace goes first and the config changes: DEL still frees its
    # lease, from the cached config
    _core.netns_remove(b)
    (node.conf_dir / "10-net.conflist").unlink()
    node.call("delete", "sandbox-b", b)
    assert node.leases() == [] and node.cached() == []
    node.call("delete", "sandbox-b", b)     # no cache, no config: nothing to do


def test_check_and_older_versions(node, pods):
    # (portmap 1.1.1's CHECK fails whenever ip6tables lacks its chain, so no portmap here)
    p = pods("e")
    (node.conf_dir / "10-net.conflist").write_text(
        conflist([{"type": "loopback"}, bridge(node.ipam_dir, v6=True)]))
    ips = node.call("add", "sandbox-e", p)["ips"]    # dual stack
    assert len(ips) == 2 and ips[0].startswith("10.77.0.") and ips[1].startswith("fd77::")
    node.call("check", "sandbox-e", p)
    subprocess.run(["nsenter", f"--net={p}", "ip", "link", "set", "eth0", "address",
                    "02:00:00:00:00:99"], check=True)
    with pytest.raises(PluginFailed, match=f'plugin type="bridge" name="{NET}" failed '
                                           r"\(check\): Interface eth0 Mac .* doesn't match "
                                           "container Mac: 02:00:00:00:00:99"):
        node.call("check", "sandbox-e", p)
    node.call("delete", "sandbox-e", p)
    assert node.leases() == [] and node.cached() == []

    # 0.3.1: no CHECK, no prevResult on DEL; a single-plugin .conf of 0.3.1
    (node.conf_dir / "10-net.conflist").unlink()
    conf = dict(bridge(node.ipam_dir), cniVersion="0.3.1", name=NET)
    (node.conf_dir / "10-net.conf").write_text(json.dumps(conf))
    att = node.call("add", "sandbox-e", p)
    assert att["result"]["cniVersion"] == "0.3.1"
    assert att["result"]["ips"][0]["version"] == "4" and att["ips"][0].startswith("10.77.0.")
    with pytest.raises(PluginFailed, match='configuration version "0.3.1" does not support '
                                           "the CHECK command"):
        node.call("check", "sandbox-e", p)
    node.call("delete", "sandbox-e", p)
    assert node.leases() == [] and node.cached() == [] and node.veths() == []


def test_failed_chain_cleans_up(node, pods):
    p = pods("c")
    (node.conf_dir / "10-net.conflist").write_text(conflist(
        [bridge(node.ipam_dir), {"type": "tuning", "sysctl": {"net.ipv4.dyt_bogus": "1"}}]))
    with pytest.raises(PluginFailed) as e:
        node.call("add", "sandbox-c", p)
    err = e.value.err
    assert err["message"] == ('plugin type="tuning" name="dytcni" failed (add): '
                              "open /proc/sys/net/ipv4/dyt_bogus: no such file or directory")
    assert (err["code"], err["plugin"]) == (999, "tuning")
    assert node.leases() == [] and node.veths() == [] and node.cached() == []
    assert _core.link_info(p, "eth0") is None

    (node.conf_dir / "10-net.conflist").write_text(conflist(
        [bridge(node.ipam_dir), PORTMAP, {"type": "dyt-missing"}]))
    with pytest.raises(PluginFailed) as e:
        node.call("add", "sandbox-c", p, port_mappings=[{"hostPort": 18081,
                                                          "containerPort": 80}])
    assert e.value.err["message"] == (
        'plugin type="dyt-missing" name="dytcni" failed (add): failed to find plugin '
        f'"dyt-missing" in path [{node.base / "nobin"} {PLUGINS}]')
    assert node.leases() == [] and node.veths() == [] and node.cached() == []
    assert "18081" not in node.sh("iptables-save", "-t", "nat")

    # the plugin's JSON error, details included
    (node.conf_dir / "10-net.conflist").write_text(conflist([bridge(node.ipam_dir)], "9.9.9"))
    with pytest.raises(PluginFailed) as e:
        node.call("add", "sandbox-c", p)
    err = e.value.err
    assert (err["code"], err["msg"]) == (1, "incompatible CNI versions")
    assert err["details"].startswith('config is "9.9.9", plugin supports')
    assert err["message"].endswith(f"incompatible CNI versions; {err['details']}")
    assert node.cached() == []


def test_plugin_timeout_stderr_and_failed_cleanup(node, pods):
    p = pods("d")
    bindir = node.base / "fakebin"
    bindir.mkdir(exist_ok=True)
    plugins = {
        "dyt-hang": "sleep 30",
        "dyt-crash": """[ "$CNI_COMMAND" = ADD ] || exit 0
echo 'panic: boom' >&2; exit 2""",
        # ADD passes prevResult on; DEL fails with a JSON error
        "dyt-nodel": """if [ "$CNI_COMMAND" = ADD ]; then echo '{"cniVersion": "1.0.0"}'; exit 0; fi
echo '{"code": 7, "msg": "cannot delete", "details": "try again"}'; exit 1""",
    }
    for name, body in plugins.items():
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    bins = [str(bindir)]
    (node.conf_dir / "10-net.conflist").write_text(conflist([{"type": "dyt-crash"}]))
    with pytest.raises(PluginFailed) as e:
        node.call("add", "sandbox-d", p, bin_dirs=bins)
    assert e.value.err["message"] == ('plugin type="dyt-crash" name="dytcni" failed (add): '
                                      "netplugin failed: 'panic: boom'")
    assert e.value.err["stderr"] == "panic: boom"
    assert node.cached() == []

    (node.conf_dir / "10-net.conflist").write_text(conflist([{"type": "dyt-hang"}]))
    with pytest.raises(PluginFailed, match=r"failed \(add\): netplugin timed out after 0.5s$"):
        node.call("add", "sandbox-d", p, bin_dirs=bins, timeout=0.5)
    assert node.cached() == []

    # a plugin that was added but cannot be deleted: the error says so, and
    # the cache stays for the runtime's later DEL
    (node.conf_dir / "10-net.conflist").write_text(
        conflist([{"type": "dyt-nodel"}, {"type": "dyt-crash"}]))
    with pytest.raises(PluginFailed) as e:
        node.call("add", "sandbox-d", p, bin_dirs=bins)
    assert e.value.err["message"].endswith(
        "netplugin failed: 'panic: boom'; cleanup failed: dyt-nodel: cannot delete; try again")
    assert node.cached() == [f"{NET}-sandbox-d-eth0"]
    # the ADD failed: no result, although the last plugin was given one
    doc = json.loads((node.cache_dir / "results" / f"{NET}-sandbox-d-eth0").read_text())
    assert "result" not in doc and doc["containerId"] == "sandbox-d"
    (node.conf_dir / "10-net.conflist").unlink()
    with pytest.raises(PluginFailed) as e:
        node.call("delete", "sandbox-d", p, bin_dirs=bins)
    assert e.value.err["message"] == ('plugin type="dyt-nodel" name="dytcni" failed (delete): '
                                      "cannot delete; try again")
    assert (e.value.err["code"], e.value.err["details"]) == (7, "try again")
    assert node.cached() == [f"{NET}-sandbox-d-eth0"]
    for name in plugins:
        (bindir / name).write_text("#!/bin/sh\nexit 0\n")   # "fixed"
    node.call("delete", "sandbox-d", p, bin_dirs=bins)
    assert node.cached() == []


def fake_plugin(node: Node, name: str, body: str) -> list[str]:
    """A shell-script plugin `name` in a bin dir of its own: the bin dirs to use."""
    bindir = node.base / f"fakebin-{name}"
    bindir.mkdir(exist_ok=True)
    (bindir / name).write_text(f"#!/bin/sh\n{body}exit 0\n")
    (bindir / name).chmod(0o755)
    return [str(bindir)]


def test_meanwhile_and_large_config(node, pods):
    """The caller's work runs once, while the first plugin does; if it fails,
    add() fails with its error after rolling back the plugin that ran. A
    config too big for the stdin pipe's buffer is fed to it whole as it
    reads."""
    p = pods("e")
    log = node.base / "rec.log"
    bins = fake_plugin(node, "dyt-rec", f"""echo "$CNI_COMMAND $(wc -c)" >> {log}
[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion": "1.0.0"}}'
""")
    pad = "x" * (cni.STDIN_PREFILL + 1000)
    (node.conf_dir / "10-net.conflist").write_text(
        conflist([{"type": "dyt-rec"}, {"type": "dyt-rec", "pad": pad}]))
    try:
        node.call("add", "sandbox-e", p, bin_dirs=bins, meanwhile="count")
        assert node.meanwhile_calls == 1
        (first, small), (second, big) = (ln.split() for ln in log.read_text().splitlines())
        assert (first, second) == ("ADD", "ADD")
        assert 0 < int(small) < cni.STDIN_PREFILL < len(pad) < int(big)
        node.call("delete", "sandbox-e", p, bin_dirs=bins)
        log.unlink()

        with pytest.raises(PluginFailed, match="^meanwhile failed$"):
            node.call("add", "sandbox-e", p, bin_dirs=bins, meanwhile="raise")
        assert node.meanwhile_calls == 1
        assert [ln.split()[0] for ln in log.read_text().splitlines()] == ["ADD", "DEL"]
        assert node.cached() == []
    finally:
        log.unlink(missing_ok=True)


def test_chain_pipelined_and_aborted(node, pods):
    """Each plugin is started while the one before it runs, but gets its
    config (and so acts) only after that one answered; an ADD begun and
    given up kills its started plugin before it read anything, leaving no
    cache."""
    p = pods("f")
    log = node.base / "pipe.log"
    bins = fake_plugin(node, "dyt-pipe", f"""echo "start $CNI_COMMAND" >> {log}
conf=$(cat)
case "$conf" in *'"slow"'*) name=A; sleep 0.3 ;; *) name=B ;; esac
echo "read $name" >> {log}
[ "$CNI_COMMAND" = ADD ] && echo '{{"cniVersion": "1.0.0"}}'
echo "end $name" >> {log}
""")
    (node.conf_dir / "10-net.conflist").write_text(
        conflist([{"type": "dyt-pipe", "slow": True}, {"type": "dyt-pipe"}]))
    try:
        node.call("add", "sandbox-f", p, bin_dirs=bins)
        lines = log.read_text().splitlines()
        assert lines.count("start ADD") == 2
        second_start = len(lines) - 1 - lines[::-1].index("start ADD")
        assert second_start < lines.index("end A") < lines.index("read B")
        node.call("delete", "sandbox-f", p, bin_dirs=bins)
        assert node.cached() == []
        log.unlink()

        node.call("begin_abort", "sandbox-f", p, bin_dirs=bins)
        # killed at once: perhaps before its first line, never after it read
        assert not log.exists() or log.read_text().splitlines() == ["start ADD"]
        assert node.cached() == []
        assert subprocess.run(["pgrep", "-f", bins[0]], capture_output=True).stdout == b""
    finally:
        log.unlink(missing_ok=True)


def test_last_plugin_result_cached_while_it_runs(node, pods):
    """The cache gets the result the last plugin is given while it runs
    (it passes it on, as a rule), and that plugin's own result if it
    changed it."""
    p = pods("g")
    cache = node.cache_dir / "results" / f"{NET}-sandbox-g-eth0"
    snap = node.base / "snap.json"
    bins = fake_plugin(node, "dyt-first", """[ "$CNI_COMMAND" = ADD ] || exit 0
echo '{"cniVersion": "1.0.0", "ips": [{"address": "10.1.0.2/24"}]}'
""")
    bins += fake_plugin(node, "dyt-last", f"""[ "$CNI_COMMAND" = ADD ] || exit 0
cat > /dev/null; sleep 0.2; cp {cache} {snap}
echo '{{"cniVersion": "1.0.0", "ips": [{{"address": "10.1.0.3/24"}}]}}'
""")
    (node.conf_dir / "10-net.conflist").write_text(
        conflist([{"type": "dyt-first"}, {"type": "dyt-last"}]))
    try:
        node.call("add", "sandbox-g", p, bin_dirs=bins)
        ips = [[ip["address"] for ip in json.loads(f.read_text())["result"]["ips"]]
               for f in (snap, cache)]
        assert ips == [["10.1.0.2/24"], ["10.1.0.3/24"]]
        node.call("delete", "sandbox-g", p, bin_dirs=bins)
        assert node.cached() == []
    finally:
        snap.unlink(missing_ok=True)
