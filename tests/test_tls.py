"""The API over TCP with TLS, Docker's two modes, with our client and the real
docker CLI; certificates are made at test time with openssl."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DOCKER_CLI, Daemon, mounts_under, unmount_all


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_pki(d: Path, name: str = "ca") -> Path:
    """A CA, a server cert for 127.0.0.1/localhost and a client cert."""
    d.mkdir(parents=True)
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out",
             "ca.pem", "-days", "2", "-subj", f"/CN={name}", cwd=d)
    (d / "ext-server.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                                      "extendedKeyUsage=serverAuth\n")
    (d / "ext-client.cnf").write_text("extendedKeyUsage=clientAuth\n")
    for who in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}-key.pem", "-out",
                 f"{who}.csr", "-subj", f"/CN={who}", cwd=d)
        _openssl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem",
                 "-CAcreateserial", "-out", f"{who}-cert.pem", "-days", "2", "-extfile",
                 f"ext-{who}.cnf", cwd=d)
    # docker's default names in DOCKER_CERT_PATH
    (d / "cert.pem").write_bytes((d / "client-cert.pem").read_bytes())
    (d / "key.pem").write_bytes((d / "client-key.pem").read_bytes())
    os.chmod(d / "key.pem", 0o400)
    return d


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("pki")
    return make_pki(base / "ok"), make_pki(base / "other", "other-ca")


def _daemon(tmp_path: Path, port: int, pki: Path, verify: bool) -> Daemon:
    args = ["-H", f"tcp://127.0.0.1:{port}", "--tlscacert", str(pki / "ca.pem"),
            "--tlscert", str(pki / "server-cert.pem"), "--tlskey", str(pki / "server-key.pem")]
    args.append("--tlsverify" if verify else "--tls")
    d = Daemon(tmp_path, "vfs", args)
    return d


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, timeout=60)


def test_mode1_mutual_tls(tmp_path, pki):
    good, other = pki
    port = _free_port()
    d = _daemon(tmp_path, port, good, verify=True)
    d.start()
    try:
        host = f"tcp://127.0.0.1:{port}"
        env = dict(os.environ, DOCKYARD_NO_AUTOSTART="1", DOCKER_CONFIG=str(tmp_path / "cfg"))
        env.pop("DOCKYARD_HOST", None)
        env.pop("DOCKER_HOST", None)
        ok = _run([sys.executable, "-m", "dockyard", "-H", host, "--tlsverify", "--tlscacert",
                   str(good / "ca.pem"), "--tlscert", str(good / "client-cert.pem"),
                   "--tlskey", str(good / "client-key.pem"), "version", "--format",
                   "{{.Server.ApiVersion}}"], env)
        assert ok.returncode == 0 and ok.stdout.strip() == b"1.41", ok.stderr
        # DOCKER_TLS_VERIFY + DOCKER_CERT_PATH, as docker's client reads them
        env2 = dict(env, DOCKER_HOST=host, DOCKER_TLS_VERIFY="1", DOCKER_CERT_PATH=str(good))
        ok = _run([sys.executable, "-m", "dockyard", "info", "--format", "{{.Driver}}"], env2)
        assert ok.stdout.strip() == b"vfs", ok.stderr
        if DOCKER_CLI:
            ok = _run([DOCKER_CLI, "version", "--format", "{{.Server.APIVersion}}"], env2)
            assert ok.returncode == 0 and ok.stdout.strip() == b"1.41", ok.stderr
            # a client certificate from another CA is refused
            bad = _run([DOCKER_CLI, "--tlsverify", "--tlscacert", str(good / "ca.pem"),
                        "--tlscert", str(other / "client-cert.pem"), "--tlskey",
                        str(other / "client-key.pem"), "-H", host, "version"], env)
            assert bad.returncode != 0
        # a key readable by others is used, with a warning
        os.chmod(good / "client-key.pem", 0o644)
        warn = _run([sys.executable, "-m", "dockyard", "-H", host, "--tlsverify", "--tlscacert",
                     str(good / "ca.pem"), "--tlscert", str(good / "client-cert.pem"),
                     "--tlskey", str(good / "client-key.pem"), "info", "--format", "x"], env)
        assert warn.returncode == 0 and b"is readable by others" in warn.stderr
        assert b"readable by others" not in ok.stderr  # key.pem is 0400
        # no client certificate at all: refused
        nocert = _run([sys.executable, "-m", "dockyard", "-H", host, "--tlsverify",
                       "--tlscacert", str(good / "ca.pem"), "--tlscert", "/nonexistent",
                       "--tlskey", "/nonexistent", "version"], env)
        assert nocert.returncode != 0
        # plain HTTP on the TLS port gets no API answer
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                data = s.recv(100)
            except OSError:
                data = b""
        assert b"OK" not in data and b"Api-Version" not in data
    finally:
        d.stop()
        unmount_all(tmp_path)
        assert not mounts_under(tmp_path)


def test_mode2_server_tls_only(tmp_path, pki):
    good, _ = pki
    port = _free_port()
    d = _daemon(tmp_path, port, good, verify=False)
    d.start()
    try:
        host = f"tcp://127.0.0.1:{port}"
        env = dict(os.environ, DOCKYARD_NO_AUTOSTART="1")
        env.pop("DOCKYARD_HOST", None)
        env.pop("DOCKER_HOST", None)
        # the client checks the daemon against the CA, without a certificate of its own
        ok = _run([sys.executable, "-m", "dockyard", "-H", host, "--tlsverify", "--tlscacert",
                   str(good / "ca.pem"), "--tlscert", "/nonexistent", "--tlskey",
                   "/nonexistent", "version", "--format", "{{.Server.ApiVersion}}"], env)
        assert ok.returncode == 0 and ok.stdout.strip() == b"1.41", ok.stderr
    finally:
        d.stop()
        unmount_all(tmp_path)
        assert not mounts_under(tmp_path)


def test_tcp_without_tls_is_refused(tmp_path):
    port = _free_port()
    r = subprocess.run([sys.executable, "-m", "dockyard", "daemon", "-H",
                        f"tcp://127.0.0.1:{port}", "-g", str(tmp_path / "root"), "-p",
                        str(tmp_path / "pid"), "--exec-root", str(tmp_path / "exec"), "-s", "vfs"],
                       capture_output=True, timeout=60)
    assert r.returncode != 0
    assert b"refusing to listen on" in r.stderr
