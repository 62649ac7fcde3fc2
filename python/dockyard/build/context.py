"""A build's context as the classic builder receives it: a tar (plain, gzip,
bzip2, xz or zstd, detected by magic) kept as one plain tar and indexed in one
pass (each entry's tarsum as dockerd computes it; names that would escape
refused as the extractor would), the Dockerfile located as dockerd's
`remotecontext/detect.go` does and the `.dockerignore` rules applied to the
Dockerfile and `.dockerignore` themselves, all on the index. The files are
unpacked with the hardened extractor (nothing may land outside the private
directory) only when a step needs them."""

from __future__ import annotations

import bz2
import errno
import lzma
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .. import _core
from ..errors import DockyardError, InvalidParameter
from ..containers import scopedpath
from .dockerignore import files_to_remove, read_ignore_file

__all__ = ["BuildContext", "ContextError", "DEFAULT_DOCKERFILE", "clean_parts",
           "read_context_dockerfile", "receive_context"]

DEFAULT_DOCKERFILE = "Dockerfile"
_BZIP2 = b"BZh"
_XZ = b"\xfd7zXZ\x00"
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"


class ContextError(DockyardError):
    """A context dockerd cannot use (its answer is a 500)."""


def _decompressed(chunks: Iterator[bytes], first: bytes) -> Iterator[bytes]:
    """bzip2 and xz are decoded here; the extractor itself reads plain, gzip
    and zstd tars."""
    if first.startswith(_BZIP2):
        dec: bz2.BZ2Decompressor | lzma.LZMADecompressor = bz2.BZ2Decompressor()
    elif first.startswith(_XZ):
        dec = lzma.LZMADecompressor()
    else:
        yield first
        yield from chunks
        return
    for chunk in _chain(first, chunks):
        out = dec.decompress(chunk)
        if out:
            yield out
        if dec.eof:
            return
    if not dec.eof:
        raise InvalidParameter("unexpected EOF in the compressed build context")


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _remove_in_context(root: Path, rel: str) -> None:
    try:
        sp = scopedpath.resolve(str(root), rel)
    except (FileNotFoundError, NotADirectoryError):
        return
    try:
        if sp.fd is not None and sp.name:
            os.unlink(sp.name, dir_fd=sp.dirfd)
    except OSError:
        pass
    finally:
        sp.close()


# -- the context as received: one plain tar and its index ---------------------------------

_MAX_SYMLINKS = 255


@dataclass(frozen=True)
class Entry:
    typeflag: str        # the tar's ('\0' read as '0', or '5' for a name ending in '/')
    mode: int
    size: int
    link: str
    offset: int          # of the data in the plain tar
    sum: str             # tarsum-v1, as dockerd hashes the uploaded header and data

    @property
    def is_dir(self) -> bool:
        return self.typeflag == "5"

    @property
    def is_symlink(self) -> bool:
        return self.typeflag == "2"


_IMPLICIT_DIR = Entry("5", 0o755, 0, "", 0, "")   # a parent the tar never lists


class BuildContext:
    """A build's context as uploaded: kept as one plain tar and indexed in
    one pass in Rust (each entry's tarsum as dockerd computes it, from the
    headers the client sent), so cache probes read the index and a fully
    cached build writes no file. The files are unpacked (with the hardened
    extractor) only when a step needs them: `path()`."""

    def __init__(self, workdir: Path, tar: Path, entries: list[tuple]) -> None:
        self._workdir = workdir
        self.tar = tar
        self.entries: dict[str, Entry] = {}
        self.children: dict[str, set[str]] = {"": set()}
        for key, tf, mode, size, link, offset, sum_ in entries:
            k = key.decode("utf-8", "surrogateescape")
            self.entries[k] = Entry(chr(tf), mode, size, link.decode("utf-8", "surrogateescape"),
                                    offset, sum_)
            while k:
                parent, _, name = k.rpartition("/")
                kids = self.children.setdefault(parent, set())
                if name in kids:
                    break
                kids.add(name)
                k = parent
        self._removed: list[str] = []
        self._dir: Path | None = None
        self._lock = threading.Lock()
        self.mounted = False

    def unpacked_size(self) -> int:
        """Bytes the unpacked files take on a tmpfs, generously: data in
        whole pages, and a page per entry for its inode and name."""
        return sum((e.size + 4095) // 4096 * 4096 + 4096 for e in self.entries.values()) \
            + (1 << 20)

    def close(self) -> None:
        """Unmount the context's tmpfs (the caller removes the directory)."""
        if self.mounted:
            try:
                _core.unmount(str(self._workdir / "context"), detach=True)
            except (DockyardError, OSError):
                pass
            self.mounted = False

    def entry(self, rel: str) -> Entry | None:
        e = self.entries.get(rel)
        if e is None and rel in self.children:
            return _IMPLICIT_DIR
        return e

    def sums(self) -> dict[str, str]:
        return {k: e.sum for k, e in self.entries.items()}

    # --- paths, resolved as moby's FollowSymlinkInScope would on the files -------
    def resolve(self, path: str, follow_last: bool = True) -> list[str]:
        """Components of `path` with symlinks followed inside the context; a
        missing component and what follows are kept as written (cleaned)."""
        pending = clean_parts(path)
        done: list[str] = []
        links = 0
        while pending:
            comp = pending.pop(0)
            if comp == "..":
                if done:
                    done.pop()
                continue
            e = self.entry("/".join(done + [comp]))
            if e is None:
                return clean_parts("/".join(done + [comp] + pending))
            if e.is_symlink and (pending or follow_last):
                links += 1
                if links > _MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many links", path)
                if e.link.startswith("/"):
                    done = []
                pending = [p for p in e.link.split("/") if p not in ("", ".")] + pending
                continue
            if not e.is_dir and pending:
                return clean_parts("/".join(done + [comp] + pending))
            done.append(comp)
        return done

    def lookup(self, parts: list[str]) -> Entry:
        """The entry at resolved `parts`, failing as opening it without
        following symlinks would (FileNotFoundError, NotADirectoryError)."""
        for i in range(len(parts)):
            e = self.entry("/".join(parts[:i + 1]))
            if e is None:
                raise FileNotFoundError(errno.ENOENT, "no such file", "/".join(parts))
            if i < len(parts) - 1 and not e.is_dir:
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", "/".join(parts))
        return self.entry("/".join(parts)) or _IMPLICIT_DIR

    def walk(self, parts: list[str]) -> Iterator[str]:
        """`parts` and everything below it, in Go filepath.Walk order."""
        rel = "/".join(parts)
        yield rel or "."
        yield from self._walk(rel)

    def _walk(self, rel: str) -> Iterator[str]:
        prefix = rel + "/" if rel else ""
        for name in sorted(self.children.get(rel, ())):
            sub = prefix + name
            yield sub
            e = self.entry(sub)
            if e is not None and e.is_dir:
                yield from self._walk(sub)

    def read(self, rel: str) -> bytes | None:
        """The regular file `rel` (symlinks followed inside the context)."""
        try:
            parts = self.resolve(rel)
            e = self.lookup(parts)
        except (OSError, ValueError):
            return None
        seen = 0
        while e.typeflag == "1" and seen < _MAX_SYMLINKS:  # a hardlink: its first name's data
            target = self.entries.get("/".join(clean_parts(e.link)))
            if target is None:
                return None
            e, seen = target, seen + 1
        if e.typeflag not in ("0", "7"):
            return None
        with open(self.tar, "rb") as f:
            f.seek(e.offset)
            return f.read(e.size)

    def remove(self, rel: str) -> None:
        """Drop a file (not a directory) from the context, as unlinking it
        from the unpacked tree would."""
        parts = self.resolve(rel, follow_last=False)
        key = "/".join(parts)
        e = self.entries.get(key)
        if not parts or e is None or e.is_dir:
            return
        del self.entries[key]
        parent, _, name = key.rpartition("/")
        self.children.get(parent, set()).discard(name)
        self._removed.append(key)

    # --- the files ---------------------------------------------------------------
    def path(self) -> Path:
        """The context unpacked (once) into a private directory: a tmpfs of
        its own when the files fit the memory allowance (they are read once
        or twice and thrown away: the disk need not see them), else the
        builder's directory on disk."""
        with self._lock:
            if self._dir is None:
                dest = self._workdir / "context"
                dest.mkdir()
                need = self.unpacked_size()
                if need <= _tmpfs_allowance():
                    try:
                        _core.mount_tmpfs(str(dest), need + (need >> 2))
                        self.mounted = True
                    except (DockyardError, OSError):
                        pass  # no mount rights (rootless): the disk
                try:
                    _core.extract_layer_file(str(self.tar), str(dest), "naive")
                except DockyardError as e:
                    raise InvalidParameter(f"failed to read the build context: {e}") from None
                for rel in self._removed:
                    _remove_in_context(dest, rel)
                self._dir = dest
            return self._dir


def _tmpfs_allowance() -> int:
    """The largest context unpacked in memory: a quarter of what is
    available now, at most 2 GiB."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return min(int(line.split()[1]) * 1024 // 4, 2 << 30)
    except OSError:
        pass
    return 0


def clean_parts(path: str) -> list[str]:
    """Lexically cleaned components of `path` taken from `/` ('..' stops at the root)."""
    out: list[str] = []
    for p in path.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if out:
                out.pop()
            continue
        out.append(p)
    return out


def receive_context(chunks: Iterable[bytes], workdir: Path) -> BuildContext:
    """Write the uploaded context to `workdir` as one plain tar (bzip2 and
    xz decoded here, gzip and zstd in the index pass) and index it."""
    it = iter(chunks)
    first = b""
    for chunk in it:
        first += chunk
        if len(first) >= 6:
            break
    raw = workdir / "context.raw"
    total = 0
    plain = not first.startswith((_GZIP, _ZSTD))
    try:
        with open(raw, "wb") as f:
            if first:
                for data in _decompressed(it, first):
                    total += len(data)
                    f.write(data)
            if plain and total:
                # The docker CLI's `-f -` context (ReplaceFileTarWrapper) ends right
                # after its last file's data, with neither padding nor the
                # end-of-archive blocks, which dockerd's reader accepts.
                f.write(bytes((-total) % 512 + 1024))
    except OSError as e:
        if e.filename is None:  # a write's error (a full disk): say which file
            raise OSError(e.errno, e.strerror, str(raw)) from None
        raise
    tar = workdir / "context.tar"
    try:
        entries, wrote = _core.index_build_context(str(raw), str(tar))
    except DockyardError as e:
        if "cksum" in str(e) or "checksum" in str(e):  # not a tar header: Go's ErrHeader
            raise DockyardError("archive/tar: invalid tar header") from None
        raise InvalidParameter(str(e) if str(e).startswith("failed to read the build context")
                               else f"failed to read the build context: {e}") from None
    if wrote:
        raw.unlink()
    else:
        raw.rename(tar)
    return BuildContext(workdir, tar, entries)


def read_context_dockerfile(ctx: BuildContext, name: str = "") -> tuple[str, bytes]:
    """The Dockerfile's path in the context and its bytes, dockerd's way:
    `Dockerfile` falls back to `dockerfile`; then `.dockerignore` and the
    Dockerfile are removed from the context when the ignore rules match
    them. Read from the index: nothing unpacked."""
    name = name or DEFAULT_DOCKERFILE
    rel = name.lstrip("/")
    data = ctx.read(rel)
    if data is None and name == DEFAULT_DOCKERFILE:
        rel = DEFAULT_DOCKERFILE.lower()
        data = ctx.read(rel)
        if data is not None:
            name = rel
    if data is None:
        raise ContextError(f"Cannot locate specified Dockerfile: {name}")
    ignore = ctx.read(".dockerignore")
    if ignore is not None:
        for f in files_to_remove(read_ignore_file(ignore), rel):
            ctx.remove(f)
    return name, data
