"""Docker's log drivers: json-file (options, rotation, gzip), local (dockerd's
protobuf records, rotated and gzipped; read back by the real docker CLI and
checked against a file dockerd wrote), none, journald and syslog (against
sockets the test binds: the daemon is pointed at a journal socket through its
environment, which nothing in the API can set), the daemon-wide default from
flags and daemon.json, and dockerd's errors."""

from __future__ import annotations

import gzip
import json
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import Daemon, assert_no_mounts_left, kill_containers_left, unmount_all
from dockyard.containers import logs as logfiles


@pytest.fixture(scope="module")
def d(tmp_path_factory, busybox_tar):
    base = tmp_path_factory.mktemp("logdrv")
    dm = Daemon(base, "overlay")
    dm.daemon_env["DOCKYARD_JOURNAL_SOCKET"] = str(base / "journal.sock")
    try:
        dm.start()
        dm.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield dm
    finally:
        dm.stop()
        left = kill_containers_left(base)
        assert_no_mounts_left(base)
        assert not left, f"containers left running: {left}"


@pytest.fixture
def clean(d):
    yield
    for c in d.client().get_json("/containers/json", {"all": 1}):
        d.client().request("DELETE", f"/containers/{c['Id']}", {"force": 1}, check=False).close()


def api(d, method: str, path: str, body=None, query=None):
    data = json.dumps(body).encode() if body is not None else None
    r = d.client().request(method, path, query or {}, body=data, check=False,
                           headers={"Content-Type": "application/json"})
    data = r.read()
    r.close()
    return r.status, (json.loads(data) if data.strip() else None)


def create(d, log_config, cmd=("echo", "hi"), name=None, **config):
    body = {"Image": "busybox", "Cmd": list(cmd), **config,
            "HostConfig": {"LogConfig": log_config}}
    return api(d, "POST", "/containers/create", body, {"name": name} if name else None)


def inspect(d, ref):
    return json.loads(d.docker("inspect", ref).stdout)[0]


def cdir(d, cid: str) -> Path:
    return d.root / "containers" / cid


def test_default_log_config(d, clean):
    cid = d.docker("create", "busybox", "true").stdout.decode().strip()
    i = inspect(d, cid)
    assert i["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
    assert i["LogPath"].endswith(f"{cid}-json.log")
    # no type: the daemon's, the options kept (dockerd stores it so)
    st, out = create(d, {"Type": "", "Config": {"max-size": "1m"}})
    assert st == 201
    assert inspect(d, out["Id"])["HostConfig"]["LogConfig"] == {
        "Type": "json-file", "Config": {"max-size": "1m"}}
    st, out = create(d, None)
    assert inspect(d, out["Id"])["HostConfig"]["LogConfig"]["Type"] == "json-file"
    info = json.loads(d.docker("info", "--format", "{{json .}}").stdout)
    assert info["LoggingDriver"] == "json-file"
    assert info["Plugins"]["Log"] == ["cri", "journald", "json-file", "local", "syslog"]


@pytest.mark.parametrize("lc,msg", [
    ({"Type": "foo"}, 'error looking up logging plugin foo: plugin "foo" not found'),
    ({"Type": "json-file", "Config": {"x": "1"}}, "unknown log opt 'x' for json-file log driver"),
    ({"Type": "local", "Config": {"x": "1"}}, "unknown log opt 'x' for log driver local"),
    ({"Type": "local", "Config": {"tag": "1"}}, "unknown log opt 'tag' for log driver local"),
    ({"Type": "journald", "Config": {"max-size": "1"}},
     "unknown log opt 'max-size' for journald log driver"),
    ({"Type": "syslog", "Config": {"syslog-facility": "foo"}}, "invalid syslog facility"),
    ({"Type": "syslog", "Config": {"syslog-format": "foo"}}, "Invalid syslog format"),
    ({"Type": "syslog", "Config": {"syslog-address": "foo"}},
     "syslog-address should be in form proto://address, got foo"),
    ({"Type": "syslog", "Config": {"syslog-address": "unixgram:///nonexistent.sock"}},
     "stat /nonexistent.sock: no such file or directory"),
    ({"Type": "json-file", "Config": {"mode": "x"}}, "logger: logging mode not supported: x"),
    ({"Type": "json-file", "Config": {"cache-disabled": "x"}},
     "invalid value for option cache-disabled: x"),
])
def test_create_refuses(d, clean, lc, msg):
    assert create(d, lc) == (400, {"message": msg})


def test_cli_refuses_unknown_driver_and_none_with_opts(d, clean):
    r = d.docker("run", "--log-driver", "foo", "busybox", "true", check=False)
    assert r.returncode == 125
    assert 'error looking up logging plugin foo: plugin "foo" not found' in r.stderr.decode()
    r = d.cli("run", "--log-driver", "none", "--log-opt", "x=1", "busybox", "true", check=False)
    assert r.returncode == 125 and "invalid logging opts for driver none" in r.stderr.decode()
    # the API itself takes options for none (dockerd checks none's options not at all)
    st, out = create(d, {"Type": "none", "Config": {"x": "1"}})
    assert st == 201


@pytest.mark.parametrize("cfg,msg", [
    ({"max-size": "abc"}, "invalid size: 'abc'"),
    ({"max-file": "x"}, 'strconv.Atoi: parsing "x": invalid syntax'),
    ({"compress": "true"}, "compress cannot be true when max-file is less than 2 or "
                           "max-size is not set"),
])
def test_start_refuses_bad_json_file_values(d, clean, cfg, msg):
    st, out = create(d, {"Type": "json-file", "Config": cfg}, name="bad")
    assert st == 201
    st, err = api(d, "POST", "/containers/bad/start")
    full = "failed to initialize logging driver: " + msg
    assert (st, err) == (500, {"message": full})
    state = inspect(d, "bad")["State"]
    assert (state["Running"], state["ExitCode"], state["Error"]) == (False, 128, full)


def test_json_file_rotation_compress_and_attrs(d, clean):
    cid = d.docker(
        "run", "--log-opt", "max-size=1k", "--log-opt", "max-file=3", "--log-opt",
        "compress=true", "--label", "team=web", "--log-opt", "labels=team", "-e", "APP=x",
        "--log-opt", "env=APP", "--log-opt", "tag={{.Name}}/{{.ID}}", "--name", "jf",
        "-d", "busybox", "sh", "-c", "for i in $(seq 100); do echo line-$i; done").stdout
    cid = cid.decode().strip()
    assert d.docker("wait", cid).stdout.strip() == b"0"
    base = cdir(d, cid)
    log = base / f"{cid}-json.log"
    assert sorted(p.name for p in base.glob(f"{cid}-json.log*")) == [
        f"{cid}-json.log", f"{cid}-json.log.1.gz", f"{cid}-json.log.2.gz"]
    first = json.loads(log.read_text().splitlines()[0])
    assert first["attrs"] == {"APP": "x", "tag": f"jf/{cid[:12]}", "team": "web"}
    older = gzip.decompress((base / f"{cid}-json.log.2.gz").read_bytes()).decode()
    assert json.loads(older.splitlines()[0])["log"].startswith("line-")
    out = d.docker("logs", cid).stdout.decode().split()
    # what was rotated out of the three files is gone; what is kept reads in order
    n = int(out[0].split("-")[1])
    assert out == [f"line-{i}" for i in range(n, 101)] and n > 1


def test_local_driver(d, clean):
    cid = d.docker(
        "run", "-d", "--log-driver", "local", "--log-opt", "max-size=1k", "--log-opt",
        "max-file=3", "busybox", "sh", "-c",
        "for i in $(seq 100); do echo line-$i-abcdefghijklmnopqrstuvwxyz; done; "
        "echo err >&2; sleep 0.1; printf partial").stdout.decode().strip()
    assert d.docker("wait", cid).stdout.strip() == b"0"
    i = inspect(d, cid)
    assert i["HostConfig"]["LogConfig"] == {
        "Type": "local", "Config": {"max-file": "3", "max-size": "1k"}}
    assert i["LogPath"] == ""  # dockerd doesn't show the local driver's file
    logdir = cdir(d, cid) / "local-logs"
    assert sorted(p.name for p in logdir.iterdir()) == [
        "container.log", "container.log.1.gz", "container.log.2.gz"]
    assert not list(cdir(d, cid).glob("*-json.log"))
    raw = (logdir / "container.log.1.gz").read_bytes()
    assert raw[:4] == b"\x1f\x8b\x08\x04"  # gzip with an extra field: dockerd's lastTime
    xlen = int.from_bytes(raw[10:12], "little")
    assert re.fullmatch(rb'\{"lastTime":"\d{4}-\d\d-\d\dT[\d:.]+Z"\}', raw[12:12 + xlen])
    # each record: size, protobuf LogEntry, size again
    data = (logdir / "container.log").read_bytes()
    n = int.from_bytes(data[:4], "big")
    assert data[4 + n:8 + n] == data[:4]
    assert data[4:12] == b"\n\x06stdout"
    # the real docker CLI reads it back: rotated and gzipped files too
    out = d.docker("logs", cid)
    lines = out.stdout.decode().splitlines()
    assert lines[-1] == "partial" and lines[-2] == "line-100-abcdefghijklmnopqrstuvwxyz"
    first = int(lines[0].split("-")[1])
    assert lines[:-1] == [f"line-{k}-abcdefghijklmnopqrstuvwxyz" for k in range(first, 101)]
    assert first > 1 and out.stderr == b"err\n"
    tail = d.docker("logs", "--tail", "2", "--timestamps", cid)
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\S+Z partial", tail.stdout)
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\S+Z err\n", tail.stderr)
    # defaults: 20m x 5, compressed; max-file=1 with compression is refused at start
    st, out = create(d, {"Type": "local", "Config": {"max-file": "1"}}, name="one")
    st, err = api(d, "POST", "/containers/one/start")
    assert (st, err["message"]) == (500, "failed to initialize logging driver: compression "
                                         "cannot be enabled when max file count is 1")


def test_local_file_written_by_dockerd_reads_back(ref_dockerd, busybox_tar, tmp_path):
    """Our reader decodes a file the reference dockerd's local driver wrote
    (and the shim's encoder is pinned to such bytes in its cargo tests)."""
    ref_dockerd.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    cid = ref_dockerd.docker("run", "-d", "--log-driver", "local", "busybox", "sh", "-c",
                             "echo one; echo two >&2; printf three").stdout.decode().strip()
    try:
        ref_dockerd.docker("wait", cid)
        path = ref_dockerd.base / "data" / "containers" / cid / "local-logs" / "container.log"
        recs, _ = logfiles.read(path, fmt="local")
        assert sorted((s, line) for s, line, _ in recs) == [
            (1, b"one\n"), (1, b"three"), (2, b"two\n")]
    finally:
        ref_dockerd.docker("rm", "-f", cid, check=False)


def test_none_keeps_nothing(d, clean):
    cid = d.docker("run", "-d", "--log-driver", "none", "busybox", "echo",
                   "hi").stdout.decode().strip()
    d.docker("wait", cid)
    assert sorted(p.name for p in cdir(d, cid).iterdir() if "log" in p.name) == []
    r = d.docker("logs", cid, check=False)
    assert r.returncode == 1
    assert r.stderr.decode().strip() == ("Error response from daemon: configured logging "
                                         "driver does not support reading")
    st, err = api(d, "GET", f"/containers/{cid}/logs", query={"stdout": 1})
    assert (st, err) == (501, {"message": "configured logging driver does not support reading"})


def recv_all(sock: socket.socket, until: bytes, limit: float = 20) -> list[bytes]:
    """Datagrams (or stream data) until one holds `until`."""
    out: list[bytes] = []
    sock.settimeout(1)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            b = sock.recv(65536)
        except socket.timeout:
            continue
        out.append(b)
        if until in b"".join(out):
            break
    return out


def journal_fields(dgram: bytes) -> dict[str, str]:
    f, i = {}, 0
    while i < len(dgram):
        nl = dgram.index(b"\n", i)
        line = dgram[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k, n = line, int.from_bytes(dgram[nl + 1:nl + 9], "little")
            v, i = dgram[nl + 9:nl + 9 + n], nl + 10 + n
        f[k.decode()] = v.decode()
    return f


def test_journald(d, clean):
    path = d.base / "journal.sock"
    # no journal listening: dockerd's message at start
    st, out = create(d, {"Type": "journald"}, name="nojournal")
    st, err = api(d, "POST", "/containers/nojournal/start")
    assert (st, err["message"]) == (500, "failed to initialize logging driver: journald is "
                                         "not enabled on this host")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(path))
        try:
            cid = d.docker("run", "-d", "--name", "jd", "--log-driver", "journald",
                           "--label", "com.example.team=web", "--log-opt",
                           "labels=com.example.team", "busybox", "sh", "-c",
                           "echo out; echo err >&2; echo multi; sleep 0.2; echo END").stdout
            cid = cid.decode().strip()
            got = [journal_fields(x) for x in recv_all(s, b"MESSAGE=END")]
        finally:
            path.unlink()
    d.docker("wait", cid)
    msgs = {f["MESSAGE"]: f for f in got}
    assert set(msgs) == {"out", "err", "multi", "END"}
    assert msgs["out"]["PRIORITY"] == "6" and msgs["err"]["PRIORITY"] == "3"
    assert {k: v for k, v in msgs["out"].items() if k not in ("MESSAGE", "PRIORITY")} == {
        "CONTAINER_ID": cid[:12], "CONTAINER_ID_FULL": cid, "CONTAINER_NAME": "jd",
        "CONTAINER_TAG": cid[:12], "IMAGE_NAME": "busybox", "SYSLOG_IDENTIFIER": cid[:12],
        "COM_EXAMPLE_TEAM": "web"}
    # docker logs reads the local cache (dual logging)
    out = d.docker("logs", cid)
    assert (out.stdout, out.stderr) == (b"out\nmulti\nEND\n", b"err\n")
    assert (cdir(d, cid) / "container-cached.log").exists()


@pytest.mark.parametrize("kind", ["unixgram", "unix", "tcp", "udp"])
def test_syslog(d, clean, tmp_path, kind):
    """The formats as dockerd 20.10 sends them (compared on a reference
    dockerd: only the pid, dockerd's there and the shim's here, differs)."""
    if kind in ("tcp", "udp"):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if kind == "tcp"
                          else socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        addr = f"{kind}://127.0.0.1:{s.getsockname()[1]}"
    else:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM if kind == "unixgram"
                          else socket.SOCK_STREAM)
        s.bind(str(tmp_path / "syslog.sock"))
        addr = f"{kind}://{tmp_path / 'syslog.sock'}"
    fmt = {"unixgram": [], "unix": ["--log-opt", "syslog-format=rfc5424"],
           "tcp": ["--log-opt", "syslog-format=rfc3164", "--log-opt", "syslog-facility=local0"],
           "udp": ["--log-opt", "syslog-format=rfc5424micro", "--log-opt", "syslog-facility=1"]}
    stream = kind in ("unix", "tcp")
    with s:
        if stream:
            s.listen(1)
        cid = d.docker("run", "-d", "--log-driver", "syslog", "--log-opt",
                       f"syslog-address={addr}", "--log-opt", "tag=app", *fmt[kind],
                       "busybox", "sh", "-c", "echo out; echo; echo err >&2; sleep 0.2; "
                       "echo END").stdout.decode().strip()
        conn = s.accept()[0] if stream else s
        with conn:
            data = b"".join(recv_all(conn, b"END\n"))
    d.docker("wait", cid)
    lines = data.decode().splitlines()
    assert len(lines) == 3  # the empty line is not sent
    host = socket.gethostname()
    pat = {"unixgram": r"<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d app\[\d+\]: (\w+)",
           "unix": r"<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d) "
                   + re.escape(host) + r" app \d+ app - (\w+)",
           "tcp": r"<(\d+)>\w{3} [ \d]\d \d\d:\d\d:\d\d " + re.escape(host)
                  + r" app\[\d+\]: (\w+)",
           "udp": r"<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(?:Z|[+-]\d\d:\d\d) "
                  + re.escape(host) + r" app \d+ app - (\w+)"}[kind]
    got = [re.fullmatch(pat, line).groups() for line in lines]
    base = {"tcp": 16 << 3, "udp": 1 << 3}.get(kind, 3 << 3)  # local0, user, daemon
    assert sorted(got) == sorted([(str(base | 6), "out"), (str(base | 3), "err"),
                                  (str(base | 6), "END")])
    assert d.docker("logs", cid).stdout == b"out\n\nEND\n"


def test_syslog_cache_disabled(d, clean, tmp_path):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(tmp_path / "l.sock"))
        cid = d.docker("run", "-d", "--log-driver", "syslog", "--log-opt",
                       f"syslog-address=unixgram://{tmp_path / 'l.sock'}", "--log-opt",
                       "cache-disabled=true", "busybox", "echo", "END").stdout.decode().strip()
        recv_all(s, b"END")
    d.docker("wait", cid)
    st, err = api(d, "GET", f"/containers/{cid}/logs", query={"stdout": 1})
    assert st == 501 and not (cdir(d, cid) / "container-cached.log").exists()


def test_daemon_default_from_flags(tmp_path, busybox_tar):
    dm = Daemon(tmp_path, "vfs", ["--log-driver", "local", "--log-opt", "max-size=2k"])
    dm.start()
    try:
        dm.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        info = json.loads(dm.docker("info", "--format", "{{json .}}").stdout)
        assert info["LoggingDriver"] == "local"
        cid = dm.docker("run", "-d", "busybox", "echo", "hi").stdout.decode().strip()
        dm.docker("wait", cid)
        assert inspect(dm, cid)["HostConfig"]["LogConfig"] == {
            "Type": "local", "Config": {"max-size": "2k"}}
        assert dm.docker("logs", cid).stdout == b"hi\n"
        # another driver doesn't take the default's options
        cid = dm.docker("create", "--log-driver", "json-file", "busybox").stdout.decode().strip()
        assert inspect(dm, cid)["HostConfig"]["LogConfig"] == {"Type": "json-file", "Config": {}}
        dm.docker("rm", "-f", cid)
    finally:
        dm.stop()
        kill_containers_left(tmp_path)
        assert_no_mounts_left(tmp_path)


def test_daemon_default_from_daemon_json(tmp_path, busybox_tar):
    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({"log-driver": "json-file",
                             "log-opts": {"max-size": "10m", "max-file": "2"}}))
    dm = Daemon(tmp_path, "vfs", ["--config-file", str(f)])
    dm.start()
    try:
        dm.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        cid = dm.docker("create", "busybox", "true").stdout.decode().strip()
        assert inspect(dm, cid)["HostConfig"]["LogConfig"] == {
            "Type": "json-file", "Config": {"max-file": "2", "max-size": "10m"}}
        # options the container gives win over the daemon's
        cid = dm.docker("create", "--log-opt", "max-file=4", "busybox").stdout.decode().strip()
        assert inspect(dm, cid)["HostConfig"]["LogConfig"]["Config"] == {
            "max-file": "4", "max-size": "10m"}
    finally:
        dm.stop()
        kill_containers_left(tmp_path)
        assert_no_mounts_left(tmp_path)
    # bad default options: the daemon doesn't start
    f.write_text(json.dumps({"log-driver": "local", "log-opts": {"x": "1"}}))
    r = subprocess.run([*dm.command()], capture_output=True, timeout=60)
    unmount_all(tmp_path)
    assert r.returncode != 0
    assert "failed to set log opts: unknown log opt 'x' for log driver local" in \
        r.stderr.decode() + r.stdout.decode()


def test_local_follow(d, clean):
    cid = d.docker("run", "-d", "--log-driver", "local", "busybox", "sh", "-c",
                   "echo a; sleep 1; echo b").stdout.decode().strip()
    assert d.docker("logs", "-f", cid).stdout == b"a\nb\n"


def _hwm_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_tail_of_a_big_log_reads_from_the_end(d, clean, driver):
    """`logs --tail 3` of a log of tens of MB: the last three lines, read from
    the end, in bounded memory (the daemon's peak RSS hardly moves); tail
    counts the records of both streams before the stream filter, as dockerd."""
    cmd = ("sh", "-c", "yes 0123456789012345678901234567890123456789 | head -n 600000; "
           "echo last-err >&2; sleep 0.3; echo last-out")
    st, body = create(d, {"Type": driver, "Config": {}}, cmd=cmd)
    assert st == 201, body
    cid = body["Id"]
    api(d, "POST", f"/containers/{cid}/start")
    assert api(d, "POST", f"/containers/{cid}/wait")[1]["StatusCode"] == 0
    before = _hwm_kib(d.proc.pid)
    for _ in range(3):
        r = d.client().request("GET", f"/containers/{cid}/logs",
                               {"stdout": 1, "stderr": 1, "tail": "3"})
        data = r.read()
        r.close()
        assert data == (b"\x01\0\0\0\0\0\0\x29" + b"0123456789012345678901234567890123456789\n"
                        + b"\x02\0\0\0\0\0\0\x09last-err\n" + b"\x01\0\0\0\0\0\0\x09last-out\n")
    r = d.client().request("GET", f"/containers/{cid}/logs", {"stdout": 1, "tail": "2"})
    assert r.read() == b"\x01\0\0\0\0\0\0\x09last-out\n"  # last-err counted, then left out
    r.close()
    assert _hwm_kib(d.proc.pid) - before < 40 * 1024
    # the whole log streams too, in order
    r = d.client().request("GET", f"/containers/{cid}/logs", {"stdout": 1, "stderr": 1})
    n = 0
    tail = b""
    while chunk := r.read_chunk(1 << 20):
        n += len(chunk)
        tail = (tail + chunk)[-64:]
    r.close()
    assert n == 600002 * 8 + 600000 * 41 + 18 and tail.endswith(b"last-out\n")
    assert _hwm_kib(d.proc.pid) - before < 40 * 1024
