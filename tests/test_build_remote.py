"""`POST /build?remote=`: contexts the daemon fetches (tarball and Dockerfile
URLs, git repositories with `#ref:subdir`), side by side with a reference
dockerd 20.10 (statuses, messages, the streamed output, COPY's content sums),
docker-py's `images.build(path=<url>)`, and the HTTP helpers (sniffing,
proxies). Everything is served on loopback; the reference dockerd runs in the
host's namespace without a bridge or packet rules, so it reaches it too."""

from __future__ import annotations

import bz2
import functools
import gzip
import http.client
import http.server
import io
import json
import lzma
import re
import shutil
import socket
import subprocess
import tarfile
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t", "-c", "init.defaultBranch=master"]


def _tar(files: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_600_000_000, 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Static files, plus `/status/<code>` (an error with a body) and
    `/ct/<type with _ for />/<file>` (a file with that Content-Type, `none`:
    no header at all)."""

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, data: bytes, ctype: str | None) -> None:
        self.send_response(code)
        if ctype:
            self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        parts = self.path.split("/")
        if parts[1] == "status":
            return self._send(int(parts[2]), b"  the body \n", "text/plain")
        if parts[1] == "ct":
            data = (Path(self.directory) / parts[3]).read_bytes()
            return self._send(200, data, None if parts[2] == "none" else
                              urllib.parse.unquote(parts[2]).replace("_", "/"))
        return super().do_GET()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bare(src: Path, dest: Path) -> None:
    """A bare copy of `src`, servable the dumb way too."""
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(dest)], check=True)
    subprocess.run(["git", "update-server-info"], cwd=dest, check=True)


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """(http base URL, git:// base URL, a closed port) on loopback."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    base = tmp_path_factory.mktemp("remote-web")
    www = base / "www"
    www.mkdir()
    (www / "Dockerfile").write_text("FROM busybox\nENV FROM_URL=1\n")
    (www / "Dockerfile.long").write_text("FROM busybox\n" + "# a comment line\n" * 10 +
                                         "ENV A=1\n")
    (www / "Dockerfile.copy").write_text("FROM busybox\nCOPY x /\n")
    (www / "Dockerfile.bad").write_text("FROM busybox\nFOO bar\n")
    (www / "empty").write_text("")
    (www / "page.html").write_text("<html><body>hi</body></html>")
    raw = _tar([("Dockerfile", b"FROM busybox\nCOPY x /\n"), ("x", b"x" * 5000)])
    (www / "ctx.tar").write_bytes(raw)
    (www / "ctx.tgz").write_bytes(gzip.compress(raw))
    (www / "ctx.tbz").write_bytes(bz2.compress(raw))
    (www / "ctx.txz").write_bytes(lzma.compress(raw))
    (www / "alt.tar").write_bytes(_tar([("alt.df", b"FROM busybox\nCOPY x /\n"),
                                        ("x", b"x" * 3000), ("dockerfile", b"FROM busybox\n")]))
    (www / "nodf.tar").write_bytes(_tar([("x", b"x" * 20000)]))
    # Over 512 kB: progress lines on the way (how many depends on timing and reads).
    (www / "big.tar").write_bytes(_tar([("Dockerfile", b"FROM busybox\nCOPY big /\n"),
                                        ("big", bytes(range(256)) * 6000)]))
    src = base / "src"
    (src / "sub").mkdir(parents=True)
    (src / "Dockerfile").write_text("FROM busybox\nCOPY f /\n")
    (src / "f").write_text("f\n")
    (src / "sub" / "Dockerfile").write_text("FROM busybox\nCOPY . /ctx/\n")
    (src / "sub" / "g").write_text("g\n")
    (src / "sub" / "run.sh").write_text("#!/bin/sh\n")
    (src / "sub" / "run.sh").chmod(0o755)
    (src / "afile").write_text("a\n")
    (src / "esc").symlink_to("/etc")
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "ctx"], ["tag", "v1"],
                 ["checkout", "-qb", "dev"]):
        subprocess.run([*GIT, *args], cwd=src, check=True, capture_output=True)
    (src / "Dockerfile").write_text("FROM busybox\nCOPY f /\nENV DEV=1\n")
    subprocess.run([*GIT, "commit", "-qam", "dev"], cwd=src, check=True)
    subprocess.run([*GIT, "checkout", "-q", "master"], cwd=src, check=True)
    _bare(src, www / "repo.git")
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(www)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    gport = _free_port()
    gitd = subprocess.Popen(["git", "daemon", "--reuseaddr", "--listen=127.0.0.1",
                             f"--port={gport}", f"--base-path={www}", "--export-all", str(www)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):  # until git daemon listens
            try:
                socket.create_connection(("127.0.0.1", gport), 0.2).close()
                break
            except OSError:
                threading.Event().wait(0.05)
        http_url, git_url = f"http://127.0.0.1:{srv.server_address[1]}", f"git://127.0.0.1:{gport}"
        # Submodules: over git:// (shallow: fine) and over dumb http (shallow: refused).
        subm = base / "subm"
        subm.mkdir()
        (subm / "s.txt").write_text("s\n")
        for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "s"]):
            subprocess.run([*GIT, *args], cwd=subm, check=True, capture_output=True)
        _bare(subm, www / "subm.git")
        for name, url in (("top", git_url), ("topdumb", http_url)):
            top = base / name
            top.mkdir()
            (top / "Dockerfile").write_text("FROM busybox\nCOPY m /m/\n")
            for args in (["init", "-q"], ["submodule", "add", "-q", url + "/subm.git", "m"],
                         ["add", "-A"], ["commit", "-qm", "top"]):
                subprocess.run([*GIT, *args], cwd=top, check=True, capture_output=True)
            _bare(top, www / f"{name}.git")
        yield http_url, git_url, _free_port()
    finally:
        gitd.terminate()
        gitd.wait(10)
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def bbd(daemon, bb):
    """The module daemon, with busybox."""
    return daemon


@pytest.fixture(scope="module")
def ref(ref_dockerd, busybox_tar):
    ref_dockerd.docker("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
    return ref_dockerd


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        self.sock = s


def post(host: str, query: dict[str, str], body: bytes | None = None
         ) -> tuple[int, bytes]:
    conn = _UnixConnection(host.removeprefix("unix://"))
    try:
        conn.request("POST", "/v1.41/build?" + urllib.parse.urlencode(query), body=body,
                     headers={"Content-Type": "application/x-tar"} if body else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def normalized(body: bytes) -> bytes:
    if b"/big.tar" in body:
        body = re.sub(rb'\{"status":"[^"]*/big.tar","progressDetail[^\n]*\n', b"", body)
    body = re.sub(rb"[0-9a-f]{64}", b"@ID@", body)
    body = re.sub(rb"(?<![0-9a-f])[0-9a-f]{12}(?![0-9a-f])", b"@id@", body)
    # The checkout's temporary directory (dockerd's is under its data root).
    body = re.sub(rb"/[^\s\"]*/docker-build-git\d+", b"<checkout>", body)
    return re.sub(rb"evalSymlinksInScope: \S+ is not in", b"evalSymlinksInScope: <dir> is not in",
                  body)


def both(bbd, ref, query: dict[str, str], body: bytes | None = None) -> tuple[bytes, bytes]:
    """The same request to both daemons: equal statuses and (normalized)
    answers; returns (ours, dockerd's)."""
    q = {"nocache": "1", **query}
    ours, theirs = post(bbd.host, q, body), post(ref.host, q, body)
    assert (ours[0], normalized(ours[1])) == (theirs[0], normalized(theirs[1]))
    return ours[1], theirs[1]


def image_of(body: bytes) -> str:
    ids = [json.loads(ln)["aux"]["ID"] for ln in body.split(b"\r\n") if b'"aux"' in ln]
    return ids[-1]


def copy_keys(daemon, image: str) -> list[str]:
    """The COPY history lines: their content sums are the context's tarsums."""
    conn = _UnixConnection(daemon.host.removeprefix("unix://"))
    try:
        conn.request("GET", f"/v1.41/images/{image}/history")
        hist = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return [h["CreatedBy"] for h in hist if "COPY" in h["CreatedBy"]]


@pytest.mark.parametrize("path, query", [
    ("/ctx.tar", {}),
    ("/ctx.tgz", {}),
    ("/ctx.tbz", {}),
    ("/ct/application_octet-stream/ctx.txz", {}),
    ("/ct/none/ctx.tar", {}),
    ("/alt.tar", {"dockerfile": "alt.df"}),
    ("/alt.tar", {}),                       # `Dockerfile` falls back to `dockerfile`
    ("/ctx.tar", {"q": "1"}),
    ("/nodf.tar", {"q": "1"}),              # the held progress, then the error
    ("/big.tar", {}),
], ids=lambda v: v if isinstance(v, str) else ",".join(v) or "-")
def test_tarball_url(bbd, ref, web, path, query):
    out, theirs = both(bbd, ref, {"remote": web[0] + path, **query})
    if b"COPY" in out and b"aux" in out:
        assert copy_keys(bbd, image_of(out)) == copy_keys(ref, image_of(theirs))


@pytest.mark.parametrize("path, query", [
    ("/Dockerfile", {}),                    # fits the sniffed preamble: `{}` after progress
    ("/Dockerfile.long", {}),
    ("/Dockerfile", {"dockerfile": "nope"}),  # unused without a context
    ("/ct/none/Dockerfile", {}),
    ("/Dockerfile.copy", {}),               # COPY failed: missing build context
    ("/Dockerfile.bad", {}),                # a parse error, in-band
    ("/Dockerfile", {"target": "nope"}),
    ("/Dockerfile.bad", {"q": "1"}),
])
def test_dockerfile_url(bbd, ref, web, path, query):
    both(bbd, ref, {"remote": web[0] + path, **query})


@pytest.mark.parametrize("repo, query", [
    ("/repo.git", {}),
    ("/repo.git#master:sub", {}),
    ("/repo.git#dev", {}),
    ("/repo.git#v1", {}),
    ("/repo.git", {"dockerfile": "sub/Dockerfile"}),
    ("git:/repo.git#dev:sub", {}),
    ("/top.git", {}),                       # a submodule, fetched shallow over git://
])
def test_git_url(bbd, ref, web, repo, query):
    url = web[1] + repo[4:] if repo.startswith("git:") else web[0] + repo
    out, theirs = both(bbd, ref, {"remote": url, **query})
    if b"aux" in out and not query:  # (`COPY .` of the root copies .git: no two alike)
        # COPY's sums come from the checkout's tar: the same headers as dockerd's.
        assert copy_keys(bbd, image_of(out)) == copy_keys(ref, image_of(theirs))


@pytest.mark.parametrize("remote", [
    "/status/404", "/status/500", "/status/403", "/status/400", "/empty", "/page.html",
    "/ct/text_html/Dockerfile", "/ct/application_json/ctx.tar", "/nodf.tar",
    "/nope.git", "/repo.git#nope", "/repo.git#:nosub", "/repo.git#:afile", "/repo.git#:esc",
    "/repo.git#:../..", "/repo.git#-bad", "git:/nope.git", "/topdumb.git", "closed:/x",
    "closed:/x.git", "gitclosed:/x.git", "foo", "ftp://x/y", "client-session",
])
def test_remote_errors(bbd, ref, web, remote):
    if remote.startswith("/"):
        remote = web[0] + remote
    elif remote.startswith("git:"):
        remote = web[1] + remote[4:]
    elif remote.startswith("closed:"):
        remote = f"http://127.0.0.1:{web[2]}" + remote[7:]
    elif remote.startswith("gitclosed:"):
        remote = f"git://127.0.0.1:{web[2]}" + remote[10:]
    both(bbd, ref, {"remote": remote})


def test_body_beside_remote_holds_the_output_back(bbd, ref, web):
    """dockerd never reads a body sent with `remote`, and its output waits
    for the body to be read: an empty 200 (errors before output keep their
    status). The build itself runs."""
    body = _tar([("Dockerfile", b"FROM busybox\n")])
    for path in ("/Dockerfile", "/repo.git", "/nodf.tar"):
        tag = "held" + path.replace("/", ":").replace(".", "")
        assert both(bbd, ref, {"remote": web[0] + path, "t": tag}, body)[0] == b""
    assert both(bbd, ref, {"remote": web[0] + "/status/404"}, body)[0].startswith(b"{")
    assert "FROM_URL=1" in bbd.client().get_json("/images/held:Dockerfile/json")["Config"]["Env"]


def test_docker_py_builds_from_urls(bbd, web):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=bbd.host, version="1.41")
    try:
        img, _ = client.images.build(path=web[0] + "/Dockerfile", tag="pyurl")
        assert "FROM_URL=1" in img.attrs["Config"]["Env"]
        img, logs = client.images.build(path=web[0] + "/repo.git#:sub", tag="pygit", rm=True)
        assert img.tags == ["pygit:latest"]
        out = bbd.cli("run", "--rm", "pygit", "ls", "/ctx").stdout
        assert out.split() == [b"Dockerfile", b"g", b"run.sh"]
        with pytest.raises(docker.errors.BuildError, match="missing build context"):
            client.images.build(path=web[0] + "/Dockerfile.copy")
        with pytest.raises(docker.errors.NotFound, match="status 404"):
            client.images.build(path=web[0] + "/status/404")
    finally:
        client.close()


# --- the HTTP side, without a daemon ----------------------------------------------------

def test_sniffing_as_go():
    from dockyard.build.remote import detect_content_type as sniff

    assert sniff(b"FROM busybox\n") == "text/plain"
    assert sniff(b"  <!DOCTYPE html>x") == "text/html"
    assert sniff(b"<?xml version") == "text/xml"
    assert sniff(b"\x1f\x8b\x08\x00") == "application/x-gzip"
    assert sniff(b"BZh91AY&SY\x00\x01") == "application/octet-stream"
    assert sniff(_tar([("a", b"a")])[:100]) == "application/octet-stream"
    assert sniff(b"BM" + bytes(98)) == "image/bmp"   # a tar whose first name starts "BM"
    assert sniff(b"\xef\xbb\xbf\x00") == "text/plain"
    # As dockerd answered for tars whose first name starts so (all refused but MThd's).
    for name, ct in ((b"OTTOx", "font/otf"), (b"wOF2x", "font/woff2"), (b"ID3x", "audio/mpeg"),
                     (b"MThd", "application/octet-stream")):
        assert sniff(_tar([(name.decode(), b"x")])[:100]) == ct


def test_proxy_from_environment(monkeypatch):
    from dockyard.build.remote import proxy_for

    monkeypatch.setenv("HTTP_PROXY", "proxy.test:3128")
    monkeypatch.setenv("HTTPS_PROXY", "https://sproxy.test")
    monkeypatch.setenv("NO_PROXY", ".internal.test,10.0.0.0/8,exact.test:8080")
    assert proxy_for("http://ctx.test/a.tar") == "http://proxy.test:3128"
    assert proxy_for("https://ctx.test/a.tar") == "https://sproxy.test"
    assert proxy_for("http://127.0.0.1:99/a") == ""       # loopback never goes through one
    assert proxy_for("http://localhost/a") == ""
    assert proxy_for("http://a.internal.test/x") == ""
    assert proxy_for("http://10.1.2.3/x") == ""
    assert proxy_for("http://exact.test:8080/x") == ""
    assert proxy_for("http://exact.test/x") == "http://proxy.test:3128"


def test_download_goes_through_the_proxy(monkeypatch, tmp_path):
    """A URL outside is fetched through HTTP_PROXY (a proxy on loopback
    answers for it: nothing leaves the host)."""
    from dockyard.build.remote import open_url

    seen: list[str] = []

    class Proxy(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            seen.append(self.path)
            data = b"FROM busybox\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{srv.server_address[1]}")
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        d = open_url("http://remote-context.test/Dockerfile")
        try:
            assert d.dockerfile
            msgs: list[dict[str, Any]] = []
            assert b"".join(d.chunks(msgs.append)) == b"FROM busybox\n"
            assert msgs == [{"status": "http://remote-context.test/Dockerfile",
                             "progressDetail": {"current": 13}, "progress": "     13B",
                             "id": "Downloading context"}, {}]
        finally:
            d.close()
        assert seen == ["http://remote-context.test/Dockerfile"]
    finally:
        srv.shutdown()
        srv.server_close()
