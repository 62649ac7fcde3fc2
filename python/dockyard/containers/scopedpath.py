"""Paths inside a container's rootfs, resolved with directory file
descriptors, one component at a time, symlinks followed within the rootfs
(as if it were `/`) and '..' never above it, so no symlink in the container
can lead a read or a write out of it (`docker cp`)."""

from __future__ import annotations

import errno
import os
import stat as st

MAX_SYMLINKS = 255


class ScopedPath:
    """A path resolved inside a rootfs: `dirfd` is an O_PATH fd of the
    directory holding the final entry `name` (None for the root itself,
    whose fd is then `dirfd`). `fd` is an O_PATH fd of the entry itself,
    not following a final symlink (None if it does not exist)."""

    def __init__(self, rootfd: int, dirfd: int, name: str | None, fd: int | None,
                 parts: list[str]) -> None:
        self.rootfd = rootfd
        self.dirfd = dirfd
        self.name = name
        self.fd = fd
        self.parts = parts  # the resolved path's components below the root

    @property
    def abs(self) -> str:
        return "/" + "/".join(self.parts)

    def close(self) -> None:
        for fd in {self.rootfd, self.dirfd, self.fd}:
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass


_OPATH = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


def _walk(rootfd: int, path: str, follow_last: bool) -> tuple[list[int], list[str], str | None]:
    """Resolve `path` from the root fd, one component at a time (O_PATH |
    O_NOFOLLOW), symlinks re-resolved from the root or their directory and
    '..' never above the root. Returns the stack of directory fds (root
    first; the caller owns all but the root), their names, and the final
    component left unresolved (None when `follow_last`, or when the path ends
    in '/' or '/.', i.e. names a directory that must be resolved)."""
    stack = [rootfd]
    names: list[str] = []
    pending = [p for p in path.split("/") if p not in ("", ".")]
    trailing = path.endswith("/") or path.endswith("/.") or path in ("", ".")
    links = 0
    try:
        while pending:
            comp = pending.pop(0)
            if comp == "..":
                if len(stack) > 1:
                    os.close(stack.pop())
                    names.pop()
                continue
            if not pending and not follow_last and not trailing:
                return stack, names, comp
            fd = os.open(comp, _OPATH, dir_fd=stack[-1])
            s = os.fstat(fd)
            if st.S_ISLNK(s.st_mode):
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
                target = os.readlink(comp, dir_fd=stack[-1])
                if target.startswith("/"):
                    for f in stack[1:]:
                        os.close(f)
                    stack, names = [rootfd], []
                if target.endswith("/") and not pending:
                    trailing = True
                pending = [p for p in target.split("/") if p not in ("", ".")] + pending
                continue
            if not st.S_ISDIR(s.st_mode) and (pending or trailing):
                os.close(fd)
                raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
            stack.append(fd)
            names.append(comp)
        return stack, names, None
    except BaseException:
        for f in stack[1:]:
            os.close(f)
        raise


def resolve(root: str, path: str, follow_last: bool = False) -> ScopedPath:
    """Resolve container path `path` under the host directory `root`. Raises
    FileNotFoundError for a missing intermediate directory; a missing final
    entry gives `fd` None."""
    rootfd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        stack, names, last = _walk(rootfd, path, follow_last)
    except BaseException:
        os.close(rootfd)
        raise
    if last is None:
        fd = stack[-1]
        if len(stack) == 1:
            return ScopedPath(rootfd, rootfd, None, rootfd, [])
        parent = stack[-2]
        for f in stack[1:-2]:
            os.close(f)
        if parent == rootfd:
            parent = os.dup(rootfd)
        return ScopedPath(rootfd, parent, names[-1], fd, names)
    parent = stack[-1]
    for f in stack[1:-1]:
        os.close(f)
    if parent == rootfd:
        parent = os.dup(rootfd)
    try:
        fd: int | None = os.open(last, _OPATH, dir_fd=parent)
    except FileNotFoundError:
        fd = None
    return ScopedPath(rootfd, parent, last, fd, names + [last])
