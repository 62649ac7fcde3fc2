"""Client behaviour that does not depend on a command: which host it talks to,
Docker's connection errors, start-up time budget helpers, and the autostart
of a local daemon."""

from __future__ import annotations

import os
import re
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


def test_version_flag_asks_no_daemon():
    """`--version`/`-v` print docker's one line and exit 0, whatever the host
    (docker: "Docker version 28.2.2, build e6534b4")."""
    env = dict(os.environ, DOCKYARD_HOST="unix:///nonexistent.sock", DOCKYARD_NO_AUTOSTART="1")
    from dockyard import __version__

    for args in (["--version"], ["-v"], ["-H", "unix:///nowhere.sock", "--version"]):
        r = run(args, env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.decode() == f"Dockyard version {__version__}, build dockyard\n"


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
    had_log = Path("/var/log/dockyard.log").exists()
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
        if not had_log:
            Path("/var/log/dockyard.log").unlink(missing_ok=True)
        assert not leaked


# Modules the request path of `run` and `version` must not load: each costs
# milliseconds at every CLI start (enum, re and regex compiles above all).
HEAVY = {"re", "enum", "typing", "json", "socket", "threading", "signal", "urllib.parse",
         "http.client", "typer", "click", "rich", "dataclasses", "ipaddress"}


def test_fast_path_stays_on_light_modules(daemon, busybox_tar):
    """`run`, `version` and `ps` through the `python -S` start the launcher uses:
    the modules loaded are checked after the command ran, in the process."""
    daemon.cli("import", str(busybox_tar), "lightpath:latest")
    probe = ("import sys, runpy\n"
             "sys.argv = ['dockyard'] + sys.argv[1:]\n"
             "try:\n"
             "    from dockyard.cli.entry import main; main()\n"
             "except SystemExit as e:\n"
             "    code = e.code\n"
             "print('MODULES', ' '.join(sorted(sys.modules)), file=sys.stderr)\n")
    pkg = str(Path(__file__).resolve().parents[1] / "python")
    env = dict(os.environ, DOCKYARD_HOST=daemon.host, DOCKYARD_NO_AUTOSTART="1",
               PYTHONPATH=pkg)
    for args in (["run", "lightpath", "/bin/busybox", "echo", "light"],
                 ["version", "--format", "{{.Server.ApiVersion}}"],
                 ["ps", "-aqn1", "--filter", "status=exited", "-f", "ancestor=lightpath"],
                 ["container", "ls", "--all", "--format", "{{.Image}}", "-l"],
                 ["images", "--format", "{{.Repository}}", "lightpath"],
                 ["image", "ls", "-q", "--no-trunc", "--filter", "reference=lightpath"]):
        r = subprocess.run([sys.executable, "-S", "-c", probe, *args], env=env,
                           capture_output=True, timeout=60)
        out = r.stderr.decode()
        loaded = set(out.rsplit("MODULES ", 1)[1].split())
        assert r.stdout.strip() in (b"light", b"1.41", b"lightpath") or \
            re.fullmatch(rb"([0-9a-f]{12}|sha256:[0-9a-f]{64})\n", r.stdout), r
        assert not loaded & HEAVY, sorted(loaded & HEAVY)
    daemon.cli("rm", daemon.cli("ps", "-aql").stdout.decode().strip())
    daemon.cli("rmi", "lightpath:latest")


def test_fast_flags_parse_as_pflag():
    """cli/fast.py's parse of a command's flags: short clusters, values joined
    or apart, lists, the last value winning; anything else goes to Typer."""
    from dockyard.cli.fast import FAST, parse_options

    spec = FAST["ps"][1]
    assert parse_options(["-aqn3", "-f", "a=b", "--filter=c=d", "--format", "x",
                          "--format=y"], spec) == {
        "all": True, "quiet": True, "last": 3, "filter": ["a=b", "c=d"], "format": "y"}
    assert parse_options(["-qn", "-1", "--last", "2", "-ls", "--no-trunc"], spec) == {
        "quiet": True, "last": 2, "latest": True, "size": True, "no_trunc": True}
    assert parse_options(["-fa=b"], spec) == {"filter": ["a=b"]}
    for bad in (["-x"], ["-ax"], ["extra"], ["-n"], ["-n", "x"], ["--all=true"],
                ["--nosuch"], ["--format"], ["-"], ["--"]):
        assert parse_options(bad, spec) is None, bad
    _, spec, _, args = FAST["images"]
    assert parse_options(["-q", "busybox", "--digests"], spec, args) == {
        "quiet": True, "repository": "busybox", "digests": True}
    assert parse_options(["a", "b"], spec, args) is None
    assert parse_options(["--", "a"], spec, args) is None


def test_fastjson_matches_json():
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from dockyard.cli import fastjson

    leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
    tree = st.recursive(leaf, lambda c: st.lists(c) | st.dictionaries(st.text(), c),
                        max_leaves=20)

    @settings(max_examples=200, derandomize=True)
    @given(tree)
    def check(v):
        assert fastjson.dumps(v) == json.dumps(v)
        assert fastjson.loads(json.dumps(v, indent=2).encode()) == json.loads(json.dumps(v))

    check()
    for bad in (b"", b"{", b"[1] 2", b"nul", b'{"a" 1}'):
        with pytest.raises(ValueError):
            fastjson.loads(bad)
    with pytest.raises(TypeError):
        fastjson.dumps({"x": object()})


def test_query_and_path_quoting_match_urllib():
    from urllib.parse import quote, urlencode

    from dockyard.cli.client import Client, path_quote

    c = Client("unix:///nonexistent.sock")
    params = {"filters": '{"label":["a=b c/d&é"]}', "all": True, "t": ["x y", "~z+"]}
    items = [("filters", params["filters"]), ("all", "1"), ("t", "x y"), ("t", "~z+")]
    assert c.url("/p", params) == f"/v1.41/p?{urlencode(items)}"
    for name in ("registry:5000/a/b@sha256:00", "ünï cödé", "a%2Fb"):
        assert path_quote(name) == quote(name, safe="/:@")


def test_installed_command_starts_without_site(daemon, tmp_path):
    """The `dockyard` script pip installs (python/dockyard.data/scripts) runs
    the interpreter beside it with -S, finds the package without site, falls
    back to site for what only site finds, and works through a symlink."""
    script = Path(__file__).resolve().parents[1] / "python" / "dockyard.data" / "scripts" / "dockyard"
    bindir = tmp_path / "venv" / "bin"
    bindir.mkdir(parents=True)
    shutil.copy(script, bindir / "dockyard")
    # a "python3" beside it that reports how it was started, then runs as asked
    (bindir / "python3").write_text(
        f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\nexec {sys.executable} \"$@\"\n")
    os.chmod(bindir / "python3", 0o755)
    os.symlink(bindir / "dockyard", tmp_path / "linked")
    env = dict(os.environ, DOCKYARD_HOST=daemon.host, DOCKYARD_NO_AUTOSTART="1",
               PYTHONPATH=str(script.parents[2]))
    for exe in (bindir / "dockyard", tmp_path / "linked"):
        r = subprocess.run([str(exe), "version", "--format", "{{.Server.ApiVersion}}"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert (r.returncode, r.stdout) == (0, "1.41\n"), r.stderr
        assert (tmp_path / "argv").read_text().split()[:2] == ["-S", str(bindir / "dockyard")]
    # the Typer side (what the fast path doesn't serve) too
    r = subprocess.run([str(bindir / "dockyard"), "image", "ls", "--help"], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "List images" in r.stdout, r.stderr


def test_pruned_app_answers_as_the_whole_one(monkeypatch, tmp_path):
    """The CLI builds only the command it runs (cli/main.py `app_for`): every
    command's and group's help, and the errors for unknown ones, are the
    whole app's."""
    monkeypatch.setenv("DOCKYARD_HOST", f"unix://{tmp_path}/none.sock")
    monkeypatch.setenv("DOCKYARD_NO_AUTOSTART", "1")
    import contextlib
    import io

    import typer.main

    from dockyard.cli.main import GROUPS, TOP, app_for, make_app

    app = make_app()
    whole = typer.main.get_command(app)

    def answer(cmd, argv):
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                cmd.main(argv, prog_name="dockyard")
            except SystemExit as e:
                return e.code, out.getvalue()
        return None, out.getvalue()

    argvs = [["--help"], ["nosuch"], ["container", "nosuch"], ["container"]]
    for c in app.registered_commands:
        argvs.append([c.name, "--help"])
    for g in app.registered_groups:
        argvs.append([g.name, "--help"])
        argvs += [[g.name, c.name, "--help"] for c in g.typer_instance.registered_commands]
    assert len(argvs) > 150
    # the tables name every command and group, each once
    assert [c.name for c in app.registered_commands] == list(TOP)
    assert [g.name for g in app.registered_groups] == list(GROUPS)
    for argv in argvs:
        small = app_for(argv)
        n = len(small.registered_commands) + len(small.registered_groups)
        assert (n > 1) == (argv[0] in ("--help", "nosuch")), argv
        assert answer(typer.main.get_command(small), argv) == answer(whole, argv), argv
