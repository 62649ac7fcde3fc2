"""`RUN --mount=` (BuildKit's; dockerd 20.10 refuses it), an extension of the
classic builder here: `type=cache` (a directory kept across builds under the
daemon's root, per `id` or target; `sharing=shared|locked|private`),
`type=tmpfs`, and `type=bind` of a context path or of a stage's or image's
path (`from=`; read-only unless `rw`, whose writes go to a copy and are
dropped). `type=secret` and `type=ssh` need BuildKit's session and are
refused. Nothing a mount brings ends up in the step's layer: targets the
image didn't have are removed again before the diff, and the step's cache
key holds the mounts (with the content hash of a bound context path)."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat as st
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from .. import _core
from ..containers import scopedpath
from .copy import resolve_in_root
from .dockerfile.instructions import Mount

__all__ = ["MountError", "RunMounts", "prune_cache_mounts"]

_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


class MountError(Exception):
    """A `--mount` this builder can't provide (the step fails with it)."""


def _lock_for(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


def _flag_text(m: Mount) -> str:
    parts = [f"type={m.type}"]
    for k, v in (("from", m.from_), ("source", m.source), ("target", m.target),
                 ("id", m.cache_id), ("sharing", m.cache_sharing)):
        if v:
            parts.append(f"{k}={v}")
    if m.type == "bind" and not m.readonly or m.type == "cache" and m.readonly:
        parts.append("rw" if not m.readonly else "ro")
    for k, n in (("mode", m.mode), ("uid", m.uid), ("gid", m.gid)):
        if n is not None:
            parts.append(f"{k}={oct(n)[2:] if k == 'mode' else n}")
    return "--mount=" + ",".join(parts)


def prune_cache_mounts(root: Path) -> int:
    """Remove every cache mount's directory not in use; the bytes freed."""
    freed = 0
    if not root.is_dir():
        return 0
    for d in root.iterdir():
        lock = _lock_for(d.name)
        if not lock.acquire(blocking=False):
            continue
        try:
            for dirpath, _, files in os.walk(d):
                for f in files:
                    try:
                        freed += os.lstat(os.path.join(dirpath, f)).st_size
                    except OSError:
                        pass
            shutil.rmtree(d, ignore_errors=True)
        finally:
            lock.release()
    return freed


class RunMounts:
    """The mounts of one RUN step: `key()` for the cache probe, then
    `prepare()` (host sources; HostConfig.Mounts), the run, `prune(rootfs)`
    and `close()`."""

    def __init__(self, mounts: list[Mount], workdir: str, cache_root: Path, scratch: Path,
                 context_path: Callable[[], Path], context_hash: Callable[[str], str],
                 image_of: Callable[[str], Any],
                 mount_image: Callable[[Any], tuple[Path, Callable[[], None]]]) -> None:
        self.mounts = mounts
        self.workdir = workdir
        self.cache_root = cache_root
        self.scratch = scratch
        self._context_path = context_path
        self._context_hash = context_hash
        self._image_of = image_of
        self._mount_image = mount_image
        self._release: list[Callable[[], None]] = []
        self._held: list[threading.Lock] = []
        for m in mounts:
            if m.type in ("secret", "ssh"):
                raise MountError(f"RUN --mount=type={m.type} needs BuildKit's session (secrets "
                                 "and SSH agents are not served by the classic builder)")
            if not m.target:
                raise MountError("mount target must be specified")

    def target(self, m: Mount) -> str:
        t = m.target if m.target.startswith("/") else os.path.join(self.workdir or "/", m.target)
        return os.path.normpath(t)

    def key(self) -> list[str]:
        """What the step's saved command starts with: each mount as written,
        with what a bind brings (a context path's content hash, an image ID)."""
        out = []
        for m in self.mounts:
            text = _flag_text(m)
            if m.type == "bind":
                if m.from_:
                    text += f",from-image={self._image_of(m.from_).id}"
                else:
                    text += f",content={self._context_hash(m.source or '.')}"
            out.append(text)
        return out

    def prepare(self) -> list[dict[str, Any]]:
        """HostConfig.Mounts for the RUN container."""
        out: list[dict[str, Any]] = []
        for i, m in enumerate(self.mounts):
            target = self.target(m)
            if m.type == "tmpfs":
                out.append({"Type": "tmpfs", "Target": target})
                continue
            if m.type == "cache":
                src = self._cache_dir(m, i)
            else:
                src = self._bind_source(m, i)
            out.append({"Type": "bind", "Source": str(src), "Target": target,
                        "ReadOnly": m.readonly if m.type == "cache" else m.readonly,
                        "BindOptions": {"Propagation": "rprivate"}})
        return out

    def _cache_dir(self, m: Mount, i: int) -> Path:
        name = hashlib.sha256((m.cache_id or self.target(m)).encode()).hexdigest()[:32]
        lock = _lock_for(name)
        sharing = m.cache_sharing or "shared"
        if sharing == "locked":
            lock.acquire()
            self._held.append(lock)
        elif sharing == "private":
            if not lock.acquire(blocking=False):
                d = self.scratch / f"cache-{i}"  # in use: a fresh one, dropped after
                d.mkdir(mode=m.mode if m.mode is not None else 0o755)
                os.chown(d, m.uid or 0, m.gid or 0)
                return d
            self._held.append(lock)
        d = self.cache_root / name
        if not d.is_dir():
            self.cache_root.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.cache_root / f".{name}.new"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(mode=0o700)
            os.chown(tmp, m.uid or 0, m.gid or 0)
            os.chmod(tmp, m.mode if m.mode is not None else 0o755)
            try:
                os.rename(tmp, d)
            except OSError:
                shutil.rmtree(tmp, ignore_errors=True)  # made meanwhile by another step
        return d

    def _bind_source(self, m: Mount, i: int) -> Path:
        if m.from_:
            root, release = self._mount_image(self._image_of(m.from_))
            self._release.append(release)
        else:
            root = self._context_path()
        src = _resolve_in(root, m.source or ".")
        if not m.readonly:  # writes allowed, and thrown away: a private copy
            copy = self.scratch / f"bind-{i}"
            if src.is_dir() and not src.is_symlink():
                copy.mkdir()
                _core.copy_tree(str(src), str(copy))
            else:
                shutil.copy2(src, copy, follow_symlinks=False)
            src = copy
        return src

    def prune(self, rootfs: Path, existed: dict[str, bool]) -> None:
        """Remove from the container's rootfs the targets (and the parents)
        that creating the mounts made; `existed` tells which paths the image
        had. Resolved inside the rootfs: a symlink can't lead out of it."""
        for path in sorted(existed, key=lambda p: -p.count("/")):
            if existed[path]:
                continue
            try:
                sp = scopedpath.resolve(str(rootfs), path)
            except OSError:
                continue
            try:
                if sp.fd is None or not sp.name:
                    continue
                s = os.stat(sp.name, dir_fd=sp.dirfd, follow_symlinks=False)
                if st.S_ISDIR(s.st_mode):
                    os.rmdir(sp.name, dir_fd=sp.dirfd)
                elif st.S_ISREG(s.st_mode) and s.st_size == 0:
                    os.unlink(sp.name, dir_fd=sp.dirfd)
            except OSError:
                pass  # not empty: the command wrote there through the rootfs
            finally:
                sp.close()

    def paths_to_check(self) -> list[str]:
        """Each target and its parents, for `existed`."""
        out: set[str] = set()
        for m in self.mounts:
            p = self.target(m)
            while p not in ("/", ""):
                out.add(p)
                p = os.path.dirname(p)
        return sorted(out)

    def close(self) -> None:
        for release in self._release:
            release()
        self._release.clear()
        for lock in self._held:
            lock.release()
        self._held.clear()


def _resolve_in(root: Path, path: str) -> Path:
    """`path` beneath `root`, symlinks followed as if `root` were `/`."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        parts = resolve_in_root(fd, path)
    finally:
        os.close(fd)
    p = root.joinpath(*parts)
    if not os.path.lexists(p):
        raise MountError(f"failed to compute cache key: \"/{'/'.join(parts)}\" not found")
    return p


def image_paths_exist(root: Optional[Path], paths: list[str]) -> dict[str, bool]:
    """Which of `paths` the image rootfs at `root` has (resolved inside it)."""
    out = {}
    for p in paths:
        found = False
        if root is not None:
            try:
                sp = scopedpath.resolve(str(root), p)
                found = sp.fd is not None
                sp.close()
            except OSError:
                pass
        out[p] = found
    return out
