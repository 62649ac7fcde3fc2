"""A build's context as the classic builder receives it: a tar (plain, gzip,
bzip2, xz or zstd, detected by magic) unpacked with the hardened extractor
into a private directory (nothing may land outside it), then the Dockerfile
located as dockerd's `remotecontext/detect.go` does and the `.dockerignore`
rules applied to the Dockerfile and `.dockerignore` themselves."""

from __future__ import annotations

import bz2
import lzma
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from .. import _core
from ..errors import DockyardError, InvalidParameter
from ..containers import scopedpath
from .dockerignore import files_to_remove, read_ignore_file

__all__ = ["ContextError", "DEFAULT_DOCKERFILE", "read_dockerfile", "unpack_context"]

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


def unpack_context(chunks: Iterable[bytes], dest: Path) -> None:
    """Unpack the whole context stream into `dest` (an empty directory).
    Entries are confined to `dest` by the extractor (no `..`, no symlink
    escape); whiteout names are not special here."""
    it = iter(chunks)
    first = b""
    for chunk in it:
        first += chunk
        if len(first) >= 6:
            break
    if not first:
        return  # an empty body: the Dockerfile lookup reports it
    unpacker = _core.LayerUnpacker(str(dest), "naive")
    # The docker CLI's `-f -` context (ReplaceFileTarWrapper) ends right after
    # its last file's data, with neither padding nor the end-of-archive blocks,
    # which dockerd's reader accepts: a plain tar gets them added here.
    plain = not first.startswith((_GZIP, _ZSTD))
    total = 0
    try:
        for data in _decompressed(it, first):
            total += len(data)
            unpacker.write(data)
        if plain:
            unpacker.write(bytes((-total) % 512 + 1024))
    except BaseException:
        unpacker.abort()
        raise
    try:
        unpacker.finish()
    except DockyardError as e:
        raise InvalidParameter(f"failed to read the build context: {e}") from None


def _read_in_context(root: Path, rel: str) -> bytes | None:
    """The file `rel` of the context, its symlinks resolved inside the
    context, or None when there is no such regular file."""
    try:
        sp = scopedpath.resolve(str(root), rel, follow_last=True)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        if sp.fd is None:
            return None
        try:
            fd = os.open(f"/proc/self/fd/{sp.fd}", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as f:
            if not os.path.isfile(f"/proc/self/fd/{f.fileno()}"):
                return None
            return f.read()
    finally:
        sp.close()


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


def read_dockerfile(root: Path, name: str = "") -> tuple[str, bytes]:
    """The Dockerfile's path in the context and its bytes, dockerd's way:
    `Dockerfile` falls back to `dockerfile`; then `.dockerignore` and the
    Dockerfile are removed from the context when the ignore rules match them."""
    name = name or DEFAULT_DOCKERFILE
    rel = name.lstrip("/")
    data = _read_in_context(root, rel)
    if data is None and name == DEFAULT_DOCKERFILE:
        rel = DEFAULT_DOCKERFILE.lower()
        data = _read_in_context(root, rel)
        if data is not None:
            name = rel
    if data is None:
        raise ContextError(f"Cannot locate specified Dockerfile: {name}")
    ignore = _read_in_context(root, ".dockerignore")
    if ignore is not None:
        excludes = read_ignore_file(ignore)
        for f in files_to_remove(excludes, rel):
            _remove_in_context(root, f)
    return name, data
