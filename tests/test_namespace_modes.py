"""HostConfig `PidMode`, `IpcMode`, `UTSMode` and `Sysctls` as dockerd runs them
(messages, statuses and inspect values pinned against dockerd 20.10.24), and
the path form `ns:<file>` (also for `NetworkMode`) joining namespaces pinned
by `_core.ns_pin`, as a CRI pod's containers do. Namespace identity is checked
from the host: the inode behind /proc/<pid>/ns/<kind> against the pin file's.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from dockyard import _core


def _post(c, path, body=None, params=None):
    r = c.request("POST", path, params, json.dumps(body).encode() if body is not None else None,
                  {"Content-Type": "application/json"} if body is not None else None,
                  check=False)
    try:
        data = r.read()
        return r.status, (json.loads(data) if data else None)
    finally:
        r.close()


@pytest.fixture
def api(daemon, bb):
    """create/start/inspect over the API; every container made is removed."""
    made: list[str] = []
    c = daemon.client()

    class Api:
        def create(self, hc, cmd=("sleep", "1000"), **cfg):
            st, body = _post(c, "/containers/create",
                             {"Image": bb, "Cmd": list(cmd), "HostConfig": hc, **cfg})
            if st == 201:
                made.append(body["Id"])
            return st, body

        def run(self, hc, cmd=("sleep", "1000"), **cfg):
            """create + start: (status, message or None, id)."""
            st, body = self.create(hc, cmd, **cfg)
            if st != 201:
                return st, body["message"], None
            st, body = _post(c, f"/containers/{made[-1]}/start")
            return st, (body or {}).get("message"), made[-1]

        def inspect(self, cid):
            return c.get_json(f"/containers/{cid}/json")

        def ns(self, cid, kind):
            return os.stat(f"/proc/{self.inspect(cid)['State']['Pid']}/ns/{kind}").st_ino

    try:
        yield Api()
    finally:
        for cid in made:
            c.request("DELETE", f"/containers/{cid}", {"force": 1}, check=False).close()


def ino(path: str | Path) -> int:
    return os.stat(path).st_ino


def test_pid_modes(daemon, api):
    st, _, donor = api.run({})
    assert st == 204
    st, _, joiner = api.run({"PidMode": "container:" + donor[:12]})
    assert st == 204
    # Recorded by full ID, as dockerd; the same PID namespace as the donor's.
    assert api.inspect(joiner)["HostConfig"]["PidMode"] == f"container:{donor}"
    assert api.ns(joiner, "pid") == api.ns(donor, "pid")
    # An exec follows the container's namespaces: it sees the donor's PID 1.
    r = daemon.cli("exec", joiner, "cat", "/proc/1/cmdline")
    assert r.stdout == b"sleep\x001000\x00"
    assert "sleep" in daemon.cli("top", donor).stdout.decode()
    assert "sleep" in daemon.cli("top", joiner).stdout.decode()
    st, _, host = api.run({"PidMode": "host"})
    assert st == 204 and api.ns(host, "pid") == ino("/proc/self/ns/pid")
    # dockerd: a missing donor at create (400), a stopped one at start (500).
    assert api.create({"PidMode": "container:nosuch"})[:2] == (
        400, {"message": "No such container: nosuch"})
    stopped = api.create({}, ["true"])[1]["Id"]
    st, msg, cid = api.run({"PidMode": f"container:{stopped}"})
    assert (st, msg) == (500, f"container {stopped} is not running")
    state = api.inspect(cid)["State"]
    assert (state["Status"], state["ExitCode"], state["Error"]) == ("created", 128, msg)
    r = daemon.cli("run", "--rm", "--pid", "bogus", "busybox", "true", check=False)
    assert r.returncode == 125 and "--pid: invalid PID mode" in r.stderr.decode()


def test_ipc_modes(daemon, api):
    st, body = api.create({})
    assert api.inspect(body["Id"])["HostConfig"]["IpcMode"] == "private"  # dockerd's default
    st, _, donor = api.run({"IpcMode": "shareable"})
    assert st == 204
    st, _, joiner = api.run({"IpcMode": f"container:{donor}"})
    assert st == 204
    assert api.ns(joiner, "ipc") == api.ns(donor, "ipc") != ino("/proc/self/ns/ipc")
    # The donor's /dev/shm is the joiner's (dockerd binds it in).
    daemon.cli("exec", donor, "sh", "-c", "echo hi > /dev/shm/x")
    assert daemon.cli("exec", joiner, "cat", "/dev/shm/x").stdout == b"hi\n"
    st, _, private = api.run({})
    st, msg, _ = api.run({"IpcMode": f"container:{private}"})
    assert (st, msg) == (500, f"can't join IPC of container {private}: non-shareable IPC "
                              "(hint: use IpcMode:shareable for the donor container)")
    stopped = api.create({"IpcMode": "shareable"}, ["true"])[1]["Id"]
    st, msg, _ = api.run({"IpcMode": f"container:{stopped}"})
    assert (st, msg) == (500, f"can't join IPC of container {stopped}: container {stopped} "
                              "is not running")
    assert api.create({"IpcMode": "container:nosuch"})[:2] == (
        400, {"message": "No such container: nosuch"})
    assert api.run({"IpcMode": "bogus"})[:2] == (500, "Invalid IPC mode: bogus")
    st, _, host = api.run({"IpcMode": "host"})
    assert st == 204 and api.ns(host, "ipc") == ino("/proc/self/ns/ipc")
    r = daemon.cli("run", "--rm", "--ipc", "none", "busybox", "sh", "-c",
                   "test -e /dev/shm || echo noshm")
    assert r.stdout == b"noshm\n"
    # The donor's shm tmpfs goes with it.
    shm = Path(api.inspect(donor)["HostnamePath"]).parent / "shm"
    assert os.path.ismount(shm)
    daemon.cli("rm", "-f", joiner, donor)
    assert not os.path.ismount(shm)


def test_user_mounts_replace_the_defaults(daemon, api, tmp_path):
    """As dockerd: a bind at /dev/shm or /etc/hosts is the only mount there
    (the default tmpfs and the container's own hosts file are not mounted
    under it), and ShmSize sizes only the default /dev/shm."""
    (tmp_path / "shm").mkdir()
    (tmp_path / "shm" / "mine").write_text("x")
    (tmp_path / "hosts").write_text("127.0.0.1 mine\n")
    st, _, cid = api.run({"Binds": [f"{tmp_path}/shm:/dev/shm", f"{tmp_path}/hosts:/etc/hosts"],
                          "ShmSize": 1 << 20})
    assert st == 204
    out = daemon.cli("exec", cid, "sh", "-c",
                     "grep -c ' /dev/shm ' /proc/self/mountinfo; grep -c ' /etc/hosts ' "
                     "/proc/self/mountinfo; ls /dev/shm; cat /etc/hosts").stdout.decode()
    assert out.split("\n")[:4] == ["1", "1", "mine", "127.0.0.1 mine"]
    st, _, cid = api.run({"ShmSize": 1 << 20})
    out = daemon.cli("exec", cid, "sh", "-c", "grep ' /dev/shm ' /proc/self/mountinfo").stdout
    assert b"size=1024k" in out


def test_uts_modes(daemon, api):
    r = daemon.cli("run", "--rm", "--uts", "host", "busybox", "hostname")
    assert r.stdout.decode().strip() == socket.gethostname()
    assert api.create({"UTSMode": "host"}, Hostname="foo")[:2] == (
        400, {"message": "conflicting options: hostname and the UTS mode"})
    r = daemon.cli("run", "--rm", "--uts", "container:x", "busybox", "true", check=False)
    assert r.returncode == 125 and "--uts: invalid UTS mode" in r.stderr.decode()


def test_sysctls(daemon, api):
    r = daemon.cli("run", "--rm", "--sysctl", "kernel.shmmax=1000000", "--sysctl",
                   "net.ipv4.ip_forward=1", "busybox", "cat", "/proc/sys/kernel/shmmax",
                   "/proc/sys/net/ipv4/ip_forward")
    assert r.stdout == b"1000000\n1\n"
    runc = "failed to create shim task: OCI runtime create failed: runc create failed: "
    for hc, why in [
        ({"NetworkMode": "host", "Sysctls": {"net.ipv4.ip_forward": "1"}},
         'sysctl "net.ipv4.ip_forward" not allowed in host network namespace'),
        ({"IpcMode": "host", "Sysctls": {"kernel.shmmax": "1"}},
         'sysctl "kernel.shmmax" is not allowed in the hosts ipc namespace'),
        ({"Sysctls": {"vm.swappiness": "1"}},
         'sysctl "vm.swappiness" is not in a separate kernel namespace'),
        ({"Sysctls": {"kernel.hostname": "x"}},
         'sysctl "kernel.hostname" is not allowed as it conflicts with the OCI "hostname" field'),
        ({"UTSMode": "host", "Sysctls": {"kernel.domainname": "x"}},
         'sysctl "kernel.domainname" is not in a separate kernel namespace'),
    ]:
        st, msg, cid = api.run(hc)
        assert (st, msg) == (500, f"{runc}{why}: unknown")
        assert api.inspect(cid)["State"]["ExitCode"] == 128
    r = daemon.cli("run", "--rm", "--sysctl", "vm.swappiness=1", "busybox", "true",
                   check=False)
    assert r.returncode == 125
    assert ('invalid argument "vm.swappiness=1" for "--sysctl" flag: sysctl '
            "'vm.swappiness=1' is not allowed") in r.stderr.decode()


@pytest.fixture
def pins(tmp_path):
    """A pod's namespaces pinned as files (net, ipc, uts with hostname "pod-a")."""
    d = tmp_path / "pod"
    d.mkdir()
    paths = {k: d / k for k in ("net", "ipc", "uts")}
    try:
        _core.netns_create(str(paths["net"]))
        _core.ns_pin(str(paths["ipc"]), "ipc")
        _core.ns_pin(str(paths["uts"]), "uts", "pod-a")
        yield paths
    finally:
        for p in paths.values():
            _core.ns_unpin(str(p))


def test_ns_paths_join_pinned_namespaces(daemon, api, pins):
    hc = {"NetworkMode": f"ns:{pins['net']}", "IpcMode": f"ns:{pins['ipc']}",
          "UTSMode": f"ns:{pins['uts']}"}
    st, _, a = api.run(hc)
    assert st == 204
    st, _, b = api.run(hc)
    assert st == 204
    for kind in ("net", "ipc", "uts"):
        assert api.ns(a, kind) == api.ns(b, kind) == ino(pins[kind])
    assert ino(pins["ipc"]) != ino("/proc/self/ns/ipc")
    # The pinned hostname stays (not the container's); an exec joins the same.
    assert daemon.cli("exec", a, "hostname").stdout == b"pod-a\n"
    # No network setup: no endpoint, the container's own /etc/hosts.
    info = api.inspect(a)
    assert info["HostConfig"]["NetworkMode"] == f"ns:{pins['net']}"
    assert info["NetworkSettings"]["Networks"] == {}
    assert b"localhost" in daemon.cli("exec", a, "cat", "/etc/hosts").stdout
    r = daemon.cli("exec", a, "cat", "/sys/class/net/lo/operstate", check=False)
    assert r.stdout.strip() in (b"unknown", b"up")
    # A missing file, a plain file, the wrong kind: start errors; relative: 400.
    plain = pins["net"].parent / "plain"
    plain.write_text("")
    for mode, why in [("ns:/nonexistent/ipc", "cannot join IPC namespace /nonexistent/ipc: "
                       "No such file or directory"),
                      (f"ns:{plain}", f"cannot join IPC namespace {plain}: not a namespace "
                       "file"),
                      (f"ns:{pins['uts']}", f"cannot join IPC namespace {pins['uts']}: not "
                       "an ipc namespace")]:
        assert api.run({"IpcMode": mode})[:2] == (500, why)
    st, body = api.create({"UTSMode": "ns:relative/uts"})
    assert (st, body["message"]) == (400, "invalid UTSMode 'ns:relative/uts': the namespace "
                                          "file must be an absolute path")
