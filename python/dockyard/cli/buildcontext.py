"""The build context as the docker CLI (20.10, classic builder) sends it:
the directory walked with its .dockerignore and tarred as moby's
archive.TarWithOptions writes it (Go's archive/tar: USTAR headers, PAX only
when a field needs it, modes with their file-type bits, mtimes truncated to
the second, no atime, owner 0:0 but the owner's *names*, no record padding),
a Dockerfile from stdin or from outside the context added under a random
name, and the checks and messages of cli/command/image/build/context.go.

Everything here yields the tar as byte chunks, so the request body streams.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from ..build.dockerignore import (PatternMatcher, read_ignore_file,
                                  trim_build_files_from_excludes, walk_context)

BLOCK = 512
DEFAULT_DOCKERFILE = "Dockerfile"
_CHUNK = 1 << 20


class ContextError(Exception):
    """A context that can't be prepared; the message is docker's."""


# -- Go's archive/tar writer --------------------------------------------------------------

@dataclass
class Header:
    name: bytes
    mode: int
    typeflag: bytes = b"0"
    size: int = 0
    mtime: int = 0
    uid: int = 0
    gid: int = 0
    uname: bytes = b""
    gname: bytes = b""
    linkname: bytes = b""
    devmajor: int = 0
    devminor: int = 0
    xattrs: dict[str, bytes] = field(default_factory=dict)


def _fits_octal(n: int, x: int) -> bool:
    return 0 <= x < 8 ** (n - 1)


def _ascii(s: bytes) -> bool:
    return all(c < 0x80 for c in s)


def _to_ascii(s: bytes) -> bytes:
    return bytes(c for c in s if c < 0x80)


def _put_str(blk: bytearray, off: int, size: int, s: bytes) -> None:
    """formatter.formatString: copy, NUL-terminate when there is room; a cut
    name doesn't end in `/`."""
    part = s[:size]
    blk[off:off + len(part)] = part
    if len(s) < size:
        blk[off + len(s)] = 0
    if len(s) > size and blk[off + size - 1] == ord("/"):
        n = len(part.rstrip(b"/"))
        blk[off + n] = 0


def _put_octal(blk: bytearray, off: int, size: int, x: int) -> None:
    if not _fits_octal(size, x):
        x = 0
    s = b"%o" % x
    pad = size - len(s) - 1
    if pad > 0:
        s = b"0" * pad + s
    _put_str(blk, off, size, s)


def _finish(blk: bytearray) -> bytes:
    """setFormat(USTAR or PAX): the magic and the checksum."""
    blk[257:263] = b"ustar\x00"
    blk[263:265] = b"00"
    blk[148:156] = b" " * 8
    _put_octal(blk, 148, 7, sum(blk))
    blk[155] = ord(" ")
    return bytes(blk)


def _split_ustar(name: bytes) -> tuple[bytes, bytes] | None:
    length = len(name)
    if length <= 100 or not _ascii(name):
        return None
    if length > 156:
        length = 156
    elif name[length - 1:length] == b"/":
        length -= 1
    i = name.rfind(b"/", 0, length)
    nlen, plen = len(name) - i - 1, i
    if i <= 0 or nlen > 100 or nlen == 0 or plen > 155:
        return None
    return name[:i], name[i + 1:]


def _str_field(s: bytes, size: int) -> bytes:
    if len(s) <= size:
        return s.ljust(size, b"\0")
    blk = bytearray(size)  # cut, with formatString's rule for a trailing `/`
    _put_str(blk, 0, size, s)
    return bytes(blk)


def _oct_field(x: int, size: int) -> bytes:
    return b"%0*o\0" % (size - 1, x if _fits_octal(size, x) else 0)


def _v7plus(h: Header, name: bytes, ascii_only: bool) -> bytearray:
    """Writer.templateV7Plus: the fields every header has (the magic and the
    checksum are set by _finish)."""
    s = _to_ascii if ascii_only else (lambda b: b)
    return bytearray(b"".join((
        _str_field(s(name), 100), _oct_field(h.mode, 8), _oct_field(h.uid, 8),
        _oct_field(h.gid, 8), _oct_field(h.size, 12), _oct_field(h.mtime, 12), bytes(8),
        h.typeflag, _str_field(s(h.linkname), 100), bytes(8), _str_field(s(h.uname), 32),
        _str_field(s(h.gname), 32), _oct_field(h.devmajor, 8), _oct_field(h.devminor, 8),
        bytes(167))))


def _pax_record(k: str, v: bytes) -> bytes:
    kb = k.encode()
    size = len(kb) + len(v) + 3
    size += len(str(size))
    rec = b"%d %s=%s\n" % (size, kb, v)
    if len(rec) != size:
        rec = b"%d %s=%s\n" % (len(rec), kb, v)
    return rec


def _pad(n: int) -> bytes:
    return b"\0" * (-n % BLOCK)


def encode_header(h: Header) -> bytes:
    """Go's Writer.WriteHeader for a header of Format PAX (docker's): USTAR
    when every field fits (long ASCII names split into prefix/name), else a
    PAX extended header (`PaxHeaders.0/<name>`, sorted records) first."""
    pax: dict[str, bytes] = {}
    ustar = True
    split = None
    if len(h.name) > 100 or not _ascii(h.name):
        split = _split_ustar(h.name)
        if split is None:
            ustar = False
            pax["path"] = h.name
    for key, value, size in (("linkpath", h.linkname, 100), ("uname", h.uname, 32),
                             ("gname", h.gname, 32)):
        if len(value) > size or not _ascii(value):
            ustar = False
            pax[key] = value
    for key, num, size in (("uid", h.uid, 8), ("gid", h.gid, 8), ("size", h.size, 12),
                           ("mtime", h.mtime, 12)):
        if not _fits_octal(size, num):
            ustar = False
            pax[key] = str(num).encode()
    for k, v in h.xattrs.items():
        ustar = False
        pax["SCHILY.xattr." + k] = v
    if ustar:
        prefix, name = split if split else (b"", h.name)
        blk = _v7plus(h, name, False)
        _put_str(blk, 345, 155, prefix)
        return _finish(blk)
    data = b"".join(_pax_record(k, pax[k]) for k in sorted(pax))
    d, _, f = h.name.rpartition(b"/")
    xname = _to_ascii(_go_path_join(d, b"PaxHeaders.0", f))[:100].rstrip(b"/")
    x = bytearray(BLOCK)
    _put_str(x, 0, 100, xname)
    for off, size in ((100, 8), (108, 8), (116, 8), (136, 12)):
        _put_octal(x, off, size, 0)
    _put_octal(x, 124, 12, len(data))
    x[156:157] = b"x"
    return _finish(x) + data + _pad(len(data)) + _finish(_v7plus(h, h.name, True))


def _go_path_join(*parts: bytes) -> bytes:
    from ..build.dockerignore import clean

    joined = b"/".join(p for p in parts if p)
    return os.fsencode(clean(os.fsdecode(joined))) if joined else b""


def entry(h: Header, data: Iterable[bytes] = ()) -> Iterator[bytes]:
    """One member: its header(s), its data, the padding to a block."""
    yield encode_header(h)
    n = 0
    for chunk in data:
        n += len(chunk)
        yield chunk
    if n != h.size:
        raise ContextError(f"archive/tar: {os.fsdecode(h.name)} changed size while "
                           f"being read ({h.size} -> {n})")
    if n % BLOCK:
        yield _pad(n)


TRAILER = b"\0" * (2 * BLOCK)  # Go's Writer.Close: two zero blocks, no record padding


# -- reading tars (for the Dockerfile injection and stdin detection) ----------------------

def _octal(field_: bytes) -> int:
    s = field_.split(b"\0", 1)[0].strip(b" \0")
    return int(s, 8) if s else 0


def looks_like_tar(head: bytes) -> bool:
    """build.IsArchive: a compression magic, or a valid first tar header."""
    if head.startswith((b"BZh", b"\x1f\x8b\x08", b"\xfd7zXZ\x00")):
        return True
    if len(head) < BLOCK or head[:BLOCK] == bytes(BLOCK):
        return False
    blk = head[:BLOCK]
    try:
        want = _octal(blk[148:156])
    except ValueError:
        return False
    unsigned = sum(blk[:148]) + 8 * 32 + sum(blk[156:])
    signed = sum(b - 256 if b > 127 else b for b in blk[:148] + blk[156:]) + 8 * 32
    return want in (unsigned, signed)


def _read_exact(chunks: Iterator[bytes], buf: bytearray, n: int) -> bytes | None:
    while len(buf) < n:
        c = next(chunks, b"")
        if not c:
            return None
        buf += c
    out = bytes(buf[:n])
    del buf[:n]
    return out


def replace_files(tar: Iterable[bytes], mods: dict[bytes, Callable[[bytes | None, bytes | None],
                                                                    tuple[bytes, bytes]]]
                  ) -> Iterator[bytes]:
    """archive.ReplaceFileTarWrapper for an uncompressed tar stream we wrote:
    members named in `mods` get the raw header block(s) and content the
    function returns (it gets the old ones, or None); missing ones are
    appended at the end."""
    chunks = iter(tar)
    buf = bytearray()
    pending = dict(mods)
    while True:
        blk = _read_exact(chunks, buf, BLOCK)
        if blk is None or blk == bytes(BLOCK):
            break
        headers = blk
        pax_path = None
        while blk[156:157] in (b"x", b"g", b"L", b"K"):
            size = _octal(blk[124:136])
            data = _read_exact(chunks, buf, size + (-size % BLOCK)) or b""
            headers += data
            if blk[156:157] == b"x":
                for rec in _pax_records(data[:size]):
                    if rec[0] == b"path":
                        pax_path = rec[1]
            blk = _read_exact(chunks, buf, BLOCK) or bytes(BLOCK)
            headers += blk
        name = pax_path or _ustar_name(blk)
        size = _octal(blk[124:136]) if blk[156:157] in (b"0", b"\0", b"7") else 0
        body = _read_exact(chunks, buf, size + (-size % BLOCK)) or b""
        fn = pending.pop(name, None)
        if fn is None:
            yield headers
            yield body
            continue
        hdr, content = fn(headers, body[:size])
        yield hdr
        yield content + _pad(len(content))
    for name, fn in pending.items():
        hdr, content = fn(None, None)
        yield hdr
        yield content + _pad(len(content))
    yield TRAILER


def _pax_records(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    while data:
        n, _, rest = data.partition(b" ")
        size = int(n)
        rec = data[len(n) + 1:size]
        data = data[size:]
        k, _, v = rec.rstrip(b"\n").partition(b"=")
        yield k, v
        del rest


def _ustar_name(blk: bytes) -> bytes:
    name = blk[:100].split(b"\0", 1)[0]
    if blk[257:262] == b"ustar":
        prefix = blk[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name


# -- the context directory ----------------------------------------------------------------

_names: dict[tuple[str, int], bytes] = {}


def _owner_name(kind: str, ident: int) -> bytes:
    """What Go's tar.FileInfoHeader looks up for Uname/Gname (the file's real
    owner, though docker then sets the IDs to 0)."""
    key = (kind, ident)
    if key not in _names:
        try:
            if kind == "u":
                import pwd

                _names[key] = os.fsencode(pwd.getpwuid(ident).pw_name)
            else:
                import grp

                _names[key] = os.fsencode(grp.getgrgid(ident).gr_name)
        except (KeyError, ImportError):
            _names[key] = b""
    return _names[key]


def header_for(path: str, name: str, st: os.stat_result, chown: bool = True) -> Header | None:
    """archive.FileInfoHeader + addTarFile's fields for one file; None for
    what Go's tar can't hold (sockets), which docker skips."""
    mode = st.st_mode
    fmt = stat.S_IFMT(mode)
    h = Header(name=os.fsencode(name), mode=mode & 0o7777 | fmt, mtime=st.st_mtime_ns // 10**9,
               uid=0 if chown else st.st_uid, gid=0 if chown else st.st_gid,
               uname=_owner_name("u", st.st_uid), gname=_owner_name("g", st.st_gid))
    if fmt == stat.S_IFREG:
        h.size = st.st_size
    elif fmt == stat.S_IFDIR:
        h.typeflag = b"5"
        if not h.name.endswith(b"/"):
            h.name += b"/"
    elif fmt == stat.S_IFLNK:
        h.typeflag = b"2"
        h.linkname = os.fsencode(os.readlink(path))
    elif fmt in (stat.S_IFCHR, stat.S_IFBLK):
        h.typeflag = b"3" if fmt == stat.S_IFCHR else b"4"
        h.devmajor, h.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif fmt == stat.S_IFIFO:
        h.typeflag = b"6"
    else:
        return None
    try:
        cap = os.getxattr(path, "security.capability", follow_symlinks=False)
    except OSError:
        cap = None
    if cap:
        if len(cap) > 3 and cap[3] == 3:  # VFS_CAP_REVISION_3 -> 2, as docker does
            cap = cap[:3] + b"\x02" + cap[4:20]
        h.xattrs["security.capability"] = cap
    return h


def read_dockerignore(context_dir: str) -> list[str]:
    try:
        with open(os.path.join(context_dir, ".dockerignore"), "rb") as f:
            return read_ignore_file(f.read())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ContextError(f"open {os.path.join(context_dir, '.dockerignore')}: "
                           f"{(e.strerror or str(e)).lower()}") from None


def validate_context_directory(root: str, excludes: list[str]) -> None:
    """build.ValidateContextDirectory: every file that will be sent can be
    read (only checked when we aren't root; root reads everything)."""
    if os.geteuid() == 0:
        return
    pm = PatternMatcher(excludes)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        keep = []
        for d in sorted(dirnames):
            rel = d if rel_dir == "." else f"{rel_dir}/{d}"
            if not pm.matches(rel):
                keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            path = os.path.join(dirpath, f)
            if pm.matches(rel) or not os.path.isfile(path) or os.path.islink(path):
                continue
            if not os.access(path, os.R_OK):
                raise ContextError(f"error checking context: no permission to read from "
                                   f"'{path}'")


def tar_directory(root: str, excludes: list[str], chown: bool = True) -> Iterator[bytes]:
    """archive.TarWithOptions(root, {ExcludePatterns, ChownOpts 0:0}) as the
    20.10 CLI runs it: paths matched on their own (Matches), hard links to a
    file already sent as links, unreadable or vanished files skipped."""
    seen: dict[tuple[int, int], bytes] = {}
    for rel in walk_context(root, excludes, legacy=True):
        path = os.path.join(root, rel)
        try:
            st = os.lstat(path)
            h = header_for(path, rel, st, chown)
        except OSError:
            continue
        if h is None:
            continue
        if h.typeflag == b"0" and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            if key in seen:
                h.typeflag, h.linkname, h.size = b"1", seen[key], 0
            else:
                seen[key] = h.name
        if h.typeflag == b"0" and h.size:
            try:
                f = open(path, "rb")
            except OSError:
                continue  # docker logs it and goes on
            with f:
                yield from entry(h, iter(lambda: f.read(_CHUNK), b""))
        else:
            yield encode_header(h)
    yield TRAILER


# -- locating the context and the Dockerfile (context.go) ---------------------------------

def _eval_symlinks(path: str) -> str:
    """filepath.EvalSymlinks, with Go's `lstat <first missing>` error."""
    parts = path.split("/")
    cur = "/"
    for p in parts[1:]:
        if not p:
            continue
        nxt = os.path.join(cur, p)
        try:
            os.lstat(nxt)
        except OSError as e:
            raise OSError(f"lstat {nxt}: {(e.strerror or '').lower()}") from None
        cur = nxt
    return os.path.realpath(path)


def resolve_context_dir(given: str) -> str:
    """ResolveAndValidateContextPath."""
    abs_dir = os.path.abspath(given)
    try:
        abs_dir = _eval_symlinks(abs_dir)
    except OSError as e:
        raise ContextError(f"unable to evaluate symlinks in context path: {e}") from None
    if not os.path.isdir(abs_dir) or os.path.islink(abs_dir):
        raise ContextError(f"context must be a directory: {abs_dir}")
    return abs_dir


def dockerfile_rel_path(context_dir: str, given: str) -> str:
    """getDockerfileRelPath: `given` is absolute already (or "" / "-")."""
    if given == "-":
        return given
    path = given
    if not path:
        path = os.path.join(context_dir, DEFAULT_DOCKERFILE)
        if not os.path.lexists(path) and os.path.lexists(
                os.path.join(context_dir, DEFAULT_DOCKERFILE.lower())):
            path = os.path.join(context_dir, DEFAULT_DOCKERFILE.lower())
    if not os.path.isabs(path):
        path = os.path.join(context_dir, path)
    try:
        path = _eval_symlinks(path)
    except OSError as e:
        raise ContextError(f"unable to evaluate symlinks in Dockerfile path: {e}") from None
    return os.path.relpath(path, context_dir)


def context_from_local_dir(local_dir: str, dockerfile: str) -> tuple[str, str]:
    """GetContextFromLocalDir: -f is relative to the current directory."""
    context_dir = resolve_context_dir(local_dir)
    if dockerfile and dockerfile != "-":
        dockerfile = os.path.abspath(dockerfile)
    return context_dir, dockerfile_rel_path(context_dir, dockerfile)


def directory_context(context_dir: str, rel_dockerfile: str, dockerfile_from_stdin: bool
                      ) -> Iterator[bytes]:
    """The tar of a context directory, after docker's checks (which raise
    before anything is sent)."""
    excludes = read_dockerignore(context_dir)
    try:
        PatternMatcher(excludes)
    except Exception as e:  # noqa: BLE001 - docker prints the matcher's error as is
        raise ContextError(f"error checking context: {e}") from None
    validate_context_directory(context_dir, excludes)
    excludes = trim_build_files_from_excludes(excludes, rel_dockerfile, dockerfile_from_stdin)
    return tar_directory(context_dir, excludes)


def add_dockerfile(tar: Iterable[bytes], dockerfile: bytes) -> tuple[Iterator[bytes], str]:
    """AddDockerfileToBuildContext: the Dockerfile as `.dockerfile.<random>`
    (mode 0600, 0:0, now), and that name appended to .dockerignore (made if
    missing) so the daemon drops it from the context."""
    import time

    random_name = ".dockerfile." + os.urandom(32).hex()[:20]
    now = int(time.time() + 0.5)

    def template(name: str, size: int) -> Header:
        return Header(name=name.encode(), mode=0o600, size=size, mtime=now)

    def put_dockerfile(_h: bytes | None, _c: bytes | None) -> tuple[bytes, bytes]:
        return encode_header(template(random_name, len(dockerfile))), dockerfile

    def put_ignore(h: bytes | None, content: bytes | None) -> tuple[bytes, bytes]:
        data = (content if content is not None else b".dockerignore") + \
            b"\n" + random_name.encode() + b"\n"
        if h is None:
            return encode_header(template(".dockerignore", len(data))), data
        return _resize_header(h, len(data)), data

    return replace_files(tar, {random_name.encode(): put_dockerfile,
                               b".dockerignore": put_ignore}), random_name


def _resize_header(headers: bytes, size: int) -> bytes:
    """The member's header block(s) with a new size (a PAX `size` record, if
    any, can't be there: sizes this small fit)."""
    last = bytearray(headers[-BLOCK:])
    _put_octal(last, 124, 12, size)
    return headers[:-BLOCK] + _finish(last)


def dockerfile_only_context(dockerfile: bytes) -> Iterator[bytes]:
    """GetContextFromReader for a Dockerfile on stdin: archive.Tar of a temp
    directory holding just `Dockerfile` (so its real owner, mode 0666 less
    the umask, now)."""
    import tempfile

    d = tempfile.mkdtemp(prefix="docker-build-tempdockerfile-")
    try:
        path = os.path.join(d, DEFAULT_DOCKERFILE)
        with open(path, "wb") as f:
            f.write(dockerfile)
        h = header_for(path, DEFAULT_DOCKERFILE, os.lstat(path), chown=False)
    finally:
        import shutil

        shutil.rmtree(d, ignore_errors=True)
    assert h is not None
    yield from entry(h, [dockerfile] if dockerfile else [])
    yield TRAILER


def gzip_stream(tar: Iterable[bytes]) -> Iterator[bytes]:
    """--compress: build.Compress (gzip, default level)."""
    import zlib

    z = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in tar:
        out = z.compress(chunk)
        if out:
            yield out
    yield z.flush()
