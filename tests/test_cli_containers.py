"""Our container commands side by side with the docker CLI, against the same
engine: output, error messages and exit codes must match.

The engine is the `engine_under_test` fixture: a reference dockerd for now;
Dockyard's own daemon joins its params once it runs containers.
"""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
import tarfile
import time
import uuid

import pytest

from conftest import DOCKER_CLI

ENGINES = ["ref-dockerd", "dockyard"]


@pytest.fixture(scope="module", params=ENGINES)
def engine_under_test(request, busybox_tar):
    """An engine with busybox:latest, answering `.host` and `.docker(...)`."""
    if request.param == "ref-dockerd":
        eng = request.getfixturevalue("ref_dockerd")
    else:  # "dockyard": Dockyard's daemon (tests/conftest.py `daemon`)
        eng = request.getfixturevalue("daemon")
    if eng.docker("image", "inspect", "busybox:latest", check=False).returncode != 0:
        eng.docker("import", str(busybox_tar), "busybox:latest")
    yield eng


def _env(eng) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    env["DOCKYARD_HOST"] = eng.host
    env["DOCKER_HOST"] = eng.host
    env["DOCKYARD_NO_AUTOSTART"] = "1"
    env["DOCKER_CONFIG"] = str(getattr(eng, "base", "/tmp")) + "/docker-config"
    return env


def ours(eng, *args: str, input: bytes | None = None, timeout: float = 60
         ) -> subprocess.CompletedProcess:
    """Our CLI; where it names itself ("dockyard: ...", "See 'dockyard run
    --help'") docker's names itself, so that name is swapped for comparing."""
    r = subprocess.run([sys.executable, "-m", "dockyard", *args], env=_env(eng),
                       input=input, capture_output=True, timeout=timeout)
    assert not re.search(rb"(^|\n)docker: |See 'docker |\"docker ", r.stderr), r.stderr
    r.stderr = re.sub(rb"(^|\n)dockyard: ", rb"\1docker: ", r.stderr)
    r.stderr = r.stderr.replace(b"See 'dockyard ", b"See 'docker ").replace(b'"dockyard ', b'"docker ')
    return r


def theirs(eng, *args: str, input: bytes | None = None, timeout: float = 60
           ) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER_CLI, *args], env=_env(eng), input=input,
                          capture_output=True, timeout=timeout)


def both(eng, *args: str, input: bytes | None = None):
    return ours(eng, *args, input=input), theirs(eng, *args, input=input)


def in_pty(eng, argv: list[str], send: bytes | None = None, timeout: float = 20,
           env: dict[str, str] | None = None, ready: bytes = b"# ",
           poke: bool = False) -> tuple[bytes, int]:
    """Run `argv` on a terminal; `send` is typed once the output shows `ready`
    (a shell's prompt by default: the client is attached then), after
    `poke`s of Enter (for a shell that printed its prompt before we came)."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        try:
            os.execve(argv[0], argv, env or _env(eng))
        finally:
            os._exit(127)
    out = b""
    deadline = time.monotonic() + timeout
    if send:
        next_poke = 0.0
        while ready not in out and time.monotonic() < deadline:
            if poke and time.monotonic() >= next_poke:
                os.write(fd, b"\r")
                next_poke = time.monotonic() + 0.5
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    out += os.read(fd, 4096)
                except OSError:
                    break
        os.write(fd, send)
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 1)
        if not r:
            if os.waitpid(pid, os.WNOHANG)[0]:
                pid = 0
                break
            continue
        try:
            d = os.read(fd, 4096)
        except OSError:
            break
        if not d:
            break
        out += d
    if pid:
        _, st = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(st)
    else:
        code = -1
    os.close(fd)
    return out, code


@pytest.fixture
def names(engine_under_test):
    """Fresh container names; every container made under them is removed."""
    made: list[str] = []

    def new() -> str:
        n = "t" + uuid.uuid4().hex[:10]
        made.append(n)
        return n
    yield new
    if made:
        engine_under_test.docker("rm", "-f", *made, check=False)


@pytest.fixture
def sleeper(engine_under_test, names):
    n = names()
    engine_under_test.docker("run", "-d", "--name", n, "-e", "FOO=bar", "busybox",
                             "sleep", "300")
    return n


# --- run ------------------------------------------------------------------------

def test_run_echo(engine_under_test):
    o, t = both(engine_under_test, "run", "--rm", "busybox", "echo", "hi")
    assert (o.returncode, o.stdout, o.stderr) == (t.returncode, t.stdout, t.stderr) == \
        (0, b"hi\n", b"")


def test_run_exit_code_and_stderr(engine_under_test):
    o, t = both(engine_under_test, "run", "--rm", "busybox", "sh", "-c",
                "echo out; echo err >&2; exit 3")
    assert (o.returncode, o.stdout, o.stderr) == (t.returncode, t.stdout, t.stderr) == \
        (3, b"out\n", b"err\n")


def test_run_missing_command(engine_under_test):
    o, t = both(engine_under_test, "run", "--rm", "busybox", "nosuchcommand")
    assert o.returncode == t.returncode == 127
    assert _start_error(o.stderr) == _start_error(t.stderr)
    assert o.stderr.startswith(b"docker: Error response from daemon:")
    assert b"executable file not found" in o.stderr


def test_run_not_executable(engine_under_test):
    o, t = both(engine_under_test, "run", "--rm", "busybox", "/etc")
    assert o.returncode == t.returncode == 126
    assert _start_error(o.stderr) == _start_error(t.stderr)


def _start_error(stderr: bytes) -> bytes:
    """The error line: docker's CLI may add `error waiting for container: context
    canceled` when its wait request loses the race with the failed start."""
    return b"\n".join(line for line in stderr.splitlines() if b"context canceled" not in line)


def test_run_missing_image(engine_under_test):
    o, t = both(engine_under_test, "run", "--rm", "nosuchimage-dockyard", "true")
    assert o.returncode == t.returncode == 125
    assert o.stderr.splitlines()[0] == b"Unable to find image 'nosuchimage-dockyard:latest' locally"
    assert o.stderr == t.stderr


def test_run_unknown_flag(engine_under_test):
    o, t = both(engine_under_test, "run", "--bogus", "busybox")
    assert o.returncode == t.returncode == 125
    assert o.stderr == t.stderr


def test_run_stdin(engine_under_test):
    o, t = both(engine_under_test, "run", "--rm", "-i", "busybox", "cat", input=b"hi\nthere\n")
    assert (o.returncode, o.stdout) == (t.returncode, t.stdout) == (0, b"hi\nthere\n")


def test_run_options(engine_under_test, names):
    n = names()
    script = "echo $FOO $BAR; pwd; id -u; hostname"
    o = ours(engine_under_test, "run", "--name", n, "-e", "FOO=1", "--env=BAR=2", "-w", "/tmp",
             "-u", "65534", "-h", "box", "-l", "a=b", "--stop-timeout", "3", "-m", "64m",
             "--pids-limit", "50", "busybox", "sh", "-c", script)
    assert o.returncode == 0, o.stderr
    assert o.stdout == b"1 2\n/tmp\n65534\nbox\n"
    fmt = ("{{.Config.Labels}} {{.Config.StopTimeout}} {{.HostConfig.Memory}} "
           "{{.HostConfig.PidsLimit}} {{.Config.User}}")
    r = theirs(engine_under_test, "inspect", "-f", fmt, n)
    assert r.stdout == b"map[a:b] 3 67108864 50 65534\n"


def test_create_start_attach(engine_under_test, names):
    n = names()
    o = ours(engine_under_test, "create", "--name", n, "busybox", "sh", "-c", "echo made; exit 4")
    assert o.returncode == 0 and re.fullmatch(rb"[0-9a-f]{64}\n", o.stdout), o.stderr
    assert theirs(engine_under_test, "ps", "-a", "--filter", f"name={n}",
                  "--format", "{{.Status}}").stdout == b"Created\n"
    r = ours(engine_under_test, "start", "-a", n)
    assert (r.returncode, r.stdout) == (4, b"made\n")
    o, t = both(engine_under_test, "start", "nosuch-" + n)
    assert (o.returncode, o.stderr) == (t.returncode, t.stderr)




def test_start_attach_after_a_failed_start(engine_under_test, names, tmp_path):
    """An attach whose container can't be started yet (its bind source is
    gone) waits for the start: a start that fails says why (and the attach
    ends), a later one that succeeds streams the output. Dockyard makes the
    process at the attach; a start after that failed must not run it unseen."""
    src = tmp_path / "src"
    for cli in (ours, theirs):
        n = names()
        src.mkdir()
        engine_under_test.docker("create", "--name", n, "--mount",
                                 f"type=bind,source={src},target=/x", "busybox", "sh", "-c",
                                 "echo fine; exit 3")
        src.rmdir()
        r = cli(engine_under_test, "start", "-a", n, timeout=30)
        assert (r.returncode, r.stdout) == (1, b""), r.stderr
        # docker 20.10's CLI may log its wait's cancel first
        err = re.sub(rb'^time="[^"]*" level=error msg="error waiting for container: context '
                     rb'canceled"\n', b"", r.stderr)
        assert err == b"Error response from daemon: invalid mount config for type " \
            b"\"bind\": bind source path does not exist: " + str(src).encode() + b"\n"
        src.mkdir()
        r = cli(engine_under_test, "start", "-a", n, timeout=30)
        assert (r.returncode, r.stdout) == (3, b"fine\n"), r.stderr
        src.rmdir()
    # the source back between the attach and the start: the output is streamed
    n = names()
    src.mkdir()
    engine_under_test.docker("create", "--name", n, "--mount",
                             f"type=bind,source={src},target=/x", "busybox", "echo", "fine")
    src.rmdir()
    with _api(engine_under_test) as a:
        a.sendall(f"POST /v1.41/containers/{n}/attach?stream=1&stdout=1&stderr=1 HTTP/1.1\r\n"
                  "Host: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n"
                  "Content-Length: 0\r\n\r\n".encode())
        assert _head(a).startswith(b"HTTP/1.1 101")
        src.mkdir()
        with _api(engine_under_test) as s:
            s.sendall(f"POST /v1.41/containers/{n}/start HTTP/1.1\r\nHost: docker\r\n"
                      "Content-Length: 0\r\n\r\n".encode())
            assert _head(s).startswith(b"HTTP/1.1 204")
        out = b""
        while b"fine" not in out and (chunk := a.recv(4096)):
            out += chunk
        assert out == b"\x01\x00\x00\x00\x00\x00\x00\x05fine\n"
    engine_under_test.docker("wait", n)
    src.rmdir()


def _api(eng):
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(eng.host.removeprefix("unix://"))
    return s


def _head(s) -> bytes:
    """An HTTP answer's head, read byte by byte (a hijacked stream follows it)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        b = s.recv(1)
        assert b, head
        head += b
    return head
# --- detached: logs, ps, stop, kill, rm, wait ------------------------------------

def test_detached_logs_ps(engine_under_test, names):
    n = names()
    o = ours(engine_under_test, "run", "-d", "--name", n, "busybox", "sh", "-c",
             "echo out; echo err >&2; sleep 300")
    assert re.fullmatch(rb"[0-9a-f]{64}\n", o.stdout), o.stderr
    cid = o.stdout.decode().strip()
    time.sleep(0.5)
    for args in (["logs", n], ["logs", "--tail", "1", n], ["logs", "-t", n]):
        lo, lt = both(engine_under_test, *args)
        assert (lo.returncode, lo.stdout, lo.stderr) == (lt.returncode, lt.stdout, lt.stderr)
    lo = ours(engine_under_test, "logs", n)
    assert (lo.stdout, lo.stderr) == (b"out\n", b"err\n")
    po, pt = both(engine_under_test, "ps")
    # column widths follow the STATUS text ("Up 1 second"), which may tick between runs
    assert po.stdout.splitlines()[0].split() == pt.stdout.splitlines()[0].split()
    assert po.stdout.splitlines()[0].split() == [b"CONTAINER", b"ID", b"IMAGE", b"COMMAND",
                                                 b"CREATED", b"STATUS", b"PORTS", b"NAMES"]
    row = [line for line in po.stdout.splitlines() if line.endswith(n.encode())]
    assert row and row[0].startswith(cid[:12].encode())
    assert b'"sh -c \'echo out; ec\xe2\x80\xa6"' in row[0]
    for args in (["ps", "-q"], ["ps", "-a", "-q"], ["ps", "--no-trunc", "--format",
                                                    "{{.ID}} {{.Command}} {{.Names}}"],
                 ["ps", "-a", "--filter", f"name={n}", "--format", "{{json .Names}}"],
                 ["ps", "-l", "-q"], ["ps", "-n", "1", "--format", "{{.Names}}"],
                 ["ps", "--format", "table {{.Names}}\t{{.Image}}"]):
        po, pt = both(engine_under_test, *args)
        assert (po.returncode, po.stdout) == (pt.returncode, pt.stdout), args
    so = ours(engine_under_test, "stop", "-t", "1", n)
    assert (so.returncode, so.stdout) == (0, n.encode() + b"\n")
    wo, wt = both(engine_under_test, "wait", n)
    assert wo.stdout == wt.stdout == b"137\n"
    po, pt = both(engine_under_test, "ps", "-a", "--filter", f"name={n}", "--format",
                  "{{.Status}}")
    assert po.stdout[:12] == pt.stdout[:12] == b"Exited (137)"
    ro = ours(engine_under_test, "rm", n)
    assert (ro.returncode, ro.stdout) == (0, n.encode() + b"\n")
    o, t = both(engine_under_test, "rm", n)
    assert (o.returncode, o.stderr) == (t.returncode, t.stderr) == \
        (1, f"Error: No such container: {n}\n".encode())


def test_logs_follow(engine_under_test, names):
    n = names()
    engine_under_test.docker("run", "-d", "--name", n, "busybox", "sh", "-c",
                             "for i in 1 2 3; do echo $i; sleep 0.3; done")
    o = ours(engine_under_test, "logs", "-f", n, timeout=20)
    assert (o.returncode, o.stdout) == (0, b"1\n2\n3\n")


def test_kill_and_rm_force(engine_under_test, names, sleeper):
    o = ours(engine_under_test, "kill", "-s", "TERM", sleeper)
    assert (o.returncode, o.stdout) == (0, sleeper.encode() + b"\n")
    n = names()
    engine_under_test.docker("run", "-d", "--name", n, "busybox", "sleep", "300")
    o = ours(engine_under_test, "rm", "-f", n)
    assert (o.returncode, o.stdout) == (0, n.encode() + b"\n")
    assert theirs(engine_under_test, "ps", "-aq", "--filter", f"name={n}").stdout == b""
    o, t = both(engine_under_test, "exec", "-i", "nosuch-" + n, "true")
    assert (o.returncode, o.stderr) == (t.returncode, t.stderr)
    for cmd in (["kill"], ["stop"], ["pause"], ["wait"], ["logs"], ["top"],
                ["diff"], ["export"], ["inspect"], ["restart"], ["port"], ["attach"]):
        o, t = both(engine_under_test, *cmd, "nosuch-" + n)
        assert (o.returncode, o.stderr) == (t.returncode, t.stderr), cmd


def test_rm_running_refused(engine_under_test, sleeper):
    o, t = both(engine_under_test, "rm", sleeper)
    assert (o.returncode, o.stderr) == (t.returncode, t.stderr)
    assert o.returncode == 1


# --- exec, inspect, top, rename, diff, pause ---------------------------------------

def test_exec(engine_under_test, sleeper):
    args = ["exec", "-e", "X=1", "-w", "/tmp", "-u", "nobody", sleeper, "sh", "-c",
            "echo $X $FOO; pwd; id -u"]
    o, t = both(engine_under_test, *args)
    assert (o.returncode, o.stdout, o.stderr) == (t.returncode, t.stdout, t.stderr)
    assert o.stdout == b"1 bar\n/tmp\n65534\n"
    o, t = both(engine_under_test, "exec", sleeper, "sh", "-c", "echo e >&2; exit 5")
    assert (o.returncode, o.stdout, o.stderr) == (t.returncode, t.stdout, t.stderr) == \
        (5, b"", b"e\n")
    o, t = both(engine_under_test, "exec", "-i", sleeper, "cat", input=b"piped\n")
    assert (o.returncode, o.stdout) == (t.returncode, t.stdout) == (0, b"piped\n")
    o = ours(engine_under_test, "exec", "-d", sleeper, "touch", "/tmp/detached")
    assert o.returncode == 0 and o.stdout == b""
    time.sleep(0.3)
    assert theirs(engine_under_test, "exec", sleeper, "ls", "/tmp/detached").returncode == 0


def test_inspect(engine_under_test, sleeper):
    for args in (["inspect", "-f", "{{.Name}} {{.Config.Image}} {{.State.Running}}", sleeper],
                 ["container", "inspect", "--format", "{{json .Config.Env}}", sleeper],
                 ["inspect", "nosuch-object-x"], ["container", "inspect", "nosuch-x"]):
        o, t = both(engine_under_test, *args)
        assert (o.returncode, o.stdout, o.stderr) == (t.returncode, t.stdout, t.stderr), args
    import json

    o, t = both(engine_under_test, "container", "inspect", sleeper)
    assert json.loads(o.stdout) == json.loads(t.stdout)


def test_top(engine_under_test, sleeper):
    o, t = both(engine_under_test, "top", sleeper)
    assert o.returncode == t.returncode == 0
    # the C (CPU %) column moves; the layout and the rest don't
    assert [line[:60] for line in o.stdout.splitlines()] == \
        [line[:60] for line in t.stdout.splitlines()]
    assert [line[80:] for line in o.stdout.splitlines()] == \
        [line[80:] for line in t.stdout.splitlines()]
    assert o.stdout.split()[:8] == [b"UID", b"PID", b"PPID", b"C", b"STIME", b"TTY", b"TIME",
                                    b"CMD"]
    o, t = both(engine_under_test, "top", sleeper, "-o", "pid,comm")
    assert (o.returncode, o.stdout) == (t.returncode, t.stdout)


def test_rename_diff(engine_under_test, names, sleeper):
    new = names()
    o = ours(engine_under_test, "rename", sleeper, new)
    assert (o.returncode, o.stdout) == (0, b"")
    engine_under_test.docker("exec", new, "sh", "-c", "touch /tmp/new; rm /etc/group")
    o, t = both(engine_under_test, "diff", new)
    # dockerd lists changes in Go map order; the CLI prints them as they come
    assert (o.returncode, sorted(o.stdout.splitlines())) == \
        (t.returncode, sorted(t.stdout.splitlines()))
    assert b"A /tmp/new\n" in o.stdout and b"D /etc/group\n" in o.stdout
    o, t = both(engine_under_test, "rename", "nosuch-" + new, "other-" + new)
    assert (o.returncode, o.stderr) == (t.returncode, t.stderr)


def test_pause_unpause(engine_under_test, sleeper):
    o = ours(engine_under_test, "pause", sleeper)
    assert (o.returncode, o.stdout) == (0, sleeper.encode() + b"\n")
    ps = ours(engine_under_test, "ps", "--filter", f"name={sleeper}", "--format", "{{.Status}}")
    assert ps.stdout.endswith(b"(Paused)\n")
    o, t = both(engine_under_test, "pause", sleeper)
    assert (o.returncode, o.stderr) == (t.returncode, t.stderr)
    o = ours(engine_under_test, "unpause", sleeper)
    assert (o.returncode, o.stdout) == (0, sleeper.encode() + b"\n")


# --- files: cp, export, commit ----------------------------------------------------

def test_cp_both_ways(engine_under_test, sleeper, tmp_path):
    src = tmp_path / "f.txt"
    src.write_bytes(b"data\n")
    assert ours(engine_under_test, "cp", str(src), f"{sleeper}:/tmp/").returncode == 0
    assert ours(engine_under_test, "cp", str(src), f"{sleeper}:/tmp/g.txt").returncode == 0
    r = theirs(engine_under_test, "exec", sleeper, "cat", "/tmp/f.txt", "/tmp/g.txt")
    assert r.stdout == b"data\ndata\n"
    out = tmp_path / "back.txt"
    assert ours(engine_under_test, "cp", f"{sleeper}:/tmp/g.txt", str(out)).returncode == 0
    assert out.read_bytes() == b"data\n"
    d = tmp_path / "dir"
    d.mkdir()
    assert ours(engine_under_test, "cp", f"{sleeper}:/etc", str(d)).returncode == 0
    assert (d / "etc" / "passwd").exists()
    o, t = both(engine_under_test, "cp", f"{sleeper}:/tmp/f.txt", "-")
    assert o.returncode == t.returncode == 0
    names_o = tarfile.open(fileobj=io.BytesIO(o.stdout)).getnames()
    names_t = tarfile.open(fileobj=io.BytesIO(t.stdout)).getnames()
    assert names_o == names_t == ["f.txt"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("fromstdin")
        ti.size = 3
        tf.addfile(ti, io.BytesIO(b"abc"))
    assert ours(engine_under_test, "cp", "-", f"{sleeper}:/tmp",
                input=buf.getvalue()).returncode == 0
    assert theirs(engine_under_test, "exec", sleeper, "cat", "/tmp/fromstdin").stdout == b"abc"
    o, t = both(engine_under_test, "cp", f"{sleeper}:/nosuch", str(tmp_path))
    assert (o.returncode, o.stderr) == (t.returncode, t.stderr)


def test_export(engine_under_test, sleeper, tmp_path):
    o, t = both(engine_under_test, "export", sleeper)
    assert o.returncode == t.returncode == 0
    assert tarfile.open(fileobj=io.BytesIO(o.stdout)).getnames() == \
        tarfile.open(fileobj=io.BytesIO(t.stdout)).getnames()
    out = tmp_path / "c.tar"
    assert ours(engine_under_test, "export", "-o", str(out), sleeper).returncode == 0
    assert "bin/busybox" in tarfile.open(out).getnames()


def test_commit(engine_under_test, sleeper):
    tag = f"committed-{sleeper}:v1"
    engine_under_test.docker("exec", sleeper, "sh", "-c", "echo inside > /marker")
    try:
        o = ours(engine_under_test, "commit", "-m", "msg", "-a", "me", "-c",
                 'CMD ["cat", "/marker"]', sleeper, tag)
        assert o.returncode == 0 and re.fullmatch(rb"sha256:[0-9a-f]{64}\n", o.stdout), o.stderr
        r = ours(engine_under_test, "run", "--rm", tag)
        assert (r.returncode, r.stdout) == (0, b"inside\n")
        i = theirs(engine_under_test, "image", "inspect", "-f", "{{.Comment}} {{.Author}}", tag)
        assert i.stdout == b"msg me\n"
    finally:
        engine_under_test.docker("rmi", "-f", tag, check=False)


def test_stats_no_stream(engine_under_test, sleeper):
    o, t = both(engine_under_test, "stats", "--no-stream", sleeper)
    assert o.returncode == t.returncode == 0
    assert o.stdout.splitlines()[0] == t.stdout.splitlines()[0]
    assert o.stdout.splitlines()[1].split()[:2] == t.stdout.splitlines()[1].split()[:2]
    o, t = both(engine_under_test, "stats", "--no-stream", "--format", "{{.Name}}", sleeper)
    assert o.stdout == t.stdout == sleeper.encode() + b"\n"


def test_container_prune(engine_under_test, names):
    n = names()
    cid = engine_under_test.docker("create", "--name", n, "busybox", "true").stdout.strip()
    o = ours(engine_under_test, "container", "prune", "-f")
    assert o.returncode == 0
    assert o.stdout.startswith(b"Deleted Containers:\n") and cid in o.stdout
    assert o.stdout.splitlines()[-1].startswith(b"Total reclaimed space: ")


# --- terminals ----------------------------------------------------------------------

def test_run_tty(engine_under_test):
    cmd = ["run", "--rm", "-t", "busybox", "sh", "-c", "tty; exit 2"]
    out_o, code_o = in_pty(engine_under_test, [sys.executable, "-m", "dockyard", *cmd])
    out_t, code_t = in_pty(engine_under_test, [DOCKER_CLI, *cmd])
    assert code_o == code_t == 2
    assert out_o == out_t
    assert b"/dev/pts/0" in out_o


def test_run_interactive_tty(engine_under_test):
    cmd = ["run", "--rm", "-it", "busybox", "sh"]
    out, code = in_pty(engine_under_test, [sys.executable, "-m", "dockyard", *cmd],
                       send=b"echo hel''lo\rexit 7\r")
    assert code == 7, out
    assert b"hello" in out


CLIS = {"ours": [sys.executable, "-m", "dockyard"], "theirs": [DOCKER_CLI or "docker"]}


@pytest.fixture
def config_keys(engine_under_test, tmp_path):
    """An environment whose client config file sets `detachKeys` to ctrl-a,x."""
    (tmp_path / "config.json").write_text('{"detachKeys": "ctrl-a,x"}')
    env = _env(engine_under_test)
    env["DOCKER_CONFIG"] = str(tmp_path)
    env["DOCKYARD_CONFIG"] = str(tmp_path / "none")
    return env


def _running(eng, name: str) -> bool:
    return theirs(eng, "inspect", "-f", "{{.State.Running}}", name).stdout == b"true\n"


@pytest.mark.parametrize("cli", ["ours", "theirs"])
def test_detach_keys_from_config_file(engine_under_test, names, config_keys, cli):
    """`detachKeys` of config.json detaches run -it, attach, start -ai and exec -it
    (the client's escape and the daemon's); --detach-keys overrides it."""
    eng, argv = engine_under_test, CLIS[cli]
    n = names()
    out, code = in_pty(eng, argv + ["run", "-it", "--name", n, "busybox", "sh"],
                       send=b"\x01x", env=config_keys)
    assert code == 0 and _running(eng, n), out
    # attach and exec -it report the escape as docker's CLI does: message, status 1
    out, code = in_pty(eng, argv + ["attach", n], send=b"\x01x", env=config_keys, poke=True)
    assert code == 1 and _running(eng, n), out
    assert b"read escape sequence" in out
    # the flag wins over the file
    out, code = in_pty(eng, argv + ["attach", "--detach-keys", "ctrl-e,y", n],
                       send=b"\x05y", env=config_keys, poke=True)
    assert code == 1 and _running(eng, n), out
    # exec -it: the exec'd shell goes on; nothing in it saw the keys
    out, code = in_pty(eng, argv + ["exec", "-it", n, "sh", "-c",
                                    "echo ready; sleep 30; echo done"],
                       send=b"\x01x", env=config_keys, ready=b"ready")
    assert code == 1 and b"done" not in out, out
    assert b"read escape sequence" in out
    theirs(eng, "kill", n)
    theirs(eng, "wait", n)
    out, code = in_pty(eng, argv + ["start", "-ai", n], send=b"\x01x", env=config_keys)
    assert code == 0 and _running(eng, n), out


@pytest.mark.parametrize("cli", ["ours", "theirs"])
def test_default_detach_keys_attach(engine_under_test, names, cli):
    eng, argv = engine_under_test, CLIS[cli]
    n = names()
    theirs(eng, "run", "-dit", "--name", n, "busybox", "sh")
    out, code = in_pty(eng, argv + ["attach", n], send=b"\x10\x11", poke=True)
    assert code == 1 and _running(eng, n), out
    assert b"read escape sequence" in out


def test_run_detach_keys(engine_under_test, names):
    n = names()
    cmd = ["run", "-it", "--name", n, "busybox", "sh"]
    out, code = in_pty(engine_under_test, [sys.executable, "-m", "dockyard", *cmd],
                       send=b"\x10\x11")
    assert code == 0, out
    assert theirs(engine_under_test, "inspect", "-f", "{{.State.Running}}", n).stdout == b"true\n"


def test_events(engine_under_test, names):
    """`events` with --since/--until, filters and --format prints what the
    docker CLI prints, for dockerd's events and ours."""
    eng = engine_under_test
    since = f"{time.time() - 1:.9f}"
    name = names()
    assert theirs(eng, "run", "--name", name, "-l", "k=v", "busybox", "true").returncode == 0
    theirs(eng, "rm", name)
    until = f"{time.time() + 1:.9f}"
    for extra in ([], ["--filter", f"container={name}"], ["-f", "event=start", "-f", "type=container"],
                  ["--filter", "label=k=v", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}"],
                  ["--format", "{{json .}}", "-f", "type=image"],
                  ["--filter", "image=busybox:latest", "--format", "{{.Status}} {{.ID}} {{.From}}"]):
        o, t = both(eng, "events", "--since", since, "--until", until, *extra)
        assert (o.returncode, o.stdout, o.stderr) == (t.returncode, t.stdout, t.stderr), extra
    lines = ours(eng, "events", "--since", since, "--until", until, "-f",
                 f"container={name}").stdout.decode().splitlines()
    assert [ln.split()[2] for ln in lines][:3] == ["create", "attach", "start"] or \
        [ln.split()[2] for ln in lines][:2] == ["create", "start"], lines
    assert all(ln.split()[1] == "container" for ln in lines), lines
    o, t = both(eng, "events", "--filter", "nonsense=1", "--until", until)
    assert (o.returncode, o.stderr) == (t.returncode, t.stderr)


def _prunables(eng, names, tag: str) -> tuple[str, str]:
    """A stopped container, an unused network, an unused volume and a
    dangling image (a tag moved to another image)."""
    c, net, vol = names(), "n" + uuid.uuid4().hex[:8], "v" + uuid.uuid4().hex[:8]
    eng.docker("create", "--name", c, "busybox", "true")
    eng.docker("network", "create", net)
    eng.docker("volume", "create", vol)
    for content in (b"a", b"b"):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            info = tarfile.TarInfo("f")
            info.size = 1
            t.addfile(info, io.BytesIO(content))
        eng.docker("import", "-", tag, input=buf.getvalue())
    return net, vol


def test_system_prune(engine_under_test, names):
    """`system prune` asks as docker does, then prints each kind's report and
    the total, as the docker CLI does against the same engine."""
    eng = engine_under_test
    o, t = both(eng, "system", "prune", "--volumes", input=b"n\n")
    assert (o.returncode, o.stdout, o.stderr) == (t.returncode, t.stdout, t.stderr)
    assert o.stdout.startswith(b"WARNING! This will remove:\n  - all stopped containers\n")
    o, t = both(eng, "system", "prune", "--volumes", "--filter", "until=1h")
    assert (o.returncode, o.stdout, o.stderr) == (t.returncode, t.stdout, t.stderr)
    outs = []
    for run in (ours, theirs):
        # from a clean slate: other tests' leftovers (a build's untagged
        # chains) would make one run's report longer than the other's
        assert theirs(eng, "system", "prune", "-f", "--volumes").returncode == 0
        net, vol = _prunables(eng, names, "prunable:" + run.__name__)
        r = run(eng, "system", "prune", "-f", "--volumes")
        assert r.returncode == 0, r.stderr
        text = r.stdout.decode()
        assert net in text and vol in text and "Deleted Images:\nuntagged: " not in text
        # IDs and sizes differ between the two runs: compare the layout
        outs.append(re.sub(r"[0-9a-f]{64}|v[0-9a-f]{8}|n[0-9a-f]{8}|[\d.]+[kMG]?B", "X", text))
        eng.docker("rmi", "prunable:" + run.__name__)
    assert outs[0] == outs[1]
    assert outs[0].startswith("Deleted Containers:\nX\n\nDeleted Networks:\nX\n\n"
                              "Deleted Volumes:\nX\n\nDeleted Images:\ndeleted: sha256:X\n")
    assert outs[0].endswith("\nTotal reclaimed space: X\n")


def test_stats_on_a_terminal_looks_like_docker(engine_under_test, sleeper):
    """`stats` in a terminal: the same live table as the docker CLI's (the
    numbers move; the layout, names and columns don't)."""
    from conftest import tmux_screen

    eng = engine_under_test
    screens = []
    for cmd in ([DOCKER_CLI, "stats", sleeper], [sys.executable, "-m", "dockyard", "stats", sleeper]):
        lines = tmux_screen(cmd, _env(eng), lambda ls: any(
            sleeper in ln and "%" in ln for ls_ in [ls] for ln in ls_), finished=False)
        screens.append([re.sub(r"[\d.]+\s?[kKMGT]?i?B|[\d.]+%|\b\d+\b", "N", ln)
                        for ln in lines if ln.strip()])
    ours_screen, docker_screen = screens[1], screens[0]
    assert ours_screen == docker_screen
    assert docker_screen[0].split()[:2] == ["CONTAINER", "ID"]


def test_plugin_commands(engine_under_test):
    """`plugin` commands print what the docker CLI prints (no managed plugins
    on either engine here: Dockyard's drivers are built in)."""
    eng = engine_under_test
    for args in (["plugin", "ls"], ["plugin", "ls", "-q"], ["plugin", "ls", "--no-trunc"],
                 ["plugin", "ls", "--format", "{{.Name}}"], ["plugin", "inspect", "nosuch"],
                 ["plugin", "rm", "nosuch"], ["plugin", "disable", "nosuch"],
                 ["plugin", "ls", "--filter", "enable=x"]):
        o, t = both(eng, *args)
        assert (o.returncode, o.stdout, o.stderr) == (t.returncode, t.stdout, t.stderr), args
