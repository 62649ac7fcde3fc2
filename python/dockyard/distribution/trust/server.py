"""A notary server's HTTP API (notary's storage.HTTPStore and remote key calls):
`GET /v2/<gun>/_trust/tuf/<role>.json` for metadata, `GET .../<role>.key` for the
keys it holds (timestamp, and snapshot when it signs snapshots), and a multipart
`POST .../_trust/tuf/` that publishes several roles at once. TLS trusts the CAs
in docker's `<config>/tls/<host:port>/` beside the system's."""

from __future__ import annotations

import http.client
import json
import secrets
import ssl
import urllib.parse
from pathlib import Path
from typing import Any

from ..auth import AuthConfig, parse_challenges, repo_scope
from .errors import MetaNotFound, NetworkError, ServerError, ServerUnavailable
from .keys import PublicKey

MAX_METADATA = 100 << 20


class NotaryServer:
    """One notary server. `auth` is what docker would send the registry: after a
    ping of `/v2/`, a Bearer challenge is answered with a token for
    `repository:<gun>:<actions>` from its realm, a Basic one with the
    credentials, as docker's GetNotaryRepository sets up its transport."""

    def __init__(self, url: str, tls_dir: Path, verify: bool = True,
                 auth: AuthConfig | None = None, repository: str = "",
                 actions: tuple[str, ...] = ("pull",), timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        u = urllib.parse.urlsplit(self.url)
        self.host = u.netloc
        self.prefix = u.path
        self.timeout = timeout
        self.auth = auth or AuthConfig()
        self.scope = repo_scope(repository, actions)
        self.authorization: str | None = None
        self.pinged = False
        self.context = ssl.create_default_context()
        if not verify:
            self.context.check_hostname = False
            self.context.verify_mode = ssl.CERT_NONE
        try:
            entries = sorted(tls_dir.iterdir())
        except OSError:
            entries = []
        for p in entries:
            if p.suffix == ".crt":
                self.context.load_verify_locations(cafile=str(p))
            elif p.suffix == ".cert" and p.with_suffix(".key").exists():
                self.context.load_cert_chain(str(p), str(p.with_suffix(".key")))

    def _send(self, method: str, url: str, body: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        u = urllib.parse.urlsplit(url)
        conn: http.client.HTTPConnection
        if u.scheme == "https":
            conn = http.client.HTTPSConnection(u.netloc, timeout=self.timeout,
                                               context=self.context)
        else:
            conn = http.client.HTTPConnection(u.netloc, timeout=self.timeout)
        path = u.path + (f"?{u.query}" if u.query else "")
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.headers), resp.read(MAX_METADATA)
        except (OSError, http.client.HTTPException) as e:
            raise NetworkError(_dial_error(u.netloc, e)) from None
        finally:
            conn.close()

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        if not self.pinged:
            self._authorize()
        headers = dict(headers or {})
        if self.authorization:
            headers["Authorization"] = self.authorization
        status, _, data = self._send(method, self.url + path, body, headers)
        return status, data

    def _authorize(self) -> None:
        """Ping `/v2/` and answer its challenge; an unreachable server is left
        to fail on the request that follows (docker's offline mode)."""
        self.pinged = True
        try:
            status, headers, _ = self._send("GET", self.url + "/v2/")
        except NetworkError:
            return
        if status != 401:
            return
        challenge = {k.lower(): v for k, v in headers.items()}.get("www-authenticate", "")
        for scheme, params in parse_challenges(challenge):
            if scheme == "bearer" and params.get("realm"):
                self.authorization = f"Bearer {self._token(params)}"
                return
            if scheme == "basic" and self.auth.basic_header():
                self.authorization = self.auth.basic_header()
                return

    def _token(self, params: dict[str, str]) -> str:
        """A bearer token from the realm (docker's token handler, client_id docker)."""
        q = [("scope", self.scope)]
        if params.get("service"):
            q.insert(0, ("service", params["service"]))
        headers = {}
        creds = self.auth.credentials()
        if creds:
            q.append(("account", creds[0]))
            headers["Authorization"] = self.auth.basic_header() or ""
        realm = params["realm"]
        url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(q)
        status, _, body = self._send("GET", url, None, headers)
        if status != 200:
            raise ServerUnavailable(status)
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise ServerError(f"{realm}: the token server answered without a token")
        return str(token)

    @staticmethod
    def _path(gun: str, name: str) -> str:
        return f"/v2/{urllib.parse.quote(gun)}/_trust/tuf/{name}"

    def get_meta(self, gun: str, role: str) -> bytes:
        status, body = self._request("GET", self._path(gun, f"{role}.json"))
        if status == 404:
            raise MetaNotFound(f"{gun} {role}")
        _check(status, body)
        return body

    def get_key(self, gun: str, role: str) -> PublicKey:
        status, body = self._request("GET", self._path(gun, f"{role}.key"))
        _check(status, body)
        try:
            return PublicKey.from_json(json.loads(body))
        except ValueError as e:
            raise ServerError(f"invalid {role} key from server: {e}") from None

    def publish(self, gun: str, files: dict[str, bytes]) -> None:
        boundary = secrets.token_hex(16)
        parts = []
        for role, data in files.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
                         f'filename="{role}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                         .encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        status, resp = self._request("POST", self._path(gun, ""), body,
                                     {"Content-Type": f"multipart/form-data; boundary={boundary}"})
        _check(status, resp)


def _check(status: int, body: bytes) -> None:
    """notary's translateStatusToError for what isn't 200 (or 404, per call)."""
    if status == 200:
        return
    if status == 400:
        raise ServerError(_rejected(body))
    raise ServerUnavailable(status)


def _rejected(body: bytes) -> str:
    """A 400's one error detail, else notary's ErrInvalidOperation."""
    try:
        errs: list[dict[str, Any]] = json.loads(body).get("errors") or []
        if len(errs) == 1:
            detail = errs[0].get("detail") or {}
            inner = detail.get("Error") if isinstance(detail, dict) else None
            if isinstance(inner, dict) and inner.get("Msg"):
                return str(inner["Msg"])
            if isinstance(inner, str) and inner:
                return inner
    except (ValueError, AttributeError):
        pass
    return "trust server rejected operation."


def _dial_error(host: str, e: Exception) -> str:
    """Go's words for a failed connection, as notary passes them on."""
    if isinstance(e, ConnectionRefusedError):
        return f"dial tcp {host}: connect: connection refused"
    if isinstance(e, ssl.SSLCertVerificationError):
        return f"tls: failed to verify certificate: {e.verify_message}"
    return str(e) or type(e).__name__
