"""Debian's docker-compose 1.29 against Dockyard: a project with a named
volume, a read-only bind and two services that reach each other by name on
the project's network; `down` keeps the named volume, `down -v` removes it.
The daemon runs in a network namespace of the test's own (compose makes a
bridge network)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from test_network import own_daemon, wget

COMPOSE = shutil.which("docker-compose") or "docker-compose"  # .ci/setup installs it

PROJECT = """
version: "3.8"
services:
  db:
    image: busybox
    stop_grace_period: 1s  # PID 1 ignores SIGTERM: no 10 s wait on each down
    command: sh -c "[ -f /data/f ] || echo stored > /data/f; exec httpd -f -p 80 -h /data"
    volumes:
      - dbdata:/data
  web:
    image: busybox
    stop_grace_period: 1s
    command: sleep 300
    volumes:
      - ./conf:/etc/app:ro
    depends_on: [db]
volumes:
  dbdata:
"""


def test_compose_volumes_binds_and_names(tmp_path_factory, tmp_path, busybox_tar):
    proj = tmp_path / "proj"
    (proj / "conf").mkdir(parents=True)
    (proj / "conf" / "app.conf").write_text("conf\n")
    (proj / "docker-compose.yml").write_text(PROJECT)
    with own_daemon(tmp_path_factory, busybox_tar, ["--dns", "192.0.2.2"]) as d:
        env = dict(d.env(), COMPOSE_INTERACTIVE_NO_CLI="1")

        def compose(*args: str) -> str:
            r = subprocess.run([COMPOSE, *args], cwd=proj, env=env, capture_output=True,
                               text=True, timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
            return r.stdout

        compose("up", "-d")
        out = compose("exec", "-T", "web", "sh", "-c",
                      "cat /etc/app/app.conf; touch /etc/app/x 2>&1; "
                      "printf 'GET /f HTTP/1.0\\r\\n\\r\\n' | nc -w 3 db 80")
        assert out.startswith("conf\n") and "Read-only file system" in out
        assert out.endswith("stored\n")
        compose("exec", "-T", "db", "sh", "-c", "echo changed > /data/f")
        compose("down")
        assert d.docker("volume", "ls", "-q").stdout.split() == ["proj_dbdata"]
        compose("up", "-d")
        out = compose("exec", "-T", "web", "sh", "-c",
                      "printf 'GET /f HTTP/1.0\\r\\n\\r\\n' | nc -w 3 db 80")
        assert out.endswith("changed\n")  # the named volume kept its data
        compose("down", "-v")
        assert d.docker("volume", "ls", "-q").stdout == ""
        assert d.docker("ps", "-aq").stdout == ""
        nets = d.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert nets == ["bridge", "host", "none"]


APPS = Path(__file__).parent / "compose"


def test_compose_webapp_lifecycle(tmp_path_factory, tmp_path, busybox_tar):
    """tests/compose/webapp: depends_on service_healthy, a published port,
    `up` twice without recreating, logs -f, exec, restart, scale, down -v
    leaving nothing."""
    proj = tmp_path / "webapp"
    shutil.copytree(APPS / "webapp", proj)
    with own_daemon(tmp_path_factory, busybox_tar, []) as d:
        env = dict(d.env(), COMPOSE_INTERACTIVE_NO_CLI="1")

        def compose(*args: str) -> str:
            r = subprocess.run([COMPOSE, *args], cwd=proj, env=env, capture_output=True,
                               text=True, timeout=180)
            assert r.returncode == 0, r.stdout + r.stderr
            return r.stdout + r.stderr

        def inspect(service: str) -> dict:
            cid = compose("ps", "-q", service).split()[0]
            return json.loads(d.docker("inspect", cid).stdout)[0]

        compose("up", "-d")
        db, web = inspect("db"), inspect("web")
        healthy_at = min(h["End"] for h in db["State"]["Health"]["Log"] if h["ExitCode"] == 0)
        assert web["State"]["StartedAt"] > healthy_at  # started once db was healthy
        assert db["State"]["Health"]["Status"] == "healthy"
        ids = {s: inspect(s)["Id"] for s in ("db", "web", "worker")}
        out = compose("up", "-d")
        assert "is up-to-date" in out and "Recreating" not in out
        assert {s: inspect(s)["Id"] for s in ids} == ids
        assert wget(d, "http://127.0.0.1:8080/") == "web\n"
        assert compose("exec", "-T", "web", "cat", "/etc/app/app.conf") == "app-conf\n"

        follow = subprocess.Popen([COMPOSE, "logs", "-f", "--no-color", "worker"], cwd=proj,
                                  env=env, stdout=subprocess.PIPE, text=True)
        try:
            seen = []
            while len(seen) < 3:  # after compose's own "Attaching to ..." line
                line = follow.stdout.readline()
                assert line, seen
                if "tick" in line:
                    seen.append(line)
        finally:
            follow.kill()
            follow.wait()

        started = inspect("worker")["State"]["StartedAt"]
        compose("restart", "worker")
        again = inspect("worker")
        assert again["Id"] == ids["worker"] and again["State"]["StartedAt"] > started
        compose("up", "-d", "--scale", "worker=3")
        assert len(compose("ps", "-q", "worker").split()) == 3
        assert inspect("db")["Id"] == ids["db"]

        compose("down", "-v")
        assert d.docker("ps", "-aq").stdout == ""
        assert d.docker("volume", "ls", "-q").stdout == ""
        nets = d.docker("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert nets == ["bridge", "host", "none"]
