"""Registry fixtures for the distribution tests (a pytest plugin, loaded from
conftest.py): Debian's real docker-registry (plain HTTP, htpasswd, token auth,
TLS), a token server speaking Docker's token flow, a raw image uploader that
shares no code with Dockyard, and a fake registry that misbehaves on purpose.

    def test_pull(registry, busybox_image): ...           # test/busybox:latest
    def test_auth(registry_factory):
        reg = registry_factory(auth="token", users={"alice": "secret"})
        img = push_image(reg, "team/app", "v1", sample_layers())
    def test_faults(bad_registry):
        img = bad_registry.serve("t/img", "latest", sample_layers(),
                                 fault="truncated", fault_layer=1)
"""

from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import functools
import gzip
import hashlib
import http.client
import io
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tarfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REGISTRY_BIN = "/usr/bin/docker-registry"
BUSYBOX = shutil.which("busybox") or "/bin/busybox"
SERVICE = "dockyard-test-registry"
ISSUER = "dockyard-test-issuer"
EPOCH = 1_700_000_000  # fixed mtime: the same inputs give the same digests

MEDIA_TYPES = {
    "docker": {
        "manifest": "application/vnd.docker.distribution.manifest.v2+json",
        "index": "application/vnd.docker.distribution.manifest.list.v2+json",
        "config": "application/vnd.docker.container.image.v1+json",
        "layer": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    },
    "oci": {
        "manifest": "application/vnd.oci.image.manifest.v1+json",
        "index": "application/vnd.oci.image.index.v1+json",
        "config": "application/vnd.oci.image.config.v1+json",
        "layer": "application/vnd.oci.image.layer.v1.tar+gzip",
    },
}
ACCEPT_MANIFESTS = ", ".join(t[k] for t in MEDIA_TYPES.values() for k in ("manifest", "index"))


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- layers -------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """A layer as a registry holds it: the gzipped tar (in memory or a file)
    and the two digests that name it."""

    blob: bytes | Path
    digest: str  # of the gzipped blob: what manifests and blob URLs use
    diff_id: str  # of the uncompressed tar: what the image config lists
    size: int


def gzip_layer(tar: bytes) -> Layer:
    """Gzip a layer tar deterministically (no name, mtime 0), as Docker would push it."""
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(tar)
    blob = buf.getvalue()
    return Layer(blob, sha256_digest(blob), sha256_digest(tar), len(blob))


def gzip_layer_file(tar: Path, out: Path) -> Layer:
    """gzip_layer for big tars on disk (the benchmarks): streams, both digests at once."""
    tar_h, gz_h = hashlib.sha256(), hashlib.sha256()

    class Tee(io.RawIOBase):
        def __init__(self, f: io.BufferedWriter) -> None:
            self.f = f

        def writable(self) -> bool:
            return True

        def write(self, b) -> int:  # type: ignore[override]
            gz_h.update(b)
            return self.f.write(b)

    tmp = out.with_suffix(out.suffix + ".tmp")
    with open(tar, "rb") as src, open(tmp, "wb") as dst:
        sink: Any = Tee(dst)
        with gzip.GzipFile(fileobj=sink, mode="wb", compresslevel=6, mtime=0) as gz:
            while chunk := src.read(1 << 20):
                tar_h.update(chunk)
                gz.write(chunk)
    os.replace(tmp, out)
    return Layer(out, "sha256:" + gz_h.hexdigest(), "sha256:" + tar_h.hexdigest(),
                 out.stat().st_size)


def _tarinfo(name: str, kind: bytes, mode: int, size: int = 0,
             linkname: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.size, ti.linkname = kind, mode, size, linkname
    ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = EPOCH, 0, 0, "root", "root"
    return ti


def files_layer(files: Mapping[str, bytes | str] | None = None, *,
                dirs: Sequence[str] = (), symlinks: Mapping[str, str] | None = None,
                whiteouts: Sequence[str] = (), opaque: Sequence[str] = (),
                modes: Mapping[str, int] | None = None) -> bytes:
    """A layer tar (uncompressed) with these files, directories and symlinks, and
    AUFS-style whiteouts: `whiteouts=["etc/motd"]` deletes a lower layer's file
    (entry `etc/.wh.motd`), `opaque=["data"]` hides everything a lower layer had
    in data/ (entry `data/.wh..wh..opq`). Parent directories are added; entries
    are sorted and carry fixed owners and times, so the bytes are reproducible."""
    entries: dict[str, tuple[tarfile.TarInfo, bytes]] = {}

    def parents(path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            entries.setdefault(d, (_tarinfo(d, tarfile.DIRTYPE, 0o755), b""))

    for d in [*dirs, *opaque]:
        d = d.strip("/")
        parents(d + "/x")
    for path, data in (files or {}).items():
        path = path.strip("/")
        raw = data.encode() if isinstance(data, str) else data
        parents(path)
        mode = (modes or {}).get(path, 0o644)
        entries[path] = (_tarinfo(path, tarfile.REGTYPE, mode, len(raw)), raw)
    for path, target in (symlinks or {}).items():
        path = path.strip("/")
        parents(path)
        entries[path] = (_tarinfo(path, tarfile.SYMTYPE, 0o777, linkname=target), b"")
    for path in whiteouts:
        head, _, name = path.strip("/").rpartition("/")
        wh = f"{head}/.wh.{name}" if head else f".wh.{name}"
        parents(wh)
        entries[wh] = (_tarinfo(wh, tarfile.REGTYPE, 0o644), b"")
    for d in opaque:
        opq = d.strip("/") + "/.wh..wh..opq"
        entries[opq] = (_tarinfo(opq, tarfile.REGTYPE, 0o644), b"")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path in sorted(entries):
            ti, raw = entries[path]
            t.addfile(ti, io.BytesIO(raw) if ti.isreg() else None)
    return buf.getvalue()


@functools.lru_cache(maxsize=1)
def busybox_layer() -> bytes:
    """A base layer from the host's busybox-static, laid out as conftest's
    busybox_rootfs does (bin/busybox and its applet links, etc/passwd, etc/group, tmp)."""
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for d, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777)):
            t.addfile(_tarinfo(d, tarfile.DIRTYPE, mode))
        exe = Path(BUSYBOX).read_bytes()
        t.addfile(_tarinfo("bin/busybox", tarfile.REGTYPE, 0o755, len(exe)), io.BytesIO(exe))
        for a in sorted(set(applets) - {"busybox"}):
            t.addfile(_tarinfo(f"bin/{a}", tarfile.SYMTYPE, 0o777, linkname="busybox"))
        for name, text in (("etc/group", "root:x:0:\nnogroup:x:65534:\n"),
                           ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"
                                          "nobody:x:65534:65534:nobody:/:/bin/false\n")):
            raw = text.encode()
            t.addfile(_tarinfo(name, tarfile.REGTYPE, 0o644, len(raw)), io.BytesIO(raw))
    return buf.getvalue()


def sample_layers() -> list[bytes]:
    """Three layers that exercise the union rules: busybox; files in etc/ and
    data/; then a whiteout of etc/motd and an opaque data/ holding only data/c.
    The merged image has no etc/motd, data/c only, and etc/hello."""
    return [
        busybox_layer(),
        files_layer({"etc/motd": "motd from layer 2\n", "etc/hello": "hello\n",
                     "data/a": "a\n", "data/b": "b\n"}),
        files_layer({"data/c": "c\n"}, whiteouts=["etc/motd"], opaque=["data"]),
    ]


# --- images -------------------------------------------------------------------


@dataclass
class Image:
    """An image made by build_image: every blob and manifest, by digest, ready
    to upload (push_image) or to serve (BadRegistry)."""

    repo: str
    tag: str
    media: str  # "docker" or "oci"
    manifest_digest: str  # what the tag names: the index's digest when index=True
    manifest_type: str
    image_id: str  # config digest of the linux/amd64 image, as `docker images` shows
    diff_ids: list[str]
    layers: list[Layer]
    config: dict[str, Any]
    blobs: dict[str, bytes | Path]  # layers and configs
    manifests: dict[str, tuple[str, bytes]]  # digest -> (media type, bytes), tagged one last
    platforms: dict[str, str] = field(default_factory=dict)  # "linux/arm64/v8" -> digest
    host: str = ""  # set once pushed or served

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repo}:{self.tag}"

    @property
    def digest_ref(self) -> str:
        return f"{self.host}/{self.repo}@{self.manifest_digest}"

    @property
    def manifest(self) -> bytes:
        return self.manifests[self.manifest_digest][1]


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def default_config(diff_ids: list[str], arch: str = "amd64") -> dict[str, Any]:
    return {
        "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": f"layer {i}"}
                    for i in range(len(diff_ids))],
    }


def build_image(repo: str, tag: str, layers: Sequence[bytes | Layer],
                config: dict[str, Any] | None = None, media: str = "docker",
                index: bool = False) -> Image:
    """Everything a registry holds for one image. `layers` are uncompressed tars
    (gzipped here) or ready Layers. With index=True the tag names a manifest
    list (OCI index for media="oci") with linux/amd64 (this image) and
    linux/arm64/v8 (same layers, its own config) entries."""
    types = MEDIA_TYPES[media]
    ready = [x if isinstance(x, Layer) else gzip_layer(x) for x in layers]
    diff_ids = [x.diff_id for x in ready]
    cfg = json.loads(json.dumps(config)) if config else default_config(diff_ids)
    cfg.setdefault("architecture", "amd64")
    cfg.setdefault("os", "linux")
    cfg.setdefault("rootfs", {"type": "layers", "diff_ids": diff_ids})
    blobs: dict[str, bytes | Path] = {x.digest: x.blob for x in ready}
    manifests: dict[str, tuple[str, bytes]] = {}

    def image_manifest(c: dict[str, Any]) -> tuple[str, int, str]:
        raw_cfg = canonical_json(c)
        blobs[sha256_digest(raw_cfg)] = raw_cfg
        m = {"schemaVersion": 2, "mediaType": types["manifest"],
             "config": {"mediaType": types["config"], "size": len(raw_cfg),
                        "digest": sha256_digest(raw_cfg)},
             "layers": [{"mediaType": types["layer"], "size": x.size, "digest": x.digest}
                        for x in ready]}
        raw = json.dumps(m, indent=3).encode()
        manifests[sha256_digest(raw)] = (types["manifest"], raw)
        return sha256_digest(raw), len(raw), sha256_digest(raw_cfg)

    digest, size, image_id = image_manifest(cfg)
    top, top_type, platforms = digest, types["manifest"], {}
    if index:
        arm = dict(cfg, architecture="arm64", variant="v8")
        arm_digest, arm_size, _ = image_manifest(arm)
        entries = [(digest, size, {"architecture": "amd64", "os": "linux"}),
                   (arm_digest, arm_size, {"architecture": "arm64", "os": "linux",
                                           "variant": "v8"})]
        idx = {"schemaVersion": 2, "mediaType": types["index"],
               "manifests": [{"mediaType": types["manifest"], "size": s, "digest": d,
                              "platform": p} for d, s, p in entries]}
        raw = json.dumps(idx, indent=3).encode()
        top, top_type = sha256_digest(raw), types["index"]
        manifests[top] = (top_type, raw)
        platforms = {"linux/amd64": digest, "linux/arm64/v8": arm_digest}
    return Image(repo, tag, media, top, top_type, image_id, diff_ids, ready, cfg, blobs,
                 manifests, platforms)


# --- a raw registry client ----------------------------------------------------


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="...",service="...",scope="..."` -> ("bearer", {...})."""
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    while rest:
        key, _, rest = rest.lstrip(" ,").partition("=")
        if rest.startswith('"'):
            value, _, rest = rest[1:].partition('"')
        else:
            value, _, rest = rest.partition(",")
        params[key.strip().lower()] = value
    return scheme.lower(), params


def _repo_of(path: str) -> str:
    """The repository named by a /v2/<name>/{blobs,manifests,tags}/... path."""
    p = path.split("?")[0].removeprefix("/v2/")
    for sep in ("/blobs/", "/manifests/", "/tags/"):
        if sep in p:
            return p.split(sep)[0]
    return ""


class RegistryClient:
    """Just enough of the Registry HTTP API v2 over http.client: answers Basic
    and Bearer challenges (fetching tokens from the realm with optional Basic
    credentials) and keeps a token per repository, so a big upload body is only
    sent once auth is settled."""

    def __init__(self, host: str, *, ssl_context: ssl.SSLContext | None = None,
                 auth: tuple[str, str] | None = None, timeout: float = 120) -> None:
        self.host, self.ssl_context, self.auth, self.timeout = host, ssl_context, auth, timeout
        self.basic = False
        self.tokens: dict[str, str] = {}  # repository ("" for /v2/ itself) -> bearer token
        self.token_requests = 0

    def _connect(self, host: str, https: bool) -> http.client.HTTPConnection:
        if https:
            return http.client.HTTPSConnection(host, timeout=self.timeout,
                                               context=self.ssl_context)
        return http.client.HTTPConnection(host, timeout=self.timeout)

    def _send(self, method: str, url: str, body: bytes | Path | None,
              headers: Mapping[str, str]) -> Response:
        u = urllib.parse.urlsplit(url)
        conn = self._connect(u.netloc, u.scheme == "https")
        try:
            h = dict(headers)
            target = u.path + (f"?{u.query}" if u.query else "")
            if isinstance(body, Path):
                h["Content-Length"] = str(body.stat().st_size)
                with open(body, "rb") as f:
                    conn.request(method, target, body=f, headers=h)
                    r = conn.getresponse()
            else:
                conn.request(method, target, body=body, headers=h)
                r = conn.getresponse()
            data = r.read() if method != "HEAD" else b""
            return Response(r.status, r.headers, data)
        finally:
            conn.close()

    @property
    def base(self) -> str:
        return ("https" if self.ssl_context else "http") + "://" + self.host

    def _authorization(self, repo: str) -> dict[str, str]:
        if repo in self.tokens:
            return {"Authorization": f"Bearer {self.tokens[repo]}"}
        if self.basic and self.auth:
            raw = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            return {"Authorization": f"Basic {raw}"}
        return {}

    def fetch_token(self, realm: str, service: str, scope: str) -> str:
        q = urllib.parse.urlencode([("service", service)] + ([("scope", scope)] if scope else []))
        headers = {}
        if self.auth:
            raw = base64.b64encode(f"{self.auth[0]}:{self.auth[1]}".encode()).decode()
            headers["Authorization"] = f"Basic {raw}"
        self.token_requests += 1
        r = self._send("GET", f"{realm}?{q}", None, headers)
        if r.status != 200:
            raise PermissionError(f"token server said {r.status}: {r.body[:200]!r}")
        doc = r.json()
        return doc.get("token") or doc["access_token"]

    def request(self, method: str, path: str, body: bytes | Path | None = None,
                headers: Mapping[str, str] | None = None) -> Response:
        """One request; `path` is /v2/... or an absolute URL (upload Locations)."""
        url = path if "://" in path else self.base + path
        repo = _repo_of(urllib.parse.urlsplit(url).path)
        r = Response(0, http.client.HTTPMessage(), b"")
        for _ in range(3):
            r = self._send(method, url, body, {**(headers or {}), **self._authorization(repo)})
            if r.status != 401:
                return r
            challenge = r.headers.get("WWW-Authenticate", "")
            scheme, params = parse_challenge(challenge)
            if scheme == "basic" and self.auth and not self.basic:
                self.basic = True
            elif scheme == "bearer" and (repo not in self.tokens
                                         or "insufficient_scope" in challenge):
                self.tokens[repo] = self.fetch_token(params["realm"], params.get("service", ""),
                                                     params.get("scope", ""))
            else:
                return r
        return r

    def check(self, r: Response, *ok: int) -> Response:
        if r.status not in ok:
            raise AssertionError(f"registry answered {r.status}: {r.body[:500]!r}")
        return r

    def upload_blob(self, repo: str, digest: str, blob: bytes | Path) -> None:
        """Monolithic upload (POST then PUT ?digest=), skipped when the blob is there."""
        if self.request("HEAD", f"/v2/{repo}/blobs/{digest}").status == 200:
            return
        r = self.check(self.request("POST", f"/v2/{repo}/blobs/uploads/"), 202)
        loc = urllib.parse.urljoin(self.base + "/", r.headers["Location"])
        loc += ("&" if "?" in loc else "?") + urllib.parse.urlencode({"digest": digest})
        self.check(self.request("PUT", loc, blob,
                                {"Content-Type": "application/octet-stream"}), 201)

    def put_manifest(self, repo: str, ref: str, media_type: str, raw: bytes) -> str:
        r = self.check(self.request("PUT", f"/v2/{repo}/manifests/{ref}", raw,
                                    {"Content-Type": media_type}), 201)
        return r.headers.get("Docker-Content-Digest", "")

    def get_manifest(self, repo: str, ref: str, accept: str = ACCEPT_MANIFESTS) -> Response:
        return self.request("GET", f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})

    def get_blob(self, repo: str, digest: str) -> bytes:
        return self.check(self.request("GET", f"/v2/{repo}/blobs/{digest}"), 200).body

    def push(self, image: Image) -> None:
        for digest, blob in image.blobs.items():
            self.upload_blob(image.repo, digest, blob)
        for digest, (media_type, raw) in image.manifests.items():
            ref = image.tag if digest == image.manifest_digest else digest
            got = self.put_manifest(image.repo, ref, media_type, raw)
            assert got in ("", digest), f"registry computed {got}, we {digest}"


# --- aiohttp servers in a thread ------------------------------------------------


class ThreadedApp:
    """An aiohttp application on 127.0.0.1 (a free port), run by its own event
    loop in a daemon thread so that tests can stay synchronous."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.port = 0
        self.runner: Any = None

    async def _start(self) -> None:
        from aiohttp import web

        # A short shutdown timeout: a handler stalled on purpose must not hold teardown.
        self.runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def start(self) -> ThreadedApp:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(15)
        return self

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        if self.runner is not None:
            asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(15)
            self.runner = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


# --- token server -------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _parse_scope(scope: str) -> dict[str, Any] | None:
    """`repository:team/app:pull,push` -> the JWT `access` entry it asks for."""
    head, _, actions = scope.rpartition(":")
    kind, _, name = head.partition(":")
    if not kind or not name:
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


class TokenServer:
    """Docker's token flow: GET /token?service=&scope= (Basic credentials
    optional) and the OAuth2 POST form, answering with an ES256 JWT whose x5c
    header carries a self-signed certificate; the registry trusts it through
    `rootcertbundle`, as distribution's registry/auth/token requires. Valid
    users get what they ask for (pull only for `read_only` users); anonymous
    callers get pull if `anonymous_pull`, else a token granting nothing."""

    def __init__(self, base: Path, users: Mapping[str, str], anonymous_pull: bool = False,
                 read_only: Sequence[str] = (), service: str = SERVICE) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.users, self.anonymous_pull = dict(users), anonymous_pull
        self.read_only, self.service = set(read_only), service
        self.requests: list[dict[str, Any]] = []  # what each call asked and got
        self.refresh_tokens: dict[str, str] = {}
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dockyard test token signer")])
        now = time.time()
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(dt.datetime.fromtimestamp(now - 3600, dt.timezone.utc))
                .not_valid_after(dt.datetime.fromtimestamp(now + 86400, dt.timezone.utc))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_pem = base / "token-signer.pem"
        self.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.server = ThreadedApp(self._app())

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/token"

    def start(self) -> TokenServer:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def sign(self, subject: str, access: list[dict[str, Any]], expires_in: int = 300) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": self.x5c}
        claims = {"iss": ISSUER, "sub": subject, "aud": self.service, "exp": now + expires_in,
                  "nbf": now - 10, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64url(canonical_json(header))}.{_b64url(canonical_json(claims))}"
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)  # JWS wants r || s, 32 bytes each
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def grant(self, user: str, scopes: Sequence[str]) -> list[dict[str, Any]]:
        access = []
        for scope in scopes:
            want = _parse_scope(scope)
            if want is None:
                continue
            if not user:
                allowed = {"pull"} if self.anonymous_pull else set()
            elif user in self.read_only:
                allowed = {"pull"}
            else:
                allowed = {"pull", "push", "delete", "*"}
            want["actions"] = [a for a in want["actions"] if a in allowed]
            if want["actions"]:
                access.append(want)
        return access

    def _app(self) -> Any:
        from aiohttp import web

        def unauthorized(why: str) -> web.Response:
            return web.json_response({"errors": [{"code": "UNAUTHORIZED", "message": why}]},
                                     status=401)

        def basic_user(request: web.Request) -> str | None:
            """The Basic user, "" when none is given, None when the password is wrong."""
            h = request.headers.get("Authorization", "")
            if not h.lower().startswith("basic "):
                return ""
            user, _, pw = base64.b64decode(h[6:]).decode().partition(":")
            return user if self.users.get(user) == pw and user else None

        async def get_token(request: web.Request) -> web.Response:
            user = basic_user(request)
            scopes = request.query.getall("scope", [])
            self.requests.append({"method": "GET", "user": user, "scopes": scopes,
                                  "service": request.query.get("service")})
            if user is None:
                return unauthorized("bad credentials")
            if request.query.get("service") != self.service:
                return web.json_response({"errors": [{"code": "DENIED"}]}, status=400)
            token = self.sign(user, self.grant(user, scopes))
            doc: dict[str, Any] = {"token": token, "access_token": token, "expires_in": 300,
                                   "issued_at": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                              time.gmtime())}
            if user and request.query.get("offline_token") == "true":
                doc["refresh_token"] = self._refresh_token(user)
            return web.json_response(doc)

        async def post_token(request: web.Request) -> web.Response:
            form = await request.post()
            grant_type = str(form.get("grant_type", ""))
            scopes = str(form.get("scope", "")).split()
            user: str | None = None
            if grant_type == "password":
                u, pw = str(form.get("username", "")), str(form.get("password", ""))
                user = u if u and self.users.get(u) == pw else None
            elif grant_type == "refresh_token":
                user = self.refresh_tokens.get(str(form.get("refresh_token", "")))
            self.requests.append({"method": "POST", "user": user, "scopes": scopes,
                                  "grant_type": grant_type, "service": form.get("service")})
            if user is None:
                return unauthorized("bad credentials")
            token = self.sign(user, self.grant(user, scopes))
            doc = {"access_token": token, "expires_in": 300, "scope": " ".join(scopes),
                   "refresh_token": self._refresh_token(user)}
            return web.json_response(doc)

        app = web.Application()
        app.router.add_get("/token", get_token)
        app.router.add_post("/token", post_token)
        return app

    def _refresh_token(self, user: str) -> str:
        tok = secrets.token_urlsafe(16)
        self.refresh_tokens[tok] = user
        return tok


# --- the real registry --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Registry:
    """A running /usr/bin/docker-registry (distribution 2.8) on 127.0.0.1."""

    base: Path  # config, log, htpasswd, certificates
    root: Path  # storage (filesystem driver)
    host: str  # "127.0.0.1:PORT"
    auth: str | None = None  # None, "htpasswd" or "token"
    users: dict[str, str] = field(default_factory=dict)
    tls: bool = False
    ca_pem: Path | None = None  # the CA that signed the registry's certificate, when tls
    token_server: TokenServer | None = None
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return ("https" if self.tls else "http") + "://" + self.host

    @property
    def log(self) -> Path:
        return self.base / "registry.log"

    @property
    def credentials(self) -> tuple[str, str] | None:
        """The first user's, which push_image uses unless told otherwise."""
        return next(iter(self.users.items()), None)

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca_pem)) if self.tls else None

    def client(self, auth: tuple[str, str] | None = None) -> RegistryClient:
        return RegistryClient(self.host, ssl_context=self.ssl_context(), auth=auth)

    def certs_dir(self, dest: Path) -> Path:
        """Lay out docker's certs.d convention, `<dest>/<host:port>/ca.crt`; returns dest."""
        assert self.ca_pem is not None, "not a TLS registry"
        (dest / self.host).mkdir(parents=True, exist_ok=True)
        shutil.copy(self.ca_pem, dest / self.host / "ca.crt")
        return dest

    def start(self) -> Registry:
        cmd = [REGISTRY_BIN, "serve", str(self.base / "config.yml")]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        probe = RegistryClient(self.host, ssl_context=self.ssl_context(), timeout=2)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited:\n{self.log.read_text()[-2000:]}")
            try:
                if probe.request("GET", "/v2/").status in (200, 401):
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.token_server is not None:
            self.token_server.stop()
            self.token_server = None


def start_registry(base: Path, *, auth: str | None = None,
                   users: Mapping[str, str] | None = None, tls: bool = False,
                   anonymous_pull: bool = False, read_only: Sequence[str] = ()) -> Registry:
    """Configure and start a docker-registry with storage under `base`.
    auth: None, "htpasswd" (bcrypt file of `users`) or "token" (a TokenServer
    in this process; `anonymous_pull` and `read_only` users shape its grants).
    tls: a CA and a certificate for 127.0.0.1 and localhost, made now."""
    base.mkdir(parents=True, exist_ok=True)
    root = base / "storage"
    root.mkdir(exist_ok=True)
    users = dict(users or {})
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True},
                    "maintenance": {"uploadpurging": {"enabled": False}}},
        "http": {"secret": secrets.token_hex(16), "headers": {"X-Content-Type-Options":
                                                               ["nosniff"]}},
    }
    reg = Registry(base, root, "", auth, users, tls)
    if tls:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("127.0.0.1", "localhost")
        reg.ca_pem = base / "ca.pem"
        ca.cert_pem.write_to_path(str(reg.ca_pem))
        cert.private_key_pem.write_to_path(str(base / "server.key"))
        (base / "server.crt").write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
        config["http"]["tls"] = {"certificate": str(base / "server.crt"),
                                 "key": str(base / "server.key")}
    if auth == "htpasswd":
        import bcrypt

        lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}"
                 for u, p in users.items()]
        (base / "htpasswd").write_text("\n".join(lines) + "\n")
        config["auth"] = {"htpasswd": {"realm": "dockyard-test", "path": str(base / "htpasswd")}}
    elif auth == "token":
        reg.token_server = TokenServer(base, users, anonymous_pull, read_only).start()
        config["auth"] = {"token": {"realm": reg.token_server.realm, "service": SERVICE,
                                    "issuer": ISSUER,
                                    "rootcertbundle": str(reg.token_server.cert_pem)}}
    elif auth is not None:
        raise ValueError(f"unknown auth {auth!r}")
    # A port picked now may be taken before the registry binds it: retry a few times.
    for attempt in range(5):
        reg.host = f"127.0.0.1:{free_port()}"
        config["http"]["addr"] = reg.host
        (base / "config.yml").write_text(json.dumps(config, indent=1))  # YAML reads JSON
        try:
            return reg.start()
        except RuntimeError as e:
            if "address already in use" not in str(e) or attempt == 4:
                reg.stop()
                raise
    raise AssertionError("unreachable")


def push_image(registry: Registry, repo: str, tag: str, layers: Sequence[bytes | Layer],
               config: dict[str, Any] | None = None, media: str = "docker",
               index: bool = False, auth: tuple[str, str] | bool = True) -> Image:
    """Build an image (see build_image) and upload it with plain http.client:
    gzipped layers, config, manifest(s), then the tag. auth: (user, password),
    True for the registry's first user (if it has users), False for none.
    Returns the Image: .manifest_digest, .image_id (config digest), .diff_ids,
    .layers (each with .digest), .ref ("127.0.0.1:PORT/repo:tag")."""
    image = build_image(repo, tag, layers, config, media, index)
    return push_built(registry, image, auth)


def push_built(registry: Registry, image: Image, auth: tuple[str, str] | bool = True) -> Image:
    creds = registry.credentials if auth is True else auth or None
    registry.client(creds).push(image)
    image.host = registry.host
    return image


# --- a registry that misbehaves -------------------------------------------------


FAULTS = ("wrong_digest", "truncated", "status500", "slow", "flaky")


@dataclass
class Fault:
    kind: str
    times: int | None  # how many GETs misbehave; None: all of them
    stall: float  # seconds, for "slow"
    used: int = 0


class BadRegistry:
    """A fake registry (aiohttp, in a thread) that serves images from memory
    and misbehaves on chosen blobs, for download-failure tests:

    wrong_digest  other bytes of the same length (headers still claim the digest)
    truncated     Content-Length of the whole blob, half the body, connection closed
    status500     500 with a registry error body
    slow          half the body, a stall of `stall` seconds, then the rest
    flaky         500 the first time, the blob after

    Every request is counted per "METHOD /path" in `counts`; blob_gets(digest)
    sums a blob's GETs over repositories. Range requests (`bytes=N-`) get 206.
    It also answers /v2/_catalog, tags/list, and the v1 search API that
    `docker search` uses (docker-registry has none), from `search_index`."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.manifests: dict[str, tuple[str, bytes]] = {}
        self.tags: dict[tuple[str, str], str] = {}
        # repo -> the v1 search result fields (description, star_count, ...); edit freely
        self.search_index: dict[str, dict[str, Any]] = {}
        self.faults: dict[str, Fault] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.server = ThreadedApp(self._app())

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def start(self) -> BadRegistry:
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()

    def add(self, image: Image) -> Image:
        for digest, blob in image.blobs.items():
            self.blobs[digest] = blob.read_bytes() if isinstance(blob, Path) else blob
        self.manifests.update(image.manifests)
        self.tags[(image.repo, image.tag)] = image.manifest_digest
        self.search_index.setdefault(image.repo, {"description": f"{image.repo} for tests",
                                                  "star_count": 0, "is_official": False,
                                                  "is_automated": False})
        image.host = self.host
        return image

    def serve(self, repo: str, tag: str, layers: Sequence[bytes | Layer],
              config: dict[str, Any] | None = None, media: str = "docker", index: bool = False,
              fault: str | None = None, fault_layer: int | str = 0,
              times: int | None = None, stall: float = 3.0) -> Image:
        """Serve a new image; `fault` applies to layer `fault_layer` (an index,
        "config", or a digest)."""
        image = self.add(build_image(repo, tag, layers, config, media, index))
        if fault:
            if fault_layer == "config":
                target = image.image_id
            elif isinstance(fault_layer, int):
                target = image.layers[fault_layer].digest
            else:
                target = fault_layer
            self.set_fault(target, fault, times=times, stall=stall)
        return image

    def set_fault(self, digest: str, kind: str, *, times: int | None = None,
                  stall: float = 3.0) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        self.faults[digest] = Fault(kind, 1 if kind == "flaky" and times is None else times,
                                    stall)

    def blob_gets(self, digest: str) -> int:
        return sum(n for k, n in self.counts.items()
                   if k.startswith("GET ") and k.endswith(f"/blobs/{digest}"))

    def _app(self) -> Any:
        from aiohttp import web

        def error(status: int, code: str, message: str) -> web.Response:
            return web.json_response({"errors": [{"code": code, "message": message}]},
                                     status=status)

        @web.middleware
        async def count(request: web.Request, handler: Callable) -> web.StreamResponse:
            self.counts[f"{request.method} {request.path}"] += 1
            self.requests.append((request.method, request.path, dict(request.headers)))
            return await handler(request)

        async def ping(request: web.Request) -> web.Response:
            return web.json_response({}, headers={"Docker-Distribution-Api-Version":
                                                  "registry/2.0"})

        async def catalog(request: web.Request) -> web.Response:
            return web.json_response({"repositories": sorted({r for r, _ in self.tags})})

        async def tags_list(request: web.Request) -> web.Response:
            name = request.match_info["name"]
            tags = sorted(t for r, t in self.tags if r == name)
            if not tags:
                return error(404, "NAME_UNKNOWN", "repository name not known to registry")
            return web.json_response({"name": name, "tags": tags})

        async def search(request: web.Request) -> web.Response:
            q = request.query.get("q", "")
            n = int(request.query.get("n", "25"))
            hits = [{"name": repo, **fields} for repo, fields in sorted(self.search_index.items())
                    if q in repo]
            return web.json_response({"query": q, "num_results": len(hits), "num_pages": 1,
                                      "page": 1, "page_size": n, "results": hits[:n]})

        async def manifest(request: web.Request) -> web.Response:
            name, ref = request.match_info["name"], request.match_info["ref"]
            digest = ref if ref.startswith("sha256:") else self.tags.get((name, ref))
            if digest is None or digest not in self.manifests:
                return error(404, "MANIFEST_UNKNOWN", "manifest unknown")
            media_type, raw = self.manifests[digest]
            headers = {"Docker-Content-Digest": digest, "Content-Type": media_type}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(raw))
                return web.Response(headers=headers)
            return web.Response(body=raw, headers=headers)

        async def blob(request: web.Request) -> web.StreamResponse:
            digest = request.match_info["digest"]
            data = self.blobs.get(digest)
            if data is None:
                return error(404, "BLOB_UNKNOWN", "blob unknown to registry")
            headers = {"Docker-Content-Digest": digest, "Content-Type": "application/octet-stream",
                       "Accept-Ranges": "bytes"}
            if request.method == "HEAD":
                headers["Content-Length"] = str(len(data))
                return web.Response(headers=headers)
            f = self.faults.get(digest)
            if f is not None and (f.times is None or f.used < f.times):
                f.used += 1
                return await misbehave(request, f, data, headers)
            start = 0
            rng = request.headers.get("Range", "")
            if rng.startswith("bytes=") and rng[6:].split("-")[0].isdigit():
                start = int(rng[6:].split("-")[0])
                if start >= len(data):
                    return web.Response(status=416, headers=headers)
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                return web.Response(status=206, body=data[start:], headers=headers)
            return web.Response(body=data, headers=headers)

        async def misbehave(request: web.Request, f: Fault, data: bytes,
                            headers: dict[str, str]) -> web.StreamResponse:
            if f.kind in ("status500", "flaky"):
                return error(500, "UNKNOWN", "injected failure")
            if f.kind == "wrong_digest":
                return web.Response(body=data.translate(bytes(range(255, -1, -1))),
                                    headers=headers)
            resp = web.StreamResponse(headers=headers)
            resp.content_length = len(data)
            await resp.prepare(request)
            half = len(data) // 2
            await resp.write(data[:half])
            if f.kind == "slow":
                await asyncio.sleep(f.stall)
                await resp.write(data[half:])
                await resp.write_eof()
                return resp
            # truncated: the client was promised len(data) bytes; hang up now.
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError  # aiohttp drops the handler quietly

        app = web.Application(middlewares=[count])
        app.router.add_get("/v2/", ping)
        app.router.add_get("/v2/_catalog", catalog)
        app.router.add_get("/v1/search", search)
        app.router.add_get("/v2/{name:.+}/tags/list", tags_list)
        app.router.add_route("*", "/v2/{name:.+}/manifests/{ref}", manifest)
        app.router.add_route("*", "/v2/{name:.+}/blobs/{digest}", blob)
        return app


# --- fixtures -----------------------------------------------------------------


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A plain-HTTP docker-registry on 127.0.0.1, shared by the session."""
    reg = start_registry(tmp_path_factory.mktemp("registry"))
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture(scope="session")
def busybox_image(registry: Registry) -> Image:
    """busybox-static as a one-layer image at `{registry.host}/test/busybox:latest`."""
    return push_image(registry, "test/busybox", "latest", [busybox_layer()])


@pytest.fixture(scope="session")
def sample_image(registry: Registry) -> Image:
    """sample_layers() (busybox, files, whiteout + opaque dir) at test/sample:latest."""
    return push_image(registry, "test/sample", "latest", sample_layers())


@pytest.fixture
def registry_factory(tmp_path: Path) -> Iterator[Callable[..., Registry]]:
    """start(auth=None|"htpasswd"|"token", users={...}, tls=False,
    anonymous_pull=False, read_only=()) -> a started Registry; all are
    stopped when the test ends."""
    started: list[Registry] = []

    def start(**kw: Any) -> Registry:
        reg = start_registry(tmp_path / f"registry{len(started)}", **kw)
        started.append(reg)
        return reg

    try:
        yield start
    finally:
        for reg in started:
            reg.stop()


@pytest.fixture
def bad_registry() -> Iterator[BadRegistry]:
    """A BadRegistry with nothing served yet; call .serve(...) to add an image."""
    bad = BadRegistry().start()
    try:
        yield bad
    finally:
        bad.stop()
