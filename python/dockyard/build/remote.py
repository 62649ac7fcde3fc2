"""Remote build contexts (`POST /build?remote=`), fetched as dockerd 20.10's
classic builder does (builder/remotecontext: detect.go, remote.go, git.go and
git/gitutils.go): a git URL is cloned with the `git` binary and its checkout
(or `#ref:subdir`) tarred as the context; an http(s) URL is a tarball (plain,
gzip, bzip2, xz) or, served as text/plain, a lone Dockerfile with no context
at all. Both feed `receive_context()`, so the index and the Dockerfile lookup
are the uploaded context's. Messages and statuses are dockerd's."""

from __future__ import annotations

import errno
import http.client
import ipaddress
import os
import random
import re
import shutil
import socket
import ssl
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Optional

from .. import _core
from ..errors import DockyardError, InvalidParameter
from ..units import human_size
from .context import BuildContext, receive_context

__all__ = ["CLIENT_SESSION", "Download", "GitRemote", "RemoteError", "detect_content_type",
           "evaluate_in_scope", "git_remote_parts", "is_git_url", "is_url", "open_url",
           "proxy_for", "remote_kind"]

CLIENT_SESSION = "client-session"
_PREAMBLE = 100                  # bytes read to sniff the type (maxPreambleLength)
_READ = 32 << 10                 # one read, as Go's io.Copy/bufio buffers
_UPDATE_EVERY = 512 << 10        # progress.Reader: a line every 512 kB ...
_RATE = 0.1                      # ... at most one per 100 ms (but the last)
_ERROR_BODY_MAX = 1 << 20        # of a 4xx/5xx answer, quoted in the error
_ACCEPTABLE = re.compile(r"(?:application/(?:(?:x\-)?tar|octet\-stream|((?:x\-)?"
                         r"(?:gzip|bzip2?|xz)))|(?:text/plain))")

Progress = Callable[[dict[str, Any]], None]


class RemoteError(DockyardError):
    """A remote context dockerd cannot use, with dockerd's status."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.status = status


# -- what kind of remote (urlutil) ---------------------------------------------------------

def is_url(s: str) -> bool:
    return s.startswith(("http://", "https://"))


def is_git_url(s: str) -> bool:
    # urlutil.IsGitURL; its `.git` pattern's dot is any character, as in Go.
    if is_url(s) and re.search(r".git(?:#.+)?$", s):
        return True
    return s.startswith(("git://", "github.com/", "git@"))


def remote_kind(remote: str) -> str:
    """`git` or `url`, or dockerd's error for what Detect refuses."""
    if remote == CLIENT_SESSION:
        raise InvalidParameter("experimental session with v1 builder is no longer supported, "
                               "use builder version v2 (BuildKit) instead")
    if is_git_url(remote):
        return "git"
    if is_url(remote):
        return "url"
    raise RemoteError(f"remoteURL ({remote}) could not be recognized as URL")


# -- HTTP as Go's http.Get: the environment's proxies, Go's errors -------------------------

def _env(*names: str) -> str:
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return ""


def _no_proxy_match(host: str, port: str, no_proxy: str) -> bool:
    """golang.org/x/net/http/httpproxy's NO_PROXY: `*`, CIDRs, IPs, and
    domains matching the host and its subdomains, each maybe with a port."""
    try:
        ip: Optional[ipaddress._BaseAddress] = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if "/" in entry:
            try:
                if ip is not None and ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        ehost, eport = entry, ""
        m = re.fullmatch(r"(.*):(\d+)", entry)
        if m and not entry.count(":") > 1:
            ehost, eport = m.group(1), m.group(2)
        ehost = ehost.strip("[]")
        if eport and eport != port:
            continue
        try:
            eip = ipaddress.ip_address(ehost)
        except ValueError:
            eip = None
        if eip is not None:
            if ip == eip:
                return True
            continue
        if ehost.startswith("*."):
            ehost = ehost[1:]
        if ehost.startswith("."):
            if host.endswith(ehost):
                return True
        elif host == ehost or host.endswith("." + ehost):
            return True
    return False


def proxy_for(url: str) -> str:
    """http.ProxyFromEnvironment: HTTP(S)_PROXY for the URL's scheme unless
    NO_PROXY matches; never for localhost or a loopback address."""
    u = urllib.parse.urlsplit(url)
    host = (u.hostname or "").lower()
    if host == "localhost":
        return ""
    try:
        if ipaddress.ip_address(host).is_loopback:
            return ""
    except ValueError:
        pass
    port = str(u.port or (443 if u.scheme == "https" else 80))
    if _no_proxy_match(host, port, _env("NO_PROXY", "no_proxy")):
        return ""
    proxy = _env("HTTPS_PROXY", "https_proxy") if u.scheme == "https" else \
        _env("HTTP_PROXY", "http_proxy")
    if proxy and "://" not in proxy:
        proxy = "http://" + proxy
    return proxy


def _urlopen(req: urllib.request.Request) -> Any:
    proxy = proxy_for(req.full_url)
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"http": proxy, "https": proxy} if proxy else {}))
    return opener.open(req, timeout=300)


def _dial_error(url: str, e: BaseException) -> RemoteError:
    """A failed GET in Go's words (`Get "<url>": dial tcp ...`); a host
    that does not resolve is dockerd's NotFound."""
    u = urllib.parse.urlsplit(url)
    host = u.hostname or ""
    port = u.port or (443 if u.scheme == "https" else 80)
    addr = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    reason = getattr(e, "reason", e)
    if isinstance(reason, socket.gaierror):
        return RemoteError(f'Get "{url}": dial tcp: lookup {host}: no such host', 404)
    if isinstance(reason, ssl.SSLCertVerificationError):
        # Go's crypto/x509 words for the usual failure: an unknown issuer.
        why = "x509: certificate signed by unknown authority" if reason.verify_code in (
            18, 19, 20, 21) else f"x509: {reason.verify_message}"
    elif isinstance(reason, ConnectionRefusedError):
        why = f"dial tcp {addr}: connect: connection refused"
    elif isinstance(reason, (socket.timeout, TimeoutError)):
        why = f"dial tcp {addr}: i/o timeout"
    elif isinstance(reason, OSError) and reason.strerror:
        why = f"dial tcp {addr}: connect: {reason.strerror.lower()}"
    else:
        why = str(reason)
    return RemoteError(f'Get "{url}": {why}')


def _get(url: str) -> Any:
    """GetWithStatusError: the open response, or dockerd's error for a
    failed GET and for a 4xx/5xx answer (its body quoted)."""
    try:
        return _urlopen(urllib.request.Request(url))
    except urllib.error.HTTPError as e:
        try:
            body = e.read(_ERROR_BODY_MAX)
        except OSError:
            raise RemoteError(f"failed to GET {url} with status {e.code} {e.reason}: "
                              "error reading body") from None
        finally:
            e.close()
        msg = (f"failed to GET {url} with status {e.code} {e.reason}: "
               + body.strip().decode("utf-8", "replace"))
        status = {404: 404, 400: 400, 401: 401, 403: 403}.get(e.code, 500)
        raise RemoteError(msg, status) from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise _dial_error(url, e) from None


# -- the downloaded kind: a tarball or a Dockerfile ----------------------------------------

def _masked(data: bytes, pat: bytes, mask: bytes) -> bool:
    return len(data) >= len(pat) and all(data[i] & m == p for i, (p, m) in
                                         enumerate(zip(pat, mask)))


_HTML_TAGS = (b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV",
              b"<FONT", b"<TABLE", b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR",
              b"<P", b"<!--")
_FF4, _RIFF_MASK = b"\xff" * 4, b"\xff\xff\xff\xff\x00\x00\x00\x00\xff\xff\xff\xff"
# (pattern, mask or None for an exact prefix, type), in net/http's order after HTML.
_SIGNATURES: tuple[tuple[bytes, Optional[bytes], str], ...] = (
    (b"%PDF-", None, "application/pdf"),
    (b"%!PS-Adobe-", None, "application/postscript"),
    (b"\xfe\xff\x00\x00", b"\xff\xff\x00\x00", "text/plain; charset=utf-16be"),
    (b"\xff\xfe\x00\x00", b"\xff\xff\x00\x00", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbf\x00", b"\xff\xff\xff\x00", "text/plain; charset=utf-8"),
    (b"\x00\x00\x01\x00", None, "image/x-icon"),
    (b"\x00\x00\x02\x00", None, "image/x-icon"),
    (b"BM", None, "image/bmp"),
    (b"GIF87a", None, "image/gif"),
    (b"GIF89a", None, "image/gif"),
    (b"RIFF\x00\x00\x00\x00WEBPVP", b"\xff\xff\xff\xff\x00\x00\x00\x00" + b"\xff" * 6,
     "image/webp"),
    (b"\x89PNG\x0d\x0a\x1a\x0a", None, "image/png"),
    (b"\xff\xd8\xff", None, "image/jpeg"),
    (b"FORM\x00\x00\x00\x00AIFF", _RIFF_MASK, "audio/aiff"),
    (b"ID3", None, "audio/mpeg"),
    (b"OggS\x00", None, "application/ogg"),
    (b"MThd\x00\x00\x00\x06", None, "audio/midi"),
    (b"RIFF\x00\x00\x00\x00AVI ", _RIFF_MASK, "video/avi"),
    (b"RIFF\x00\x00\x00\x00WAVE", _RIFF_MASK, "audio/wave"),
    (b"\x1a\x45\xdf\xa3", None, "video/webm"),
    (b"\x00\x01\x00\x00", None, "font/ttf"),
    (b"OTTO", None, "font/otf"),
    (b"ttcf", None, "font/collection"),
    (b"wOFF", None, "font/woff"),
    (b"wOF2", None, "font/woff2"),
    (b"\x1f\x8b\x08", None, "application/x-gzip"),
    (b"PK\x03\x04", None, "application/zip"),
    (b"Rar!\x1a\x07\x00", None, "application/x-rar-compressed"),
    (b"Rar!\x1a\x07\x01\x00", None, "application/x-rar-compressed"),
    (b"\x00asm", None, "application/wasm"),
)


def detect_content_type(data: bytes) -> str:
    """net/http.DetectContentType (the WHATWG sniffing table), reduced to
    the media type as mime.ParseMediaType returns it."""
    data = data[:512]
    ws = len(data) - len(data.lstrip(b"\t\n\x0c\r "))
    rest = data[ws:]
    for tag in _HTML_TAGS:
        if len(rest) > len(tag) and rest[:len(tag)].upper() == tag and \
                rest[len(tag)] in b" >":
            return "text/html"
    if _masked(rest, b"<?xml", _FF4 + b"\xff"):
        return "text/xml"
    for pat, mask, ct in _SIGNATURES:
        if data.startswith(pat) if mask is None else _masked(data, pat, mask):
            return ct.split(";")[0]
    if len(data) >= 12:
        box = int.from_bytes(data[:4], "big")
        if box % 4 == 0 and len(data) >= box and data[4:8] == b"ftyp" and any(
                data[st:st + 3] == b"mp4" for st in range(8, box, 4) if st != 12):
            return "video/mp4"
    if not any(b <= 8 or b == 0x0b or 0x0e <= b <= 0x1a or 0x1c <= b <= 0x1f for b in rest):
        return "text/plain"
    return "application/octet-stream"


class Download:
    """An open http(s) remote, its type known from the first bytes
    (inspectResponse): `dockerfile` when text/plain, else a tarball. Reading
    it reports dockerd's "Downloading context" progress."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            resp = _get(url)
        except RemoteError as e:
            raise RemoteError(f"error downloading remote context {url}: {e}", e.status
                              ) from None
        self._resp = resp
        try:
            ct = resp.headers.get("Content-Type") or ""
            length = resp.headers.get("Content-Length")
            try:
                self._length = int(length) if length is not None else -1
            except ValueError:
                self._length = -1
            plen = self._length if 0 < self._length <= _PREAMBLE else _PREAMBLE
            try:
                self._preamble = resp.read(plen)
            except (OSError, http.client.HTTPException):
                raise RemoteError(f"error detecting content type for remote {url}: "
                                  "unexpected EOF") from None
            if not self._preamble:
                raise RemoteError(f"error detecting content type for remote {url}: "
                                  "empty response")
            kind = ct
            if not ct or ct == "application/octet-stream":
                kind = detect_content_type(self._preamble)
            m = _ACCEPTABLE.search(kind)
            if m is None:
                raise RemoteError(f"error detecting content type for remote {url}: "
                                  f'unsupported Content-Type "{ct}"')
            self.dockerfile = m.group(0) == "text/plain"
        except BaseException:
            resp.close()
            raise

    def chunks(self, progress: Optional[Progress] = None) -> Iterator[bytes]:
        """The body, streamed. `progress` gets dockerd's messages as its
        progress.Reader writes them: one every 512 kB (at most one per 100
        ms), one at the end, and `{}` after it when the end came alone (a
        body that fit in the preamble, or of unknown length)."""
        current = last_update = 0
        last_sent = -1.0

        def update(final: bool) -> None:
            nonlocal last_sent
            now = time.monotonic()
            if progress is None or (not final and last_sent >= 0 and now - last_sent < _RATE):
                return
            last_sent = now
            progress({"status": self.url, "progressDetail": {"current": current},
                      "progress": f"{human_size(current):>8}", "id": "Downloading context"})
            if final:
                progress({})

        pending = self._preamble
        read = len(pending)
        while True:
            if pending:
                data, pending = pending, b""
            else:
                try:
                    data = self._resp.read(_READ)
                except (OSError, http.client.HTTPException):
                    update(True)
                    raise RemoteError("unexpected EOF") from None
                read += len(data)
            current += len(data)
            at_end = self._length >= 0 and read >= self._length and not pending
            if not data:
                update(True)  # the end on its own: a read of nothing
                return
            if at_end and current > len(self._preamble):
                update(False)  # Go's body returns the end with the last bytes
                yield data
                return
            if current - last_update > _UPDATE_EVERY:
                update(False)
                last_update = current
            yield data

    def close(self) -> None:
        self._resp.close()

    def context(self, workdir: Path, progress: Optional[Progress]) -> BuildContext:
        return receive_context(self.chunks(progress), workdir)


def open_url(url: str) -> Download:
    """downloadRemote: GET `url` and sniff its type; dockerd's errors."""
    return Download(url)


# -- git -----------------------------------------------------------------------------------

def git_remote_parts(url: str) -> tuple[str, str, str]:
    """parseRemoteURL: (remote, ref, subdir); a bare `github.com/...` is
    https, the ref defaults to `master`."""
    if not (url.startswith("git@") or
            urllib.parse.urlsplit(url).scheme in ("git", "http", "https", "ssh")):
        url = "https://" + url
    remote, _, fragment = url.partition("#")
    if not url.startswith("git@"):
        fragment = urllib.parse.unquote(fragment)
    ref, _, subdir = fragment.partition(":")
    ref = ref or "master"
    if ref.startswith("-"):
        raise RemoteError(f"invalid refspec: {ref}")
    return remote, ref, subdir


def _go_clean(path: str) -> str:
    return os.path.normpath(path).replace("//", "/") if path else "."


def evaluate_in_scope(path: str, root: str) -> str:
    """moby's symlink.FollowSymlinkInScope: `path` (under `root`) with every
    symlink resolved as if `root` were `/`; a missing component is kept."""
    path, root = _go_clean(os.path.abspath(path)), _go_clean(os.path.abspath(root))
    if path == root:
        return path
    if not path.startswith(root) or not path[len(root):].startswith("/"):
        raise ValueError(f"evalSymlinksInScope: {path} is not in {root}")
    todo = _go_clean(path[len(root):])
    done = ""
    steps = 0
    while todo:
        steps += 1
        if steps > 256:
            raise ValueError(f"evalSymlinksInScope: too many links in {path}")
        comp, _, todo = todo.partition("/")
        if not comp:
            continue
        clean = _go_clean("/" + done + comp)
        if clean == "/":
            done = ""
            continue
        full = _go_clean(root + clean)
        try:
            st = os.lstat(full)
        except FileNotFoundError:
            done += comp + "/"
            continue
        except OSError as e:
            raise ValueError(f"lstat {full}: {(e.strerror or str(e)).lower()}") from None
        if not stat.S_ISLNK(st.st_mode):
            done += comp + "/"
            continue
        dest = os.readlink(full)
        if dest.startswith("/"):
            done = ""
        todo = dest + "/" + todo
    return _go_clean(root + _go_clean("/" + done))


def _shallow_ok(remote: str) -> bool:
    """supportsShallowClone: http(s) only when the server speaks git's
    smart protocol; any other transport always."""
    if urllib.parse.urlsplit(remote).scheme not in ("http", "https"):
        return True
    service = remote + "/info/refs?service=git-upload-pack"
    for method in ("HEAD", "GET"):
        try:
            with _urlopen(urllib.request.Request(service, method=method)) as r:
                if r.status == 200:
                    return r.headers.get("Content-Type") == \
                        "application/x-git-upload-pack-advertisement"
        except (OSError, ValueError):
            pass
    return False


def _git(cwd: str, *args: str, isolated: bool = True) -> tuple[bool, str]:
    """One git command, combined output and Go's exit error; with no
    controlling terminal (git cannot prompt) and, as dockerd's gitWithinDir,
    neither file-protocol submodules nor the system's or a user's config."""
    argv = ["git", *args]
    env = dict(os.environ)
    if isolated:
        argv = ["git", "-c", "protocol.file.allow=never", *args]
        env.update(GIT_PROTOCOL_FROM_USER="0", GIT_CONFIG_NOSYSTEM="1", HOME="/dev/null")
    try:
        r = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           start_new_session=True, check=False)
    except FileNotFoundError:
        return False, ': exec: "git": executable file not found in $PATH'
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode == 0:
        return True, out
    why = f"signal: {_signal_name(-r.returncode)}" if r.returncode < 0 else \
        f"exit status {r.returncode}"
    return False, f"{out}: {why}"


def _signal_name(sig: int) -> str:
    import signal

    names = {signal.SIGKILL: "killed", signal.SIGTERM: "terminated",
             signal.SIGINT: "interrupt", signal.SIGSEGV: "segmentation fault"}
    return names.get(sig, f"signal {sig}")  # type: ignore[call-overload]


def _mkdtemp(parent: Path) -> Path:
    """os.MkdirTemp's name: the prefix and a random number."""
    while True:
        d = parent / f"docker-build-git{random.randrange(1 << 32)}"
        try:
            d.mkdir(mode=0o700)
            return d
        except FileExistsError:
            continue


class GitRemote:
    """A git URL, cloned (MakeGitContext) when its context is asked for."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.remote, self.ref, self.subdir = git_remote_parts(url)

    def clone(self, parent: Path) -> tuple[Path, Path]:
        """git.Clone: init, fetch the ref (shallow where the server can),
        check it out (by name, else FETCH_HEAD), resolve the subdirectory,
        then the submodules. Returns (checkout root, context directory)."""
        root = _mkdtemp(parent)
        try:
            ok, out = _git(str(root), "init")
            if not ok:
                raise RemoteError(f"failed to init repo at {root}: {out}")
            ok, out = _git(str(root), "remote", "add", "origin", self.remote)
            if not ok:
                raise RemoteError(f"failed add origin repo at {self.remote}: {out}")
            depth = ["--depth", "1"] if _shallow_ok(self.remote) else []
            ok, out = _git(str(root), "fetch", *depth, "origin", "--", self.ref)
            if not ok:
                raise RemoteError(f"error fetching: {out}")
            ok, out = _git(str(root), "checkout", self.ref)
            if not ok and not _git(str(root), "checkout", "FETCH_HEAD")[0]:
                raise RemoteError(f"error checking out {self.ref}: {out}")
            ctx = str(root)
            if self.subdir:
                try:
                    ctx = evaluate_in_scope(os.path.join(root, self.subdir), str(root))
                except ValueError as e:
                    raise RemoteError(f'error setting git context, "{self.subdir}" not '
                                      f"within git root: {e}") from None
                try:
                    mode = os.stat(ctx).st_mode
                except OSError as e:
                    raise RemoteError(f"stat {ctx}: {(e.strerror or str(e)).lower()}"
                                      ) from None
                if not stat.S_ISDIR(mode):
                    raise RemoteError(f"error setting git context, not a directory: {ctx}")
            ok, out = _git(str(root), "submodule", "update", "--init", "--recursive",
                           "--depth=1", isolated=False)
            if not ok:
                raise RemoteError(f"error initializing submodules: {out}")
            return root, Path(ctx)
        except BaseException:
            shutil.rmtree(root, ignore_errors=True)
            raise

    def context(self, workdir: Path, progress: Optional[Progress] = None) -> BuildContext:
        """The checkout tarred as Go's archive.Tar writes it (so COPY's
        content sums are dockerd's) and received as an uploaded context."""
        root, ctx = self.clone(workdir)
        try:
            return receive_context(_with_type_bits(_tar_stream(ctx)), workdir)
        finally:
            shutil.rmtree(root, ignore_errors=True)

    def close(self) -> None:
        pass


def _tar_stream(root: Path) -> Iterator[bytes]:
    """The tar of `root`, written by the core in a thread into a pipe."""
    rfd, wfd = os.pipe()
    failure: list[BaseException] = []

    def write() -> None:
        try:
            _core.create_layer(str(root), wfd)
        except BaseException as e:  # noqa: BLE001 - handed to the reader
            failure.append(e)
        finally:
            os.close(wfd)

    t = threading.Thread(target=write, name="git-context-tar", daemon=True)
    t.start()
    try:
        with os.fdopen(rfd, "rb", buffering=0) as r:
            while True:
                chunk = r.read(1 << 20)
                if not chunk:
                    break
                yield chunk
    finally:
        t.join()
    if failure:
        e = failure[0]
        if isinstance(e, OSError) and e.errno == errno.EPIPE:
            return
        raise e


# moby's FileInfoHeader keeps the file-type bits in a header's mode
# (fillGo18FileTypeBits) and the context's sums hash them; the core's tar has
# the permission bits only. By typeflag; a hardlink has its file's.
_TYPE_BITS = {0: 0o100000, ord("0"): 0o100000, ord("1"): 0o100000, ord("7"): 0o100000,
              ord("2"): 0o120000, ord("3"): 0o020000, ord("4"): 0o060000,
              ord("5"): 0o040000, ord("6"): 0o010000}


def _tar_number(field: bytes) -> int:
    if field[0] & 0x80:  # base-256
        return int.from_bytes(bytes([field[0] & 0x7f]) + field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip()
    return int(digits, 8) if digits else 0


def _with_type_bits(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The tar stream with each header's mode as Go's archive.Tar writes it."""
    pending = b""
    skip = 0                               # data bytes still to pass through
    for chunk in chunks:
        data = bytearray(pending + chunk)
        pos, end = 0, len(data)
        while True:
            if skip:
                step = min(skip, end - pos)
                pos, skip = pos + step, skip - step
                if skip:
                    break
            if end - pos < 512:
                break
            h = data[pos:pos + 512]
            if any(h):
                skip = (_tar_number(bytes(h[124:136])) + 511) // 512 * 512
                bits = _TYPE_BITS.get(h[156])
                if bits is not None:
                    mode = _tar_number(bytes(h[100:108]))
                    h[100:108] = b"%07o\0" % (mode & 0o7777 | bits)
                    h[148:156] = b" " * 8
                    h[148:156] = b"%06o\0 " % sum(h)
                    data[pos:pos + 512] = h
            pos += 512
        yield bytes(data[:pos])
        pending = bytes(data[pos:])
    if pending:
        yield pending
