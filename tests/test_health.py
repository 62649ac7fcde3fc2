"""Health checks (HEALTHCHECK, --health-*) as dockerd 20.10 runs them: the
probe exec'd in the running container, `State.Health` on inspect, the `ps`
status text and `health` filter, the events, pause/stop/restart and a daemon
restart. Scenarios that both engines share run against a reference dockerd
too, with the values pinned from it. Short intervals; every wait polls with
a generous deadline."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest

from conftest import DOCKER_CLI, Daemon, assert_no_mounts_left, kill_containers_left
from dockyard.imageconfig import parse_time

ENGINES = ["ref-dockerd", "dockyard"]
GO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")


@pytest.fixture(scope="module", params=ENGINES)
def eng(request, busybox_tar):
    """An engine (the reference dockerd, or Dockyard's module daemon) with
    busybox:latest and busybox images with HEALTHCHECKs."""
    if request.param == "ref-dockerd":
        e = request.getfixturevalue("ref_dockerd")
    else:
        e = request.getfixturevalue("daemon")
    if e.docker("image", "inspect", "busybox:latest", check=False).returncode != 0:
        e.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    e.docker("import", "-c", "HEALTHCHECK --interval=1s --timeout=2s --start-period=3s "
             "--retries=4 CMD true", str(busybox_tar), "hc-image:latest")
    e.docker("import", "-c", "HEALTHCHECK NONE", str(busybox_tar), "hc-none:latest")
    yield e


@pytest.fixture
def names(eng):
    """Unique container names, removed after the test."""
    made: list[str] = []

    def new() -> str:
        made.append(f"hc-{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield new
    if made:
        eng.docker("rm", "-f", *made, check=False)


def inspect(eng, name: str) -> dict[str, Any]:
    return json.loads(eng.docker("inspect", name).stdout)[0]


def health(eng, name: str) -> dict[str, Any] | None:
    return inspect(eng, name)["State"].get("Health")


def wait_for(fn: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def wait_status(eng, name: str, status: str, timeout: float = 60) -> dict[str, Any]:
    def check():
        h = health(eng, name)
        return h if h and h["Status"] == status else None

    return wait_for(check, timeout, f"{name} to be {status}")


def ps_status(eng, name: str) -> str:
    return eng.docker("ps", "-a", "--filter", f"name={name}", "--format",
                      "{{.Status}}").stdout.decode().strip()


def api(eng, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """A raw Engine API call (curl speaks to both engines' sockets alike)."""
    sock = eng.host[len("unix://"):]
    args = ["curl", "-s", "-g", "--unix-socket", sock, "-X", method, "-o", "-", "-w",
            "\n%{http_code}", f"http://docker/v1.41{path}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    out = subprocess.run(args, capture_output=True, timeout=60).stdout.decode()
    text, _, code = out.rpartition("\n")
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = text
    return int(code), data


# --- both engines ----------------------------------------------------------------------

def test_healthy_inspect_and_ps(eng, names):
    n = names()
    eng.docker("run", "-d", "--name", n, "--health-cmd", "echo hi; echo err >&2",
               "--health-interval", "300ms", "--health-retries", "2", "busybox",
               "sleep", "600")
    h = wait_status(eng, n, "healthy")
    assert list(h) == ["Status", "FailingStreak", "Log"]
    assert h["FailingStreak"] == 0
    entry = h["Log"][0]
    assert list(entry) == ["Start", "End", "ExitCode", "Output"]
    assert entry["ExitCode"] == 0
    assert GO_TIME.match(entry["Start"]) and GO_TIME.match(entry["End"])
    assert entry["Start"] <= entry["End"]
    # stdout and stderr share one buffer, in the order written
    assert sorted(entry["Output"].splitlines()) == ["err", "hi"]
    st = inspect(eng, n)["State"]
    assert list(st)[-1] == "Health"
    assert re.fullmatch(r"Up .* \(healthy\)", ps_status(eng, n))
    # never more than the last five results
    wait_for(lambda: len(health(eng, n)["Log"]) == 5, what="five results")
    time.sleep(0.7)
    assert len(health(eng, n)["Log"]) == 5


def test_starting_before_the_first_probe(eng, names):
    n = names()
    eng.docker("create", "--name", n, "--health-cmd", "true", "--health-interval", "1h",
               "busybox", "sleep", "600")
    # a created container has no Health yet
    assert "Health" not in inspect(eng, n)["State"]
    assert ps_status(eng, n) == "Created"
    assert eng.docker("ps", "-aq", "--no-trunc", "--filter", "health=none", "--filter",
                      f"name={n}").stdout.decode().strip()
    eng.docker("start", n)
    assert health(eng, n) == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert re.fullmatch(r"Up .* \(health: starting\)", ps_status(eng, n))


def test_unhealthy_after_retries(eng, names):
    n = names()
    eng.docker("run", "-d", "--name", n, "--health-cmd", "exit 3", "--health-interval",
               "200ms", "--health-retries", "2", "busybox", "sleep", "600")
    h = wait_status(eng, n, "unhealthy")
    assert h["FailingStreak"] >= 2
    assert {e["ExitCode"] for e in h["Log"]} == {3}
    assert all(e["Output"] == "" for e in h["Log"])
    assert re.fullmatch(r"Up .* \(unhealthy\)", ps_status(eng, n))


def test_timeout(eng, names):
    n = names()
    eng.docker("run", "-d", "--name", n, "--health-cmd", "echo x; sleep 30",
               "--health-interval", "200ms", "--health-timeout", "300ms",
               "--health-retries", "1", "busybox", "sleep", "600")
    h = wait_status(eng, n, "unhealthy")
    entry = h["Log"][0]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms)"
    # the probes that timed out were killed: none piles up in the container
    wait_for(lambda: len(health(eng, n)["Log"]) >= 3, what="three probes")
    top = eng.docker("top", n).stdout.decode()
    assert top.count("sleep 30") <= 1


def test_exec_failure(eng, names):
    n = names()
    code, _ = api(eng, "POST", f"/containers/create?name={n}", {
        "Image": "busybox", "Cmd": ["sleep", "600"],
        "Healthcheck": {"Test": ["CMD", "/nonexistent", "a"], "Interval": 200_000_000,
                        "Retries": 1}})
    assert code == 201
    eng.docker("start", n)
    h = wait_status(eng, n, "unhealthy")
    assert h["Log"][0]["ExitCode"] == -1
    assert h["Log"][0]["Output"] == (
        'OCI runtime exec failed: exec failed: unable to start container process: exec: '
        '"/nonexistent": stat /nonexistent: no such file or directory: unknown')


def test_output_is_capped(eng, names):
    n = names()
    eng.docker("run", "-d", "--name", n, "--health-cmd",
               'head -c 5000 /dev/zero | tr "\\0" a; printf "\\377"', "--health-interval",
               "300ms", "busybox", "sleep", "600")
    h = wait_status(eng, n, "healthy")
    assert h["Log"][0]["Output"] == "a" * 4096 + "..."
    m = names()
    eng.docker("run", "-d", "--name", m, "--health-cmd", 'printf "ok\\377\\376x"',
               "--health-interval", "300ms", "busybox", "sleep", "600")
    assert wait_status(eng, m, "healthy")["Log"][0]["Output"] == "ok\ufffd\ufffdx"


def test_start_period(eng, names):
    # failures inside the start period don't count while it is starting
    n = names()
    eng.docker("run", "-d", "--name", n, "--health-cmd", "false", "--health-interval",
               "200ms", "--health-retries", "1", "--health-start-period", "1h", "busybox",
               "sleep", "600")
    wait_for(lambda: len(health(eng, n)["Log"]) >= 3, what="three probes")
    h = health(eng, n)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 0)
    assert {e["ExitCode"] for e in h["Log"]} == {1}
    # docker-py's test_healthcheck_start_period: healthy once the check passes
    m = names()
    eng.docker("run", "-d", "--name", m, "--health-cmd",
               "echo x >> /counter.txt && test `cat /counter.txt | wc -l` -ge 3",
               "--health-interval", "300ms", "--health-timeout", "1s", "--health-retries",
               "1", "--health-start-period", "20s", "busybox", "sleep", "600")
    h = wait_status(eng, m, "healthy")
    assert [e["ExitCode"] for e in h["Log"]] == [1, 1, 0]


def test_healthcheck_none_and_no_healthcheck(eng, names):
    n, m, k = names(), names(), names()
    eng.docker("run", "-d", "--name", n, "hc-none", "sleep", "600")
    insp = inspect(eng, n)
    assert insp["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    assert "Health" not in insp["State"]
    eng.docker("run", "-d", "--name", m, "--no-healthcheck", "hc-image", "sleep", "600")
    insp = inspect(eng, m)
    assert insp["Config"]["Healthcheck"] == {
        "Test": ["NONE"], "Interval": 1000000000, "Timeout": 2000000000,
        "StartPeriod": 3000000000, "Retries": 4}
    assert "Health" not in insp["State"]
    assert re.fullmatch(r"Up [^(]*", ps_status(eng, m))
    # an unknown probe type runs nothing (dockerd logs a warning)
    code, _ = api(eng, "POST", f"/containers/create?name={k}", {
        "Image": "busybox", "Cmd": ["sleep", "600"],
        "Healthcheck": {"Test": ["WHAT", "true"], "Interval": 1000000}})
    assert code == 201
    eng.docker("start", k)
    time.sleep(0.3)
    assert "Health" not in inspect(eng, k)["State"]
    listed = eng.docker("ps", "--filter", "health=none", "--format",
                        "{{.Names}}").stdout.decode().split()
    assert {n, m, k} <= set(listed)


def test_image_healthcheck_merge(eng, names):
    img = json.loads(eng.docker("image", "inspect", "hc-image").stdout)[0]
    assert img["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"], "Interval": 1000000000, "Timeout": 2000000000,
        "StartPeriod": 3000000000, "Retries": 4}
    a, b, c, d = names(), names(), names(), names()
    eng.docker("create", "--name", a, "--health-interval", "500ms", "hc-image", "sleep", "1")
    assert inspect(eng, a)["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"], "Interval": 500000000, "Timeout": 2000000000,
        "StartPeriod": 3000000000, "Retries": 4}
    eng.docker("create", "--name", b, "--health-cmd", "exit 0", "hc-none", "sleep", "1")
    assert inspect(eng, b)["Config"]["Healthcheck"] == {"Test": ["CMD-SHELL", "exit 0"]}
    # an empty Test inherits the image's; Go leaves zero fields out
    api(eng, "POST", f"/containers/create?name={c}", {
        "Image": "hc-image", "Cmd": ["sleep", "1"], "Healthcheck": {"Test": [], "Retries": 0}})
    assert inspect(eng, c)["Config"]["Healthcheck"] == img["Config"]["Healthcheck"]
    api(eng, "POST", f"/containers/create?name={d}", {
        "Image": "busybox", "Cmd": ["sleep", "1"],
        "Healthcheck": {"Test": None, "Interval": 2000000}})
    assert inspect(eng, d)["Config"]["Healthcheck"] == {"Interval": 2000000}


def test_change_healthcheck_errors(eng, busybox_tar):
    cases = {
        "HEALTHCHECK --interval=1 CMD true": 'time: missing unit in duration "1"',
        "HEALTHCHECK --foo=1 CMD true": "Unknown flag: foo",
        "HEALTHCHECK NONE true": "HEALTHCHECK NONE takes no arguments",
        "HEALTHCHECK --retries=0 CMD true": "--retries must be at least 1 (not 0)",
        "HEALTHCHECK --interval=0s CMD true": 'Interval "interval" cannot be less than 1ms',
        "HEALTHCHECK FOO true": 'Unknown type "FOO" in HEALTHCHECK (try CMD)',
        "HEALTHCHECK CMD": "Missing command after HEALTHCHECK CMD",
    }
    for change, msg in cases.items():
        r = eng.docker("import", "-c", change, str(busybox_tar), "hc-bad:1", check=False)
        assert r.returncode != 0, change
        assert msg in r.stderr.decode(), (change, r.stderr)
    r = eng.docker("import", "-c", 'HEALTHCHECK CMD ["echo","a b"]', str(busybox_tar),
                   "hc-json:1")
    img = json.loads(eng.docker("image", "inspect", "hc-json:1").stdout)[0]
    assert img["Config"]["Healthcheck"] == {"Test": ["CMD", "echo", "a b"]}
    eng.docker("rmi", "hc-json:1")


def test_create_validation(eng):
    base = {"Image": "busybox", "Cmd": ["true"]}
    for hc, msg in (
            ({"Test": ["CMD-SHELL", "true"], "Interval": 100},
             "Interval in Healthcheck cannot be less than 1ms"),
            ({"Interval": -5}, "Interval in Healthcheck cannot be less than 1ms"),
            ({"Timeout": 100}, "Timeout in Healthcheck cannot be less than 1ms"),
            ({"StartPeriod": 100}, "StartPeriod in Healthcheck cannot be less than 1ms"),
            ({"Retries": -1}, "Retries in Healthcheck cannot be negative"),
            ({"Test": "true"}, "json: cannot unmarshal string into Go struct field "
                               "HealthConfig.Healthcheck.Test of type []string"),
            ({"Interval": "1s"}, "json: cannot unmarshal string into Go struct field "
                                 "HealthConfig.Healthcheck.Interval of type time.Duration"),
            ({"Test": ["CMD", 1]}, "json: cannot unmarshal number into Go struct field "
                                   "HealthConfig.Healthcheck.Test of type string"),
            ({"Retries": True}, "json: cannot unmarshal bool into Go struct field "
                                "HealthConfig.Healthcheck.Retries of type int")):
        code, body = api(eng, "POST", "/containers/create", dict(base, Healthcheck=hc))
        # dockerd answers its JSON decoding errors 500; Dockyard says 400 to all of
        # them (as for HostConfig.Mounts), with dockerd's message
        want = 500 if msg.startswith("json:") and not isinstance(eng, Daemon) else 400
        assert (code, body) == (want, {"message": msg}), hc


def test_cli_flag_errors(eng):
    for args, msg in (
            (["--no-healthcheck", "--health-cmd", "true"],
             "--no-healthcheck conflicts with --health-* options"),
            (["--health-interval", "-1s"], "--health-interval cannot be negative"),
            (["--health-retries", "-1"], "--health-retries cannot be negative"),
            (["--health-interval", "1"], 'invalid argument "1" for "--health-interval" flag: '
                                         'time: missing unit in duration "1"'),
            (["--health-timeout", "1x"], 'invalid argument "1x" for "--health-timeout" flag: '
                                         'time: unknown unit "x" in duration "1x"'),
            (["--health-retries", "x"], 'invalid argument "x" for "--health-retries" flag: '
                                        'strconv.ParseInt: parsing "x": invalid syntax'),
            (["--health-interval", "0.5ms"],
             "Interval in Healthcheck cannot be less than 1ms")):
        r = eng.docker("create", *args, "busybox", "true", check=False)
        assert r.returncode != 0 and msg in r.stderr.decode(), (args, r.stderr)


def test_health_filter(eng, names):
    good, bad = names(), names()
    eng.docker("run", "-d", "--name", good, "--health-cmd", "true", "--health-interval",
               "200ms", "busybox", "sleep", "600")
    eng.docker("run", "-d", "--name", bad, "--health-cmd", "false", "--health-interval",
               "200ms", "--health-retries", "1", "busybox", "sleep", "600")
    wait_status(eng, good, "healthy")
    wait_status(eng, bad, "unhealthy")

    def listed(value: str) -> set[str]:
        return set(eng.docker("ps", "-a", "--filter", f"health={value}", "--format",
                              "{{.Names}}").stdout.decode().split()) & {good, bad}

    assert listed("healthy") == {good}
    assert listed("unhealthy") == {bad}
    assert listed("starting") == set() and listed("none") == set()
    r = eng.docker("ps", "--filter", "health=bogus", check=False)
    assert r.returncode != 0
    assert "Unrecognised filter value for health: bogus" in r.stderr.decode()
    code, body = api(eng, "GET", "/containers/json?filters=" + urllib.parse.quote(
        json.dumps({"health": ["bogus"]})))
    assert (code, body) == (400, {"message": "Unrecognised filter value for health: bogus"})


def test_events(eng, names):
    n = names()
    since = time.time()
    eng.docker("run", "-d", "--name", n, "--health-cmd", "echo ok", "--health-interval",
               "300ms", "--health-retries", "1", "busybox", "sleep", "600")
    wait_status(eng, n, "healthy")
    time.sleep(0.5)
    out = eng.docker("events", "--since", f"{since - 1:.3f}", "--until",
                     f"{time.time():.3f}", "--filter", f"container={n}", "--format",
                     "{{json .}}").stdout.decode()
    evs = [json.loads(line) for line in out.splitlines()]
    actions = [e["Action"] for e in evs]
    assert actions.count("health_status: healthy") == 1
    assert actions.index("start") < actions.index("exec_create: /bin/sh -c echo ok")
    create = next(e for e in evs if e["Action"].startswith("exec_create: "))
    eid = create["Actor"]["Attributes"]["execID"]
    assert len(eid) == 64
    related = [e for e in evs if e["Actor"]["Attributes"].get("execID") == eid]
    assert [e["Action"] for e in related] == [
        "exec_create: /bin/sh -c echo ok", "exec_start: /bin/sh -c echo ok", "exec_die"]
    assert related[2]["Actor"]["Attributes"]["exitCode"] == "0"
    assert related[0]["Actor"]["Attributes"]["name"] == n
    # a bare health_status (or exec_create, exec_start) matches every such action
    out = eng.docker("events", "--since", f"{since - 1:.3f}", "--until",
                     f"{time.time():.3f}", "--filter", f"container={n}", "--filter",
                     "event=health_status", "--filter", "event=exec_die", "--format",
                     "{{.Action}}").stdout.decode().split("\n")
    assert "health_status: healthy" in out and "exec_die" in out
    assert not any(a.startswith("exec_create") for a in out)
    # a probe that doesn't start has no exec_die
    m = names()
    api(eng, "POST", f"/containers/create?name={m}", {
        "Image": "busybox", "Cmd": ["sleep", "600"],
        "Healthcheck": {"Test": ["CMD", "/nope"], "Interval": 300_000_000, "Retries": 1}})
    since = time.time()
    eng.docker("start", m)
    wait_status(eng, m, "unhealthy")
    time.sleep(0.5)
    out = eng.docker("events", "--since", f"{since - 1:.3f}", "--until",
                     f"{time.time():.3f}", "--filter", f"container={m}", "--format",
                     "{{.Action}}").stdout.decode().splitlines()
    assert "health_status: unhealthy" in out and "exec_start: /nope " in out
    assert "exec_die" not in out


def test_pause_unpause_stop(eng, names):
    n = names()
    eng.docker("run", "-d", "--name", n, "--health-cmd", "true", "--health-interval",
               "200ms", "busybox", "sleep", "600")
    wait_status(eng, n, "healthy")
    eng.docker("pause", n)
    # dockerd marks it unhealthy when its monitor stops; no probe while paused
    h = health(eng, n)
    assert h["Status"] == "unhealthy"
    time.sleep(1)
    assert health(eng, n)["Log"] == h["Log"]
    assert re.fullmatch(r"Up .* \(Paused\)", ps_status(eng, n))
    eng.docker("unpause", n)
    wait_status(eng, n, "healthy")
    eng.docker("stop", "-t", "0", n)
    h = health(eng, n)
    assert h["Status"] == "unhealthy"
    time.sleep(0.6)
    assert health(eng, n)["Log"] == h["Log"]
    assert ps_status(eng, n).startswith("Exited (137)")


def test_start_and_restart_begin_again(eng, names):
    n = names()
    eng.docker("run", "-d", "--name", n, "--health-cmd", "false", "--health-interval",
               "200ms", "--health-retries", "5", "busybox", "sleep", "600")
    h = wait_status(eng, n, "unhealthy")
    eng.docker("stop", "-t", "0", n)
    h = health(eng, n)
    eng.docker("start", n)
    h2 = health(eng, n)
    # five failures are needed again: it is still starting at the first look
    assert h2["Status"] == "starting" and h2["FailingStreak"] < 5
    assert h["Log"][-1] in h2["Log"]  # the log is kept
    wait_status(eng, n, "unhealthy")
    eng.docker("restart", "-t", "0", n)
    h3 = health(eng, n)
    assert h3["Status"] == "starting" and h3["FailingStreak"] < 5
    wait_status(eng, n, "unhealthy")


def test_docker_sdk_healthcheck(eng, names):
    """docker-py's tests/integration/api_healthcheck_test.py."""
    docker = pytest.importorskip("docker")
    client = docker.APIClient(base_url=eng.host, version="1.41")
    second = 1_000_000_000
    try:
        n = names()
        c = client.create_container("busybox", "top", name=n,
                                    healthcheck=dict(test='echo "hello world"'))
        res = client.inspect_container(c)
        assert res["Config"]["Healthcheck"]["Test"] == ["CMD-SHELL", 'echo "hello world"']
        for test, status in (("true", "healthy"), ("false", "unhealthy")):
            n = names()
            c = client.create_container("busybox", "top", name=n, healthcheck=dict(
                test=test, interval=1 * second, timeout=1 * second, retries=1))
            client.start(c)
            wait_for(lambda: client.inspect_container(c)["State"]["Health"]["Status"]
                     == status, what=status)
        n = names()
        c = client.create_container("busybox", "top", name=n, healthcheck=dict(
            test="echo 'x' >> /counter.txt && test `cat /counter.txt | wc -l` -ge 3",
            interval=1 * second, timeout=1 * second, retries=1, start_period=3 * second))
        client.start(c)
        wait_for(lambda: client.inspect_container(c)["State"]["Health"]["Status"]
                 == "healthy", what="healthy")
    finally:
        client.close()


# --- Dockyard only -------------------------------------------------------------------

def test_probe_dirs_cleaned(daemon, busybox_tar, names_dy):
    n = names_dy()
    if daemon.docker("image", "inspect", "busybox:latest", check=False).returncode != 0:
        daemon.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    cid = daemon.docker("run", "-d", "--name", n, "--health-cmd", "true",
                        "--health-interval", "200ms", "--health-timeout", "5s", "busybox",
                        "sleep", "600").stdout.decode().strip()
    wait_status(daemon, n, "healthy")
    wait_for(lambda: len(health(daemon, n)["Log"]) == 5, what="five probes")
    sdir = Path(daemon.base) / "exec" / "containers" / cid
    # each probe's exec directory goes with it (at most the one in flight stays)
    assert len(list(sdir.glob("exec-*"))) <= 1
    # and an exec of the user's is not disturbed by the probes
    assert daemon.docker("exec", n, "echo", "hi").stdout == b"hi\n"


def test_our_cli(daemon, busybox_tar, names_dy):
    """`dockyard run/create` send what the docker CLI sends for the --health-* flags."""
    if daemon.docker("image", "inspect", "busybox:latest", check=False).returncode != 0:
        daemon.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    n, m, k = names_dy(), names_dy(), names_dy()
    daemon.cli("run", "-d", "--name", n, "--health-cmd", "true", "--health-interval", "250ms",
               "--health-timeout", "1m30s", "--health-retries", "2",
               "--health-start-period", "1.5s", "busybox", "sleep", "600")
    assert inspect(daemon, n)["Config"]["Healthcheck"] == {
        "Test": ["CMD-SHELL", "true"], "Interval": 250000000, "Timeout": 90000000000,
        "StartPeriod": 1500000000, "Retries": 2}
    wait_status(daemon, n, "healthy")
    out = daemon.cli("ps", "--filter", "health=healthy", "--format",
                     "{{.Names}} {{.Status}}").stdout.decode()
    assert re.search(rf"^{n} Up .* \(healthy\)$", out, re.M)
    # zero values are as good as absent; --no-healthcheck is Test NONE
    daemon.cli("create", "--name", m, "--health-interval", "0s", "busybox", "true")
    assert "Healthcheck" not in inspect(daemon, m)["Config"]
    daemon.cli("create", "--name", k, "--no-healthcheck", "busybox", "true")
    assert inspect(daemon, k)["Config"]["Healthcheck"] == {"Test": ["NONE"]}
    for args, msg in ((["--no-healthcheck", "--health-retries", "1"],
                       "--no-healthcheck conflicts with --health-* options"),
                      (["--health-start-period", "-2s"],
                       "--health-start-period cannot be negative"),
                      (["--health-interval", "5"], 'invalid argument "5" for '
                       '"--health-interval" flag: time: missing unit in duration "5"')):
        r = daemon.cli("create", *args, "busybox", "true", check=False)
        assert r.returncode == 125 and msg in r.stderr.decode(), (args, r.stderr)


@pytest.fixture
def names_dy(daemon):
    made: list[str] = []

    def new() -> str:
        made.append(f"hc-{uuid.uuid4().hex[:10]}")
        return made[-1]

    yield new
    if made:
        daemon.docker("rm", "-f", *made, check=False)


def test_daemon_restart_resumes_monitoring(tmp_path, busybox_tar):
    """Probes go on for a container still running when the daemon comes back
    (moby restores them from "starting"; 20.10 did not restore them at all)."""
    if DOCKER_CLI is None:
        pytest.skip("the docker CLI is not installed")
    d = Daemon(tmp_path, "overlay")
    d.start()
    try:
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        d.docker("run", "-d", "--name", "rr", "--health-cmd",
                 "echo x >> /c; test $(wc -l < /c) -le 3", "--health-interval", "300ms",
                 "--health-retries", "1", "busybox", "sleep", "600")
        wait_status(d, "rr", "healthy")
        os.killpg(d.proc.pid, signal.SIGKILL)  # not even a clean shutdown
        d.proc.wait()
        d.start()
        back = time.time()
        # probes go on: results newer than the restart, and the fourth one fails
        wait_for(lambda: any(parse_time(e["Start"]) > back
                             for e in health(d, "rr")["Log"]), what="a probe after restart")
        h = wait_status(d, "rr", "unhealthy")
        assert h["Log"][-1]["ExitCode"] == 1
        assert re.fullmatch(r"Up .* \(unhealthy\)", ps_status(d, "rr"))
        d.docker("rm", "-f", "rr")
    finally:
        d.stop()
        kill_containers_left(tmp_path)
        assert_no_mounts_left(tmp_path)


# --- pure parts ----------------------------------------------------------------------

@pytest.mark.parametrize("text,ns", [
    ("500ms", 500_000_000), ("1.5s", 1_500_000_000), (".5s", 500_000_000),
    ("1h2m3s", 3_723_000_000_000), ("-1s", -1_000_000_000), ("0", 0), ("+2us", 2000),
    ("3µs", 3000), ("100ns", 100)])
def test_go_durations(text: str, ns: int) -> None:
    from dockyard.units import parse_go_duration

    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text,msg", [
    ("1", 'time: missing unit in duration "1"'), ("x", 'time: invalid duration "x"'),
    ("1x", 'time: unknown unit "x" in duration "1x"'), ("", 'time: invalid duration ""'),
    (".s", 'time: invalid duration ".s"')])
def test_go_duration_errors(text: str, msg: str) -> None:
    from dockyard.units import parse_go_duration

    with pytest.raises(ValueError, match=re.escape(msg)):
        parse_go_duration(text)


@pytest.mark.parametrize("ns,text", [
    (300_000_000, "300ms"), (30 * 10**9, "30s"), (1_500_000_000, "1.5s"),
    (90 * 10**9, "1m30s"), (3600 * 10**9, "1h0m0s"), (1500, "1.5µs"), (7, "7ns"),
    (0, "0s")])
def test_go_duration_strings(ns: int, text: str) -> None:
    from dockyard.units import format_go_duration

    assert format_go_duration(ns) == text


def test_probe_results_rule() -> None:
    """handleProbeResult: failures in the start period don't count while starting;
    a success makes it healthy at once; Retries failures in a row, unhealthy."""
    from dockyard.containers.health import record

    started = "2026-01-01T00:00:00Z"
    t0 = int(parse_time(started) * 1e9)
    hc = {"Retries": 2, "StartPeriod": 10 * 10**9}
    h = {"Status": "starting", "FailingStreak": 0, "Log": []}

    def result(code: int) -> dict[str, Any]:
        return {"Start": "", "End": "", "ExitCode": code, "Output": ""}

    for i in range(3):
        record(h, result(1), t0 + i * 10**9, hc, started)
    assert (h["Status"], h["FailingStreak"], len(h["Log"])) == ("starting", 0, 3)
    record(h, result(1), t0 + 11 * 10**9, hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("starting", 1)
    record(h, result(0), t0 + 12 * 10**9, hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 0)
    record(h, result(2), t0 + 13 * 10**9, hc, started)
    assert (h["Status"], h["FailingStreak"]) == ("healthy", 1)
    record(h, result(-1), t0 + 14 * 10**9, hc, started)
    assert (h["Status"], h["FailingStreak"], len(h["Log"])) == ("unhealthy", 2, 5)
    # a failure in the start period counts once it is no longer starting
    h = {"Status": "healthy", "FailingStreak": 0, "Log": []}
    record(h, result(1), t0, {"StartPeriod": 10 * 10**9}, started)
    assert h["FailingStreak"] == 1
