"""COPY and ADD as the classic builder does them (dockerd 20.10, DOCKER_BUILDKIT=0):
source selection (wildcards, `--from` roots), Docker's destination rules, ownership
and the content hash that goes into the step's `created_by` and cache key.

Every path is resolved with directory fds, one component at a time, symlinks
followed inside their own root (the build context, the `--from` rootfs, the
target rootfs) and '..' never above it, so neither a source nor a destination
can lead outside (openat2 RESOLVE_IN_ROOT semantics). The copy itself never
follows a symlink: entries are created with `*at` calls under their parent fd.

The hash follows moby `builder/dockerfile/copy.go`: a file is `file:<sum>`,
where `<sum>` is the tarsum-v1 entry sum (sha256 over the entry's header
fields but its mtime, then its data); a directory is `dir:<sha256 of its
sorted entry sums joined by ','>`; several sources `multi:<same over their
hashes>`; a URL is the bare sum of the downloaded file. Context sums are
those of the entries the client sent (uid/gid 0, uname/gname left out as
tarsum does); `--from` and URL sums are computed from the files as dockerd's
lazy source does (uname/gname looked up on the host, as Go's archive/tar).

The executor's flow: `plan_copy` selects and hashes the sources (dockerd's
errors, in its order); `created_by(plan.comment, shell)` is the probe Cmd and
history line; on a cache miss `plan.apply(rootfs, workdir, passwd_root)`
copies. `copy_sources` does both at once. Call them from a worker thread
(`asyncio.to_thread`): they block on the disk and, for ADD URLs, the network.
"""

from __future__ import annotations

import bz2
import email.utils
import errno
import grp
import gzip
import hashlib
import lzma
import os
import pwd
import re
import shutil
import stat as st
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace as with_fields
from pathlib import Path
from typing import Callable, Iterator, Mapping

from .. import _core
from ..errors import InvalidParameter, LayerCorrupt, NotFound
from .context import BuildContext, clean_parts
from .dockerignore import filepath_match

__all__ = ["ContextSums", "CopyError", "CopyPlan", "CopyResult", "copy_sources", "created_by",
           "entry_sum", "go_file_mode_bits", "plan_copy", "resolve_chown", "resolve_in_root"]

MAX_SYMLINKS = 255
WH_PREFIX, WH_META, WH_OPAQUE = ".wh.", ".wh..wh.", ".wh..wh..opq"
UNNAMED = "__unnamed__"
_OPATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_ODIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHMOD_REFUSED = ("the --chmod option requires BuildKit. Refer to "
                  "https://docs.docker.com/go/buildkit/ to learn how to build images "
                  "with BuildKit enabled")


class CopyError(InvalidParameter):
    """A COPY/ADD failure, worded as dockerd's (the build stream's error)."""


class CopyNotFound(CopyError, NotFound):
    status = 404


@dataclass(frozen=True)
class CopyResult:
    """What a COPY/ADD did: `source_hash` as in the history (`file:…`, `dir:…`,
    `multi:…`, bare hex for a URL), `comment` the text after `#(nop) ` in
    `created_by` (see `created_by()`), `dest` the absolute destination as
    written (workdir applied), `entries` how many entries were written."""
    source_hash: str
    comment: str
    dest: str
    entries: int


def created_by(comment: str, shell: list[str] | tuple[str, ...] = ("/bin/sh", "-c")) -> str:
    """The classic `created_by` (and probe Cmd joined): `/bin/sh -c #(nop) COPY … in /d `."""
    return " ".join([*shell, "#(nop) " + comment])


def copy_comment(cmd: str, source_hash: str, dest: str, chown: str | None,
                 chmod: str | None = None) -> str:
    """dockerd's `"%s %s%s in %s "`: no space between `--chown=x` and the hash
    (20.10 writes it so). `--chmod` is our extension, written the same way."""
    flags = f"--chown={chown}" if chown else ""
    if chmod:
        flags += f"--chmod={chmod}"
    return f"{cmd} {flags}{source_hash} in {dest} "


# -- tarsum v1 entry sums --------------------------------------------------------------

def go_file_mode_bits(mode: int, type_bits: bool = True) -> int:
    """A tar header's mode as moby's FileInfoHeader writes it: permission,
    setuid/setgid/sticky and, with `type_bits`, the file-type bits
    (20.10's fillGo18FileTypeBits; the docker CLI 23+ leaves them out)."""
    return mode & (0o177777 if type_bits else 0o7777)


def _typeflag(mode: int) -> bytes:
    if st.S_ISREG(mode):
        return b"0"
    if st.S_ISDIR(mode):
        return b"5"
    if st.S_ISLNK(mode):
        return b"2"
    if st.S_ISCHR(mode):
        return b"3"
    if st.S_ISBLK(mode):
        return b"4"
    if st.S_ISFIFO(mode):
        return b"6"
    raise OSError(errno.EINVAL, "archive/tar: sockets not supported")


def entry_sum(name: str, mode: int, uid: int, gid: int, size: int, typeflag: bytes,
              linkname: str = "", uname: str = "", gname: str = "", devmajor: int = 0,
              devminor: int = 0, xattrs: Mapping[str, bytes] | None = None) -> "hashlib._Hash":
    """A sha256 primed with the tarsum-v1 header of one entry (moby
    pkg/tarsum `v1TarHeaderSelect`: every v0 field but mtime, then sorted
    xattrs); feed it the file's data and take `hexdigest()`."""
    h = hashlib.sha256()
    h.update(b"".join((
        b"name", name.encode("utf-8", "surrogateescape"),
        b"mode", str(mode).encode(), b"uid", str(uid).encode(), b"gid", str(gid).encode(),
        b"size", str(size).encode(), b"typeflag", typeflag,
        b"linkname", linkname.encode("utf-8", "surrogateescape"),
        b"uname", uname.encode(), b"gname", gname.encode(),
        b"devmajor", str(devmajor).encode(), b"devminor", str(devminor).encode())))
    for k in sorted(xattrs or {}):
        h.update(k.encode() + (xattrs or {})[k])
    return h


def _capability(path: str | int) -> dict[str, bytes]:
    """security.capability as moby's ReadSecurityXattrToTarHeader reads it
    (a v3 value becomes v2: a root uid means nothing outside its userns)."""
    try:
        v = os.getxattr(path, "security.capability")
    except OSError:
        return {}
    if len(v) > 3 and v[3] == 3:
        v = v[:3] + b"\x02" + v[4:20]
    return {"security.capability": v}


def _hash_fd(h: "hashlib._Hash", fd: int) -> None:
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            return
        h.update(b)


class ContextSums:
    """Per-entry tarsum-v1 sums of a build context, by cleaned relative path
    (what dockerd computes while it untars the uploaded context: the sums of
    the headers the client wrote). One per build, shared by its steps: from
    the context tar itself (`from_tar`, exact for any client), from a record
    the ingest kept (`ContextSums(mapping)`), or from the unpacked tree
    (`from_tree`), entry by entry as COPY selects them, assuming the headers
    of the docker CLI (23+ by default: no file-type bits in the mode; owners
    as extracted, i.e. 0:0; a hardlink after its first name in walk order)."""

    def __init__(self, sums: Mapping[str, str] | None = None, root: Path | None = None,
                 type_bits: bool = False) -> None:
        self._sums: dict[str, str | None] = dict(sums) if sums is not None else {}
        self._root = root                 # None: `sums` is complete
        self._type_bits = type_bits
        self._first: dict[tuple[int, int], str] | None = None   # inode -> first name
        self._lock = threading.Lock()     # parallel stages share one per build

    @classmethod
    def from_tree(cls, root: Path, type_bits: bool = False) -> "ContextSums":
        return cls(None, root, type_bits)

    @classmethod
    def from_tar(cls, tar: Path | str) -> "ContextSums":
        """Sums straight from the (maybe compressed) context tar, as
        pkg/tarsum reads it (uname/gname blanked)."""
        import tarfile
        sums: dict[str, str] = {}
        types = {tarfile.REGTYPE: b"0", tarfile.AREGTYPE: b"0", tarfile.LNKTYPE: b"1",
                 tarfile.SYMTYPE: b"2", tarfile.CHRTYPE: b"3", tarfile.BLKTYPE: b"4",
                 tarfile.DIRTYPE: b"5", tarfile.FIFOTYPE: b"6", tarfile.CONTTYPE: b"7"}
        with tarfile.open(tar, "r:*") as t:
            for m in t:
                name = m.name + "/" if m.isdir() and not m.name.endswith("/") else m.name
                xattrs = {k[len("SCHILY.xattr."):]: v.encode("utf-8", "surrogateescape")
                          for k, v in m.pax_headers.items() if k.startswith("SCHILY.xattr.")}
                h = entry_sum(name, m.mode, m.uid, m.gid, m.size, types.get(m.type, m.type),
                              m.linkname, "", "", m.devmajor, m.devminor, xattrs)
                if m.isreg():
                    f = t.extractfile(m)
                    assert f is not None
                    while b := f.read(1 << 20):
                        h.update(b)
                sums["/".join(clean_parts(m.name))] = h.hexdigest()
        return cls(sums)

    def get(self, rel: str) -> str | None:
        """The sum of the entry `rel` (resolved: no symlink before its last
        component), None if the context has no such entry."""
        if rel in self._sums or self._root is None:
            return self._sums.get(rel)
        sum_ = self._entry(rel)
        self._sums[rel] = sum_
        return sum_

    def _entry(self, rel: str) -> str | None:
        assert self._root is not None
        parts = rel.split("/")
        rootfd = os.open(self._root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            try:
                dfd = _open_parts(rootfd, parts[:-1], _ODIR) if len(parts) > 1 else \
                    os.open(".", _ODIR, dir_fd=rootfd)
            except OSError:
                return None
        finally:
            os.close(rootfd)
        name = parts[-1]
        try:
            s = os.stat(name, dir_fd=dfd, follow_symlinks=False)
            try:
                tf = _typeflag(s.st_mode)
            except OSError:
                return None       # sockets are left out of the context tar
            link, size = "", 0
            if tf == b"0" and s.st_nlink > 1:
                first = self._first_names().get((s.st_dev, s.st_ino), rel)
                if first != rel:
                    tf, link = b"1", first
            if tf == b"2":
                link = os.readlink(name, dir_fd=dfd)
            elif tf == b"0":
                size = s.st_size
            xattrs = _capability(f"/proc/self/fd/{dfd}/{name}") if tf != b"2" else {}
            dev = (os.major(s.st_rdev), os.minor(s.st_rdev)) if tf in (b"3", b"4") else (0, 0)
            h = entry_sum(rel + "/" if tf == b"5" else rel,
                          go_file_mode_bits(s.st_mode, self._type_bits), s.st_uid, s.st_gid,
                          size, tf, link, "", "", dev[0], dev[1], xattrs)
            if tf == b"0" and size:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dfd)
                try:
                    _hash_fd(h, fd)
                finally:
                    os.close(fd)
            return h.hexdigest()
        except FileNotFoundError:
            return None
        finally:
            os.close(dfd)

    def _first_names(self) -> dict[tuple[int, int], str]:
        """The first name (in the CLI's lexical walk) of every multiply-linked
        file: the later names are hardlink entries in the context tar."""
        with self._lock:
            if self._first is None:
                assert self._root is not None
                first: dict[tuple[int, int], str] = {}
                rootfd = os.open(self._root, _ODIR)
                try:
                    _link_walk(rootfd, "", first)
                finally:
                    os.close(rootfd)
                self._first = first
            return self._first


def _link_walk(dfd: int, prefix: str, first: dict[tuple[int, int], str]) -> None:
    for name in sorted(os.listdir(dfd)):
        s = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        if st.S_ISREG(s.st_mode) and s.st_nlink > 1:
            first.setdefault((s.st_dev, s.st_ino), prefix + name)
        elif st.S_ISDIR(s.st_mode):
            sub = os.open(name, _ODIR, dir_fd=dfd)
            try:
                _link_walk(sub, prefix + name + "/", first)
            finally:
                os.close(sub)


# -- scoped path resolution -------------------------------------------------------------

def resolve_in_root(rootfd: int, path: str) -> list[str]:
    """Components of `path` with every symlink (the last one too) followed
    inside the root, as moby's FollowSymlinkInScope: a missing component and
    what follows are kept as written (cleaned). Reads only through fds."""
    pending = clean_parts(path)
    done: list[str] = []
    stack = [rootfd]
    links = 0
    try:
        while pending:
            comp = pending.pop(0)
            if comp == "..":
                if done:
                    done.pop()
                    os.close(stack.pop())
                continue
            try:
                fd = os.open(comp, _OPATH, dir_fd=stack[-1])
            except (FileNotFoundError, NotADirectoryError):
                done.append(comp)
                rest = clean_parts("/".join(done + pending))
                return rest
            s = os.fstat(fd)
            if st.S_ISLNK(s.st_mode):
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many links", path)
                target = os.readlink(comp, dir_fd=stack[-1])
                if target.startswith("/"):
                    for f in stack[1:]:
                        os.close(f)
                    stack, done = [rootfd], []
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                continue
            if not st.S_ISDIR(s.st_mode) and pending:
                # a file in the middle: dockerd's lexical join keeps the rest, stat then fails
                os.close(fd)
                return clean_parts("/".join(done + [comp] + pending))
            stack.append(fd)
            done.append(comp)
        return done
    finally:
        for f in stack[1:]:
            os.close(f)


def _open_parts(rootfd: int, parts: list[str], flags: int = _OPATH) -> int:
    """Open resolved components without following any symlink (a swap after
    resolution gives ELOOP/ENOTDIR, never a way out)."""
    fd = os.dup(rootfd)
    try:
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            nfd = os.open(p, flags if last else (_OPATH | os.O_DIRECTORY), dir_fd=fd)
            os.close(fd)
            fd = nfd
        if not parts and flags != _OPATH:
            nfd = os.open(".", flags & ~os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


def _mkdir_parts(rootfd: int, parts: list[str], owner: tuple[int, int] | None) -> int:
    """An O_RDONLY fd of the directory `parts` (already resolved), creating
    missing components 0755 (owned by `owner`, else root). Returns the fd and
    raises NotADirectoryError if a component is not a directory."""
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=rootfd)
    try:
        for p in parts:
            try:
                nfd = os.open(p, _ODIR, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(p, 0o755, dir_fd=fd)
                os.chmod(p, 0o755, dir_fd=fd, follow_symlinks=False)  # umask
                if owner is not None and owner != (0, 0):
                    os.chown(p, owner[0], owner[1], dir_fd=fd, follow_symlinks=False)
                nfd = os.open(p, _ODIR, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise NotADirectoryError(errno.ENOTDIR, "not a directory",
                                             "/" + "/".join(parts))
                raise
            os.close(fd)
            fd = nfd
        return fd
    except BaseException:
        os.close(fd)
        raise


# -- sources ----------------------------------------------------------------------------

@dataclass
class _Info:
    """One thing to copy: `parts` the resolved path in its source root,
    `orig` the path as selected (its basename names a file at a `dir/` dest)."""
    src: "_Source | _IndexSource"
    orig: str
    parts: list[str]
    hash: str
    is_dir: bool
    no_decompress: bool = False


@dataclass
class _Source:
    root: Path
    rootfd: int
    context: bool                       # the build context (tar sums) vs a lazy tree
    sums: ContextSums | None = None
    lazy: dict[str, str] = field(default_factory=dict)

    def resolve(self, path: str) -> list[str]:
        return resolve_in_root(self.rootfd, path)

    def is_dir(self, parts: list[str]) -> bool:
        fd = _open_parts(self.rootfd, parts)
        try:
            return st.S_ISDIR(os.fstat(fd).st_mode)
        finally:
            os.close(fd)

    def hash(self, path: str) -> str:
        """dockerd's Source.Hash: the sum of the followed path, or, when
        there is none, the path itself (its backward-compatible quirk)."""
        parts = resolve_in_root(self.rootfd, path)
        rel = "/".join(parts)
        if self.context:
            assert self.sums is not None
            return self.sums.get(rel) or path if rel else path
        if rel in self.lazy:
            return self.lazy[rel]
        try:
            fd = _open_parts(self.rootfd, parts)
        except OSError:
            return rel or "."
        try:
            s = os.fstat(fd)
            tf = _typeflag(s.st_mode)
            size = s.st_size if tf == b"0" else 0
            dev = (os.major(s.st_rdev), os.minor(s.st_rdev)) if tf in (b"3", b"4") else (0, 0)
            name = (rel or ".") + ("/" if tf == b"5" else "")
            xattrs = _capability(f"/proc/self/fd/{fd}") if tf != b"2" else {}
            h = entry_sum(name, go_file_mode_bits(s.st_mode), s.st_uid, s.st_gid, size, tf, "",
                          _host_user(s.st_uid), _host_group(s.st_gid), dev[0], dev[1], xattrs)
            if tf == b"0" and size:
                rfd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _hash_fd(h, rfd)
                finally:
                    os.close(rfd)
        finally:
            os.close(fd)
        self.lazy[rel] = h.hexdigest()
        return self.lazy[rel]

    def walk(self, parts: list[str]) -> Iterator[str]:
        """Relative paths (from the root) of `parts` and everything below it,
        in Go filepath.Walk order (lexical, symlinks not descended)."""
        rel = "/".join(parts)
        yield rel or "."
        fd = _open_parts(self.rootfd, parts, _ODIR)
        try:
            yield from self._walk(fd, rel + "/" if rel else "")
        finally:
            os.close(fd)

    def _walk(self, dfd: int, prefix: str) -> Iterator[str]:
        for name in sorted(os.listdir(dfd)):
            yield prefix + name
            if st.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                sub = os.open(name, _ODIR, dir_fd=dfd)
                try:
                    yield from self._walk(sub, prefix + name + "/")
                finally:
                    os.close(sub)


@dataclass
class _IndexSource:
    """The build context's index as a COPY source, for the cache probe: the
    same answers as the unpacked tree gives (`_Source`), no file read."""
    index: BuildContext
    sums: ContextSums
    context: bool = True

    def resolve(self, path: str) -> list[str]:
        return self.index.resolve(path)

    def is_dir(self, parts: list[str]) -> bool:
        return self.index.lookup(parts).is_dir

    def hash(self, path: str) -> str:
        rel = "/".join(self.resolve(path))
        return self.sums.get(rel) or path if rel else path

    def walk(self, parts: list[str]) -> Iterator[str]:
        return self.index.walk(parts)


def _host_user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return ""


def _host_group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return ""


def _contains_wildcards(name: str) -> bool:
    i = 0
    while i < len(name):
        if name[i] == "\\":
            i += 2
            continue
        if name[i] in "*?[":
            return True
        i += 1
    return False


def _go_match(pattern: str, name: str) -> bool:
    try:
        return filepath_match(pattern, name)
    except Exception:
        return False


def _calc_copy_info(src: "_Source | _IndexSource", orig: str, wildcards: bool, cmd: str) -> list[_Info]:
    if orig.startswith("/"):
        orig = orig[1:]
    if orig.startswith("./"):
        orig = orig[2:]
    if wildcards and _contains_wildcards(orig):
        out: list[_Info] = []
        for rel in src.walk([]):
            if rel != "." and _go_match(orig, rel):
                out += _calc_copy_info(src, rel, False, cmd)
        return out
    if _escapes(orig):
        # moby joins the path to the root and refuses one that leaves it lexically
        # (symlinks, in contrast, are followed inside the root)
        raise CopyError(f"{cmd} failed: forbidden path outside the build context: {orig} ()")
    parts = src.resolve(orig)
    try:
        is_dir = src.is_dir(parts)
    except NotADirectoryError:
        # moby's scoped resolution fails on a file in the middle of the path
        raise CopyError(f"{cmd} failed: forbidden path outside the build context: {orig} ()"
                        ) from None
    except FileNotFoundError:
        if src.context:
            raise CopyNotFound(f"{cmd} failed: file not found in build context or excluded by "
                               f".dockerignore: stat {orig}: file does not exist") from None
        raise CopyNotFound(f"{cmd} failed: stat {orig}: file does not exist") from None
    if not is_dir:
        return [_Info(src, orig, parts, "file:" + src.hash(orig), False)]
    subs = sorted(src.hash(rel) for rel in src.walk(parts) if rel != ".")
    return [_Info(src, orig, parts, _hash_strings("dir", subs), True)]


def _escapes(rel: str) -> bool:
    depth = 0
    for p in rel.split("/"):
        if p == "..":
            depth -= 1
            if depth < 0:
                return True
        elif p not in ("", "."):
            depth += 1
    return False


def _hash_strings(prefix: str, items: list[str]) -> str:
    data = ",".join(items).encode("utf-8", "surrogateescape")
    return prefix + ":" + hashlib.sha256(data).hexdigest()


def is_url(s: str) -> bool:
    return s.startswith("http://") or s.startswith("https://")


# -- ADD URL ----------------------------------------------------------------------------

def _download(url: str, tmp: Path, dest: str, cmd: str,
              opener: Callable[..., object] | None) -> tuple[Path, str]:
    """Fetch `url` into the directory `tmp` as dockerd's downloadSource:
    the name from the URL path, else Content-Disposition, else `__unnamed__`
    (refused for a `dir/` destination); mode 0600; mtime Last-Modified or the
    epoch. Returns the root holding the file and its name."""
    try:
        resp = (opener or urllib.request.urlopen)(url, timeout=300)
    except urllib.error.HTTPError as e:
        body = e.read().strip().decode("utf-8", "replace")
        msg = f"{cmd} failed: failed to GET {url} with status {e.code} {e.reason}: {body}"
        raise (CopyNotFound(msg) if e.code == 404 else CopyError(msg)) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise CopyError(f'{cmd} failed: Get "{url}": {reason}') from None
    with resp:  # type: ignore[attr-defined]
        path = urllib.parse.urlsplit(url).path
        name = ""
        if path and not path.endswith("/"):
            name = os.path.basename(path)
        if not name:
            cd = resp.headers.get("Content-Disposition") or ""  # type: ignore[attr-defined]
            for item in cd.split(";")[1:]:
                k, _, v = item.strip().partition("=")
                v = v.strip().strip('"')
                if k.lower() == "filename" and v and not v.endswith("/"):
                    name = os.path.basename(v)
        if not name and dest.endswith("/"):
            raise CopyError(f"{cmd} failed: cannot determine filename for source {url}")
        fname = name or UNNAMED
        fpath = tmp / fname
        fd = os.open(fpath, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            while True:
                b = resp.read(1 << 20)  # type: ignore[attr-defined]
                if not b:
                    break
                os.write(fd, b)
            os.fchmod(fd, 0o600)
            mtime = 0.0
            lm = resp.headers.get("Last-Modified")  # type: ignore[attr-defined]
            if lm:
                try:
                    mtime = email.utils.parsedate_to_datetime(lm).timestamp()
                except (TypeError, ValueError):
                    mtime = 0.0
            os.utime(fd, (mtime, mtime))
        finally:
            os.close(fd)
    return tmp, fname


# -- ownership --------------------------------------------------------------------------

def _parse_id_file(path: str, name: str) -> int | None:
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", "replace").strip()
            if not line or line.startswith("#"):
                continue
            fields = line.split(":")
            if fields[0] == name and len(fields) > 2:
                try:
                    return int(fields[2])
                except ValueError:
                    continue
    return None


def resolve_chown(chown: str, passwd_root: Path | None) -> tuple[int, int]:
    """`--chown=user[:group]` to ids as 20.10's parseChownFlag: numbers as
    they are, names from the image's /etc/passwd and /etc/group (resolved
    inside the rootfs); a lone `user` is also the group's name."""
    pre = "unable to convert uid/gid chown string to host mapping: "
    parts = chown.split(":")
    if len(parts) > 2:
        raise CopyError(pre + "invalid chown string format: " + chown)
    user, group = (parts[0], parts[0]) if len(parts) == 1 else (parts[0], parts[1])

    def lookup(what: str, name: str, file: str) -> int:
        if re.fullmatch(r"[+-]?[0-9]+", name):
            return int(name)  # Go's strconv.Atoi: numbers need no lookup
        kind, noun = ("uid", "user") if what == "user" else ("gid", "group")
        if passwd_root is None:
            raise CopyError(f"{pre}can't find {kind} for {noun} {name}: "
                            f"open /etc/{file}: no such file or directory")
        rfd = os.open(passwd_root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            parts_ = resolve_in_root(rfd, f"/etc/{file}")
            try:
                fd = _open_parts(rfd, parts_, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as e:
                raise CopyError(f"{pre}can't find {kind} for {noun} {name}: open "
                                f"/{'/'.join(parts_)}: {os.strerror(e.errno or 0).lower()}"
                                ) from None
            try:
                found = _parse_id_file(f"/proc/self/fd/{fd}", name)
            finally:
                os.close(fd)
        finally:
            os.close(rfd)
        if found is None:
            raise CopyError(f"{pre}can't find {kind} for {noun} {name}: no such {noun}: {name}")
        return found

    return lookup("user", user, "passwd"), lookup("group", group, "group")


# -- archives (ADD) ---------------------------------------------------------------------

def _tar_block_ok(b: bytes) -> bool:
    """Go's tar.Reader.Next on the first block: a header whose checksum holds."""
    if len(b) < 512 or b[:512] == bytes(512):
        return False
    field_ = b[148:156].replace(b"\x00", b" ").strip()
    try:
        want = int(field_, 8)
    except ValueError:
        return False
    blk = b[:148] + b" " * 8 + b[156:512]
    return want in (sum(blk), sum(x - 256 if x > 127 else x for x in blk))


def archive_kind(fd: int) -> str | None:
    """`plain`, `gzip`, `bzip2`, `xz` or `zstd` if the file is a tar (dockerd's
    isArchivePath: DecompressStream then one tar header), else None. zstd is
    our extension (20.10 copies it as a file): confirmed by extracting."""
    head = os.pread(fd, 6, 0)
    try:
        with os.fdopen(os.dup(fd), "rb") as f:
            f.seek(0)
            if head.startswith(b"\x1f\x8b\x08"):
                return "gzip" if _tar_block_ok(gzip.GzipFile(fileobj=f).read(512)) else None
            if head.startswith(b"BZh"):
                return "bzip2" if _tar_block_ok(bz2.BZ2File(f).read(512)) else None
            if head.startswith(b"\xfd7zXZ\x00"):
                return "xz" if _tar_block_ok(lzma.LZMAFile(f).read(512)) else None
            if head.startswith(b"\x28\xb5\x2f\xfd"):
                return "zstd"
            return "plain" if _tar_block_ok(f.read(512)) else None
    except (OSError, EOFError, lzma.LZMAError):
        return None


def _extract_archive(src_fd: int, dst_fd: int, kind: str) -> bool:
    """Extract the tar at `src_fd` into the directory `dst_fd` with the
    hardened extractor, into a private directory first and merged after (the
    extractor empties its target on failure; the destination may hold the
    image's files). Owners, modes and times come from the archive; `.wh.*`
    entries are extracted as plain files, then applied by the merge. Returns False
    if a zstd file turned out not to be a tar (then it is copied as a file)."""
    tmp = f".dockyard-add-{os.urandom(8).hex()}"
    os.mkdir(tmp, 0o700, dir_fd=dst_fd)
    try:
        tfd = os.open(tmp, _ODIR, dir_fd=dst_fd)
        try:
            try:
                if kind in ("bzip2", "xz"):  # the Rust extractor reads neither: decompress here
                    os.lseek(src_fd, 0, os.SEEK_SET)
                    opener = bz2.BZ2File if kind == "bzip2" else lzma.LZMAFile
                    with tempfile.TemporaryFile() as plain, open(os.dup(src_fd), "rb") as raw, \
                            opener(raw) as z:
                        shutil.copyfileobj(z, plain, 1 << 20)
                        plain.flush()
                        _core.extract_layer_file(f"/proc/self/fd/{plain.fileno()}",
                                                 f"/proc/self/fd/{tfd}", "plain")
                else:
                    _core.extract_layer_file(f"/proc/self/fd/{src_fd}", f"/proc/self/fd/{tfd}",
                                             "plain")
            except LayerCorrupt as e:
                if kind == "zstd":
                    return False
                raise CopyError(f"failed to copy files: {e}") from None
            _merge_into(tfd, dst_fd)
            return True
        finally:
            os.close(tfd)
    finally:
        _remove_at(dst_fd, tmp)


def _merge_into(src: int, dst: int) -> None:
    """Move the entries of `src` into `dst`: a directory over a directory
    merges (taking the archive's metadata, as Unpack), anything else replaces.
    `.wh.x` removes `x` and `.wh..wh..opq` what the directory held before:
    dockerd writes them as files, but they are whiteouts in the step's layer,
    so that is what the image shows from then on."""
    names = os.listdir(src)
    if WH_OPAQUE in names:
        keep = set(names)
        for old in os.listdir(dst):
            if old not in keep:
                _remove_at(dst, old)
    for name in names:
        if name.startswith(WH_PREFIX):
            orig = name[len(WH_PREFIX):]
            if not name.startswith(WH_META) and orig not in ("", ".", "..") and orig not in names:
                _remove_at(dst, orig)
            continue
        s = os.stat(name, dir_fd=src, follow_symlinks=False)
        try:
            d: os.stat_result | None = os.stat(name, dir_fd=dst, follow_symlinks=False)
        except FileNotFoundError:
            d = None
        if st.S_ISDIR(s.st_mode) and (d is None or not st.S_ISDIR(d.st_mode)):
            # Made and filled, not renamed: overlayfs marks a directory moved
            # into a merged one opaque, and the layer would carry a marker
            # that dockerd's doesn't. (Whiteouts in it are dropped by the merge:
            # there is nothing below a new directory for them to hide.)
            if d is not None:
                _remove_at(dst, name)
            os.mkdir(name, 0o700, dir_fd=dst)
            d = s
        if d is not None and st.S_ISDIR(d.st_mode) and st.S_ISDIR(s.st_mode):
            sfd = os.open(name, _ODIR, dir_fd=src)
            dfd = os.open(name, _ODIR, dir_fd=dst)
            try:
                _merge_into(sfd, dfd)
                os.fchown(dfd, s.st_uid, s.st_gid)
                os.fchmod(dfd, st.S_IMODE(s.st_mode))
                os.utime(dfd, ns=(s.st_atime_ns, s.st_mtime_ns))
            finally:
                os.close(sfd)
                os.close(dfd)
            continue
        if d is not None:
            _remove_at(dst, name)
        os.rename(name, name, src_dir_fd=src, dst_dir_fd=dst)


def _remove_at(dirfd: int, name: str) -> None:
    try:
        s = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not st.S_ISDIR(s.st_mode):
        os.unlink(name, dir_fd=dirfd)
        return
    fd = os.open(name, _ODIR, dir_fd=dirfd)
    try:
        for child in os.listdir(fd):
            _remove_at(fd, child)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dirfd)


# -- the copy ---------------------------------------------------------------------------

@dataclass
class _Writer:
    owner: tuple[int, int] | None       # None: keep the source's (COPY --from)
    chmod: int | None
    caps: bool                          # copy security.capability (dockerd: only --from trees)
    entries: int = 0

    def ids(self, s: os.stat_result) -> tuple[int, int]:
        return self.owner if self.owner is not None else (s.st_uid, s.st_gid)

    def mode(self, s: os.stat_result) -> int:
        """The copy's mode. dockerd chowns to the build's identity after the
        copy, and a chown makes the kernel drop setuid (and setgid with group
        exec) from anything but a directory: the same bits go here."""
        if self.chmod is not None:
            return self.chmod
        m = st.S_IMODE(s.st_mode)
        if self.owner is not None and not st.S_ISDIR(s.st_mode):
            m &= ~st.S_ISUID
            if m & st.S_IXGRP:
                m &= ~st.S_ISGID
        return m

    def file(self, sfd: int, s: os.stat_result, dfd: int, name: str, xattrs: bool) -> None:
        """Write the regular file open at `sfd` as `name` in `dfd` (replacing
        what is there), with its mode and whole-second mtime (dockerd's tar
        round trip truncates it)."""
        self._write(sfd, s, dfd, name, xattrs)
        self.entries += 1

    def _write(self, sfd: int, s: os.stat_result, dfd: int, name: str, xattrs: bool) -> None:
        _replace(dfd, name, False)
        out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                      0o600, dir_fd=dfd)
        try:
            _copy_data(sfd, out, s.st_size)
            uid, gid = self.ids(s)
            os.fchown(out, uid, gid)
            if xattrs:
                self._set_caps(sfd, out)
            os.fchmod(out, self.mode(s))
            mt = s.st_mtime_ns // 10**9 * 10**9
            os.utime(out, ns=(mt, mt))
        finally:
            os.close(out)

    @staticmethod
    def _set_caps(sfd: int, dfd: int) -> None:
        for k, v in _capability(f"/proc/self/fd/{sfd}").items():
            try:
                os.setxattr(dfd, k, v)
            except OSError:
                pass  # as Unpack: a filesystem without them is no error

    def tree(self, sfd: int, dfd: int, src_name: str, dst_name: str) -> None:
        """Copy the contents of directory `sfd` into `dfd` (merging into
        directories, replacing anything else), as CopyWithTar + Untar: in
        Rust, a few directories at a time (see `_core.copy_into`)."""
        self.entries += _core.copy_into(sfd, dfd, src_name, dst_name, owner=self.owner,
                                        chmod=self.chmod, capability=self.caps)


def _replace(dfd: int, name: str, want_dir: bool) -> None:
    """Make room for `name`: an existing directory stays for a directory,
    anything else is removed (Unpack's rule)."""
    try:
        d = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if want_dir and st.S_ISDIR(d.st_mode):
        return
    _remove_at(dfd, name)


def _copy_data(src: int, dst: int, size: int) -> None:
    """In-kernel copy (reflink-capable copy_file_range), falling back to read/write."""
    off = 0
    try:
        while off < size:
            n = os.copy_file_range(src, dst, size - off, off, off)
            if n == 0:
                break
            off += n
        if off >= size:
            return
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF):
            raise
    os.lseek(dst, off, os.SEEK_SET)
    while True:
        b = os.pread(src, 1 << 20, off)
        if not b:
            return
        os.write(dst, b)
        off += len(b)


def _normalize_dest(workdir: str, dest: str) -> str:
    if dest.startswith("/"):
        return dest
    parts = clean_parts((workdir or "/") + "/" + dest)
    out = "/" + "/".join(parts)
    if dest.endswith("/") and out != "/":
        out += "/"
    return out


def _parse_chmod(chmod: str) -> int:
    try:
        v = int(chmod, 8)
    except ValueError:
        raise CopyError(f"invalid chmod parameter: {chmod}") from None
    if v < 0 or v > 0o7777:
        raise CopyError(f"invalid chmod parameter: {chmod}")
    return v


class CopyPlan:
    """The sources of one COPY/ADD, selected and hashed (ADD URLs downloaded
    once, to a temporary directory), ready to copy: the executor probes its
    cache with `comment`, then calls `apply` on a miss. Close it (or use it
    as a context manager) to drop the downloads."""

    def __init__(self, cmd: str, infos: list[_Info], dest: str, chown: str | None,
                 chmod: str | None, from_image: bool, fds: list[int], tmpdirs: list[Path]) -> None:
        self.cmd = cmd
        self._infos = infos
        self.dest = dest
        self.chown = chown
        self._chmod = chmod
        self._mode = _parse_chmod(chmod) if chmod else None
        self._from_image = from_image
        self._fds = fds
        self._tmpdirs = tmpdirs
        self.source_hash = (infos[0].hash if len(infos) == 1
                            else _hash_strings("multi", [i.hash for i in infos]))
        self.comment = copy_comment(cmd, self.source_hash, dest, chown, chmod)

    def apply(self, target_root: Path, workdir: str, passwd_root: Path | None) -> CopyResult:
        """Copy into `target_root` (the step's rootfs as the container sees
        it); `--chown` names come from `passwd_root` (default: the target)."""
        abs_dest = _normalize_dest(workdir, self.dest)
        owner: tuple[int, int] | None = (0, 0)
        if self.chown:
            owner = resolve_chown(self.chown,
                                  passwd_root if passwd_root is not None else target_root)
        elif self._from_image:
            owner = None  # COPY --from keeps the image's owners
        # dockerd's context untar drops security.capability; an image's trees keep it
        entries = _apply(self._infos, abs_dest, target_root, owner, self._mode,
                         self.cmd == "ADD", self._from_image)
        return CopyResult(self.source_hash, self.comment, abs_dest, entries)

    def on_files(self, context: Path) -> "CopyPlan":
        """This plan, made on the context's index, with its sources now read
        from the unpacked context: the same selection and sums (the index
        answers as the files do), so nothing is walked or hashed again."""
        rootfd = os.open(context, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        src: _Source | None = None
        infos = []
        for i in self._infos:
            if isinstance(i.src, _IndexSource):
                src = src or _Source(context, rootfd, True, i.src.sums)
                i = with_fields(i, src=src)
            infos.append(i)
        return CopyPlan(self.cmd, infos, self.dest, self.chown, self._chmod, self._from_image,
                        [rootfd], [])

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        for t in self._tmpdirs:
            shutil.rmtree(t, ignore_errors=True)
        self._tmpdirs.clear()

    def __enter__(self) -> "CopyPlan":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def plan_copy(sources: list[str], dest: str, *, context: Path | None, src_root: Path | None,
              is_add: bool, chown: str | None = None, chmod: str | None = None,
              context_sums: ContextSums | None = None, allow_chmod: bool = True,
              url_opener: Callable[..., object] | None = None,
              context_index: BuildContext | None = None) -> CopyPlan:
    """Select and hash the sources of a COPY/ADD (`sources` and `dest` as
    written, variables expanded), raising dockerd's errors in dockerd's order.
    `context` is the unpacked build context, `src_root` the rootfs of a
    `COPY --from` stage or image; `context_sums` (one per build) holds the
    context's entry sums, computed from the tree on first use if not given.
    `--chmod` is accepted as a BuildKit extension unless `allow_chmod` is
    False (then refused with 20.10's message). `url_opener` replaces
    urllib's `urlopen` (tests, proxies). With `context_index` (and no
    `context`) the context's sources are selected and hashed on its index:
    a plan for the cache probe only, never applied."""
    cmd = "ADD" if is_add else "COPY"
    if chmod and not allow_chmod:
        raise CopyError(_CHMOD_REFUSED)
    if chmod:
        _parse_chmod(chmod)
    if not sources:
        raise CopyError(f"{cmd} requires at least two arguments")
    from_image = src_root is not None
    root = src_root if from_image else context
    tmpdirs: list[Path] = []
    fds: list[int] = []
    try:
        # No context at all (a remote Dockerfile): URLs still download, and a
        # source from the context fails as dockerd's calcCopyInfo does.
        base: _Source | _IndexSource | None = None
        if root is None:
            if context_index is not None:
                base = _IndexSource(context_index,
                                    context_sums or ContextSums(context_index.sums()))
        else:
            rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            fds.append(rootfd)
            if not from_image and context_sums is None:
                context_sums = ContextSums.from_tree(root)
            base = _Source(root, rootfd, not from_image, context_sums)
        infos: list[_Info] = []
        for orig in sources:
            if is_url(orig):
                if not is_add:
                    raise CopyError(f"{cmd} failed: source can't be a URL for COPY")
                tmp = Path(tempfile.mkdtemp(prefix="dockyard-remote-"))
                tmpdirs.append(tmp)
                troot, fname = _download(orig, tmp, dest, cmd, url_opener)
                tfd = os.open(troot, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
                fds.append(tfd)
                rsrc = _Source(troot, tfd, False)
                infos.append(_Info(rsrc, fname, [fname], rsrc.hash(fname), False, True))
                continue
            if base is None:
                raise CopyError(f"{cmd} failed: missing build context")
            infos += _calc_copy_info(base, orig, True, cmd)
        if not infos:
            raise CopyError(f"{cmd} failed: no source files were specified")
        if len(infos) > 1 and not dest.endswith("/"):
            raise CopyError(f"When using {cmd} with more than one source file, the destination "
                            "must be a directory and end with a /")
        return CopyPlan(cmd, infos, dest, chown, chmod, from_image, fds, tmpdirs)
    except BaseException:
        for fd in fds:
            os.close(fd)
        for t in tmpdirs:
            shutil.rmtree(t, ignore_errors=True)
        raise


def copy_sources(sources: list[str], dest: str, *, context: Path | None, src_root: Path | None,
                 target_root: Path, workdir: str, is_add: bool, chown: str | None,
                 chmod: str | None, passwd_root: Path | None,
                 context_sums: ContextSums | None = None, allow_chmod: bool = True,
                 dry_run: bool = False,
                 url_opener: Callable[..., object] | None = None) -> CopyResult:
    """One COPY/ADD start to end: `plan_copy` then `CopyPlan.apply` (see
    both). `dry_run` stops after the hash (nothing written, `entries` 0)."""
    with plan_copy(sources, dest, context=context, src_root=src_root, is_add=is_add,
                   chown=chown, chmod=chmod, context_sums=context_sums,
                   allow_chmod=allow_chmod, url_opener=url_opener) as plan:
        if dry_run:
            return CopyResult(plan.source_hash, plan.comment, _normalize_dest(workdir, dest), 0)
        return plan.apply(target_root, workdir, passwd_root)


def _apply(infos: list[_Info], dest: str, target_root: Path, owner: tuple[int, int] | None,
           mode: int | None, is_add: bool, caps: bool) -> int:
    troot = os.open(target_root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    w = _Writer(owner, mode, caps)
    try:
        dparts = resolve_in_root(troot, dest)
        slash = dest.endswith("/")
        for info in infos:
            flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
            sfd = _open_parts(info.src.rootfd, info.parts,
                              flags | (os.O_DIRECTORY if info.is_dir else 0))
            try:
                s = os.fstat(sfd)
                _apply_one(info, sfd, s, troot, dparts, slash, w, is_add)
            except NotADirectoryError:
                # dockerd names the host path; the path inside the image says as much
                where = "/" + "/".join(dparts)
                raise CopyError("failed to copy files: failed to copy directory: mkdir "
                                f"{where}: not a directory" if info.is_dir else
                                f"failed to copy files: lstat {where}: not a directory") from None
            finally:
                os.close(sfd)
        return w.entries
    finally:
        os.close(troot)


def _dest_kind(troot: int, dparts: list[str]) -> int | None:
    try:
        fd = _open_parts(troot, dparts)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.fstat(fd).st_mode
    finally:
        os.close(fd)


def _apply_one(info: _Info, sfd: int, s: os.stat_result, troot: int, dparts: list[str],
               slash: bool, w: _Writer, is_add: bool) -> None:
    dmode = _dest_kind(troot, dparts)
    dest_is_dir = dmode is not None and st.S_ISDIR(dmode)
    # new directories: the chown identity (dockerd's MkdirAllAndChownNew), root for --from
    mk_owner = w.owner
    if info.is_dir:
        # CopyWithTar: the destination dir is made 0755 root; fixPermissions
        # then gives it the identity only if it did not exist
        dfd = _mkdir_parts(troot, dparts, None)
        try:
            if not dest_is_dir and w.owner is not None:
                os.fchown(dfd, *w.owner)
            w.tree(sfd, dfd, "/".join(info.parts) or ".", "/" + "/".join(dparts))
        finally:
            os.close(dfd)
        return
    if is_add and not info.no_decompress:
        kind = archive_kind(sfd)
        if kind is not None:
            dfd = _mkdir_parts(troot, dparts, None)
            try:
                if _extract_archive(sfd, dfd, kind):
                    return
            finally:
                os.close(dfd)
    if slash or dest_is_dir:
        parent, name = dparts, os.path.basename(info.orig.rstrip("/")) or info.parts[-1]
    else:
        if not dparts:
            raise CopyError("failed to copy files: cannot copy to the root as a file")
        parent, name = dparts[:-1], dparts[-1]
    dfd = _mkdir_parts(troot, parent, mk_owner)
    try:
        w.file(sfd, s, dfd, name, False)
    finally:
        os.close(dfd)
