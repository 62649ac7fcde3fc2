"""An HTTP session with one registry (Registry HTTP API v2), on the standard
library: the engine calls it from worker threads, one connection per request
(pulls overlap requests on threads, and a registry on 127.0.0.1 makes a
connection nearly free).

`Session.ping()` finds the endpoint that answers (HTTPS, or plain HTTP for
insecure registries) and how it wants to be authenticated; `authorize()`
fetches a bearer token for the scopes a pull or push needs; `request()` sends
requests with that authorization and follows redirects (blobs are often
served from elsewhere; the Authorization header never leaves the registry).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..errors import RegistryError, Unauthorized
from . import RegistryOptions
from .auth import AuthConfig, parse_challenges
from .endpoints import Endpoint, preferred, remember

USER_AGENT = "dockyard (distribution; like docker/20.10)"
#: Go's http.Client gives up after 10 redirects, and so do we (a loop ends).
MAX_REDIRECTS = 10
REDIRECTS = (301, 302, 303, 307, 308)
#: The most Response.read() takes of a body (tag lists, tokens, errors).
MAX_BODY = 16 << 20


class BadLocation(RegistryError):
    """A URL from the registry (a redirect, a token realm) that can't be
    followed, or a redirect loop: trying again would not help."""


def error_text(body: bytes) -> str:
    """The registry's `{"errors": [...]}` as docker prints it ("manifest
    unknown: manifest unknown"), or the body's first line."""
    try:
        errs = json.loads(body).get("errors") or []
        parts = []
        for e in errs:
            code = str(e.get("code", "")).lower().replace("_", " ")
            msg = e.get("message") or ""
            parts.append(f"{code}: {msg}" if code else msg)
        if parts:
            return "; ".join(parts)
    except (ValueError, AttributeError):
        pass
    text = body.decode("utf-8", "replace").strip().splitlines()
    return text[0][:200] if text else ""


def error_codes(body: bytes) -> set[str]:
    try:
        return {str(e.get("code", "")) for e in json.loads(body).get("errors") or []}
    except (ValueError, AttributeError):
        return set()


def dial_error(method: str, url: str, e: BaseException) -> RegistryError:
    """A connection failure in one line, shaped like docker's."""
    u = urllib.parse.urlsplit(url)
    if isinstance(e, socket.gaierror):
        why = f"dial tcp: lookup {u.hostname}: no such host (registry unreachable)"
    elif isinstance(e, ConnectionRefusedError):
        why = f"dial tcp {u.netloc}: connect: connection refused"
    elif isinstance(e, (socket.timeout, TimeoutError)):
        why = "net/http: timeout awaiting response (registry unreachable or too slow)"
    elif isinstance(e, ssl.SSLCertVerificationError):
        why = f"tls: failed to verify certificate: {e.verify_message or e.reason}"
    elif isinstance(e, ssl.SSLError):
        why = f"tls: {e.reason or e}"
    elif isinstance(e, ConnectionResetError):
        why = "connection reset by peer"  # the registry hung up mid-request
    elif isinstance(e, BrokenPipeError):
        why = "write: broken pipe"
    elif isinstance(e, http.client.RemoteDisconnected):
        why = "EOF"
    else:
        why = str(e) or type(e).__name__
    return RegistryError(f'{method.capitalize()} "{url}": {why}')


class Response:
    """An open response; read the body, then close (or use as a context)."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
                 url: str) -> None:
        self.conn = conn
        self.raw = resp
        self.url = url
        self.status = resp.status
        self.headers = resp.headers

    def read(self, n: int | None = None) -> bytes:
        """Up to `n` bytes; without `n`, the whole body if it is at most
        MAX_BODY (a registry's JSON or error; blobs are streamed, not read
        here): a body that never ends must not hold the pull forever."""
        if n is not None:
            return self.raw.read(n)
        body = self.raw.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise RegistryError(f'{self.url}: the answer is larger than {MAX_BODY >> 20} MiB')
        return body

    def close(self) -> None:
        self.raw.close()
        self.conn.close()

    def __enter__(self) -> "Response":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def json(self) -> Any:
        return json.loads(self.read())


@dataclass
class Session:
    domain: str
    opts: RegistryOptions
    auth: AuthConfig = field(default_factory=AuthConfig)
    endpoint: Endpoint | None = None
    challenge: tuple[str, dict[str, str]] | None = None
    authorization: str | None = None
    scopes: list[str] = field(default_factory=list)

    # --- connections ---------------------------------------------------------
    def _connect(self, scheme: str, netloc: str, ctx: ssl.SSLContext | None
                 ) -> http.client.HTTPConnection:
        if scheme == "https":
            return http.client.HTTPSConnection(netloc, timeout=self.opts.timeout,
                                               context=ctx or ssl.create_default_context())
        return http.client.HTTPConnection(netloc, timeout=self.opts.timeout)

    def _send(self, method: str, url: str, headers: dict[str, str],
              body: bytes | Iterable[bytes] | None, ctx: ssl.SSLContext | None) -> Response:
        try:
            u = urllib.parse.urlsplit(url)
            u.port  # noqa: B018 - raises on a port that is not a number
        except ValueError as e:
            raise BadLocation(f'{method.capitalize()} "{url}": invalid URL: {e}') from None
        # Redirects and token realms come from the registry: only HTTP(S), and
        # never an empty host (http.client would take it for localhost).
        if u.scheme not in ("http", "https"):
            raise BadLocation(f'{method.capitalize()} "{url}": unsupported protocol scheme '
                                f'"{u.scheme}"')
        if not u.hostname:
            raise BadLocation(f'{method.capitalize()} "{url}": no Host in request URL')
        conn = self._connect(u.scheme, u.netloc, ctx)
        target = urllib.parse.urlunsplit(("", "", u.path or "/", u.query, ""))
        h = {"User-Agent": USER_AGENT, **headers}
        try:
            if body is not None and not isinstance(body, (bytes, bytearray)):
                h.setdefault("Transfer-Encoding", "chunked")
                conn.request(method, target, body=body, headers=h, encode_chunked=True)
            else:
                conn.request(method, target, body=body, headers=h)
            resp = conn.getresponse()
        except BaseException:
            conn.close()
            raise
        return Response(conn, resp, url)

    # --- ping and auth -------------------------------------------------------
    def ping(self) -> None:
        """GET /v2/ on each candidate endpoint until one answers."""
        if self.endpoint is not None:
            return
        last: BaseException | None = None
        for ep in preferred(self.domain, self.opts):
            url = f"{ep.base}/v2/"
            try:
                r = self._send("GET", url, {}, None, ep.ssl)
            except (OSError, http.client.HTTPException) as e:
                last = dial_error("GET", url, e)
                continue
            with r:
                body = r.read()
                if r.status >= 500 or r.status not in (200, 401):
                    last = RegistryError(f'Get "{url}": unexpected status {r.status}: '
                                         f"{error_text(body)}")
                    # A plain-HTTP server answering a TLS hello is not a registry
                    # over HTTPS: try the next candidate.
                    continue
                self.endpoint = ep
                remember(ep)
                if r.status == 401:
                    chs = parse_challenges(r.headers.get("WWW-Authenticate", ""))
                    self.challenge = next((c for c in chs if c[0] == "bearer"),
                                          chs[0] if chs else None)
                return
        assert last is not None
        raise last

    def authorize(self, scopes: list[str]) -> None:
        """Get the Authorization header that the scopes need (none for an open
        registry; Basic; or a bearer token from the challenge's realm)."""
        self.ping()
        self.scopes = list(scopes)
        if self.challenge is None:
            self.authorization = None
            return
        scheme, params = self.challenge
        if scheme == "basic":
            basic = self.auth.basic_header()
            if basic is None:
                raise Unauthorized(f'Get "{self.endpoint.base}/v2/": no basic auth credentials'
                                   if self.endpoint else "no basic auth credentials")
            self.authorization = basic
            return
        if scheme == "bearer":
            if self.auth.registrytoken:
                self.authorization = f"Bearer {self.auth.registrytoken}"
                return
            self.authorization = f"Bearer {self._fetch_token(params, scopes)}"
            return
        raise RegistryError(f"unsupported authentication scheme {scheme!r} from {self.domain}")

    def _fetch_token(self, params: dict[str, str], scopes: list[str]) -> str:
        realm = params.get("realm", "")
        if not realm:
            raise RegistryError(f"{self.domain}: bearer challenge without a realm")
        q: list[tuple[str, str]] = []
        if params.get("service"):
            q.append(("service", params["service"]))
        q += [("scope", s) for s in scopes]
        creds = self.auth.credentials()
        headers: dict[str, str] = {}
        body: bytes | None = None
        method = "GET"
        if self.auth.identitytoken:
            # OAuth2 refresh-token grant, as docker does after a token login.
            method = "POST"
            form = [("grant_type", "refresh_token"), ("refresh_token", self.auth.identitytoken),
                    ("client_id", "dockyard"), *q]
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            url = realm
        else:
            if creds:
                q.append(("account", creds[0]))
                headers["Authorization"] = self.auth.basic_header() or ""
            url = realm + ("&" if "?" in realm else "?") + urllib.parse.urlencode(q)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                r = self._send(method, url, headers, body, self._ctx_for(url))
            except (OSError, http.client.HTTPException) as e:
                raise dial_error(method, url, e) from None
            loc = r.headers.get("Location", "")
            if method != "GET" or r.status not in REDIRECTS or not loc:
                break
            # Go's client follows a token server's redirects; the credentials
            # stay with the realm's own host.
            r.close()
            nxt = urllib.parse.urljoin(url, loc)
            if urllib.parse.urlsplit(nxt).netloc != urllib.parse.urlsplit(url).netloc:
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
            url = nxt
        else:
            raise BadLocation(f'{method.capitalize()} "{url}": stopped after '
                                f"{MAX_REDIRECTS} redirects")
        with r:
            data = r.read()
            if r.status in (401, 403):
                raise Unauthorized(f'{method.capitalize()} "{url}": unauthorized: '
                                   f"{error_text(data) or 'authentication required'}")
            if r.status != 200:
                raise RegistryError(f'{method.capitalize()} "{url}": token server answered '
                                    f"{r.status}: {error_text(data)}")
        try:
            tok = json.loads(data)
            token = tok.get("token") or tok.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise RegistryError(f"{realm}: the token server answered without a token")
        return str(token)

    def _ctx_for(self, url: str) -> ssl.SSLContext | None:
        """The registry's TLS settings for its own host, defaults elsewhere."""
        try:
            u = urllib.parse.urlsplit(url)
        except ValueError:
            return None  # _send says what is wrong with it
        if self.endpoint is not None and u.netloc == self.endpoint.host:
            return self.endpoint.ssl
        return None

    # --- requests -------------------------------------------------------------
    def url(self, path: str) -> str:
        self.ping()
        assert self.endpoint is not None
        return f"{self.endpoint.base}{path}"

    def request(self, method: str, path_or_url: str, headers: dict[str, str] | None = None,
                body: bytes | Iterable[bytes] | None = None, redirects: int = MAX_REDIRECTS,
                _renewed: bool = False) -> Response:
        """Send with this session's authorization; follow redirects for GET and
        HEAD. Connection failures raise RegistryError; HTTP errors are the
        caller's to read."""
        url = path_or_url if "://" in path_or_url else self.url(path_or_url)
        h = dict(headers or {})
        own = self.endpoint is not None and urllib.parse.urlsplit(url).netloc == self.endpoint.host
        if own and self.authorization:
            h["Authorization"] = self.authorization
        try:
            r = self._send(method, url, h, body, self._ctx_for(url))
        except (OSError, http.client.HTTPException) as e:
            raise dial_error(method, url, e) from None
        if (r.status == 401 and own and self.challenge is not None
                and self.challenge[0] == "bearer" and not self.auth.registrytoken
                and (body is None or isinstance(body, (bytes, bytearray)))
                and not _renewed):
            # Tokens expire (often after 5 minutes): fetch a new one, once.
            r.close()
            self.authorization = f"Bearer {self._fetch_token(self.challenge[1], self.scopes)}"
            return self.request(method, url, headers, body, redirects, _renewed=True)
        if r.status in REDIRECTS and method in ("GET", "HEAD"):
            loc = r.headers.get("Location", "")
            r.close()
            if not loc:
                raise BadLocation(f"{url}: redirect without a Location")
            if not redirects:
                raise BadLocation(f'{method.capitalize()} "{url}": stopped after '
                                    f"{MAX_REDIRECTS} redirects")
            return self.request(method, urllib.parse.urljoin(url, loc), headers, body,
                                redirects - 1, _renewed)
        return r

    def location(self, r: Response) -> str:
        """An upload's Location header as an absolute URL."""
        loc = r.headers.get("Location", "")
        if not loc:
            raise RegistryError(f"{self.domain}: upload answered without a Location")
        return urllib.parse.urljoin(r.url, loc)
