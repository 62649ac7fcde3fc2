"""Debian's docker-compose 1.29 against Dockyard: a project with a named
volume, a read-only bind and two services that reach each other by name on
the project's network; `down` keeps the named volume, `down -v` removes it.
The daemon runs in a network namespace of the test's own (compose makes a
bridge network)."""

from __future__ import annotations

import shutil
import subprocess

from test_network import own_daemon

COMPOSE = shutil.which("docker-compose") or "docker-compose"  # .ci/setup installs it

PROJECT = """
version: "3.8"
services:
  db:
    image: busybox
    command: sh -c "[ -f /data/f ] || echo stored > /data/f; exec httpd -f -p 80 -h /data"
    volumes:
      - dbdata:/data
  web:
    image: busybox
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
