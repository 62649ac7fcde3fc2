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

from .errors import MetaNotFound, NetworkError, ServerError
from .keys import PublicKey

MAX_METADATA = 100 << 20


class NotaryServer:
    def __init__(self, url: str, tls_dir: Path, verify: bool = True, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        u = urllib.parse.urlsplit(self.url)
        self.host = u.netloc
        self.prefix = u.path
        self.timeout = timeout
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

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        conn = http.client.HTTPSConnection(self.host, timeout=self.timeout, context=self.context)
        try:
            conn.request(method, self.prefix + path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, resp.read(MAX_METADATA)
        except (OSError, http.client.HTTPException) as e:
            raise NetworkError(f"{method} {self.url}{path}: {e}") from None
        finally:
            conn.close()

    @staticmethod
    def _path(gun: str, name: str) -> str:
        return f"/v2/{urllib.parse.quote(gun)}/_trust/tuf/{name}"

    def get_meta(self, gun: str, role: str) -> bytes:
        status, body = self._request("GET", self._path(gun, f"{role}.json"))
        if status == 404:
            raise MetaNotFound(f"{gun} {role}")
        if status != 200:
            raise ServerError(_message(status, body))
        return body

    def get_key(self, gun: str, role: str) -> PublicKey:
        status, body = self._request("GET", self._path(gun, f"{role}.key"))
        if status != 200:
            raise ServerError(_message(status, body))
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
        if status != 200:
            raise ServerError(_message(status, resp))


def _message(status: int, body: bytes) -> str:
    try:
        errs: list[dict[str, Any]] = json.loads(body).get("errors") or []
        if errs:
            e = errs[0]
            detail = e.get("detail")
            return f"{e.get('message', '')}" + (f" {detail}" if detail else "")
    except (ValueError, AttributeError):
        pass
    return f"notary server answered {status}"
