"""docker exec against Dockyard: the real docker CLI and the docker SDK, processes
joining a running container's namespaces and cgroup on a real kernel."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import time

import pytest

from conftest import DOCKER_CLI, mounts_under


@pytest.fixture(scope="module")
def bb(daemon, busybox_tar):
    daemon.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    return "busybox"


@pytest.fixture
def ctr(daemon, bb):
    """A running container (removed after the test, even on failure)."""
    cid = daemon.docker("run", "-d", "-e", "FROMCTR=c1", bb, "sleep",
                        "1000").stdout.decode().strip()
    try:
        yield cid
    finally:
        daemon.client().request("DELETE", f"/containers/{cid}", {"force": 1},
                                check=False).close()


def _post(c, path, body, params=None, check=False):
    return c.request("POST", path, params, json.dumps(body).encode(),
                     {"Content-Type": "application/json"}, check=check)


def test_exec_output_and_exit_code(daemon, ctr):
    r = daemon.docker("exec", ctr, "sh", "-c", "echo out; echo err >&2; exit 5", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (5, b"out\n", b"err\n")
    r = daemon.docker("exec", ctr, "echo", "hi")
    assert (r.returncode, r.stdout) == (0, b"hi\n")


def test_exec_env_user_workdir(daemon, ctr):
    r = daemon.docker("exec", "-e", "FOO=bar", "-e", "FROMCTR=over", ctr, "sh", "-c",
                      'echo "$FOO $FROMCTR $HOME"; echo $PATH')
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "bar over /root"
    assert "/bin" in lines[1].split(":")
    r = daemon.docker("exec", ctr, "sh", "-c", 'echo "$FROMCTR"')
    assert r.stdout == b"c1\n"
    r = daemon.docker("exec", "-u", "nobody", ctr, "sh", "-c", "id -u; id -g; echo $HOME")
    assert r.stdout == b"65534\n65534\n/\n"
    r = daemon.docker("exec", "-u", "1234:5678", ctr, "id")
    assert r.stdout.startswith(b"uid=1234 gid=5678")
    r = daemon.docker("exec", "-w", "/tmp", ctr, "pwd")
    assert r.stdout == b"/tmp\n"
    r = daemon.docker("exec", "-u", "nosuchuser", ctr, "id", check=False)
    assert r.returncode == 126
    assert b"unable to find user nosuchuser" in r.stdout + r.stderr


def test_exec_stdin(daemon, ctr):
    r = daemon.docker("exec", "-i", ctr, "sh", "-c", "cat; echo done",
                      input=b"hello\nworld\n")
    assert r.stdout == b"hello\nworld\ndone\n"
    r = daemon.docker("exec", "-i", ctr, "wc", "-c", input=b"x" * 200000)
    assert r.stdout.strip() == b"200000"


def _run_in_pty(args: list[str], env: dict[str, str], timeout: float = 30) -> tuple[int, bytes]:
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env,
                             start_new_session=True)
    finally:
        os.close(slave)
    out = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd closed
                    break
                if not data:
                    break
                out += data
            elif p.poll() is not None:
                break
        rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    return rc, out


def test_exec_tty(daemon, ctr):
    if DOCKER_CLI is None:
        pytest.skip("the docker CLI is not installed")
    env = daemon.env()
    env["DOCKER_CONFIG"] = str(daemon.base / "docker-config")
    rc, out = _run_in_pty([DOCKER_CLI, "exec", "-it", ctr, "sh", "-c",
                           "test -t 0 && test -t 1 && echo ISATTY $TERM; tty; exit 3"], env)
    assert rc == 3, out
    assert b"ISATTY xterm\r\n" in out
    assert b"/dev/pts/" in out
    # -t without -i: output through the tty too
    rc, out = _run_in_pty([DOCKER_CLI, "exec", "-t", ctr, "sh", "-c",
                           "test -t 1 && echo OUT; echo ERR >&2; exit 4"], env)
    assert rc == 4, out
    # the CLI leaves the local terminal cooked without -i: it adds a \r of its own
    assert out.replace(b"\r", b"") == b"OUT\nERR\n"


def test_exec_missing_command(daemon, ctr):
    r = daemon.docker("exec", ctr, "nosuch", check=False)
    assert r.returncode in (126, 127)
    assert (b'OCI runtime exec failed: exec failed: unable to start container process: '
            b'exec: "nosuch": executable file not found in $PATH: unknown') in r.stdout + r.stderr
    r = daemon.docker("exec", ctr, "/etc/passwd", check=False)
    assert r.returncode == 126
    # detached: the start call fails with the message
    r = daemon.docker("exec", "-d", ctr, "nosuch", check=False)
    assert r.returncode != 0 and b"executable file not found" in r.stderr


def test_exec_stopped_or_missing_container(daemon, bb):
    cid = daemon.docker("create", bb, "true").stdout.decode().strip()
    try:
        r = daemon.docker("exec", cid, "ls", check=False)
        assert r.returncode == 1
        assert f"Container {cid} is not running".encode() in r.stderr
    finally:
        daemon.docker("rm", "-f", cid, check=False)
    c = daemon.client()
    resp = _post(c, "/containers/nosuchctr/exec", {"Cmd": ["ls"]})
    assert resp.status == 404
    resp.close()
    resp = c.request("GET", "/exec/nosuchexec/json", check=False)
    assert resp.status == 404
    assert json.loads(resp.read())["message"] == "No such exec instance: nosuchexec"


def test_exec_inspect_and_detach(daemon, ctr):
    c = daemon.client()
    eid = c.post_json(f"/containers/{ctr}/exec", None,
                      {"Cmd": ["sh", "-c", "sleep 1; exit 7"], "User": "nobody", "Tty": True,
                       "AttachStdin": True, "AttachStdout": True})["Id"]
    assert len(eid) == 64
    j = c.get_json(f"/exec/{eid}/json")
    assert j["ID"] == eid and j["ContainerID"] == ctr
    assert (j["Running"], j["ExitCode"], j["Pid"]) == (False, None, 0)
    assert j["ProcessConfig"] == {"tty": True, "entrypoint": "sh",
                                  "arguments": ["-c", "sleep 1; exit 7"],
                                  "privileged": False, "user": "nobody"}
    assert (j["OpenStdin"], j["OpenStdout"], j["OpenStderr"]) == (True, True, False)
    assert j["CanRemove"] is False and j["DetachKeys"] == ""
    _post(c, f"/exec/{eid}/start", {"Detach": True}, check=True).close()
    j = c.get_json(f"/exec/{eid}/json")
    assert j["Running"] is True and j["ExitCode"] is None and j["Pid"] > 0
    c.request("POST", f"/exec/{eid}/resize", {"h": 10, "w": 20}).close()
    resp = _post(c, f"/exec/{eid}/start", {"Detach": True})
    assert resp.status == 409
    resp.close()
    deadline = time.time() + 10
    while c.get_json(f"/exec/{eid}/json")["Running"] and time.time() < deadline:
        time.sleep(0.1)
    j = c.get_json(f"/exec/{eid}/json")
    assert (j["Running"], j["ExitCode"]) == (False, 7)
    resp = _post(c, f"/exec/{eid}/start", {"Detach": True})
    assert resp.status == 409
    resp.close()


def test_exec_shares_pid_namespace(daemon, ctr):
    r = daemon.docker("exec", ctr, "ps", "-o", "pid,args")
    rows = [ln.split(None, 1) for ln in r.stdout.decode().splitlines()[1:]]
    assert ["1", "sleep 1000"] in rows
    r = daemon.docker("exec", ctr, "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; hostname")
    first, host = r.stdout.decode().splitlines()
    assert first.strip() == "sleep 1000" and host == ctr[:12]
    # same cgroup as the container's process
    r = daemon.docker("exec", ctr, "sh", "-c", "cat /proc/self/cgroup; echo ==; cat /proc/1/cgroup")
    mine, theirs = r.stdout.decode().split("==\n")
    assert mine.strip() == theirs.strip()


def test_sdk_exec_run(daemon, ctr):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=daemon.host)
    try:
        cont = client.containers.get(ctr)
        res = cont.exec_run(["sh", "-c", "echo sdk; exit 4"])
        assert (res.exit_code, res.output) == (4, b"sdk\n")
        res = cont.exec_run("id -u", user="nobody")
        assert (res.exit_code, res.output) == (0, b"65534\n")
        res = cont.exec_run(["sh", "-c", "echo o; echo e >&2"], demux=True)
        assert res.output == (b"o\n", b"e\n")
        res = cont.exec_run(["sh", "-c", "echo $X; pwd"], environment={"X": "y"},
                            workdir="/tmp")
        assert res.output == b"y\n/tmp\n", res.output
        res = cont.exec_run("sleep 0.2", detach=True)
        assert res.exit_code is None
    finally:
        client.close()


def test_exec_privileged_and_mount_released(daemon, ctr):
    caps = daemon.docker("exec", ctr, "grep", "CapEff", "/proc/self/status").stdout.split()[1]
    assert caps == b"00000000a80425fb"
    r = daemon.docker("exec", "--privileged", ctr, "grep", "CapEff", "/proc/self/status",
                      check=False)
    with open("/proc/self/status") as f:
        bnd = int(next(ln for ln in f if ln.startswith("CapBnd")).split()[1], 16)
    # every capability the daemon can grant (dockerd 20.10 asks for all and
    # fails on a host whose bounding set lacks one; containerd and runc-based
    # privileged containers get the daemon's set, and so does this)
    assert r.returncode == 0, r.stdout
    assert int(r.stdout.split()[1], 16) == bnd
    # resolving -u took and released a reference on the container's mount
    daemon.docker("exec", "-u", "nobody", ctr, "true")
    assert [m for m in mounts_under(daemon.base) if ctr in m]
    daemon.docker("stop", "-t", "0", ctr)
    assert not [m for m in mounts_under(daemon.base) if ctr in m]
    r = daemon.docker("exec", ctr, "true", check=False)
    assert r.returncode == 1 and b"is not running" in r.stderr


def test_exec_ids_in_container_inspect(daemon, bb):
    cid = daemon.docker("run", "-d", bb, "sleep", "30").stdout.decode().strip()
    try:
        eid = daemon.client().post_json(f"/containers/{cid}/exec",
                                        body={"Cmd": ["true"]})["Id"]
        insp = daemon.client().get_json(f"/containers/{cid}/json")
        assert insp["ExecIDs"] == [eid]
    finally:
        daemon.docker("rm", "-f", cid)


def _exec_stream(daemon, cid: str, create_tty: bool, start_tty: bool | None) -> bytes:
    c = daemon.client()
    eid = c.post_json(f"/containers/{cid}/exec", None,
                      {"Cmd": ["sh", "-c", "test -t 1 && echo PTY || echo PIPE; echo e >&2"],
                       "AttachStdout": True, "AttachStderr": True, "Tty": create_tty})["Id"]
    body = {"Detach": False} if start_tty is None else {"Detach": False, "Tty": start_tty}
    h = c.hijack("POST", f"/exec/{eid}/start", None, json.dumps(body).encode())
    data = b""
    try:
        while chunk := h.read():
            data += chunk
    finally:
        h.close()
    return data


def _frame(kind: int, payload: bytes) -> bytes:
    return bytes([kind, 0, 0, 0]) + len(payload).to_bytes(4, "big") + payload


def test_exec_start_tty_decides_framing(daemon, ctr):
    """The start request's Tty frames the stream (dockerd's router wraps it in
    stdcopy writers unless Tty); the exec's create-time Tty gives the pty."""
    # a pty, framed: its output (stdout and stderr alike) comes as stdout frames
    framed_pty = (_frame(1, b"PTY\r\ne\r\n"), _frame(1, b"PTY\r\n") + _frame(1, b"e\r\n"))
    assert _exec_stream(daemon, ctr, True, False) in framed_pty
    # no Tty in the start body: framed too
    assert _exec_stream(daemon, ctr, True, None) in framed_pty
    # pipes, raw: stdout unframed, and stderr dropped (dockerd has no writer for it)
    assert _exec_stream(daemon, ctr, False, True) == b"PIPE\n"
    # both agree: as before
    assert _exec_stream(daemon, ctr, True, True) == b"PTY\r\ne\r\n"
    data = _exec_stream(daemon, ctr, False, False)
    assert _frame(1, b"PIPE\n") in data and _frame(2, b"e\n") in data, data


def test_sdk_exec_tty_create_started_without_tty(daemon, ctr):
    """docker-py's exec_create(tty=True) + exec_start(tty=False) demultiplexes."""
    docker = pytest.importorskip("docker")
    api = docker.APIClient(base_url=daemon.host)
    try:
        eid = api.exec_create(ctr, ["sh", "-c", "echo hello; tty"], tty=True)["Id"]
        out = api.exec_start(eid, tty=False)
        assert out.startswith(b"hello\r\n/dev/pts/"), out
        assert api.exec_inspect(eid)["ExitCode"] == 0
    finally:
        api.close()


def test_exec_body_keys_match_in_any_case(daemon, ctr):
    """dockerd decodes the exec body as Go does, field names in any case:
    docker-py sends `detachKeys` from its config file (its
    test_detach_with_config_file), and it takes effect."""
    c = daemon.client()
    eid = c.post_json(f"/containers/{ctr}/exec", None,
                      {"cmd": ["cat"], "attachStdin": True, "attachStdout": True, "tty": True,
                       "detachKeys": "ctrl-p"})["Id"]
    j = c.get_json(f"/exec/{eid}/json")
    assert j["DetachKeys"] == "ctrl-p" and j["ProcessConfig"]["tty"] is True
    # Exact spellings win over other cases.
    eid = c.post_json(f"/containers/{ctr}/exec", None,
                      {"Cmd": ["true"], "cmd": ["false"], "DetachKeys": "ctrl-x",
                       "detachkeys": "ctrl-y"})["Id"]
    j = c.get_json(f"/exec/{eid}/json")
    assert j["DetachKeys"] == "ctrl-x" and j["ProcessConfig"]["entrypoint"] == "true"
