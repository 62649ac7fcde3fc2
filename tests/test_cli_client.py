"""Client behaviour that does not depend on a command: which host it talks to,
Docker's connection errors, start-up time budget helpers, and the autostart
of a local daemon."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import mounts_under, unmount_all


def run(args, env):
    return subprocess.run([sys.executable, "-m", "dockyard", *args], env=env,
                          capture_output=True, timeout=60)


def test_dockyard_host_wins_over_docker_host(daemon):
    env = dict(os.environ, DOCKYARD_HOST=daemon.host, DOCKER_HOST="unix:///nonexistent.sock",
               DOCKYARD_NO_AUTOSTART="1")
    r = run(["version", "--format", "{{.Server.ApiVersion}}"], env)
    assert r.returncode == 0 and r.stdout.strip() == b"1.41"
    env = dict(os.environ, DOCKER_HOST=daemon.host, DOCKYARD_NO_AUTOSTART="1")
    env.pop("DOCKYARD_HOST", None)
    assert run(["images", "-q"], env).returncode == 0
    # -H beats both
    env = dict(os.environ, DOCKYARD_HOST="unix:///nonexistent.sock", DOCKYARD_NO_AUTOSTART="1")
    assert run(["-H", daemon.host, "info", "--format", "{{.Driver}}"], env).returncode == 0


def test_unreachable_daemon_message():
    env = dict(os.environ, DOCKYARD_HOST="unix:///nonexistent.sock", DOCKYARD_NO_AUTOSTART="1")
    r = run(["images"], env)
    assert r.returncode == 1
    assert r.stderr.decode().strip() == ("Cannot connect to the Docker daemon at "
                                         "unix:///nonexistent.sock. Is the docker daemon "
                                         "running?")


def test_template_errors_exit_like_docker(daemon):
    env = daemon.env()
    r = run(["version", "--format", "{{.Nope"], env)
    assert r.returncode == 64 and b"template parsing error" in r.stderr
    r = run(["images", "--format", "{{.Nope"], env)
    assert r.returncode != 0 and b"template parsing error" in r.stderr


DEFAULT_SOCK = Path("/var/run/dockyard.sock")
DEFAULT_ROOT = Path("/var/lib/dockyard")


@pytest.mark.skipif(DEFAULT_SOCK.exists() or DEFAULT_ROOT.exists() or os.geteuid() != 0,
                    reason="a default Dockyard install is present (or not root): not touching it")
def test_autostart_at_default_socket():
    env = dict(os.environ)
    for k in ("DOCKYARD_HOST", "DOCKER_HOST", "DOCKYARD_NO_AUTOSTART"):
        env.pop(k, None)
    try:
        r = run(["images"], env)
        assert r.returncode == 0, r.stderr
        assert b"started one in the background" in r.stderr
        assert r.stdout.split()[:2] == [b"REPOSITORY", b"TAG"]
        assert DEFAULT_SOCK.exists()
        r = run(["images"], env)  # now it answers: no second daemon
        assert b"started" not in r.stderr
    finally:
        pid = Path("/var/run/dockyard.pid")
        if pid.exists():
            try:
                os.kill(int(pid.read_text().strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass
            deadline = time.time() + 20
            while pid.exists() and time.time() < deadline:
                time.sleep(0.1)
        unmount_all(DEFAULT_ROOT)
        leaked = mounts_under(DEFAULT_ROOT)
        shutil.rmtree(DEFAULT_ROOT, ignore_errors=True)
        shutil.rmtree("/var/run/dockyard", ignore_errors=True)
        assert not leaked
