"""`dockyard build` side by side with the docker 20.10 CLI (DOCKER_BUILDKIT=0)
against a reference dockerd: the request each CLI sends (query, headers, the
context tar member by member, caught by a recording proxy on a unix socket),
the output, the errors and exit codes, -q, --iidfile, and the images built.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from conftest import DOCKER_CLI

pytestmark = pytest.mark.skipif(DOCKER_CLI is None, reason="the docker CLI is not installed")


# -- a recording proxy ----------------------------------------------------------------------

class Request:
    def __init__(self, line: str, headers: dict[str, str], body: bytes) -> None:
        self.method, self.target = line.split()[:2]
        self.headers = headers
        self.body = body
        path, _, self.query = self.target.partition("?")
        self.path = re.sub(r"^/v[\d.]+", "", path)

    def params(self) -> list[tuple[str, str]]:
        from urllib.parse import parse_qsl

        return parse_qsl(self.query, keep_blank_values=True)


def _parse_requests(data: bytes, ended: bool = True) -> list[Request]:
    """The requests in a client's stream; `ended`: the stream is all there
    is (the client is gone), so a chunked body cut at a chunk boundary is
    taken whole."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for h in lines[1:]:
            k, _, v = h.partition(":")
            headers[k.strip().lower()] = v.strip()
        body = b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size_line, eol, rest = rest.partition(b"\r\n")
                if not eol:
                    # The client may exit before the proxy reads its last
                    # chunk's terminator: the daemon answers once the tar
                    # ends. What the stream holds is the body.
                    if ended and size_line.strip() in (b"", b"0"):
                        out.append(Request(lines[0], headers, body))
                    return out
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, _, rest = rest.partition(b"\r\n")
                    break
                if len(rest) < size + 2:
                    return out
                body += rest[:size]
                rest = rest[size + 2:]
        else:
            n = int(headers.get("content-length", "0"))
            if len(rest) < n:
                return out
            body, rest = rest[:n], rest[n:]
        out.append(Request(lines[0], headers, body))
        data = rest
    return out


class Proxy:
    """Forwards a unix socket to dockerd, recording what clients send. With
    `fake_build`, `POST /build` is answered here (after reading the body)
    with that status and message instead."""

    def __init__(self, path: Path, upstream: str) -> None:
        self.path, self.upstream = path, upstream
        self.streams: list[bytearray] = []
        self.fake_build: tuple[int, str] | None = None
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.bind(str(path))
        self.sock.listen(16)
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            rec = bytearray()
            t = threading.Thread(target=self._serve, args=(c, rec), daemon=True)
            # listed before it runs: take() must not miss a connection that
            # is served before this thread would append it
            self.streams.append(rec)
            self.threads.append(t)
            t.start()

    def _serve(self, c: socket.socket, rec: bytearray) -> None:
        u = socket.socket(socket.AF_UNIX)
        u.connect(self.upstream)

        def back() -> None:
            try:
                while data := u.recv(65536):
                    c.sendall(data)
            except OSError:
                pass
            try:
                c.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        t = threading.Thread(target=back, daemon=True)
        t.start()
        try:
            while data := c.recv(65536):
                rec += data
                if self.fake_build and b"POST /v" in rec and b"/build?" in rec:
                    if self._answer_fake(c, rec):
                        u.shutdown(socket.SHUT_RDWR)
                        return
                    continue
                u.sendall(data)
            u.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            # The client is gone (or done): what dockerd still sends (a build
            # it keeps running, say) has nobody to read it.
            t.join(5)
            c.close()
            u.close()

    def _answer_fake(self, c: socket.socket, rec: bytearray) -> bool:
        start = rec.find(b"POST /v")
        reqs = _parse_requests(bytes(rec[start:]), ended=False)
        if not reqs:
            return False
        status, message = self.fake_build or (400, "")
        body = json.dumps({"message": message}).encode()
        c.sendall(b"HTTP/1.1 %d Bad Request\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (status, len(body), body))
        return True

    def take(self) -> list[Request]:
        for t in self.threads:
            t.join(60)
        reqs = [r for s in self.streams for r in _parse_requests(bytes(s))]
        self.streams.clear()
        self.threads.clear()
        return reqs

    def build_request(self) -> Request:
        builds = [r for r in self.take() if r.method == "POST" and r.path == "/build"]
        assert len(builds) == 1, builds
        return builds[0]

    def close(self) -> None:
        # Wake the accept thread and wait for it before the descriptor is
        # freed: a thread still calling accept() on a reused descriptor number
        # would take the next test's connections.
        self.sock.shutdown(socket.SHUT_RDWR)
        self.acceptor.join(10)
        self.sock.close()
        self.path.unlink(missing_ok=True)


# -- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ref(ref_dockerd, busybox_tar):
    before_images = set(ref_dockerd.docker("images", "-aq", "--no-trunc").stdout.split())
    before_ctrs = set(ref_dockerd.docker("ps", "-aq", "--no-trunc").stdout.split())
    imported = ref_dockerd.docker("image", "inspect", "busybox:latest",
                                  check=False).returncode != 0
    if imported:
        ref_dockerd.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    yield ref_dockerd
    ctrs = set(ref_dockerd.docker("ps", "-aq", "--no-trunc").stdout.split()) - before_ctrs
    if ctrs:
        ref_dockerd.docker("rm", "-f", *[c.decode() for c in ctrs], check=False)
    imgs = set(ref_dockerd.docker("images", "-aq", "--no-trunc").stdout.split()) - before_images
    if not imported:
        bb = ref_dockerd.docker("image", "inspect", "-f", "{{.Id}}", "busybox:latest").stdout
        imgs.discard(bb.strip())
    if imgs:
        ref_dockerd.docker("rmi", "-f", *[i.decode() for i in imgs], check=False)


@pytest.fixture
def proxy(ref, tmp_path):
    p = Proxy(tmp_path / "proxy.sock", str(ref.sock))
    yield p
    p.close()


class Runner:
    def __init__(self, proxy: Proxy, tmp: Path) -> None:
        self.proxy = proxy
        self.host = f"unix://{proxy.path}"
        self.config = tmp / "docker-config"
        self.config.mkdir(exist_ok=True)
        (tmp / "dockyard-config").mkdir(exist_ok=True)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("DOCKER_", "DOCKYARD_"))}
        self.env.update(DOCKER_HOST=self.host, DOCKYARD_HOST=self.host, DOCKER_BUILDKIT="0",
                        DOCKER_CONFIG=str(self.config), DOCKYARD_NO_AUTOSTART="1",
                        DOCKYARD_CONFIG=str(tmp / "dockyard-config"))

    def run(self, which: str, args: list[str], cwd: Path, input: bytes | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        cmd = [DOCKER_CLI, "build"] if which == "docker" else \
            [sys.executable, "-m", "dockyard", "build"]
        return subprocess.run([*cmd, *args], cwd=cwd, input=input, capture_output=True,
                              env=dict(self.env, **(env or {})), timeout=120)

    def both(self, args: list[str], cwd: Path, input: bytes | None = None,
             env: dict[str, str] | None = None):
        """Each CLI's result and its `POST /build` (None when none was sent)."""
        out = []
        for which in ("docker", "dockyard"):
            r = self.run(which, args, cwd, input, env)
            builds = [q for q in self.proxy.take()
                      if q.method == "POST" and q.path == "/build"]
            assert len(builds) <= 1
            out.append((r, builds[0] if builds else None))
        return out


@pytest.fixture
def cli(proxy, tmp_path):
    return Runner(proxy, tmp_path)


def norm(text: bytes) -> str:
    s = text.decode()
    s = re.sub(r"sha256:[0-9a-f]{64}", "sha256:<ID>", s)
    s = re.sub(r"\b[0-9a-f]{12}\b", "<id>", s)
    s = re.sub(r"\.dockerfile\.[0-9a-f]{20}", ".dockerfile.<random>", s)
    s = re.sub(r"docker-build-tempdockerfile-\w+", "docker-build-tempdockerfile-<x>", s)
    # A download's intermediate progress lines depend on how the reads fell:
    # only the last one of each is compared.
    s = re.sub(r"(Downloading build context from remote url: [^\r\n]*\r)+"
               r"(?=Downloading build context)", "", s)
    return s.replace("docker build", "dockyard build")


def members(body: bytes) -> list[tuple]:
    """The context tar, member by member, with what matters in each header."""
    if body[:2] == b"\x1f\x8b":
        import gzip

        body = gzip.decompress(body)
    out = []
    body += bytes(-len(body) % 512 + 1024)  # docker's tar may lack its end (see below)
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:") as t:
        for m in t:
            data = t.extractfile(m).read() if m.isreg() else b""
            name = re.sub(r"\.dockerfile\.[0-9a-f]{20}", ".dockerfile.<random>", m.name)
            data = re.sub(rb"\.dockerfile\.[0-9a-f]{20}", b".dockerfile.<random>", data)
            mtime = "now" if "<random>" in name or name == "Dockerfile" and m.mtime > \
                os.path.getmtime(__file__) else m.mtime
            out.append((name, m.type, oct(m.mode), m.uid, m.gid, m.uname, m.gname, m.size,
                        m.linkname, mtime, m.devmajor, m.devminor,
                        sorted(m.pax_headers.items()), data))
    return out


def raw_headers(body: bytes) -> list[bytes]:
    """The raw header blocks of a tar (USTAR and PAX) we write, to compare bytes."""
    blocks, pos = [], 0
    while pos + 512 <= len(body):
        blk = body[pos:pos + 512]
        if blk == bytes(512):
            break
        blocks.append(blk)
        size = int(blk[124:136].split(b"\0")[0] or b"0", 8)
        pos += 512
        if blk[156:157] in (b"0", b"x", b"\0"):
            pos += size + (-size % 512)
    return blocks


def assert_same_request(d, y, fixed_times: bool = True) -> None:
    assert d is not None and y is not None
    assert norm(y.query.encode()) == norm(d.query.encode())
    assert y.headers["x-registry-config"] == d.headers["x-registry-config"]
    assert y.headers["content-type"] == d.headers["content-type"]
    assert members(y.body) == members(d.body)
    if fixed_times and d.body[:2] != b"\x1f\x8b":
        assert y.body == d.body  # byte for byte, trailer included


def assert_same_result(d, y) -> None:
    assert (y.returncode, norm(y.stdout), norm(y.stderr)) == \
        (d.returncode, norm(d.stdout), norm(d.stderr))


# -- the context ----------------------------------------------------------------------------

def make_context(root: Path) -> Path:
    ctx = root / "ctx"
    (ctx / "sub" / "deep").mkdir(parents=True)
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\nCMD [\"sh\"]\n")
    (ctx / "a.txt").write_text("a\n")
    (ctx / "empty").write_bytes(b"")
    (ctx / "exec.sh").write_text("#!/bin/sh\n")
    (ctx / "exec.sh").chmod(0o755)
    (ctx / "setuid").write_text("x")
    (ctx / "setuid").chmod(0o4750)
    (ctx / "sub" / "b.bin").write_bytes(os.urandom(3000))
    (ctx / "sub" / "deep" / "c").write_text("c")
    os.link(ctx / "sub" / "deep" / "c", ctx / "hardlink")
    (ctx / "link").symlink_to("sub/deep/c")
    (ctx / "dangling").symlink_to("nowhere")
    long_dir = ctx / ("d" * 60) / ("e" * 60)
    long_dir.mkdir(parents=True)
    (long_dir / "long-file-name").write_text("long")
    (ctx / ("f" * 120)).write_text("longer than a USTAR name")
    (ctx / "ünïcode-é").write_text("utf8")
    (ctx / "owned").write_text("owned")
    os.chown(ctx / "owned", 65534, 65534)
    (ctx / "unknown-owner").write_text("x")
    os.chown(ctx / "unknown-owner", 54321, 54321)
    (ctx / "ignored").mkdir()
    (ctx / "ignored" / "x").write_text("x")
    (ctx / "ignored" / "keep").write_text("keep")
    (ctx / "skip.log").write_text("log")
    os.mkfifo(ctx / "fifo")
    (ctx / ".dockerignore").write_text("# comment\nignored\n!ignored/keep\n*.log\n")
    for p in sorted(ctx.rglob("*"), reverse=True):
        if not p.is_symlink():
            os.utime(p, (1_600_000_000, 1_600_000_000 + 0.7))
    return ctx


@pytest.fixture
def ctx(tmp_path):
    return make_context(tmp_path)


# -- tests ----------------------------------------------------------------------------------

def test_directory_context_same_request_output_and_image(cli, ctx, tmp_path, ref):
    results = cli.both(["--no-cache", "-t", "bcli-dir:1", "--iidfile", str(tmp_path / "iid"),
                        "."], ctx)
    (d, dreq), (y, yreq) = results
    assert d.returncode == 0, d.stderr
    assert_same_result(d, y)
    assert_same_request(dreq, yreq)
    names = [m[0] for m in members(yreq.body)]
    assert "ignored/keep" in names and "ignored/" not in names and "skip.log" not in names
    assert ".dockerignore" in names and "fifo" in names
    assert (tmp_path / "iid").read_text().startswith("sha256:")


def test_cached_rebuild_of_docker_build_hits_every_step(cli, ctx, tmp_path):
    """The daemon's COPY cache key hashes each file's tar header and data: a
    rebuild from our tar that hits the cache of docker's build is one with
    the same members, modes, owners and contents."""
    d = cli.run("docker", ["--no-cache", "--iidfile", str(tmp_path / "d"), "."], ctx)
    assert d.returncode == 0, d.stderr
    y = cli.run("dockyard", ["--iidfile", str(tmp_path / "y"), "."], ctx)
    assert y.returncode == 0, y.stderr
    assert (tmp_path / "y").read_text() == (tmp_path / "d").read_text()
    assert y.stdout.decode().count("Using cache") == 2
    cli.proxy.take()


@pytest.mark.parametrize("case", ["outside", "stdin-file", "stdin-dockerfile", "stdin-tar",
                                  "compress", "lowercase", "file-in-subdir", "ignored-build-files"])
def test_context_variants(cli, ctx, tmp_path, case):
    args, stdin, cwd = ["--no-cache"], None, ctx
    if case == "outside":
        (tmp_path / "Other.dockerfile").write_text("FROM busybox\nCOPY a.txt /\n")
        args += ["-f", str(tmp_path / "Other.dockerfile"), "."]
    elif case == "stdin-file":
        stdin = b"FROM busybox\nCOPY a.txt /\n"
        args += ["-f", "-", "."]
    elif case == "stdin-dockerfile":
        stdin = b"FROM busybox\nENV A=1\n"
        args += ["-"]
    elif case == "stdin-tar":
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = b"FROM busybox\nCOPY x /\n"
            for name, content in (("Dockerfile.alt", data), ("x", b"x")):
                info = tarfile.TarInfo(name)
                info.size = len(content)
                t.addfile(info, io.BytesIO(content))
        stdin = buf.getvalue()
        args += ["-f", "Dockerfile.alt", "-"]
    elif case == "compress":
        args += ["--compress", "."]
    elif case == "lowercase":
        (ctx / "Dockerfile").rename(ctx / "dockerfile")
        args += ["."]
    elif case == "file-in-subdir":
        (ctx / "sub" / "Dockerfile.sub").write_text("FROM busybox\nCOPY sub /sub\n")
        args += ["-f", "ctx/sub/Dockerfile.sub", "ctx"]
        cwd = tmp_path
    elif case == "ignored-build-files":
        (ctx / ".dockerignore").write_text("Dockerfile\n.dockerignore\n*.txt\n")
        args += ["."]
    (d, dreq), (y, yreq) = cli.both(args, cwd, input=stdin)
    assert d.returncode == 0, d.stderr
    if case in ("outside", "stdin-file", "compress"):
        # The sizes differ: docker's gzip is Go's deflate, and docker's tar
        # with an added Dockerfile lacks its last padding and trailer (its
        # ReplaceFileTarWrapper closes the pipe before the tar writer); ours
        # is a whole tar with the same members.
        for r in (d, y):
            r.stdout = re.sub(rb"(daemon) +[\d.]+k?B", rb"\1 <size>", r.stdout)
    assert_same_result(d, y)
    fixed = case not in ("outside", "stdin-file", "stdin-dockerfile")
    assert_same_request(dreq, yreq, fixed_times=fixed)


def test_flags_become_the_same_query(cli, ctx, tmp_path):
    """Every flag, answered by the proxy (so --pull needs no registry): the
    query strings are equal byte for byte, and so is the error shown. (One
    ulimit name only: docker sends several in Go's random map order.)"""
    cli.proxy.fake_build = (400, "no build today")
    cfg = {"auths": {"https://index.docker.io/v1/": {"auth": "dXNlcjpwYXNz"},
                     "reg.example:5000": {"auth": "YTpi", "email": "a@b.c"}},
           "proxies": {"default": {"httpProxy": "http://proxy:3128", "noProxy": "localhost"}}}
    (cli.config / "config.json").write_text(json.dumps(cfg))
    flag_sets = [
        ["-t", "a", "-t", "b/c:1", "--build-arg", "A=1", "--build-arg", "FROM_ENV",
         "--build-arg", "UNSET_ARG", "--build-arg", "http_proxy=mine", "--label", "x=1",
         "--label", "y", "--label", "z=<&>"],
        ["--target", "stage", "--network", "none", "--add-host", "h:1.2.3.4",
         "--add-host", "v6:::1", "--shm-size", "64m", "-m", "256m", "--memory-swap", "-1",
         "-c", "512", "--cpu-period", "100000", "--cpu-quota", "50000",
         "--cpuset-cpus", "0", "--cpuset-mems", "0", "--cgroup-parent", "cg"],
        ["--cache-from", "a,b", "--cache-from", "c", "--ulimit", "nproc=5",
         "--ulimit", "nproc=10", "--pull", "--no-cache", "--force-rm", "--rm=false",
         "--isolation", "default", "--platform", "Linux/AMD64", "--security-opt", "x=y"],
        ["-q", "--compress", "--iidfile", str(tmp_path / "iid"), "-f", "Dockerfile",
         "--disable-content-trust"],
    ]
    for flags in flag_sets:
        (d, dreq), (y, yreq) = cli.both([*flags, "."], ctx, env={"FROM_ENV": "env value"})
        assert d.returncode == 1
        if "--compress" in flags:  # Go's deflate and zlib differ by a few bytes
            for r in (d, y):
                r.stderr = re.sub(rb"(daemon) +[\d.]+k?B", rb"\1 <size>", r.stderr)
        assert_same_result(d, y)
        assert norm(yreq.query.encode()) == norm(dreq.query.encode()), flags
        assert yreq.headers["x-registry-config"] == dreq.headers["x-registry-config"]
        assert members(yreq.body) == members(dreq.body)


@pytest.mark.parametrize("args", [
    ["--foo", "."], ["-x", "."], [], [".", "."], ["nope"], ["-f", "nofile", "."],
    ["-f", "nodir/x", "."], ["Dockerfile"], ["-t", "UP", "."], ["-t", "a::b", "."],
    ["--build-arg", "=x", "."], ["--label", "=x", "."], ["--label", " a b=1", "."],
    ["--add-host", "nohost", "."], ["--add-host", "h:notip", "."],
    ["--ulimit", "bad", "."], ["--ulimit", "nofile=2:1", "."], ["--ulimit", "foo=1", "."],
    ["-m", "lots", "."], ["--shm-size", "1x", "."], ["-c", "x", "."],
    ["--rm=maybe", "."], ["-q=x", "."], ["-t"], ["--target"],
    ["-f", "-", "-"], ["--squash", "."],
], ids=lambda a: " ".join(a) or "none")
def test_usage_and_context_errors(cli, ctx, args):
    (d, _), (y, _) = cli.both(args, ctx)
    assert d.returncode != 0
    assert_same_result(d, y)


@pytest.mark.parametrize("dockerfile,quiet", [
    ("FROM busybox\nRUN echo err >&2 && exit 3\n", False),  # one stream: no race
    ("FROM busybox\nRUN echo out && exit 3\n", True),
    ("FROM busybox\nHELLO world\n", False),
    ("FROM busybox\nHELLO world\n", True),
    ("FROM nosuchimage-bcli:1\n", False),
    ("FROM busybox AS one\nFROM one\nENV A=1\n", True),
], ids=["run-fails", "run-fails-quiet", "parse-error", "parse-error-quiet", "no-base",
        "quiet-ok"])
def test_daemon_errors_and_quiet(cli, tmp_path, dockerfile, quiet):
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    args = ["--no-cache", "--iidfile", str(tmp_path / "iid")] + (["-q"] if quiet else []) + ["."]
    results = []
    for which in ("docker", "dockyard"):
        r = cli.run(which, args, ctx)
        iid = (tmp_path / "iid").read_text() if (tmp_path / "iid").exists() else None
        results.append((r, iid))
    cli.proxy.take()
    (d, diid), (y, yiid) = results
    assert_same_result(d, y)
    assert (diid is None) == (yiid is None)
    if diid is not None:
        assert re.sub(r"[0-9a-f]{64}", "X", yiid) == re.sub(r"[0-9a-f]{64}", "X", diid)


def test_terminal_display_matches(cli, ctx, tmp_path):
    """On a terminal (a pty), the same bytes as docker's, escapes included."""
    import pty

    outs = []
    for which in ("docker", "dockyard"):
        cmd = [DOCKER_CLI, "build"] if which == "docker" else \
            [sys.executable, "-m", "dockyard", "build"]
        master, slave = pty.openpty()
        p = subprocess.Popen([*cmd, "--no-cache", "."], cwd=ctx, stdin=subprocess.DEVNULL,
                             stdout=slave, stderr=slave, env=cli.env)
        os.close(slave)
        buf = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
        os.close(master)
        assert p.wait(60) == 0, buf
        outs.append(norm(buf))
    cli.proxy.take()
    assert outs[1] == outs[0]


def test_image_and_builder_aliases(cli, ctx):
    env = cli.env
    for cmd in (["image", "build"], ["builder", "build"]):
        r = subprocess.run([sys.executable, "-m", "dockyard", *cmd, "-q", "--no-cache", "."],
                           cwd=ctx, env=env, capture_output=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert re.fullmatch(rb"sha256:[0-9a-f]{64}\n", r.stdout)
    cli.proxy.take()
    for cmd in (["build"], ["image", "build"], ["builder", "build"]):
        d = subprocess.run([DOCKER_CLI, *cmd, "--help"], env=env, capture_output=True,
                           stdin=subprocess.DEVNULL)
        y = subprocess.run([sys.executable, "-m", "dockyard", *cmd, "--help"], env=env,
                           capture_output=True, stdin=subprocess.DEVNULL)
        assert y.returncode == d.returncode == 0
        assert y.stdout == d.stdout.replace(b"docker", b"dockyard")


# -- against Dockyard's own daemon (once it serves POST /build) -----------------------------

@pytest.fixture(scope="module")
def yard(daemon, bb):
    r = daemon.client().request("POST", "/build", body=b"", check=False)
    r.close()
    if r.status in (404, 405):
        pytest.skip("this Dockyard daemon does not serve POST /build yet")
    return daemon


def test_both_clis_on_dockyard(yard, tmp_path):
    """docker's CLI and ours against Dockyard: our rebuild of docker's build
    all from the cache (the same image); a Dockerfile outside the context
    (whose tar docker cuts short) builds with both."""
    ctx = make_context(tmp_path)
    (ctx / "fifo").unlink()  # (COPY of a fifo is the executor's matter, not the CLI's)
    (tmp_path / "Out.dockerfile").write_text("FROM busybox\nCOPY . /ctx/\nCMD [\"sh\"]\n")
    env = yard.env()
    env.update(DOCKER_BUILDKIT="0", DOCKER_CONFIG=str(tmp_path / "dc"),
               DOCKYARD_CONFIG=str(tmp_path / "yc"))
    runs = {}
    for name, cmd in (("docker", [DOCKER_CLI, "build"]),
                      ("dockyard", [sys.executable, "-m", "dockyard", "build"])):
        for extra in ([], ["-f", str(tmp_path / "Out.dockerfile")]):
            iid = tmp_path / f"iid-{name}-{len(extra)}"
            r = subprocess.run([*cmd, *extra, "--iidfile", str(iid), "."], cwd=ctx, env=env,
                               capture_output=True, timeout=120)
            assert r.returncode == 0, r.stderr
            runs[name, len(extra)] = (r, iid.read_text())
    assert runs["dockyard", 0][1] == runs["docker", 0][1]
    assert runs["dockyard", 0][0].stdout.count(b"Using cache") == 2
    # With -f outside the context each CLI adds the Dockerfile under a random
    # name and appends it to .dockerignore, which `COPY .` then copies: a
    # different layer each time, with dockerd too. Both build, both hit FROM.
    for name in ("docker", "dockyard"):
        assert runs[name, 2][0].stdout.count(b"Step 1/3 : FROM busybox") == 1
    for n in (0, 2):
        yard.cli("rmi", runs["docker", n][1])


@pytest.fixture
def web(tmp_path):
    """A static HTTP server on loopback over tmp_path/www: a Dockerfile, a
    tar context, and a git repository served the dumb way."""
    import functools
    import http.server
    import shutil

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    www = tmp_path / "www"
    www.mkdir()
    (www / "Dockerfile").write_text("FROM busybox\nENV FROM_URL=1\n")
    with tarfile.open(www / "ctx.tar", "w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY x /\n"), ("x", b"x" * 5000)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_600_000_000
            t.addfile(info, io.BytesIO(data))
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "Dockerfile").write_text("FROM busybox\nCOPY f /\n")
    (src / "f").write_text("f\n")
    (src / "sub" / "Dockerfile").write_text("FROM busybox\nCOPY g /\n")
    (src / "sub" / "g").write_text("g\n")
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "init.defaultBranch=master"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "ctx"]):
        subprocess.run([*git, *args], cwd=src, check=True, capture_output=True)
    subprocess.run([*git, "clone", "-q", "--bare", str(src), str(www / "repo.git")], check=True)
    subprocess.run(["git", "update-server-info"], cwd=www / "repo.git", check=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize("path", ["/Dockerfile", "/ctx.tar", "/nope", "/repo.git",
                                  "/repo.git#master:sub", "/repo.git#:nosub", "/nope.git"])
def test_remote_contexts(cli, web, tmp_path, path):
    # The clones go in the test's own temporary directory: the docker CLI
    # leaves its docker-build-git* directory behind when a fetch fails.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (d, dreq), (y, yreq) = cli.both(["--no-cache", web + path], tmp_path,
                                    env={"TMPDIR": str(tmp)})
    for r in (d, y):
        r.stderr = re.sub(rb"docker-build-git\w+", b"docker-build-git<x>", r.stderr)
        r.stderr = re.sub(rb"(fatal: repository ').*(' not found)", rb"\1\2", r.stderr)
    assert_same_result(d, y)
    if path in ("/Dockerfile", "/ctx.tar"):
        assert_same_request(dreq, yreq, fixed_times=path != "/Dockerfile")


@pytest.mark.parametrize("ignore", ["[", "!", "a\n![", "\ufeff# bom\nDockerfile\n"])
def test_bad_dockerignore(cli, tmp_path, ignore):
    ctx = tmp_path / "c"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n")
    (ctx / ".dockerignore").write_text(ignore)
    (d, dreq), (y, yreq) = cli.both(["--no-cache", "."], ctx)
    assert_same_result(d, y)
    if dreq is not None:
        assert_same_request(dreq, yreq)


def test_builder_prune(cli, tmp_path):
    for args in (["builder", "prune", "-f"], ["builder", "prune", "-af", "--keep-storage", "1m"]):
        d = subprocess.run([DOCKER_CLI, *args], env=cli.env, capture_output=True, timeout=60)
        y = subprocess.run([sys.executable, "-m", "dockyard", *args], env=cli.env,
                           capture_output=True, timeout=60)
        assert_same_result(d, y)
    reqs = [r for r in cli.proxy.take() if r.path == "/build/prune"]
    assert len(reqs) == 4 and reqs[3].query == reqs[2].query and reqs[1].query == reqs[0].query
