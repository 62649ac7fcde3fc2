"""The `cri` log driver (a Dockyard extension, for the CRI endpoint): kubelet's
CRI log format at the file named by `--log-opt path=`, lines cut as
containerd's CRI logger cuts them (16 KiB pieces as P records, `\\r\\n` and
`\\n` dropped, a last line without newline written as P), read back by
`docker logs` with the pieces joined, reopened on request after a rename
(kubelet's rotation), and its option errors at create."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (DOCKER_CLI, NO_NETWORK, Daemon, assert_no_mounts_left,
                      kill_containers_left, unmount_all)
from dockyard.containers import logs as logfiles
from dockyard.imageconfig import parse_time

RECORD = re.compile(rb"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z) (stdout|stderr) ([PF]) (.*)")


@pytest.fixture
def clean(d):
    yield
    for c in d.client().get_json("/containers/json", {"all": 1}):
        d.client().request("DELETE", f"/containers/{c['Id']}", {"force": 1}, check=False).close()


@pytest.fixture(scope="module")
def d(tmp_path_factory, busybox_tar):
    base = tmp_path_factory.mktemp("logcri")
    dm = Daemon(base, "overlay")
    try:
        dm.start()
        dm.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield dm
    finally:
        dm.stop()
        left = kill_containers_left(base)
        assert_no_mounts_left(base)
        assert not left, f"containers left running: {left}"


def records(path: Path) -> list[tuple[bytes, bytes, bytes, bytes]]:
    """The file's records (a line being written as we read is left out)."""
    data = path.read_bytes()
    data = data[:data.rfind(b"\n") + 1]
    out = []
    for line in data.split(b"\n")[:-1]:
        m = RECORD.fullmatch(line)
        assert m, line
        out.append(m.groups())
    return out


def until(cond, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_records_and_docker_logs(d, clean, tmp_path):
    log = tmp_path / "pods" / "p1" / "c" / "0.log"  # directories made as needed
    script = ("echo out; echo err >&2; head -c 40960 /dev/zero | tr '\\0' x; echo; "
              "echo; printf 'end'")
    r = d.docker("run", "--name", "cri1", "--log-driver", "cri", "--log-opt", f"path={log}",
                 "busybox", "sh", "-c", script)
    assert r.stdout == b"out\n" + b"x" * 40960 + b"\n\nend"
    assert log.read_bytes().endswith(b" stdout P end\n")
    assert log.stat().st_mode & 0o777 == 0o640
    recs = records(log)
    by = {s: [(tag, content) for _, st, tag, content in recs if st == s]
          for s in (b"stdout", b"stderr")}
    x = b"x" * 16384
    assert by[b"stdout"] == [(b"F", b"out"), (b"P", x), (b"P", x), (b"F", b"x" * 8192),
                             (b"F", b""), (b"P", b"end")]
    assert by[b"stderr"] == [(b"F", b"err")]
    i = json.loads(d.docker("inspect", "cri1").stdout)[0]
    assert i["HostConfig"]["LogConfig"] == {"Type": "cri", "Config": {"path": str(log)}}

    out = d.docker("logs", "cri1")
    assert (out.stdout, out.stderr) == (b"out\n" + b"x" * 40960 + b"\n\nend", b"err\n")
    # records as docker logs sees them: the pieces joined, in the file's order
    joined = [(st, c) for st, c, _ in logfiles.iter_all(log, "cri")]
    assert len(joined) == 5
    assert joined[-1] == (1, b"end")
    tail = d.docker("logs", "--tail", "2", "cri1")
    assert tail.stdout == b"".join(c for st, c in joined[-2:] if st == 1)
    # --timestamps: a joined line carries its first piece's time
    ts = d.docker("logs", "--timestamps", "cri1").stdout.split(b"\n")
    first_p = next(t for t, st, tag, _ in recs if tag == b"P")
    assert ts[1] == first_p + b" " + b"x" * 40960
    t, _, rest = ts[0].partition(b" ")
    assert rest == b"out" and t == recs[0][0]
    # --since after the last record: nothing; --until before the first: nothing
    last = parse_time(recs[-1][0].decode())
    assert d.docker("logs", "--since", f"{last + 1:.3f}", "cri1").stdout == b""
    first = parse_time(recs[0][0].decode())
    assert d.docker("logs", "--until", f"{first - 1:.3f}", "cri1").stdout == b""


def test_tty_and_follow(d, clean, tmp_path):
    log = tmp_path / "tty.log"
    cid = d.docker("run", "-d", "-t", "--log-driver", "cri", "--log-opt", f"path={log}",
                   "--log-opt", "max-line=8", "busybox", "sh", "-c",
                   "echo abc; echo 0123456789; printf more; sleep 30").stdout.decode().strip()
    # a tty's \r\n is dropped as containerd's readLine drops it; max-line=8
    until(lambda: log.exists() and log.read_bytes().endswith(b" stdout F 89\n"), "the lines")
    env = d.env()
    env["DOCKER_CONFIG"] = str(d.base / "docker-config")
    follow = subprocess.Popen([DOCKER_CLI, "logs", "-f", cid], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        d.docker("kill", cid)
        # the unfinished line comes as P when the output ends, and follow shows it
        out, _ = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert out == b"abc\n0123456789\nmore"
    assert [(r[2], r[3]) for r in records(log)] == [
        (b"F", b"abc"), (b"P", b"01234567"), (b"F", b"89"), (b"P", b"more")]
    assert d.docker("logs", cid).stdout == b"abc\n0123456789\nmore"


def test_option_errors(d, clean, tmp_path):
    def err(*opts: str) -> str:
        args = [a for o in opts for a in ("--log-opt", o)]
        r = d.docker("create", "--log-driver", "cri", *args, "busybox", check=False)
        assert r.returncode != 0
        return r.stderr.decode()

    assert "missing log opt 'path' for log driver cri" in err()
    assert "invalid value for log opt 'path' for log driver cri: rel/0.log: not an absolute " \
        "path" in err("path=rel/0.log")
    assert f"{tmp_path}: is a directory" in err(f"path={tmp_path}")
    assert "unknown log opt 'max-size' for log driver cri" in err(f"path={tmp_path}/a",
                                                                   "max-size=1m")
    assert "invalid value for log opt 'max-line' for log driver cri" in err(
        f"path={tmp_path}/a", "max-line=lots")
    # a json-file container has no file to reopen; LogPath stays json-file's only
    cid = d.docker("create", "--log-driver", "cri", "--log-opt", f"path={tmp_path}/b.log",
                   "busybox").stdout.decode().strip()
    assert json.loads(d.docker("inspect", cid).stdout)[0]["LogPath"] == ""
    # what only opening the file finds: at start, as dockerd's driver errors
    (tmp_path / "f").write_text("")
    cid = d.docker("create", "--log-driver", "cri", "--log-opt", f"path={tmp_path}/f/0.log",
                   "busybox", "true").stdout.decode().strip()
    r = d.docker("start", cid, check=False)
    assert r.returncode != 0
    assert f"failed to initialize logging driver: mkdir {tmp_path}/f: not a directory" \
        in r.stderr.decode()
    assert json.loads(d.docker("inspect", cid).stdout)[0]["State"]["ExitCode"] == 128


def test_reopen_after_rename(tmp_path, busybox_tar):
    """ContainerService.reopen_log, as the CRI endpoint calls it: after kubelet
    renamed the file, the shim writes to a new one at the path and the old one
    stops growing; the errors for other drivers and a stopped container."""
    from dockyard import Engine
    from dockyard.containers.logdrivers import ReopenNotSupported
    from dockyard.errors import Conflict, DockyardError

    eng = Engine(tmp_path / "root", "overlay", exec_root=tmp_path / "exec",
                 network_options=NO_NETWORK)
    c = eng.containers
    log = tmp_path / "logs" / "0.log"
    ids: list[str] = []
    try:
        eng.import_image(str(busybox_tar), repo="busybox")
        x = c.create({"Image": "busybox", "Cmd": ["sh", "-c", "i=0; while :; do echo $i; "
                                                  "i=$((i+1)); usleep 20000; done"]},
                     {"LogConfig": {"Type": "cri", "Config": {"path": str(log)}}})
        ids.append(x.id)
        c.start(x.id)
        until(lambda: log.exists() and len(records(log)) >= 3, "three lines")
        rotated = log.with_name("0.log.20261206-000000")
        os.rename(log, rotated)
        c.reopen_log(x.id)
        until(lambda: log.exists() and len(log.read_bytes().split(b"\n")) > 3, "the new file")
        old = rotated.read_bytes()
        new = records(log)
        # the count goes on in the new file from where the old one stopped
        last_old = int(records(rotated)[-1][3])
        assert int(new[0][3]) == last_old + 1
        until(lambda: len(records(log)) >= len(new) + 3, "more lines")
        assert rotated.read_bytes() == old
        # reopen with the file still there: it goes on appending to it
        c.reopen_log(x.id)
        n = len(records(log))
        until(lambda: len(records(log)) >= n + 2, "lines after a reopen in place")
        nums = [int(r[3]) for r in records(log)]
        assert nums == list(range(nums[0], nums[0] + len(nums)))
        # a path the shim can't open: the error, and the file it had goes on
        os.rename(log, log.with_name("0.log.2"))
        log.mkdir()
        with pytest.raises(DockyardError, match=f"failed to reopen the log of container "
                           f"{x.id}: open {log}: is a directory"):
            c.reopen_log(x.id)
        n = len(records(log.with_name("0.log.2")))
        until(lambda: len(records(log.with_name("0.log.2"))) > n, "lines in the kept file")
        log.rmdir()

        j = c.create({"Image": "busybox", "Cmd": ["sleep", "30"]}, {})
        ids.append(j.id)
        with pytest.raises(ReopenNotSupported) as e:
            c.reopen_log(j.id)
        assert e.value.status == 501
        assert str(e.value) == ("the json-file logging driver does not support reopening its "
                                "log; only cri does")
        c.kill(x.id, "KILL")
        with pytest.raises(Conflict, match=f"Container {x.id} is not running"):
            c.reopen_log(x.id)
    finally:
        for i in ids:
            try:
                c.remove(i, force=True)
            except Exception:  # noqa: BLE001 - cleanup goes on
                pass
        eng.close()
        until(lambda: not subprocess.run(["pgrep", "-f", f"dockyard-shim idle --exec-root "
                                          f"{tmp_path}/exec/"]).returncode == 0,
              "the idle shim to go")
        unmount_all(tmp_path)
        assert_no_mounts_left(tmp_path)
