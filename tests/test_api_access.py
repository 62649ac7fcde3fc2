"""Who gets to the API, tested as attacks: the unix socket's mode and group
against a user outside the group (run as `nobody` with setpriv), and the TLS
port against clients with no certificate, a certificate from another CA,
TLS 1.0/1.1, weak or non-forward-secret ciphers, and plain HTTP. Each one gets
nothing: no API answer, not even a version. And --authorization-plugin: a fake
authz plugin (dockerd's protocol, on /run/docker/plugins/<unique>.sock) says no
to some requests, and is told the TLS client's name."""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import stat
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import Daemon, mounts_under, unmount_all
from test_tls import _free_port, make_pki

PING = b"GET /_ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


NOBODY_CLIENT = """
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(e.strerror)
else:
    s.sendall(b"GET /_ping HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    print("api" if b"OK" in s.recv(4096) else "no answer")
"""


def _as_nobody(sock: Path, *groups: int) -> str:
    """Connect to the socket and ping, as uid/gid 65534 with only `groups`."""
    g = ["--groups", ",".join(map(str, groups))] if groups else ["--clear-groups"]
    r = subprocess.run(["setpriv", "--reuid", "65534", "--regid", "65534", *g,
                        "/usr/bin/python3", "-c", NOBODY_CLIENT, str(sock)],
                       capture_output=True, text=True, timeout=60)
    return r.stdout.strip() or r.stderr


def test_socket_mode_and_group(tmp_path):
    if shutil.which("setpriv") is None or not os.path.exists("/usr/bin/python3"):
        pytest.skip("setpriv and a system python3 are needed")
    import grp

    try:
        gid = grp.getgrnam("dockyard").gr_gid
    except KeyError:
        pytest.skip("no dockyard group on this host")
    # the socket's directory must be reachable by nobody (pytest's are 0700)
    sockdir = Path(f"/tmp/dy-access-{uuid.uuid4().hex[:8]}")
    sockdir.mkdir(mode=0o755)
    sockdir.chmod(0o755)
    d = Daemon(tmp_path, "vfs", ["-G", "dockyard"])
    d.sock = sockdir / "d.sock"
    d.host = f"unix://{d.sock}"
    try:
        d.start()
        st = d.sock.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, gid, 0o660)
        assert _as_nobody(d.sock) == "Permission denied"
        # root's group is no key to the socket; the socket's group is
        assert _as_nobody(d.sock, 0, 1, 4) == "Permission denied"
        assert _as_nobody(d.sock, gid) == "api"
    finally:
        d.stop()
        shutil.rmtree(sockdir, ignore_errors=True)
        unmount_all(tmp_path)
        assert not mounts_under(tmp_path)


def _handshake(port: int, ca: Path, cert: Path | None = None, key: Path | None = None,
               version: ssl.TLSVersion | None = None, ciphers: str | None = None) -> str:
    """Try the API over TLS; returns "api" when /_ping answered, else the error."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(ca))
    if cert:
        ctx.load_cert_chain(str(cert), str(key))
    if version:
        # let this client speak old protocols and suites: the server must be the one refusing
        ctx.set_ciphers("ALL:@SECLEVEL=0")
        ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(PING)
            data = s.recv(4096)
            return "api" if b"OK" in data else f"closed {data[:40]!r}"
    except (ssl.SSLError, OSError) as e:
        return str(e)


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion:DeprecationWarning")
def test_tls_refuses_weak_and_unauthenticated_clients(tmp_path_factory):
    base = tmp_path_factory.mktemp("access-pki")
    good, other = make_pki(base / "ok"), make_pki(base / "other", "other-ca")
    port = _free_port()
    tmp = tmp_path_factory.mktemp("access-tls")
    plugin = _FakeAuthz()  # to see who TLS says the client is
    d = Daemon(tmp, "vfs", ["-G", "dy-no-such-group", "-H", f"tcp://127.0.0.1:{port}",
                            "--authorization-plugin", plugin.name, "--tlsverify",
                            "--tlscacert", str(good / "ca.pem"),
                            "--tlscert", str(good / "server-cert.pem"),
                            "--tlskey", str(good / "server-key.pem")])
    ca = good / "ca.pem"
    mine = (good / "client-cert.pem", good / "client-key.pem")
    try:
        d.start()  # on its unix socket too
        # a -G group that doesn't exist leaves the unix socket root-only
        st = d.sock.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
        assert _handshake(port, ca, *mine) == "api"
        # the plugin is told the certificate's name, authenticated by TLS
        assert plugin.seen[-1]["User"] == "client"
        assert plugin.seen[-1]["UserAuthNMethod"] == "TLS"
        for v in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
            assert _handshake(port, ca, *mine, version=v) == "api"
        # no client certificate
        r = _handshake(port, ca)
        assert r == "closed b''" or "certificate required" in r, r
        # a client certificate from another CA
        r = _handshake(port, ca, other / "client-cert.pem", other / "client-key.pem")
        # (over TLS 1.3 the client learns of the refusal after its handshake: no data)
        assert r == "closed b''" or "unknown ca" in r, r
        # a self-signed one made by the client itself (its CA's own cert and key)
        r = _handshake(port, ca, other / "ca.pem", other / "ca-key.pem")
        assert r == "closed b''" or "unknown ca" in r, r
        # TLS 1.0 and 1.1, even with a good certificate
        for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            r = _handshake(port, ca, *mine, version=v)
            assert r != "api" and ("protocol version" in r or "PROTOCOL" in r.upper()), (v, r)
        # TLS 1.2 suites: ECDHE with AEAD gets in; none without forward secrecy, with CBC or DHE
        for c in ("ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-CHACHA20-POLY1305"):
            assert _handshake(port, ca, *mine, ciphers=c) == "api"
        for c in ("AES128-GCM-SHA256", "AES256-SHA256", "ECDHE-RSA-AES128-SHA256",
                  "ECDHE-RSA-AES128-SHA", "DHE-RSA-AES128-GCM-SHA256"):
            r = _handshake(port, ca, *mine, ciphers=c)
            assert "handshake failure" in r or "UNEXPECTED_EOF" in r, (c, r)
        # plain HTTP to the TLS port: no API answer
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(PING)
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
        assert b"OK" not in data and b"Api-Version" not in data and b"Docker" not in data
    finally:
        plugin.stop()
        d.stop()
        unmount_all(tmp)
        assert not mounts_under(tmp)



class _FakeAuthz:
    """An authz plugin on /run/docker/plugins/<name>.sock (where dockerd and
    Dockyard look): denies DELETE and privileged containers, records requests."""

    def __init__(self) -> None:
        import http.server
        import socketserver
        import threading

        self.name = f"dy-authz-{uuid.uuid4().hex[:8]}"
        self.sock = Path("/run/docker/plugins") / f"{self.name}.sock"
        self.sock.parent.mkdir(parents=True, exist_ok=True)
        self.seen: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def address_string(self) -> str:
                return "plugin"

            def log_message(self, *a) -> None:
                pass

            def do_POST(self) -> None:
                import base64
                import json

                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                if self.path == "/Plugin.Activate":
                    out = {"Implements": ["authz"]}
                else:
                    outer.seen.append(doc)
                    body = base64.b64decode(doc.get("RequestBody") or "")
                    out = {"Allow": True}
                    if doc.get("RequestMethod") == "DELETE":
                        out = {"Allow": False, "Msg": "no deletes"}
                    elif b'"Privileged": true' in body or b'"Privileged":true' in body:
                        out = {"Allow": False, "Msg": "no privileged containers"}
                data = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(str(self.sock), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.sock.unlink(missing_ok=True)


def test_authorization_plugin(tmp_path):
    """--authorization-plugin: the plugin sees each request (method, URI, JSON
    body, headers less credentials) and its no is a 403; a plugin gone is a 500
    for everything (fails closed)."""
    import json

    plugin = _FakeAuthz()
    d = Daemon(tmp_path, "vfs", ["--authorization-plugin", plugin.name])
    try:
        d.start()
        c = d.client()
        assert c.get_json("/volumes")["Volumes"] in (None, [])
        d.docker("volume", "create", "v1")
        r = d.docker("volume", "rm", "v1", check=False)
        assert r.returncode != 0
        assert f"authorization denied by plugin {plugin.name}: no deletes" in r.stderr.decode()
        assert d.docker("volume", "ls", "-q").stdout.split() == [b"v1"]  # still there
        # (the API, not `docker run`: that would try to pull the image)
        priv = {"Image": "none", "HostConfig": {"Privileged": True}}
        r = c.request("POST", "/v1.41/containers/create", body=json.dumps(priv).encode(),
                      headers={"Content-Type": "application/json"}, check=False)
        assert r.status == 403 and json.loads(r.read())["message"] == \
            f"authorization denied by plugin {plugin.name}: no privileged containers"
        r.close()
        r = c.request("POST", "/v1.41/containers/create", body=b'{"Image": "none"}',
                      headers={"Content-Type": "application/json"}, check=False)
        assert r.status == 404, r.read()  # allowed: the handler answered
        r.close()
        doc = next(x for x in plugin.seen if x["RequestMethod"] == "POST"
                   and "/volumes/create" in x["RequestUri"])
        import base64

        assert json.loads(base64.b64decode(doc["RequestBody"]))["Name"] == "v1"
        assert doc["RequestUri"] == "/v1.41/volumes/create" and "User" not in doc
        assert doc["RequestHeaders"]["Content-Type"] == "application/json"
        assert "Host" not in doc["RequestHeaders"]
        resp = c.request("GET", "/info", headers={"X-Registry-Auth": "c2VjcmV0"}, check=False)
        resp.close()
        last = plugin.seen[-1]
        assert last["RequestUri"].endswith("/info")
        assert "X-Registry-Auth" not in last["RequestHeaders"]
        # the plugin goes away: nothing gets through
        plugin.stop()
        r = d.docker("volume", "ls", check=False)
        assert r.returncode != 0
        assert f"plugin {plugin.name} failed with error" in r.stderr.decode()
    finally:
        plugin.stop()
        d.stop()
        unmount_all(tmp_path)
        assert not mounts_under(tmp_path)
