"""Lifecycle details where clients rely on dockerd's exact behaviour: a KILL
returns only once the container is dead (other signals at once), the
restarting state between an exit and the restart policy's restart (and the
409 of removing it), and the runtime a container records."""

from __future__ import annotations

import json
import signal
import time

import pytest

pytestmark = pytest.mark.usefixtures("no_leftover_containers")  # conftest.py


def _state(daemon, cid: str) -> dict:
    return daemon.client().get_json(f"/containers/{cid}/json")["State"]


@pytest.mark.parametrize("sig", [None, signal.SIGKILL, "SIGKILL", 9, "KILL"])
def test_kill_returns_when_dead(daemon, bb, sig):
    """docker-py's test_kill_with_signal*: inspect right after the kill, no wait."""
    docker = pytest.importorskip("docker")
    client = docker.APIClient(base_url=daemon.host, version="1.41")
    try:
        c = client.create_container(bb, ["sleep", "60"])
        client.start(c)
        if sig is None:
            client.kill(c)
        else:
            client.kill(c, signal=sig)
        st = client.inspect_container(c)["State"]
        assert (st["Running"], st["Status"], st["ExitCode"]) == (False, "exited", 137)
        assert client.wait(c)["StatusCode"] == 137
        client.remove_container(c)
    finally:
        client.close()


def _until_file(daemon, cid: str, path: str) -> None:
    for _ in range(200):
        if daemon.docker("exec", cid, "test", "-e", path, check=False).returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_kill_with_another_signal_returns_at_once(daemon, bb):
    cid = daemon.docker("run", "-d", bb, "sh", "-c", "trap 'touch /tmp/usr1' USR1; "
                        "touch /tmp/ready; while :; do sleep 0.1; done").stdout.decode().strip()
    _until_file(daemon, cid, "/tmp/ready")  # the trap is set
    daemon.docker("kill", "-s", "USR1", cid)
    assert _state(daemon, cid)["Running"] is True  # the handler doesn't exit
    _until_file(daemon, cid, "/tmp/usr1")
    daemon.docker("kill", cid)
    assert _state(daemon, cid)["ExitCode"] == 137
    daemon.docker("rm", cid)


def _until_restarting(daemon, cid: str) -> dict:
    for _ in range(400):
        st = _state(daemon, cid)
        if st["Restarting"]:
            return st
        time.sleep(0.02)
    raise AssertionError("never seen restarting")


def _while_restarting(daemon, cid: str, fn):
    """fn()'s result, from a call made within one restarting window: the
    container restarts after a delay, so a call the restart overtook (the
    restart count moved, or it runs) is made again in the next window."""
    for _ in range(20):
        before = _until_restarting(daemon, cid)
        n = daemon.client().get_json(f"/containers/{cid}/json")["RestartCount"]
        out = fn()
        info = daemon.client().get_json(f"/containers/{cid}/json")
        if info["State"]["Restarting"] and info["RestartCount"] == n:
            return before, out
    raise AssertionError("no call fit in a restarting window")


def _status(r) -> tuple[int, str]:
    try:
        return r.status, r.json()["message"]
    finally:
        r.close()


def test_restarting_state_and_rm(daemon, bb):
    cid = daemon.docker("run", "-d", "--name", "sem-rs", "--restart", "always", bb,
                        "false").stdout.decode().strip()
    c = daemon.client()
    st, ps = _while_restarting(daemon, cid, lambda: daemon.docker(
        "ps", "--filter", "name=sem-rs", "--format", "{{.Status}}").stdout.decode())
    # dockerd's SetRestarting: running (for rm/stop's checks), no process
    assert (st["Status"], st["Running"], st["Restarting"], st["Pid"], st["ExitCode"]) == (
        "restarting", True, True, 0, 1)
    assert ps.startswith("Restarting (1) ")
    _, r = _while_restarting(daemon, cid, lambda: daemon.docker("rm", cid, check=False))
    assert r.returncode == 1
    assert r.stderr.decode() == (f"Error response from daemon: You cannot remove a restarting "
                                 f"container {cid}. Stop the container before attempting "
                                 "removal or force remove\n")
    _, out = _while_restarting(daemon, cid, lambda: _status(
        c.request("DELETE", f"/containers/{cid}", check=False)))
    assert out[0] == 409
    _, out = _while_restarting(daemon, cid, lambda: _status(c.request(
        "POST", "/containers/sem-rs/attach", {"stream": 1, "stdout": 1}, check=False)))
    assert out == (409, "container sem-rs is restarting, wait until the container is running")
    _, r = _while_restarting(daemon, cid, lambda: daemon.docker("exec", cid, "true",
                                                                check=False))
    assert r.stderr.decode() == (f"Error response from daemon: Container {cid} is restarting, "
                                 "wait until the container is running\n")
    daemon.docker("update", "--cpu-shares", "512", cid)  # stored for the next start
    # stop cancels the pending restart: exited with the last exit code
    _until_restarting(daemon, cid)
    daemon.docker("stop", cid)
    st = _state(daemon, cid)
    assert (st["Status"], st["Running"], st["Restarting"], st["ExitCode"]) == (
        "exited", False, False, 1)
    time.sleep(0.5)  # a cancelled restart stays cancelled
    assert _state(daemon, cid)["Status"] == "exited"
    assert _hc_shares(daemon, cid) == 512
    daemon.docker("rm", cid)


def _hc_shares(daemon, cid: str) -> int:
    return daemon.client().get_json(f"/containers/{cid}/json")["HostConfig"]["CpuShares"]


def test_restarting_container_goes_with_rm_f_and_kill(daemon, bb):
    a = daemon.docker("run", "-d", "--restart", "always", bb, "false").stdout.decode().strip()
    b = daemon.docker("run", "-d", "--restart", "on-failure", bb, "false").stdout.decode().strip()
    _until_restarting(daemon, a)
    daemon.docker("rm", "-f", a)
    r = daemon.client().request("GET", f"/containers/{a}/json", check=False)
    assert r.status == 404
    r.close()
    _until_restarting(daemon, b)
    daemon.docker("kill", b)
    st = _state(daemon, b)
    assert (st["Status"], st["Running"], st["Restarting"]) == ("exited", False, False)
    daemon.docker("rm", b)


def test_paused_container_rm_message(daemon, bb):
    cid = daemon.docker("run", "-d", bb, "sleep", "100").stdout.decode().strip()
    daemon.docker("pause", cid)
    r = daemon.docker("rm", cid, check=False)
    assert r.stderr.decode() == (f"Error response from daemon: You cannot remove a paused "
                                 f"container {cid}. Unpause and then stop the container "
                                 "before attempting removal or force remove\n")
    daemon.docker("rm", "-f", cid)


def test_runtime_recorded(daemon, bb):
    info = daemon.client().get_json("/info")
    default = info["DefaultRuntime"]
    assert default in info["Runtimes"]
    cid = daemon.docker("create", bb, "true").stdout.decode().strip()
    # As dockerd: no --runtime stores the default runtime's name
    assert daemon.client().get_json(f"/containers/{cid}/json")["HostConfig"]["Runtime"] == default
    daemon.docker("rm", cid)
    r = daemon.docker("create", "--runtime", "bogus", bb, "true", check=False)
    assert r.returncode != 0
    assert b"Error response from daemon: Unknown runtime specified bogus" in r.stderr
    if "runc" in info["Runtimes"]:
        # dockerd's default runtime name is accepted, shown as given
        cid = daemon.docker("create", "--runtime", "runc", bb, "true").stdout.decode().strip()
        hc = json.loads(daemon.docker("inspect", cid).stdout)[0]["HostConfig"]
        assert hc["Runtime"] == "runc"
        daemon.docker("rm", cid)
        docker = pytest.importorskip("docker")  # docker-py's test_create_with_runtime
        client = docker.APIClient(base_url=daemon.host, version="1.41")
        try:
            c = client.create_container(bb, ["echo", "test"], runtime="runc")
            assert client.inspect_container(c)["HostConfig"]["Runtime"] == "runc"
            client.remove_container(c)
        finally:
            client.close()


def test_restart_backoff(tmp_path, busybox_tar):
    """dockerd's restart manager: 100 ms, doubled at each restart, back to
    100 ms once a run lasted 10 s (the Python API: the daemon's monitor
    sleeps the delays this returns)."""
    from conftest import NO_NETWORK, assert_no_mounts_left
    from dockyard import Engine
    from dockyard.imageconfig import now_rfc3339

    eng = Engine(tmp_path / "root", "overlay", exec_root=tmp_path / "exec",
                 network_options=NO_NETWORK)
    try:
        eng.import_image(str(busybox_tar), repo="busybox")
        s = eng.containers
        c = s.create({"Image": "busybox", "Cmd": ["false"]},
                     {"RestartPolicy": {"Name": "always"}})
        s.start(c.id)
        delays = []
        for _ in range(4):
            s.wait_exit(c.id, 30)
            delays.append(s.begin_restart(c.id))
            st = s.get(c.id).state
            assert (st["Status"], st["Running"], st["Restarting"], st["Pid"]) == (
                "restarting", True, True, 0)
            assert s.restart_after_exit(c.id)
        assert delays == [0.1, 0.2, 0.4, 0.8]
        assert s.get(c.id).restart_count == 4
        s.wait_exit(c.id, 30)
        cur = s.get(c.id)
        cur.state["StartedAt"] = "2020-01-01T00:00:00Z"  # a long run before this exit
        cur.state["FinishedAt"] = now_rfc3339()
        s.save(cur)
        assert s.begin_restart(c.id) == 0.1
        s.stop(c.id)  # cancels it
        assert not s.restart_after_exit(c.id)
        assert s.get(c.id).state["Status"] == "exited"
        s.remove(c.id)
    finally:
        eng.close()
        assert_no_mounts_left(tmp_path)
