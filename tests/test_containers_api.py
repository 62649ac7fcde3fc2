"""Containers through the daemon: the real docker CLI and the docker SDK against
Dockyard, real namespaces and cgroups, and survival across a daemon kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from conftest import Daemon, assert_no_mounts_left, kill_containers_left


pytestmark = pytest.mark.usefixtures("no_leftover_containers")  # conftest.py


def test_docker_run_output_and_exit_codes(daemon, bb):
    r = daemon.docker("run", "--rm", bb, "echo", "hi")
    assert r.stdout == b"hi\n"
    r = daemon.docker("run", "--rm", bb, "sh", "-c", "echo out; echo err >&2; exit 3",
                      check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n")
    r = daemon.docker("run", "--rm", bb, "nosuchcmd", check=False)
    assert r.returncode == 127
    assert b'exec: "nosuchcmd": executable file not found in $PATH' in r.stderr
    r = daemon.docker("run", "--rm", bb, "/etc/passwd", check=False)
    assert r.returncode == 126
    # --rm containers are gone
    assert daemon.client().get_json("/containers/json", {"all": 1}) == []


def test_docker_run_stdin(daemon, bb):
    r = daemon.docker("run", "--rm", "-i", bb, "cat", input=b"hello\nworld\n")
    assert r.stdout == b"hello\nworld\n"


def test_isolation_defaults(daemon, bb):
    r = daemon.docker("run", "--rm", bb, "sh", "-c",
                      "echo $$; hostname; grep CapEff /proc/self/status; ls /.dockerenv")
    pid, host, capeff, marker = r.stdout.decode().split("\n")[:4]
    assert pid == "1"
    assert len(host) == 12
    assert capeff.split()[1] == "00000000a80425fb"
    assert marker == "/.dockerenv"


def test_detached_logs_ps_stop_rm(daemon, bb):
    cid = daemon.docker("run", "-d", "--name", "sleeper", bb, "sh", "-c",
                        "echo started; trap 'echo bye; exit 0' TERM; while :; do sleep 0.1; "
                        "done").stdout.decode().strip()
    assert len(cid) == 64
    deadline = time.time() + 10
    while b"started" not in daemon.docker("logs", "sleeper").stdout and time.time() < deadline:
        time.sleep(0.05)
    ps = daemon.docker("ps").stdout.decode().splitlines()
    assert ps[0].split()[:2] == ["CONTAINER", "ID"]
    assert cid[:12] in ps[1] and "sleeper" in ps[1] and "Up" in ps[1]
    insp = json.loads(daemon.docker("inspect", "sleeper").stdout)[0]
    assert insp["State"]["Running"] is True and insp["State"]["Pid"] > 0
    r = daemon.docker("rm", "sleeper", check=False)
    assert r.returncode == 1 and b"You cannot remove a running container" in r.stderr
    daemon.docker("stop", "sleeper")
    insp = json.loads(daemon.docker("inspect", "sleeper").stdout)[0]
    assert insp["State"]["Status"] == "exited" and insp["State"]["ExitCode"] == 0
    assert daemon.docker("logs", "sleeper").stdout == b"started\nbye\n"
    assert "Exited (0)" in daemon.docker("ps", "-a").stdout.decode()
    daemon.docker("rm", "sleeper")
    assert daemon.docker("ps", "-aq").stdout == b""


def test_wait_and_kill(daemon, bb):
    cid = daemon.docker("run", "-d", bb, "sleep", "30").stdout.decode().strip()
    daemon.docker("kill", cid)
    assert daemon.docker("wait", cid).stdout.decode().strip() == "137"
    r = daemon.docker("kill", cid, check=False)
    assert r.returncode == 1 and b"is not running" in r.stderr


def test_name_conflict_and_rename(daemon, bb):
    daemon.docker("create", "--name", "dup", bb, "true")
    r = daemon.docker("create", "--name", "dup", bb, "true", check=False)
    assert r.returncode == 1 and b'The container name "/dup" is already in use' in r.stderr
    daemon.docker("rename", "dup", "dup2")
    insp = json.loads(daemon.docker("inspect", "dup2").stdout)[0]
    assert insp["Name"] == "/dup2"


def test_bad_input_leaves_nothing(daemon, bb):
    before = daemon.client().get_json("/containers/json", {"all": 1})
    r = daemon.docker("run", "--rm", "-m", "1k", bb, "true", check=False)
    assert r.returncode == 125 and b"Minimum memory limit allowed is 6MB" in r.stderr
    r = daemon.docker("run", "--rm", "--ulimit", "nofile=20:10", bb, "true", check=False)
    assert r.returncode == 125
    r = daemon.docker("run", "--rm", "nosuchimage_xyz", "true", check=False)
    assert r.returncode == 125
    assert daemon.client().get_json("/containers/json", {"all": 1}) == before


def test_resources_and_user(daemon, bb):
    out = daemon.docker("run", "--rm", "-u", "nobody", "--ulimit", "nofile=100:200",
                        "-m", "64m", "--pids-limit", "50", bb, "sh", "-c",
                        "id -u; ulimit -n; cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                        "2>/dev/null || cat /sys/fs/cgroup/memory.max; "
                        "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || "
                        "cat /sys/fs/cgroup/pids.max").stdout.decode().split()
    assert out == ["65534", "100", str(64 << 20), "50"]


def test_cgroup_parent_cgroupns_and_default_swap(daemon, bb):
    """--cgroup-parent places the container's cgroup, --cgroupns host keeps the
    host's cgroup namespace, and -m alone gets as much swap as memory
    (MemorySwap = 2 x Memory, as dockerd sets it)."""
    from dockyard import _core

    cid = daemon.docker("run", "-d", "--cgroup-parent", "/dy-test-parent", "-m", "32m", bb,
                        "sleep", "60").stdout.decode().strip()
    try:
        hc = json.loads(daemon.docker("inspect", cid).stdout)[0]["HostConfig"]
        assert (hc["Memory"], hc["MemorySwap"]) == (32 << 20, 64 << 20)
        dirs = _core.cgroup_dirs(f"dy-test-parent/{cid}")
        assert dirs and all(os.path.isdir(d) for d in dirs)
        own = daemon.docker("exec", cid, "cat", "/proc/self/cgroup").stdout.decode()
        assert f"/dy-test-parent/{cid}" not in own  # private namespace: rooted at its own
    finally:
        daemon.docker("rm", "-f", cid)
    assert not any(os.path.isdir(d) for d in dirs)
    for d in _core.cgroup_dirs("dy-test-parent"):
        os.rmdir(d)
    out = daemon.docker("run", "--rm", "--cgroupns", "host", bb, "cat",
                        "/proc/self/cgroup").stdout.decode()
    assert "/dockyard/" in out, out
    r = daemon.client().request("POST", "/containers/create", body=json.dumps(
        {"Image": bb, "Cmd": ["true"], "HostConfig": {"CgroupnsMode": "nested"}}).encode(),
        headers={"Content-Type": "application/json"}, check=False)
    assert (r.status, r.json()) == (400, {"message": "invalid cgroup namespace mode: nested"})
    r.close()


def test_attach_without_upgrade_is_a_raw_body(daemon, bb):
    """A hijacked request without `Upgrade: tcp` gets 200 and the raw stream
    up to the connection's end, not a body announced as chunked."""
    import socket as _socket

    cid = daemon.docker("create", bb, "echo", "raw").stdout.decode().strip()
    try:
        s = _socket.socket(_socket.AF_UNIX)
        s.connect(daemon.host[len("unix://"):])
        s.sendall(f"POST /v1.41/containers/{cid}/attach?stream=1&stdout=1 HTTP/1.1\r\n"
                  "Host: docker\r\nContent-Length: 0\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(1)
        assert head.startswith(b"HTTP/1.1 200")
        assert b"transfer-encoding" not in head.lower()
        daemon.docker("start", cid)
        body = b""
        while chunk := s.recv(65536):
            body += chunk
        s.close()
        assert body == b"\x01\x00\x00\x00\x00\x00\x00\x04raw\n"
    finally:
        daemon.docker("rm", "-f", cid)


def test_docker_sdk(daemon, bb):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host)
    try:
        assert client.containers.run(bb, ["echo", "sdk"], remove=True) == b"sdk\n"
        c = client.containers.run(bb, ["sh", "-c", "echo a; sleep 30"], detach=True)
        try:
            deadline = time.time() + 10
            while b"a\n" not in c.logs() and time.time() < deadline:
                time.sleep(0.05)
            assert c.logs() == b"a\n"
            c.reload()
            assert c.status == "running"
            c.kill()
            assert c.wait()["StatusCode"] == 137
        finally:
            c.remove(force=True)
    finally:
        client.close()


def test_containers_survive_daemon_kill9(tmp_path, busybox_tar):
    """kill -9 of the daemon: the container keeps running, and a new daemon
    finds it with its state and logs, then sees it exit."""
    d = Daemon(tmp_path, "overlay")
    d.start()
    try:
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        # it exits when told to (a fixed sleep raced a slow restart under load)
        cid = d.docker("run", "-d", "busybox", "sh", "-c",
                       "echo before; while [ ! -e /go ]; do sleep 0.05; done; echo after"
                       ).stdout.decode().strip()
        time.sleep(0.3)
        os.killpg(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        d.start()
        insp = json.loads(d.docker("inspect", cid).stdout)[0]
        assert insp["State"]["Running"] is True
        d.docker("exec", cid, "touch", "/go")
        assert d.docker("wait", cid).stdout.decode().strip() == "0"
        assert d.docker("logs", cid).stdout == b"before\nafter\n"
        d.docker("rm", cid)
    finally:
        d.stop()
        kill_containers_left(tmp_path)
        assert_no_mounts_left(tmp_path)


def test_testcontainers(daemon, bb, monkeypatch):
    """testcontainers-python's DockerContainer against Dockyard (its reaper
    needs an image from a registry, so it is turned off)."""
    tc = pytest.importorskip("testcontainers.core.container")
    monkeypatch.setenv("DOCKER_HOST", daemon.host)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")
    from testcontainers.core.config import testcontainers_config

    monkeypatch.setattr(testcontainers_config, "ryuk_disabled", True, raising=False)
    with tc.DockerContainer(bb).with_command(["sh", "-c", "echo ready; sleep 30"]) as c:
        deadline = time.time() + 10
        out = b""
        while b"ready" not in out and time.time() < deadline:
            out = c.get_logs()[0]
            time.sleep(0.05)
        assert out == b"ready\n"
        code, output = c.exec(["echo", "inside"])
        assert (code, output) == (0, b"inside\n")


def test_restart_policies(daemon, bb):
    cid = daemon.docker("run", "-d", "--restart", "on-failure:2", bb, "sh", "-c",
                        "echo run; exit 1").stdout.decode().strip()
    deadline = time.time() + 20
    while time.time() < deadline:
        st = json.loads(daemon.docker("inspect", cid).stdout)[0]
        if st["RestartCount"] == 2 and not st["State"]["Running"]:
            break
        time.sleep(0.1)
    assert st["RestartCount"] == 2 and st["State"]["ExitCode"] == 1
    assert daemon.docker("logs", cid).stdout == b"run\n" * 3
    # always: restarts after exit, but not after docker stop
    cid = daemon.docker("run", "-d", "--restart", "always", bb, "sh", "-c",
                        "sleep 0.2").stdout.decode().strip()
    deadline = time.time() + 20
    while json.loads(daemon.docker("inspect", cid).stdout)[0]["RestartCount"] < 1:
        assert time.time() < deadline
        time.sleep(0.1)
    daemon.docker("stop", "-t", "1", cid)
    time.sleep(0.5)
    st = json.loads(daemon.docker("inspect", cid).stdout)[0]
    assert not st["State"]["Running"]


def test_events_stream(daemon, bb):
    since = str(time.time() - 0.001)
    cid = daemon.docker("run", "-d", "--name", "evt", bb, "true").stdout.decode().strip()
    daemon.docker("wait", cid)
    daemon.docker("rm", cid)
    until = str(time.time() + 0.5)
    out = daemon.docker("events", "--since", since, "--until", until, "--filter",
                        "container=evt", "--format", "{{.Type}} {{.Action}} {{.Actor.ID}}"
                        ).stdout.decode().splitlines()
    assert [line.split()[1] for line in out] == ["create", "start", "die", "destroy"]
    assert all(line.split()[2] == cid for line in out)
    raw = daemon.client().request("GET", "/events", {"since": since, "until": until,
                                                      "filters": json.dumps({"type": ["image"]})})
    assert all(json.loads(line)["Type"] == "image" for line in raw.iter_lines())
    raw.close()


def test_init_reaps_and_forwards(daemon, bb):
    """--init: PID 1 is a minimal init; the command is its child, gets the
    signals, and its exit status is the container's."""
    out = daemon.docker("run", "--rm", "--init", bb, "sh", "-c",
                        "echo $$; cat /proc/1/status | grep PPid").stdout.decode().split("\n")
    assert out[0] != "1"
    r = daemon.docker("run", "--rm", "--init", bb, "sh", "-c", "exit 7", check=False)
    assert r.returncode == 7
    cid = daemon.docker("run", "-d", "--init", bb, "sh", "-c",
                        "trap 'exit 3' TERM; sleep 0.2 & wait; while :; do sleep 0.1; done"
                        ).stdout.decode().strip()
    time.sleep(0.5)
    daemon.docker("stop", "-t", "5", cid)
    insp = json.loads(daemon.docker("inspect", cid).stdout)[0]
    assert insp["State"]["ExitCode"] == 3 and insp["HostConfig"]["Init"] is True
    daemon.docker("rm", cid)


class _Watchdog:
    """Shuts a stream down if it is still open after `timeout` s, so a read
    never hangs the test; `fired` tells that it had to."""

    def __init__(self, h, timeout: float = 30) -> None:
        import threading

        self.fired = False
        self.h = h
        self.timer = threading.Timer(timeout, self._fire)
        self.timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            self.h.sock.shutdown(2)
        except OSError:
            pass

    def cancel(self) -> None:
        self.timer.cancel()


def _read_until(h, want: bytes) -> bytes:
    data = b""
    while want not in data:
        chunk = h.read()
        assert chunk, data
        data += chunk
    return data


def _read_until_closed(h) -> bytes:
    """What the stream carries until the daemon ends it (a detach ends it)."""
    data = b""
    while chunk := h.read():
        data += chunk
    return data


def test_daemon_detach_keys(daemon, bb):
    """The daemon's attach watches the `detachKeys` query parameter (ctrl-p
    ctrl-q without it), an exec its `DetachKeys`: the sequence ends the stream
    and leaves the process running."""
    c = daemon.client()
    cid = daemon.docker("run", "-dit", bb, "sh").stdout.decode().strip()
    try:
        for keys, seq in (("ctrl-a,x", b"\x01x"), (None, b"\x10\x11")):
            h = c.hijack("POST", f"/containers/{cid}/attach",
                         {"stream": 1, "stdin": 1, "stdout": 1, "detachKeys": keys})
            dog = _Watchdog(h)
            try:
                h.send(b"echo h''i\n")
                _read_until(h, b"hi")
                h.send(seq)
                _read_until_closed(h)
            finally:
                dog.cancel()
                h.close()
            assert not dog.fired, "the stream stayed open"
            assert c.get_json(f"/containers/{cid}/json")["State"]["Running"]
        eid = c.post_json(f"/containers/{cid}/exec", None, {
            "Cmd": ["sh"], "Tty": True, "AttachStdin": True, "AttachStdout": True,
            "DetachKeys": "ctrl-e,y"})["Id"]
        h = c.hijack("POST", f"/exec/{eid}/start", None,
                     json.dumps({"Detach": False, "Tty": True}).encode())
        dog = _Watchdog(h)
        try:
            h.send(b"echo th''ere\n")
            _read_until(h, b"there")
            h.send(b"\x05y")
            _read_until_closed(h)
        finally:
            dog.cancel()
            h.close()
        assert not dog.fired, "the exec's stream stayed open"
        assert c.get_json(f"/exec/{eid}/json")["Running"]
        # dockerd's words for a bad sequence at exec create (its status is 500)
        r = c.request("POST", f"/containers/{cid}/exec", None,
                      json.dumps({"Cmd": ["true"], "DetachKeys": "ctrl-xx"}).encode(),
                      {"Content-Type": "application/json"}, check=False)
        assert (r.status, json.loads(r.read())) == (
            400, {"message": "Invalid escape keys (ctrl-xx) provided"})
        r.close()
    finally:
        c.request("DELETE", f"/containers/{cid}", {"force": 1}, check=False).close()


def _shims_of(cid: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read()
        except OSError:
            continue
        if argv.split(b"\0")[0].endswith(b"dockyard-shim") and cid.encode() in argv:
            out.append(int(pid))
    return out


def test_daemon_killed_mid_start_leaves_nothing_running(tmp_path, busybox_tar):
    """kill -9 of the daemon between a start's spawn and its record (issue
    15: the record still says created, or a create cut short left none): the
    next daemon kills those shims and processes and removes their cgroups and
    mounts; the `created` one then starts once, cleanly."""
    import sqlite3

    from dockyard.containers.model import new_state

    d = Daemon(tmp_path, "overlay")
    d.start()
    try:
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        interrupted = d.docker("run", "-d", "busybox", "sleep", "300").stdout.decode().strip()
        unrecorded = d.docker("run", "-d", "busybox", "sleep", "300").stdout.decode().strip()
        kept = d.docker("run", "-d", "busybox", "sleep", "300").stdout.decode().strip()
        assert _shims_of(interrupted) and _shims_of(unrecorded)
        os.killpg(d.proc.pid, signal.SIGKILL)
        d.proc.wait()
        # What the store holds when the kill lands mid-start / mid-create.
        db = sqlite3.connect(tmp_path / "root" / "dockyard.db")
        with db:
            db.execute("UPDATE containers SET state=? WHERE id=?",
                       (json.dumps(new_state()), interrupted))
            db.execute("DELETE FROM containers WHERE id=?", (unrecorded,))
        db.close()
        d.start()
        assert not _shims_of(interrupted) and not _shims_of(unrecorded)
        assert _shims_of(kept)
        cgroups = subprocess.run(["find", "/sys/fs/cgroup", "-maxdepth", "4", "-name",
                                  f"{interrupted}*", "-o", "-name", f"{unrecorded}*"],
                                 capture_output=True, text=True).stdout
        assert cgroups == ""
        state = json.loads(d.docker("inspect", interrupted).stdout)[0]["State"]
        assert (state["Status"], state["Pid"]) == ("created", 0)
        d.docker("start", interrupted)
        top = d.docker("top", interrupted).stdout.decode().splitlines()
        assert len(top) == 2 and "sleep 300" in top[1], top
        d.docker("rm", "-f", interrupted, kept)
    finally:
        d.stop()
        kill_containers_left(tmp_path)
        assert_no_mounts_left(tmp_path)


def test_followed_logs_outlive_the_container(daemon, bb):
    """docker-py's `run` follows the logs, waits, removes the container and
    only then reads the stream: lines written after the follow began must
    still come (dockerd reads through the file it holds open)."""
    c = daemon.client()
    cid = c.post_json("/containers/create", None,
                      {"Image": bb, "Cmd": ["sh", "-c", "sleep 0.5; echo late"]})["Id"]
    c.request("POST", f"/containers/{cid}/start").close()
    r = c.request("GET", f"/containers/{cid}/logs", {"follow": 1, "stdout": 1})
    try:
        w = c.request("POST", f"/containers/{cid}/wait")
        w.read()  # the status comes once it exited
        w.close()
        c.request("DELETE", f"/containers/{cid}").close()
        body = r.read()
    finally:
        r.close()
    assert body == b"\x01\x00\x00\x00\x00\x00\x00\x05late\n"
