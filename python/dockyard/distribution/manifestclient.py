"""The registry side of docker's client-side `manifest` commands: fetch an
image manifest with the platform its config names, or every entry of a
manifest list; mount blobs across repositories and put manifests.

These run in the client, not the daemon, and follow the docker CLI's rules
rather than a pull's: reading from a registry only reachable over plain HTTP
finds no such manifest unless --insecure is given (pushes to loopback ones
need no flag); unknown manifests and rejected credentials read "no such
manifest"; other failures are worded as docker's registry client words them.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import RegistryError, RegistryNotFound, Unauthorized
from ..mediatypes import DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST
from ..reference import Reference
from . import RegistryOptions
from .auth import AuthConfig, parse_challenges, repo_scope
from .client import Response, Session, error_codes, error_text
from .endpoints import is_insecure

ACCEPT = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX])
MAX_MANIFEST = 4 << 20
MAX_CONFIG = 8 << 20
PLATFORM_FIELDS = ("architecture", "os", "os.version", "os.features", "variant")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class NoSuchManifest(RegistryNotFound):
    def __init__(self, ref: Reference) -> None:
        super().__init__(f"no such manifest: {ref}")


class _Continue(Exception):
    """docker's continueOnError: an answer that means "not here"."""


@dataclass
class Fetched:
    """An image manifest as the docker CLI records it: where it came from,
    its bytes, and the platform (from its config, or from the list entry)."""

    ref: Reference
    media_type: str
    raw: bytes
    digest: str
    platform: dict[str, Any]


def platform_from_config(config: bytes) -> dict[str, Any]:
    """What Go's json.Unmarshal of an image config into an OCI Platform keeps:
    the string fields, keys matched exactly or else case-insensitively."""
    try:
        doc = json.loads(config)
    except ValueError:
        raise RegistryError("invalid image config: not JSON") from None
    out: dict[str, Any] = {}
    if not isinstance(doc, dict):
        return out
    for want in PLATFORM_FIELDS:
        key = want if want in doc else next((k for k in doc if k.lower() == want), None)
        if key is None:
            continue
        v = doc[key]
        if want == "os.features":
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                out[want] = v
        elif isinstance(v, str):
            out[want] = v
    return out


def error_message(r: Response, body: bytes) -> str:
    """An error answer as docker's registry client words it: a bearer
    challenge's own error first, then the body's errcodes, several as a
    list ("errors:\n...")."""
    errs: list[str] = []
    if r.status == 401:
        for scheme, params in parse_challenges(r.headers.get("WWW-Authenticate", "")):
            kind = params.get("error")
            if scheme == "bearer" and kind in ("invalid_token", "insufficient_scope"):
                code, default = (("unauthorized", "authentication required")
                                 if kind == "invalid_token" else
                                 ("denied", "requested access to the resource is denied"))
                errs.append(f"{code}: {params.get('error_description') or default}")
                break
    try:
        found = [e for e in json.loads(body).get("errors") or [] if isinstance(e, dict)]
    except (ValueError, AttributeError):
        found = []
    for e in found:
        code = str(e.get("code", "")).lower().replace("_", " ")
        errs.append(f"{code}: {e.get('message') or ''}")
    if not found and r.status == 401:
        errs.append("unauthorized: authentication required")
    if not errs:
        return error_text(body) or f"unexpected status {r.status}"
    return errs[0] if len(errs) == 1 else "errors:\n" + "".join(e + "\n" for e in errs)


@dataclass
class _Conn:
    session: Session
    auth_error: str | None = None
    """Why no authorization could be had: docker's client finds out at the
    first request and names that request's URL."""


class ManifestClient:
    """One command's registry client. `auth_for(domain)` gives the stored
    credentials; `insecure` is --insecure (skip TLS verification, allow HTTP)."""

    def __init__(self, auth_for: Callable[[str], AuthConfig], insecure: bool) -> None:
        self.auth_for = auth_for
        self.insecure = insecure
        self.conns: dict[tuple[str, tuple[str, ...]], _Conn] = {}

    def _connect(self, domain: str, scopes: list[str], push: bool = False) -> _Conn:
        key = (domain, tuple(scopes))
        conn = self.conns.get(key)
        if conn is None:
            opts = RegistryOptions(insecure_registries=[domain] if self.insecure else [])
            s = Session(domain, opts, self.auth_for(domain))
            try:
                s.ping()
            except Unauthorized:
                raise
            except RegistryError as e:
                # docker gives up on the first endpoint that fails to connect:
                # HTTPS, except for pushes to its default insecure (loopback) ones.
                msg = str(e)
                if not (push and is_insecure(domain, RegistryOptions())):
                    msg = msg.replace('Get "http://', 'Get "https://', 1)
                raise RegistryError("failed to configure transport: error pinging v2 "
                                    f"registry: {msg}") from None
            conn = _Conn(s)
            try:
                s.authorize(scopes)
            except Unauthorized as e:
                # `Get "<token URL>": unauthorized: <why>` -> <why>
                why = str(e).split('": ', 1)[-1]
                if why.startswith("unauthorized: ") and ": " in why[len("unauthorized: "):]:
                    why = why[len("unauthorized: "):]
                conn.auth_error = why
            self.conns[key] = conn
        return conn

    def _request(self, conn: _Conn, method: str, path: str,
                 headers: dict[str, str] | None = None, body: bytes | None = None) -> Response:
        if conn.auth_error is not None:
            raise Unauthorized(f'{method.capitalize()} "{conn.session.url(path)}": '
                               f"{conn.auth_error}")
        return conn.session.request(method, path, headers, body)

    # --- reading -------------------------------------------------------------------
    def _pull_conn(self, ref: Reference) -> _Conn:
        conn = self._connect(ref.domain, [repo_scope(ref.path, ("pull",))])
        ep = conn.session.endpoint
        if ep is not None and ep.scheme == "http" and not self.insecure:
            raise _Continue()  # docker skips non-TLS endpoints without --insecure
        return conn

    def _get(self, conn: _Conn, ref: Reference, tag_or_digest: str) -> tuple[str, bytes, str]:
        with self._request(conn, "GET", f"/v2/{ref.path}/manifests/{tag_or_digest}",
                           {"Accept": ACCEPT}) as r:
            body = r.read(MAX_MANIFEST + 1)
            if r.status != 200:
                codes = error_codes(body)
                if r.status == 401 or codes & {"MANIFEST_UNKNOWN", "NAME_UNKNOWN",
                                               "UNAUTHORIZED"} or (not codes and r.status < 500):
                    raise _Continue()
                raise RegistryError(error_message(r, body))
            ctype = r.headers.get("Content-Type", "").split(";")[0].strip()
        if len(body) > MAX_MANIFEST:
            raise RegistryError(f"manifest for {ref} is too large")
        media = ctype
        if media not in (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX):
            try:
                media = json.loads(body).get("mediaType") or ""
            except (ValueError, AttributeError):
                media = ""
            if media not in (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX):
                raise RegistryError(f"unsupported manifest media type and no default "
                                    f"available: {ctype}")
        return media, body, sha256(body)

    def _image(self, conn: _Conn, ref: Reference, media: str, raw: bytes, digest: str) -> Fetched:
        if ref.digest and ref.digest != digest:
            raise RegistryError(f"manifest verification failed for digest {ref.digest}")
        try:
            config = json.loads(raw)["config"]["digest"]
        except (ValueError, KeyError, TypeError):
            raise RegistryError(f"{ref} is not a manifest") from None
        with self._request(conn, "GET", f"/v2/{ref.path}/blobs/{config}") as r:
            body = r.read(MAX_CONFIG + 1)
            if r.status != 200:
                if r.status == 404:
                    raise RegistryError("unknown blob")
                raise RegistryError(error_message(r, body))
        if sha256(body) != config:
            raise RegistryError(f"image config verification failed for digest {config}")
        return Fetched(ref, media, raw, digest, platform_from_config(body))

    def _fetch(self, ref: Reference, fn: Callable[[_Conn], Any]) -> Any:
        """fn over the registry's connection; "not here" is "no such manifest"."""
        try:
            return fn(self._pull_conn(ref))
        except _Continue:
            raise NoSuchManifest(ref) from None

    def get_manifest(self, ref: Reference) -> Fetched:
        """An image manifest; a list is an error ("... is a manifest list")."""
        def fetch(conn: _Conn) -> Fetched:
            # A reference with both names the tag to the registry, as docker's does.
            media, raw, digest = self._get(conn, ref, ref.tag or ref.digest or "latest")
            if media in (DOCKER_LIST, OCI_INDEX):
                raise RegistryError(f"{ref} is a manifest list")
            return self._image(conn, ref, media, raw, digest)
        return self._fetch(ref, fetch)

    def get_manifest_list(self, ref: Reference) -> list[Fetched]:
        """Every entry of a list, each with the list's platform for it."""
        def fetch(conn: _Conn) -> list[Fetched]:
            media, raw, digest = self._get(conn, ref, ref.tag or ref.digest or "latest")
            if media not in (DOCKER_LIST, OCI_INDEX):
                raise RegistryError(f"unsupported manifest format: {ref} is not a manifest list")
            if ref.digest and ref.digest != digest:
                raise RegistryError(f"manifest verification failed for digest {ref.digest}")
            out = []
            try:
                entries = [e for e in json.loads(raw).get("manifests") or []
                           if isinstance(e.get("digest"), str)]
            except (ValueError, AttributeError):
                raise RegistryError(f"invalid manifest list {ref}") from None
            for entry in entries:
                d = entry["digest"]
                m_media, m_raw, m_digest = self._get(conn, ref, d)
                if m_media not in (DOCKER_MANIFEST, OCI_MANIFEST):
                    raise RegistryError("unsupported manifest type: "
                                        "*manifestlist.DeserializedManifestList")
                img = self._image(conn, ref.with_digest(d), m_media, m_raw, m_digest)
                p = entry.get("platform") or {}
                img.platform = {k: p[k] for k in PLATFORM_FIELDS if p.get(k)}
                img.platform.setdefault("architecture", "")
                img.platform.setdefault("os", "")
                out.append(img)
            return out
        return self._fetch(ref, fetch)

    # --- writing -------------------------------------------------------------------
    # `sources`: every repository the push mounts from, so that one token
    # covers the whole push.
    def _push_conn(self, target: Reference, sources: list[str]) -> _Conn:
        scopes = [repo_scope(target.path, ("pull", "push"))]
        scopes += [repo_scope(p, ("pull",)) for p in sources if p != target.path]
        return self._connect(target.domain, scopes, push=True)

    def mount_blob(self, target: Reference, sources: list[str], source: str, digest: str,
                   ) -> bool:
        """Mount `digest` from repository `source` into target's; False when
        the registry started an upload instead (cancelled here)."""
        conn = self._push_conn(target, sources)
        query = urllib.parse.urlencode([("from", source), ("mount", digest)])
        try:
            with self._request(conn, "POST", f"/v2/{target.path}/blobs/uploads/?{query}",
                               {"Content-Length": "0"}, b"") as r:
                body = r.read()
                if r.status == 201:
                    return True
                if r.status != 202:
                    raise RegistryError(error_message(r, body))
                loc = conn.session.location(r)
        except RegistryError as e:
            raise RegistryError(f"failed to mount blob {source}@{digest} to {target}: {e}") \
                from None
        with conn.session.request("DELETE", loc) as r:
            r.read()
        return False

    def put_manifest(self, ref: Reference, sources: list[str], media_type: str, raw: bytes,
                     ) -> str:
        """PUT a manifest at ref's tag or digest; the registry's digest for it."""
        conn = self._push_conn(ref, sources)
        try:
            with self._request(conn, "PUT", f"/v2/{ref.path}/manifests/{ref.tag or ref.digest}",
                               {"Content-Type": media_type}, raw) as r:
                body = r.read()
                if r.status not in (200, 201, 202):
                    raise RegistryError(error_message(r, body))
                return r.headers.get("Docker-Content-Digest", "") or sha256(raw)
        except RegistryError as e:
            raise RegistryError(f"failed to put manifest {ref}: {e}") from None
