"""A small Engine API client on plain sockets.

The CLI's request path stays on C modules: `_socket` for unix:// hosts and
the `_json` codec (fastjson.py). `http.client` costs ~20 ms of imports, and
even `socket`, `json`, `typing` and `urllib.parse` cost ~20 ms together on
the machines this is measured on (enum, re and their regex compiles), more
than the daemon needs to run a container. tcp:// and TLS load `socket` and
`ssl` when used. Speaks HTTP/1.1, and hands back JSON, raw streams or
Docker's JSON messages.
"""

from __future__ import annotations

import _socket
import os

from . import fastjson as json

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any, Callable, Iterator

DEFAULT_HOST = "unix:///var/run/dockyard.sock"
API_VERSION = "1.41"


class APIError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConnectError(Exception):
    pass


class TLSOptions:
    """Client TLS settings. A plain class: importing dataclasses (and inspect)
    costs the CLI ~7 ms at every start."""

    def __init__(self, verify: bool = False, cacert: str | None = None,
                 cert: str | None = None, key: str | None = None) -> None:
        self.verify, self.cacert, self.cert, self.key = verify, cacert, cert, key


def default_host() -> str:
    """Root's socket, or for an ordinary user their rootless daemon's:
    `$XDG_RUNTIME_DIR/dockyard.sock` when that is a 0700 directory of theirs,
    else `/tmp/dockyard-UID/dockyard.sock` (`rootless.runtime_dir`'s rule,
    inlined: that module's imports cost ~60 ms)."""
    euid = os.geteuid()
    if euid == 0:
        return DEFAULT_HOST
    d = os.environ.get("XDG_RUNTIME_DIR", "")
    try:
        st = os.lstat(d) if d else None
    except OSError:
        st = None
    if not (st and st.st_mode & 0o170000 == 0o040000 and not st.st_mode & 0o077
            and st.st_uid == euid):
        d = f"/tmp/dockyard-{euid}"
    return f"unix://{d}/dockyard.sock"


def resolve_host(host: str | None) -> str:
    return (host or os.environ.get("DOCKYARD_HOST") or os.environ.get("DOCKER_HOST")
            or default_host())


class Response:
    def __init__(self, sock: socket.socket, rfile: Any, status: int, headers: dict[str, str]):
        self.sock = sock
        self.rfile = rfile
        self.status = status
        self.headers = headers
        self._chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        cl = headers.get("content-length")
        self._remaining = int(cl) if cl is not None and not self._chunked else None
        self._chunk_left = 0
        self._done = False

    def read_chunk(self, n: int = 1 << 16) -> bytes:
        """The next piece of the body; b"" at its end."""
        if self._done:
            return b""
        if self._chunked:
            if self._chunk_left == 0:
                line = self.rfile.readline()
                if not line:
                    self._done = True
                    raise ConnectError("unexpected EOF: the daemon cut the stream short")
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    self._done = True
                    return b""
                self._chunk_left = size
            data = self.rfile.read1(min(n, self._chunk_left))
            if not data:
                self._done = True
                raise ConnectError("unexpected EOF: the daemon cut the stream short")
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                self.rfile.readline()
            return data
        if self._remaining is not None:
            if self._remaining == 0:
                self._done = True
                return b""
            data = self.rfile.read1(min(n, self._remaining))
            self._remaining -= len(data)
            if not data:
                self._done = True
            return data
        data = self.rfile.read1(n)
        if not data:
            self._done = True
        return data

    def read(self) -> bytes:
        parts = []
        while True:
            c = self.read_chunk(1 << 20)
            if not c:
                break
            parts.append(c)
        return b"".join(parts)

    def iter_lines(self) -> Iterator[bytes]:
        buf = b""
        while True:
            c = self.read_chunk()
            if not c:
                break
            buf += c
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    yield line
        if buf.strip():
            yield buf

    def json(self) -> Any:
        return json.loads(self.read() or b"null")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Client:
    def __init__(self, host: str | None = None, tls: TLSOptions | None = None,
                 version: str = API_VERSION) -> None:
        self.host = resolve_host(host)
        self.tls = tls
        self.version = version
        #: Called once when nothing listens at a unix socket (the CLI's
        #: auto-start); True: connect again.
        self.on_unreachable: Callable[[], bool] | None = None

    # --- connection ---------------------------------------------------------
    def _connect(self) -> socket.socket:
        h = self.host
        try:
            if h.startswith("unix://"):
                try:
                    return self._connect_unix(h[len("unix://"):])
                except (FileNotFoundError, ConnectionRefusedError):
                    retry, self.on_unreachable = self.on_unreachable, None
                    if retry is None or not retry():
                        raise
                return self._connect_unix(h[len("unix://"):])
            if h.startswith(("tcp://", "http://", "https://")):
                import socket

                hp = h.split("://", 1)[1].split("/", 1)[0]
                name, _, port = hp.rpartition(":")
                if not _:
                    name, port = hp, ""
                use_tls = self.tls is not None or h.startswith("https://")
                p = int(port) if port else (2376 if use_tls else 2375)
                s = socket.create_connection((name.strip("[]") or "localhost", p))
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if use_tls:
                    s = self._wrap_tls(s, name.strip("[]"))
                return s
        except OSError as e:
            raise ConnectError(self._unreachable(e)) from None
        if h.startswith("fd://"):
            raise ConnectError(f"cannot connect to {h}: fd:// names sockets systemd hands to "
                               "the daemon; the client connects with unix://PATH or tcp://")
        raise ConnectError(f"unable to parse docker host `{h}`")

    @staticmethod
    def _connect_unix(path: str) -> socket.socket:
        u = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            u.connect(path)
        except BaseException:
            u.close()
            raise
        return u  # type: ignore[return-value]

    def _unreachable(self, e: OSError) -> str:
        path = self.host[len("unix://"):] if self.host.startswith("unix://") else self.host
        if isinstance(e, PermissionError):
            return ("permission denied while trying to connect to the Docker daemon socket at "
                    f"{self.host}: dial unix {path}: connect: permission denied")
        return (f"Cannot connect to the Docker daemon at {self.host}. "
                "Is the docker daemon running?")

    def _wrap_tls(self, s: socket.socket, server_name: str) -> socket.socket:
        import ssl

        t = self.tls or TLSOptions()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if t.verify:
            if t.cacert:
                ctx.load_verify_locations(t.cacert)
            else:  # a context with no CA of its own trusts the system's
                ctx.load_default_certs()
            ctx.check_hostname = True
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if t.cert and t.key:
            ctx.load_cert_chain(t.cert, t.key)
        return ctx.wrap_socket(s, server_hostname=server_name or "localhost")

    # --- requests -----------------------------------------------------------
    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        q = ""
        if params:
            items = []
            for k, v in params.items():
                if v is None:
                    continue
                if isinstance(v, bool):
                    v = "1" if v else "0"
                if isinstance(v, (list, tuple)):
                    items.extend((k, str(x)) for x in v)
                else:
                    items.append((k, str(v)))
            if items:
                q = "?" + "&".join(f"{_quote_plus(k)}={_quote_plus(v)}" for k, v in items)
        return f"/v{self.version}{path}{q}"

    def request(self, method: str, path: str, params: dict[str, Any] | None = None,
                body: bytes | Any = None, headers: dict[str, str] | None = None,
                check: bool = True) -> Response:
        s = self._connect()
        hdrs = {"Host": "docker", "User-Agent": "Dockyard-Client/0.1.0"}
        if headers:
            hdrs.update(headers)
        chunked_body = body is not None and not isinstance(body, (bytes, bytearray))
        if isinstance(body, (bytes, bytearray)):
            hdrs["Content-Length"] = str(len(body))
        elif chunked_body:
            hdrs["Transfer-Encoding"] = "chunked"
        elif method in ("POST", "PUT"):
            hdrs["Content-Length"] = "0"
        head = f"{method} {self.url(path, params)} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        try:
            if isinstance(body, (bytes, bytearray)):
                s.sendall(head.encode() + body)
            else:
                s.sendall(head.encode())
                if chunked_body:
                    try:
                        for chunk in body:
                            if chunk:
                                s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                        s.sendall(b"0\r\n\r\n")
                    except (BrokenPipeError, ConnectionResetError):
                        # The daemon answered (an error) before reading the
                        # whole body, as Go's client allows: show that answer.
                        return self._response(s, check, method == "HEAD")
            return self._response(s, check, method == "HEAD")
        except (BrokenPipeError, ConnectionResetError) as e:
            s.close()
            raise ConnectError(f"error during connect: {e}") from None
        except BaseException:
            s.close()
            raise

    def _response(self, s: socket.socket, check: bool, no_body: bool = False) -> Response:
        try:
            # A bare _socket has no makefile(): buffer its fd directly.
            rfile = s.makefile("rb") if hasattr(s, "makefile") else open(  # noqa: SIM115
                s.fileno(), "rb", closefd=False)
            status_line = rfile.readline()
            if not status_line:
                raise ConnectError("the daemon closed the connection without a response")
            status = int(status_line.split()[1])
            headers_in: dict[str, str] = {}
            while True:
                line = rfile.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                k, _, v = line.decode("latin-1").partition(":")
                headers_in[k.strip().lower()] = v.strip()
        except (BrokenPipeError, ConnectionResetError) as e:
            s.close()
            raise ConnectError(f"error during connect: {e}") from None
        resp = Response(s, rfile, status, headers_in)
        if no_body or status in (204, 304):  # no body, whatever the headers say
            resp._remaining, resp._chunked = 0, False
        if check and status >= 400:
            data = resp.read()
            resp.close()
            try:
                # docker's client trims the daemon's message (swarm leave's ends in a space)
                msg = json.loads(data)["message"].strip()
            except (ValueError, KeyError, TypeError, AttributeError):
                msg = data.decode(errors="replace").strip()
            raise APIError(status, msg)
        return resp

    def hijack(self, method: str, path: str, params: dict[str, Any] | None = None,
               body: bytes | None = None) -> "Hijacked":
        """A request whose connection becomes a raw two-way stream (attach,
        exec start): `Upgrade: tcp`, answered by 101 (or 200 by old daemons)."""
        s = self._connect()
        hdrs = {"Host": "docker", "User-Agent": "Dockyard-Client/0.1.0",
                "Connection": "Upgrade", "Upgrade": "tcp",
                "Content-Length": str(len(body or b""))}
        if body:
            hdrs["Content-Type"] = "application/json"
        head = f"{method} {self.url(path, params)} HTTP/1.1\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        try:
            s.sendall(head.encode() + (body or b""))
            resp = self._response(s, True)
        except BaseException:
            s.close()
            raise
        return Hijacked(s, resp.rfile)

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        r = self.request("GET", path, params)
        try:
            return r.json()
        finally:
            r.close()

    def post_json(self, path: str, params: dict[str, Any] | None = None,
                  body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        r = self.request("POST", path, params, data,
                         {"Content-Type": "application/json"} if data else None)
        try:
            return r.json() if r.status != 204 else None
        finally:
            r.close()

    def delete_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        r = self.request("DELETE", path, params)
        try:
            return r.json() if r.status != 204 else None
        finally:
            r.close()

    def ping(self) -> bool:
        try:
            r = self.request("GET", "/_ping", check=False)
            r.close()
            return r.status == 200
        except ConnectError:
            return False


class Hijacked:
    """The raw stream of an upgraded connection: read() what the daemon sends
    (b"" at its end), send() input, close_write() at input's end."""

    def __init__(self, sock: socket.socket, rfile: Any) -> None:
        self.sock = sock
        self.rfile = rfile

    def read(self, n: int = 1 << 16) -> bytes:
        try:
            return self.rfile.read1(n)
        except (ConnectionResetError, OSError):
            return b""

    def read_exact(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            c = self.read(n - len(buf))
            if not c:
                break
            buf += c
        return buf

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close_write(self) -> None:
        try:
            self.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def message_error(msg: dict[str, Any]) -> str | None:
    """The error a JSON stream message reports, if it is an error message."""
    if msg.get("error") or msg.get("errorDetail"):
        return (msg.get("errorDetail") or {}).get("message") or msg.get("error")
    return None


def json_messages(resp: Response) -> Iterator[dict[str, Any]]:
    """Docker's JSON message stream; raises APIError on an error message."""
    for line in resp.iter_lines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        err = message_error(msg)
        if err is not None:
            raise APIError(500, err)
        yield msg


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def _quote(s: str, safe: bytes = b"") -> str:
    """urllib.parse.quote (UTF-8, %XX for all but unreserved and `safe`)."""
    ok = _UNRESERVED | frozenset(safe)
    return "".join(chr(b) if b in ok else f"%{b:02X}" for b in s.encode())


def _quote_plus(s: str) -> str:
    """urllib.parse.quote_plus, as urlencode applies it to keys and values."""
    return _quote(s, b" ").replace(" ", "+")


def path_quote(name: str) -> str:
    return _quote(name, b"/:@")
