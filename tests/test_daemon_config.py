"""Daemon configuration: daemon.json (--config-file) with dockerd's keys and
rules, SIGHUP reloads, systemd socket activation (fd://), --selinux-enabled,
--insecure-registry in /info, and the storage driver chosen or refused at
start. Each test starts its own daemon on private paths and stops it."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import mounts_under, unmount_all
from dockyard.cli.client import Client
from dockyard.daemon import config as daemon_config

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the daemon needs root")

DAEMON = [sys.executable, "-m", "dockyard", "daemon"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DOCKYARD_DRIVER", "DOCKER_DRIVER", "LISTEN_PID", "LISTEN_FDS")}
    env.update(extra)
    return env


def paths(base: Path) -> list[str]:
    """Flags that keep a daemon's state under `base`."""
    return ["--data-root", str(base / "root"), "--exec-root", str(base / "exec"),
            "--pidfile", str(base / "dockyard.pid")]


class Proc:
    def __init__(self, proc: subprocess.Popen, log: Path, sock: Path | None) -> None:
        self.proc, self.log, self.sock = proc, log, sock

    def client(self) -> Client:
        return Client(f"unix://{self.sock}")

    def text(self) -> str:
        return self.log.read_text()

    def wait_log(self, needle: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            assert time.monotonic() < deadline, f"{needle!r} not logged:\n{self.text()}"
            time.sleep(0.05)


@contextmanager
def daemon(base: Path, args: list[str], sock: Path | None, env: dict[str, str] | None = None,
           **popen: Any) -> Iterator[Proc]:
    """A daemon answering on `sock`, stopped (and its mounts undone) on exit."""
    log = base / "daemon.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT,
                                env=env or _env(), start_new_session=True, **popen)
    p = Proc(proc, log, sock)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError("daemon exited:\n" + p.text())
            if sock is not None and sock.exists() and p.client().ping():
                break
            assert time.monotonic() < deadline, "daemon did not answer:\n" + p.text()
            time.sleep(0.05)
        yield p
    finally:
        hung = False
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                hung = True
                proc.kill()
                proc.wait()
        leaked = mounts_under(base)
        unmount_all(base)
        assert not leaked, f"mounts left behind: {leaked}"
        assert not hung, "the daemon did not stop within 20 s of SIGTERM"


def fails(args: list[str], env: dict[str, str] | None = None, base: Path | None = None
          ) -> str:
    """Run a daemon that must refuse to start; its stderr."""
    try:
        r = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env or _env())
    finally:
        if base is not None:
            unmount_all(base)
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    return r.stderr


def info(p: Proc) -> dict[str, Any]:
    return p.client().get_json("/info")


# --- daemon.json --------------------------------------------------------------------
def test_conflicting_flag_and_file(tmp_path):
    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({"hosts": ["unix:///y"], "debug": True, "labels": ["a=b"]}))
    err = fails([*DAEMON, "--config-file", str(f), "-H", "unix:///x", "-H", "tcp://1.2.3.4:5",
                 "-D", *paths(tmp_path)])
    assert err.strip() == (
        f"unable to configure the Docker daemon with file {f}: the following directives are "
        "specified both as a flag and in the configuration file: debug: (from flag: true, "
        "from file: true), hosts: (from flag: [unix:///x tcp://1.2.3.4:5], from file: "
        "[unix:///y])")


@pytest.mark.parametrize("content,message", [
    ({"foo": 1, "debug": True}, "the following directives don't match any configuration "
                                "option: foo"),
    ({"debug": "yes"}, 'invalid value for debug: want true or false, got "yes"'),
    ({"log-level": "loud"}, "unable to parse logging level: loud"),
    ({"labels": ["novalue"]}, "bad attribute format: novalue"),
    ({"insecure-registries": ["ftp://x"]}, "insecure registry ftp://x should not contain '://'"),
    ({"default-ulimits": {"nofile": {"Name": "nofile", "Soft": "x", "Hard": 2}}},
     "invalid value for default-ulimits.nofile.Soft"),
    ('{"debug": true,', "Expecting property name"),
])
def test_bad_file(tmp_path, content, message):
    f = tmp_path / "daemon.json"
    f.write_text(content if isinstance(content, str) else json.dumps(content))
    err = fails([*DAEMON, "--config-file", str(f), *paths(tmp_path)])
    assert f"unable to configure the Docker daemon with file {f}: {message}" in err


def test_missing_files(tmp_path, monkeypatch):
    missing = tmp_path / "nope.json"
    err = fails([*DAEMON, "--config-file", str(missing), *paths(tmp_path)])
    assert err.strip() == (f"unable to configure the Docker daemon with file {missing}: open "
                           f"{missing}: no such file or directory")
    # the default file may be absent
    monkeypatch.setattr(daemon_config, "DEFAULT_CONFIG_FILE", str(missing))
    cfg = daemon_config.load({"debug": True})
    assert cfg.debug and cfg.config_file == str(missing) and not cfg.config_file_required


def test_file_keys_and_dockerd_only_keys(tmp_path):
    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({
        "storage-driver": "vfs", "storage-opts": [], "exec-opts": ["native.cgroupdriver=cgroupfs"],
        "default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 2048}},
        "tlsverify": True, "graph": "/srv/x", "iptables": False, "log-opts": {"max-size": "1m"},
    }))
    cfg = daemon_config.load({"hosts": ["unix:///a"]}, str(f))
    assert cfg.hosts == ["unix:///a"] and cfg.storage_driver == "vfs"
    assert cfg.default_ulimits == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert cfg.exec_opts == {"native.cgroupdriver": "cgroupfs"}
    assert cfg.tls and cfg.tlsverify and cfg.data_root == "/srv/x"
    with pytest.raises(daemon_config.ConfigError, match="data-root: .from flag: /a, from "
                                                        "file: /srv/x"):
        daemon_config.load({"data-root": "/a"}, str(f))


def test_config_file_then_sighup_reload(tmp_path):
    sock = tmp_path / "d.sock"
    f = tmp_path / "daemon.json"
    conf = {"hosts": [f"unix://{sock}"], "data-root": str(tmp_path / "root"),
            "exec-root": str(tmp_path / "exec"), "pidfile": str(tmp_path / "d.pid"),
            "storage-driver": "vfs", "debug": True,
            "insecure-registries": ["myreg:5000", "10.1.2.3/8", "http://other.example"],
            "max-concurrent-downloads": 2}
    f.write_text(json.dumps(conf))
    with daemon(tmp_path, [*DAEMON, "--config-file", str(f), "--label", "flag=1"], sock) as d:
        i = info(d)
        assert i["Debug"] and i["Driver"] == "vfs"
        assert i["DockerRootDir"] == str(tmp_path / "root")
        assert i["Labels"] == ["flag=1"]  # the flag, not the file: both would be an error
        rc = i["RegistryConfig"]
        assert rc["InsecureRegistryCIDRs"] == ["10.0.0.0/8", "127.0.0.0/8"]
        assert rc["IndexConfigs"] == {
            "docker.io": {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True},
            "myreg:5000": {"Name": "myreg:5000", "Mirrors": [], "Secure": False,
                           "Official": False},
            "other.example": {"Name": "other.example", "Mirrors": [], "Secure": False,
                              "Official": False}}
        assert i["NFd"] > 0 and i["NGoroutines"] > 0 and i["NEventsListener"] == 0
        with socket.socket(socket.AF_UNIX) as ev:  # a `docker events` client
            ev.connect(str(sock))
            ev.sendall(b"GET /events HTTP/1.1\r\nHost: d\r\n\r\n")
            assert ev.recv(12) == b"HTTP/1.1 200"
            assert info(d)["NEventsListener"] == 1
    # labels from the file this time, so that a reload can change them
    f.write_text(json.dumps({**conf, "labels": ["a=b"]}))
    with daemon(tmp_path, [*DAEMON, "--config-file", str(f)], sock) as d:
        assert info(d)["Labels"] == ["a=b"]
        conf.update(debug=False, labels=["c=d"], **{"insecure-registries": ["new:1"],
                                                     "hosts": ["unix:///ignored.sock"]})
        f.write_text(json.dumps(conf))
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("Reloaded configuration")
        i = info(d)
        assert not i["Debug"] and i["Labels"] == ["c=d"]
        assert set(i["RegistryConfig"]["IndexConfigs"]) == {"docker.io", "new:1"}
        assert not os.path.exists("/ignored.sock")  # listeners change only at restart
        # a bad file is reported and changes nothing
        f.write_text(json.dumps({**conf, "labels": ["e=f"], "bogus": 1}))
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("don't match any configuration option: bogus")
        assert info(d)["Labels"] == ["c=d"]
        assert d.client().ping()


def test_reload_updates_registry_options_in_place(tmp_path):
    from types import SimpleNamespace

    from dockyard.daemon.main import Notifier, reload_config, registry_options

    f = tmp_path / "daemon.json"
    f.write_text(json.dumps({"insecure-registries": ["a:1"], "max-concurrent-downloads": 1}))
    cfg = daemon_config.load({"max-concurrent-uploads": 7}, str(f))
    opts = registry_options(cfg)
    assert (opts.insecure_registries, opts.max_concurrent_downloads,
            opts.max_concurrent_uploads) == (["a:1"], 1, 7)
    engine = SimpleNamespace(registry_options=opts)
    f.write_text(json.dumps({"insecure-registries": ["b:2", "https://c"],
                             "max-concurrent-downloads": 9, "log-level": "error"}))
    levels = {n: logging.getLogger(n).level for n in ("", "aiohttp.access")}
    try:
        reload_config(cfg, engine, Notifier())
    finally:  # the reload set this process's log levels
        for n, lv in levels.items():
            logging.getLogger(n).setLevel(lv)
    assert engine.registry_options is opts  # the engine's object, changed in place
    assert (opts.insecure_registries, opts.max_concurrent_downloads,
            opts.max_concurrent_uploads) == (["b:2", "c"], 9, 7)
    assert cfg.log_level == "error"
    f.write_text("{")
    reload_config(cfg, engine, Notifier())
    assert opts.max_concurrent_downloads == 9


# --- socket activation (fd://) ------------------------------------------------------
# As systemd does it: the sockets are fds 3.. and LISTEN_PID is the daemon's pid,
# which a wrapper sets before it execs the daemon (exec keeps the pid).
ACTIVATE = ("import fcntl, os, sys\n"
            "fds = [int(x) for x in sys.argv[1].split(',')]\n"
            "high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in fds]\n"
            "for fd in fds:\n"
            "    os.close(fd)\n"
            "for i, fd in enumerate(high):\n"
            "    os.dup2(fd, 3 + i)\n"
            "    os.close(fd)\n"
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)))\n"
            "os.execv(sys.executable, [sys.executable] + sys.argv[2:])\n")


def _listening(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(16)
    return s


@pytest.mark.parametrize("host,answers", [("fd://", ["a", "b"]), ("fd://4", ["b"])])
def test_socket_activation(tmp_path, host, answers):
    socks = {n: _listening(tmp_path / f"{n}.sock") for n in ("a", "b")}
    try:
        fds = ",".join(str(s.fileno()) for s in socks.values())
        args = [sys.executable, "-c", ACTIVATE, fds, "-m", "dockyard", "daemon", "-H", host,
                "-s", "vfs", *paths(tmp_path)]
        with daemon(tmp_path, args, tmp_path / f"{answers[0]}.sock",
                    pass_fds=[s.fileno() for s in socks.values()]):
            for s in socks.values():
                s.close()  # the daemon holds its own copies
            for n in ("a", "b"):
                c = Client(f"unix://{tmp_path / f'{n}.sock'}")
                if n in answers:
                    assert c.get_json("/version")["ApiVersion"] == "1.41"
                else:
                    assert not c.ping()  # fd://N closes the sockets it was not given
        # systemd owns the socket files: the daemon leaves them
        assert (tmp_path / "a.sock").exists()
    finally:
        for s in socks.values():
            s.close()


def test_fd_without_activation(tmp_path):
    err = fails([*DAEMON, "-H", "fd://", "-s", "vfs", *paths(tmp_path)], base=tmp_path)
    assert "no sockets found via socket activation: make sure the service was started by " \
           "systemd" in err


# --- refusals -----------------------------------------------------------------------
@pytest.mark.skipif(os.path.exists("/sys/fs/selinux/enforce"), reason="SELinux is present")
def test_selinux_enabled_refused(tmp_path):
    err = fails([*DAEMON, "--selinux-enabled", "-H", f"unix://{tmp_path}/s.sock",
                 *paths(tmp_path)])
    assert err.strip() == "SELinux is not supported on this host: /sys/fs/selinux is not mounted"
    assert not (tmp_path / "dockyard.pid").exists()


@pytest.mark.parametrize("name,word", [("aufs", "not in mainline kernels"),
                                       ("zfs", "ZFS dataset"), ("devicemapper", "thin pool")])
@pytest.mark.parametrize("how", ["flag", "env", "file"])
def test_unavailable_storage_drivers(tmp_path, name, word, how):
    args = [*DAEMON, "-H", f"unix://{tmp_path}/s.sock", *paths(tmp_path)]
    env = _env()
    if how == "flag":
        args += ["-s", name]
    elif how == "env":
        env["DOCKER_DRIVER"] = name
    else:
        (tmp_path / "daemon.json").write_text(json.dumps({"storage-driver": name}))
        args += ["--config-file", str(tmp_path / "daemon.json")]
    err = fails(args, env, base=tmp_path)
    assert "failed to start daemon: error initializing graphdriver: " in err
    assert word in err and "Traceback" not in err
    assert not (tmp_path / "s.sock").exists() and not (tmp_path / "dockyard.pid").exists()


def test_driver_selection_order(tmp_path):
    """DOCKYARD_DRIVER beats -s; a data root that holds a driver's layers keeps
    that driver; otherwise the priority list (overlay before vfs here)."""
    sock = tmp_path / "s.sock"
    args = [*DAEMON, "-H", f"unix://{sock}", *paths(tmp_path)]
    with daemon(tmp_path, [*args, "-s", "overlay2"], sock, _env(DOCKYARD_DRIVER="vfs")) as d:
        assert info(d)["Driver"] == "vfs"
    (tmp_path / "root" / "vfs" / "dir" / "some-layer").mkdir(parents=True)
    with daemon(tmp_path, args, sock) as d:
        assert info(d)["Driver"] == "vfs"
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    sock2 = fresh / "s.sock"
    with daemon(fresh, [*DAEMON, "-H", f"unix://{sock2}", *paths(fresh)], sock2) as d:
        assert info(d)["Driver"] == "overlay"


# --- systemd ------------------------------------------------------------------------
def test_notify_socket(tmp_path):
    """Type=notify: READY=1 once the API answers, RELOADING=1/READY=1 around a
    SIGHUP, STOPPING=1 at shutdown."""
    addr = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as ns:
        ns.bind(str(addr))
        ns.settimeout(20)
        sock = tmp_path / "s.sock"
        with daemon(tmp_path, [*DAEMON, "-H", f"unix://{sock}", "-s", "vfs", *paths(tmp_path)],
                    sock, _env(NOTIFY_SOCKET=str(addr))) as d:
            assert ns.recv(64) == b"READY=1"
            d.proc.send_signal(signal.SIGHUP)
            assert [ns.recv(64), ns.recv(64)] == [b"RELOADING=1", b"READY=1"]
            d.proc.send_signal(signal.SIGTERM)
            assert ns.recv(64) == b"STOPPING=1"


CONTRIB = Path(__file__).resolve().parent.parent / "contrib" / "systemd"


def test_systemd_units(tmp_path):
    import configparser
    import shutil

    def parse(p: Path) -> configparser.RawConfigParser:
        c = configparser.RawConfigParser(strict=False, interpolation=None)
        c.optionxform = str  # type: ignore[assignment,method-assign]
        c.read(p)
        return c

    sock = parse(CONTRIB / "dockyard.socket")
    assert dict(sock["Socket"]) == {"ListenStream": "/run/dockyard.sock", "SocketMode": "0660",
                                    "SocketUser": "root", "SocketGroup": "dockyard"}
    svc = parse(CONTRIB / "dockyard.service")
    assert svc["Service"]["ExecStart"].endswith("dockyard daemon -H fd://")
    assert svc["Unit"]["Requires"] == "dockyard.socket" and svc["Service"]["Type"] == "notify"
    assert svc["Service"]["KillMode"] == "process"  # shims outlive the daemon
    override = parse(CONTRIB / "dockyard.service.d" / "override.conf.example")
    assert "-H fd://" in override["Service"]["ExecStart"]

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this machine's dockyard
    exe = shutil.which("dockyard") or "/bin/true"
    units = tmp_path / "units"
    (units / "dockyard.service.d").mkdir(parents=True)
    for name in ("dockyard.service", "dockyard.socket"):
        (units / name).write_text((CONTRIB / name).read_text().replace(
            "/usr/local/bin/dockyard", exe))
    (units / "dockyard.service.d" / "override.conf").write_text(
        (CONTRIB / "dockyard.service.d" / "override.conf.example").read_text().replace(
            "/usr/local/bin/dockyard", exe))
    r = subprocess.run([analyze, "verify", str(units / "dockyard.socket"),
                        str(units / "dockyard.service")], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "ignoring" not in r.stderr, r.stderr


def test_client_refuses_fd_hosts():
    r = subprocess.run([sys.executable, "-m", "dockyard", "-H", "fd://", "version"],
                       capture_output=True, text=True, timeout=60,
                       env=_env(DOCKYARD_NO_AUTOSTART="1"))
    assert r.returncode != 0
    assert "fd:// names sockets systemd hands to the daemon" in r.stderr
