"""`dockyard context ...` beside docker's CLI (28.x): the same output for the
same commands, in separate config dirs; contexts one CLI makes serve the
other; and our CLI reaching a daemon through a context (unix socket, TLS)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import Daemon, mounts_under, unmount_all
from test_tls import make_pki

# docker's `context` as of 28 (no --kubeconfig); Debian's 20.10 differs
DOCKER28 = next((p for p in ("/usr/local/bin/docker", shutil.which("docker") or "")
                 if p and os.path.exists(p) and subprocess.run(
                     [p, "--version"], capture_output=True).stdout.startswith(
                         b"Docker version 28.")), None)
pytestmark = pytest.mark.skipif(DOCKER28 is None, reason="docker CLI 28 is not installed")

HOST_VARS = ("DOCKER_HOST", "DOCKYARD_HOST", "DOCKER_CONTEXT", "DOCKYARD_CONTEXT",
             "DOCKER_TLS_VERIFY", "DOCKYARD_TLS_VERIFY", "DOCKER_CERT_PATH",
             "DOCKYARD_CERT_PATH")


@functools.cache
def _click_app():
    """The Typer app as a click command, built once (Typer builds it anew at
    every call otherwise: a tenth of a second)."""
    import typer

    from dockyard.cli.main import make_app

    return typer.main.get_command(make_app())


class Pair:
    """Our CLI and docker's, each with a config dir of its own. Our dir is
    named `dockyard-cfg` and docker's `docker-cfg`, so that outputs compare
    once "dockyard" reads "docker" (paths, program name, default socket)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.ours_cfg = base / "dockyard-cfg"
        self.docker_cfg = base / "docker-cfg"
        self.empty = base / "empty"  # the docker layer our CLI reads under its own
        self.ours_cwd, self.theirs_cwd = base / "ours-cwd", base / "theirs-cwd"
        self.ours_cwd.mkdir()
        self.theirs_cwd.mkdir()

    def env(self, which: str, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in HOST_VARS}
        env["DOCKYARD_NO_AUTOSTART"] = "1"
        if which == "ours":
            env.update(DOCKYARD_CONFIG=str(self.ours_cfg), DOCKER_CONFIG=str(self.empty))
        else:
            env.update(DOCKER_CONFIG=str(self.docker_cfg))
        env.update(extra)
        return env

    def ours(self, *args: str, input: bytes | None = None, **env: str
             ) -> subprocess.CompletedProcess:
        """Our CLI in this process (a second of start-up saved per command on a
        busy machine): Typer's runner with the environment `env()` gives."""
        from click.testing import CliRunner

        from dockyard.cli.common import G

        G._client = None
        want = self.env("ours", **env)
        patch: dict[str, str | None] = {k: None for k in os.environ if k not in want}
        patch.update(want)
        cwd = os.getcwd()
        os.chdir(self.ours_cwd)
        try:
            r = CliRunner().invoke(_click_app(), list(args), input=input, env=patch)
        finally:
            os.chdir(cwd)
            G._client = None
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        return subprocess.CompletedProcess(args, r.exit_code, r.stdout_bytes, r.stderr_bytes)

    def ours_process(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dockyard", *args], capture_output=True,
                              env=self.env("ours", **env), cwd=self.ours_cwd, timeout=60)

    def theirs(self, *args: str, input: bytes | None = None, **env: str
               ) -> subprocess.CompletedProcess:
        return subprocess.run([DOCKER28, *args], capture_output=True,
                              env=self.env("theirs", **env), input=input, cwd=self.theirs_cwd,
                              timeout=60)

    def same(self, *args: str, input: bytes | None = None, **env: str) -> bytes:
        """Run both; assert the same exit code, stdout and stderr."""
        o, t = self.ours(*args, input=input, **env), self.theirs(*args, input=input, **env)
        got = [o.returncode, o.stdout.replace(b"dockyard", b"docker"),
               o.stderr.replace(b"dockyard", b"docker")]
        want = [t.returncode, t.stdout, t.stderr]
        if b"unrecognized config key" in t.stderr:
            # docker lists them from a Go map, in a random order, the message's
            # prefix on whichever comes first: the prefix, then the keys sorted
            def keys(err: bytes) -> tuple[int, list[bytes]]:
                prefix = b"unable to create docker endpoint config: "
                return err.count(prefix), sorted(err.replace(prefix, b"").splitlines())
            got[2], want[2] = keys(got[2]), keys(want[2])
        if b"/var/run/dockyard.sock" in o.stdout and b"ENDPOINT" in o.stdout:
            # our default socket's name is longer: table columns move
            got[1], want[1] = re.sub(b" +", b" ", got[1]), re.sub(b" +", b" ", want[1])
        assert got == want, args
        return t.stdout


@pytest.fixture
def pair(tmp_path):
    return Pair(tmp_path)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki") / "ok")


def test_store_commands_match_docker(pair, pki):
    """create/ls/inspect/use/show/update/rm, their errors, -c/-H and the
    environment: what docker's CLI prints, and the same files on disk."""
    ca, cert, key = pki / "ca.pem", pki / "client-cert.pem", pki / "client-key.pem"
    tls = f"host=tcp://127.0.0.1:2376,ca={ca},cert={cert},key={key}"
    for args in (
        ["context", "ls"], ["context", "show"], ["context", "inspect"],
        ["context", "create", "a1", "--docker", "host=unix:///tmp/x.sock",
         "--description", "hi <&>"],
        ["context", "create", "a1", "--docker", "host=unix:///tmp/x.sock"],
        ["context", "create", "default", "--docker", "host=unix:///x"],
        ["context", "create", "b ad", "--docker", "host=unix:///x"],
        ["context", "create", "a", "--docker", "host=unix:///x"],
        ["context", "create", "a2"],  # a copy of the current (default) context
        ["context", "create", "a3", "--docker", "foo=1,bar=2"],
        ["context", "create", "a3", "--docker", "host=tcp://h:2376,skip-tls-verify=yes"],
        ["context", "create", "a3", "--docker", "host=tcp://h,ca=/nonexistent"],
        ["context", "create", "a3", "--docker", "host=nonsense"],
        ["context", "create", "a3", "--docker", "ssh://x"],
        ["context", "create", "a3", "--from", "nope"],
        ["context", "create", "a3", "--from", "a1", "--docker", "host=unix:///x"],
        ["context", "create", "a3", "--docker", "host=tcp://h:1,skip-tls-verify"],
        ["context", "create", "a10", "--docker", "skip-tls-verify=T"],
        ["context", "create", "t1", "--docker", tls, "--description", "tls"],
        ["context", "create", "t2", "--docker", f"host=tcp://127.0.0.1:2376,ca={ca},"
         "skip-tls-verify=true"],
        ["context", "create", "t3", "--docker", f"host=tcp://h:1,ca={key}"],
        ["context", "create", "t3", "--docker", f"host=tcp://h:1,cert={cert},key={cert}"],
        ["context", "create", "t5", "--from", "t1"],
        ["context", "create", "t6", "--docker", "from=t1"],
        ["context", "create"], ["context", "create", "x1", "x2"],
        ["context", "ls"], ["context", "ls", "-q"], ["context", "ls", "--format", "json"],
        ["context", "ls", "--format", "table {{.Name}}\t{{.Current}}"],
        ["context", "ls", "--format", "{{.Nope}}"], ["context", "ls", "x"],
        ["context", "inspect", "a1", "a2", "a3", "a10", "t1", "t2", "t5", "t6", "default"],
        ["context", "inspect", "a1", "nope", "default"],
        ["context", "inspect", "-f", "{{.Name}} {{json .Endpoints}} {{.TLSMaterial}}", "t1",
         "nope", "default"],
        ["context", "inspect", "-f", "{{json .}}", "a1"],
        ["context", "inspect", "-f", "{{.Metadata.Metadata.Description}}", "a1"],
        ["context", "inspect", "-f", "{{.Metadata.Description}}", "a1"],
        ["context", "inspect", "-f", "json", "a1", "default"],
        ["context", "inspect", "-f", "{{.Name", "a1"],
        ["context", "use", "nope"], ["context", "use", "a"], ["context", "use"],
        ["context", "use", "a1"], ["context", "show"], ["context", "ls"],
        ["context", "inspect", "-f", "{{.Name}}"],
        ["context", "show", "x"],
        ["context", "rm", "a1"], ["context", "rm", "default"], ["context", "rm"],
        ["context", "rm", "nope", "a2", "default"], ["context", "rm", "-f", "nope"],
        ["context", "rm", "-f", "a1"], ["context", "show"],
        ["context", "update", "t1", "--description", "new"],
        ["context", "update", "t1", "--docker", "host=unix:///z.sock"],
        ["context", "update", "nope", "--description", "x"],
        ["context", "update", "default", "--description", "x"],
        ["context", "inspect", "t1"],
        ["context", "export", "nope", "-"], ["context", "export", "a", "-"],
        ["context", "export"],
        ["context", "import", "x"], ["context", "import", "i1", "/nonexistent"],
        ["context", "import", "i1", "/etc/passwd"],
        ["context", "import", "default", "/etc/passwd"],
        ["-H", "unix:///x", "-c", "t1", "context", "ls"],
        ["-c", "t1", "-H", "unix:///x", "ps"],
        ["-c", "nope", "ps"], ["-c", "nope", "version", "--format", "{{.Client.Context}}"],
        ["-H", "tcp://1.2.3.4", "context", "ls"],
        ["-H", "1.2.3.4:99", "context", "show"],
        ["--context", "t2", "context", "show"],
        ["--context", "t2", "context", "inspect", "-f", "{{.Name}}"],
    ):
        pair.same(*args)
    # the environment: DOCKER_CONTEXT over config.json, DOCKER_HOST over both
    pair.same("context", "use", "t2")
    for env in ({"DOCKER_CONTEXT": "t5"}, {"DOCKER_CONTEXT": "nope"},
                {"DOCKER_HOST": "unix:///h.sock"},
                {"DOCKER_HOST": "unix:///h.sock", "DOCKER_CONTEXT": "t5"}):
        for args in (["context", "show"], ["context", "ls"], ["context", "use", "t6"],
                     ["context", "use", "t2"], ["context", "create", "e1"],
                     ["context", "inspect", "-f", "{{.Name}} {{.Endpoints.docker.Host}}", "e1"],
                     ["context", "rm", "e1"], ["ps"]):
            pair.same(*args, **env)
    pair.same("context", "rm", "-f", "t2")
    pair.same("context", "show")

    # the stores hold the same files
    def files(root: Path) -> dict[str, tuple[bytes, int]]:
        out = {}
        for p in sorted((root / "contexts").rglob("*")):
            if p.is_file():
                out[str(p.relative_to(root))] = (p.read_bytes(), p.stat().st_mode & 0o777)
        return out

    assert files(pair.ours_cfg) == files(pair.docker_cfg)
    assert files(pair.ours_cfg)
    # neither names a current context any more
    for cfg in (pair.ours_cfg, pair.docker_cfg):
        assert "currentContext" not in (cfg / "config.json").read_text()


def test_export_import_match_docker(pair, pki):
    """export writes docker's archive (docker's own stops short of the tar's
    padding and end blocks: its bytes start ours), and each CLI imports the
    other's."""
    ca, cert, key = pki / "ca.pem", pki / "client-cert.pem", pki / "client-key.pem"
    args = ["context", "create", "t1", "--docker",
            f"host=tcp://127.0.0.1:2376,ca={ca},cert={cert},key={key}", "--description", "d"]
    pair.same(*args)
    pair.same("context", "export", "t1")  # to t1.dockercontext
    pair.same("context", "export", "t1")  # which now exists
    assert ((pair.ours_cwd / "t1.dockercontext").read_bytes()
            .startswith((pair.theirs_cwd / "t1.dockercontext").read_bytes()))
    o, t = pair.ours("context", "export", "t1", "-"), pair.theirs("context", "export", "t1", "-")
    assert o.returncode == t.returncode == 0 and o.stderr == t.stderr == b""
    assert o.stdout.startswith(t.stdout) and len(o.stdout) % 512 == 0
    o2 = pair.ours("context", "export", "default", "-")
    t2 = pair.theirs("context", "export", "default", "-")
    assert o2.returncode == t2.returncode == 0
    (pair.base / "ours.tar").write_bytes(o.stdout)
    (pair.base / "theirs.tar").write_bytes(t.stdout)
    for name, src in (("from-ours", "ours.tar"), ("from-theirs", "theirs.tar")):
        pair.same("context", "import", name, str(pair.base / src))
        pair.same("context", "import", name, str(pair.base / src))
        pair.same("context", "inspect", name)
    oi = pair.ours("context", "import", "stdin", "-", input=t.stdout)
    ti = pair.theirs("context", "import", "stdin", "-", input=o.stdout)
    assert oi.returncode == ti.returncode == 0, (oi.stderr, ti.stderr)
    pair.same("context", "inspect", "-f", "{{.Name}} {{.}} {{.TLSMaterial}}", "stdin",
              "from-ours")
    pair.same("context", "import", "dflt", "-", input=t2.stdout)
    pair.same("context", "inspect", "-f", "{{.Name}} {{.Metadata.Metadata}}", "dflt")
    # not a context archive
    import io
    import tarfile
    import zipfile

    for fname, members in (("other.tar", {"other.txt": b"x"}), ("tls.tar", {"tls/x": b"x"}),
                           ("empty.tar", {}), ("dots.tar", {"tls/../meta.json": b"{}"})):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for n, data in members.items():
                info = tarfile.TarInfo(n)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        (pair.base / fname).write_bytes(buf.getvalue())
        pair.same("context", "import", "bad", str(pair.base / fname))
    (pair.base / "bad.zip").write_bytes(b"PK\x03\x04garbage")
    pair.same("context", "import", "bad", str(pair.base / "bad.zip"))
    with zipfile.ZipFile(pair.base / "ctx.zip", "w") as zf:
        zf.writestr("meta.json", b'{"Name":"x","Metadata":{},"Endpoints":{"docker":'
                                 b'{"Host":"unix:///z.sock","SkipTLSVerify":false}}}')
        zf.writestr("tls/docker/ca.pem", ca.read_bytes())
    pair.same("context", "import", "zipped", str(pair.base / "ctx.zip"))
    pair.same("context", "inspect", "zipped")


# --- reaching a daemon through a context ------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory, pki):
    """A Dockyard daemon on a unix socket and on TCP with mutual TLS."""
    base = tmp_path_factory.mktemp("ctxd")
    port = _free_port()
    d = Daemon(base, "vfs", ["-H", f"tcp://127.0.0.1:{port}", "--tlsverify", "--tlscacert",
                             str(pki / "ca.pem"), "--tlscert", str(pki / "server-cert.pem"),
                             "--tlskey", str(pki / "server-key.pem")])
    d.start()
    d.tcp = f"tcp://127.0.0.1:{port}"
    try:
        yield d
    finally:
        d.stop()
        unmount_all(base)
        assert not mounts_under(base)


def test_contexts_reach_the_daemon(pair, pki, tls_daemon):
    """Contexts made by docker's CLI take our CLI to the daemon, and ours take
    docker's: over the unix socket and over TLS (CA and client certificate
    from the store), chosen by -c, DOCKER_CONTEXT/DOCKYARD_CONTEXT or `use`."""
    d = tls_daemon
    ca, cert, key = pki / "ca.pem", pki / "client-cert.pem", pki / "client-key.pem"
    tls = f"host={d.tcp},ca={ca},cert={cert},key={key}"
    # docker makes them, in its config dir; our CLI reads docker's store under its own
    for name, spec in (("unix", f"host={d.host}"), ("tls", tls),
                       ("noca", f"host={d.tcp},cert={cert},key={key},skip-tls-verify=true"),
                       ("nocert", f"host={d.tcp},ca={ca}")):
        assert pair.theirs("context", "create", name, "--docker", spec).returncode == 0
    ours_env = {"DOCKER_CONFIG": str(pair.docker_cfg)}
    fmt = ["version", "--format", "{{.Client.Context}} {{.Server.ApiVersion}}"]
    for args, env in ((["-c", "unix"], {}), (["--context", "tls"], {}),
                      (["-c", "noca"], {}), ([], {"DOCKER_CONTEXT": "tls"}),
                      ([], {"DOCKYARD_CONTEXT": "unix", "DOCKER_CONTEXT": "nope"}),
                      ([], {"DOCKYARD_CONTEXT": "tls", "DOCKER_HOST": "unix:///nope"})):
        r = pair.ours(*args, *fmt, **ours_env, **env)
        name = args[1] if args else (env.get("DOCKYARD_CONTEXT") or env["DOCKER_CONTEXT"])
        assert (r.returncode, r.stdout) == (0, f"{name} 1.41\n".encode()), (args, env, r.stderr)
    # the real command line too (its fast path reads -c itself)
    for args, env in ((["-c", "tls"], {}), ([], {"DOCKER_CONTEXT": "unix"})):
        r = pair.ours_process(*args, *fmt, **ours_env, **env)
        name = args[1] if args else env["DOCKER_CONTEXT"]
        assert (r.returncode, r.stdout) == (0, f"{name} 1.41\n".encode()), (args, env, r.stderr)
    r = pair.ours_process("-c", "unix", "-H", d.host, "info")
    assert (r.returncode, r.stderr) == (
        1, b"conflicting options: cannot specify both --host and --context\n")
    # the daemon wants a client certificate: a context without one is refused
    assert pair.ours("-c", "nocert", "info", **ours_env).returncode == 1
    # -H and DOCKER_HOST beat a context; DOCKYARD_HOST beats DOCKYARD_CONTEXT
    assert pair.theirs("context", "use", "tls").returncode == 0
    r = pair.ours(*fmt, **ours_env)
    assert r.stdout == b"tls 1.41\n", r.stderr
    for args, env in ((["-H", d.host], {}), ([], {"DOCKER_HOST": d.host}),
                      ([], {"DOCKYARD_HOST": d.host, "DOCKYARD_CONTEXT": "nope"})):
        r = pair.ours(*args, *fmt, **ours_env, **env)
        assert r.stdout == b"default 1.41\n", (args, env, r.stderr)
    r = pair.ours("ps", "-q", **ours_env, DOCKER_HOST="unix:///nonexistent.sock")
    assert r.returncode == 1 and b"unix:///nonexistent.sock" in r.stderr

    # ours makes them, in its config dir; docker's CLI uses that store
    for name, spec in (("y-unix", f"host={d.host}"), ("y-tls", tls)):
        r = pair.ours("context", "create", name, "--docker", spec)
        assert r.returncode == 0, r.stderr
    r = pair.ours("context", "create", "y-copy", "--from", "y-tls", "--description", "copy")
    assert r.returncode == 0, r.stderr
    docker_env = {"DOCKER_CONFIG": str(pair.ours_cfg)}
    for name in ("y-unix", "y-tls", "y-copy"):
        r = pair.theirs("-c", name, "version", "--format", "{{.Server.APIVersion}}",
                        **docker_env)
        assert (r.returncode, r.stdout) == (0, b"1.41\n"), (name, r.stderr)
        r = pair.ours("-c", name, *fmt)
        assert (r.returncode, r.stdout) == (0, f"{name} 1.41\n".encode()), (name, r.stderr)
    # `dockyard context use` picks the daemon for later commands, and docker's too
    assert pair.ours("context", "use", "y-tls").returncode == 0
    r = pair.ours("info", "--format", "{{.Driver}}")
    assert r.stdout == b"vfs\n", r.stderr
    r = pair.theirs("info", "--format", "{{.Driver}}", **docker_env)
    assert r.stdout == b"vfs\n", r.stderr
    # Dockyard's own choice of "default" hides the one in docker's config.json
    assert pair.ours("context", "use", "default", **ours_env).returncode == 0
    assert pair.ours("context", "show", **ours_env).stdout == b"default\n"
    assert re.search(rb'"currentContext": "default"', (pair.ours_cfg / "config.json").read_bytes())
