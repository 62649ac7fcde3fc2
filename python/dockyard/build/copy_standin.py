"""STAND-IN, TO BE REPLACED by `dockyard.build.copy.copy_sources` (the
buildcopy helper's COPY/ADD library) at merge.

A minimal COPY/ADD for the executor's tests: plain files and directories
(and `*`/`?` wildcards) from the context or from another stage's root,
copied as root:root (or numeric `--chown`), modes kept; ADD neither
extracts tars nor fetches URLs here. The cache key is a content hash
(dockerd's `file:`/`dir:`/`multi:` shape), never mtimes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from ..containers import scopedpath
from ..errors import InvalidParameter

__all__ = ["Plan", "plan"]


@dataclass
class Plan:
    key: str
    sources: list[tuple[str, str]]  # (host path, name in the source root)
    preserve_owner: bool = False
    release: Optional[Callable[[], Any]] = None
    dest_is_dir_hint: bool = False
    _done: list[bool] = field(default_factory=list)

    def apply(self, root: str, dest: str, workdir: str, chown: str) -> None:
        try:
            _apply(self, root, dest, workdir, chown)
        finally:
            if self.release is not None:
                self.release()
                self.release = None


def _inside(root: str, path: str) -> bool:
    real = os.path.realpath(path)
    root = os.path.realpath(root)
    return real == root or real.startswith(root + "/")


def _in_root(root: str, rel: str) -> Optional[str]:
    """The host path of `rel`, its directories' symlinks resolved inside root."""
    try:
        sp = scopedpath.resolve(root, rel)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        return os.path.join(root, *sp.parts) if sp.parts else root
    finally:
        sp.close()


def _hash_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash_entry(path: str) -> str:
    st = os.lstat(path)
    head = f"{stat.S_IMODE(st.st_mode):o}:{stat.S_IFMT(st.st_mode):o}:{st.st_size}"
    if stat.S_ISLNK(st.st_mode):
        return hashlib.sha256(f"{head}:{os.readlink(path)}".encode()).hexdigest()
    if stat.S_ISREG(st.st_mode):
        return hashlib.sha256(f"{head}:{_hash_file(path)}".encode()).hexdigest()
    if stat.S_ISDIR(st.st_mode):
        h = hashlib.sha256(head.encode())
        for name in sorted(os.listdir(path)):
            h.update(f"{name}\0{_hash_entry(os.path.join(path, name))}\n".encode())
        return h.hexdigest()
    return hashlib.sha256(head.encode()).hexdigest()


def plan(cmd: Any, root: Optional[str], from_image: bool = False) -> Plan:
    if root is None:
        return Plan(key="", sources=[])
    found: list[tuple[str, str]] = []
    for src in cmd.sources:
        if src.startswith(("http://", "https://")):
            raise InvalidParameter("ADD from a URL is not supported by this stand-in")
        rel = os.path.normpath("/" + src).lstrip("/")
        if any(c in rel for c in "*?["):
            base = os.path.dirname(rel)
            pattern = os.path.basename(rel)
            d = os.path.join(root, base)
            names = sorted(os.listdir(d)) if os.path.isdir(d) and _inside(root, d) else []
            hits = [(os.path.join(d, n), os.path.join(base, n)) for n in names
                    if fnmatch.fnmatchcase(n, pattern)]
            found.extend(hits)
            continue
        path = _in_root(root, rel)
        if path is None or not os.path.lexists(path) or not _inside(root, path):
            what = cmd.name
            raise InvalidParameter(
                f"{what} failed: file not found in build context or excluded by "
                f".dockerignore: stat {src}: file does not exist")
        found.append((path, rel or "."))
    if not found:
        raise InvalidParameter(f"{cmd.name} failed: no source files were specified")
    if len(found) > 1 and not cmd.dest.endswith("/"):
        raise InvalidParameter(f"When using {cmd.name} with more than one source file, the "
                               "destination must be a directory and end with a /")
    keys = []
    for path, _ in found:
        real = os.path.realpath(path)
        kind = "dir" if os.path.isdir(real) else "file"
        keys.append(f"{kind}:{_hash_entry(real)}")
    key = keys[0] if len(keys) == 1 else \
        "multi:" + hashlib.sha256("\n".join(keys).encode()).hexdigest()
    return Plan(key=key, sources=found, preserve_owner=from_image)


def _owner(chown: str) -> Optional[tuple[int, int]]:
    if not chown:
        return None
    user, _, group = chown.partition(":")
    try:
        uid = int(user)
        gid = int(group) if group else uid
    except ValueError:
        raise InvalidParameter(f"unable to convert uid/gid chown string to host mapping: "
                               f"{chown} (this stand-in takes numeric IDs)") from None
    return uid, gid


def _apply(p: Plan, root: str, dest: str, workdir: str, chown: str) -> None:
    owner = _owner(chown)
    if not dest.startswith("/"):
        dest = os.path.join(workdir, dest)
    dest_dir = dest.endswith(("/", "/.")) or dest in (".", "..") or len(p.sources) > 1
    dest = os.path.normpath(dest)
    for path, _ in p.sources:
        real = os.path.realpath(path)
        if os.path.isdir(real):
            target_dir = dest
            _mkdirs(root, target_dir)
            base = _resolve_dir(root, target_dir)
            _copy_tree(real, base, owner, p.preserve_owner)
        else:
            if dest_dir:
                _mkdirs(root, dest)
                base = _resolve_dir(root, dest)
                name = os.path.basename(path)
            else:
                parent = os.path.dirname(dest) or "/"
                _mkdirs(root, parent)
                base = _resolve_dir(root, parent)
                name = os.path.basename(dest)
            _copy_one(real, os.path.join(base, name), owner, p.preserve_owner)


def _mkdirs(root: str, path: str) -> None:
    cur = ""
    for part in [x for x in path.split("/") if x]:
        cur = f"{cur}/{part}"
        # The last component unfollowed: a missing one is created, a symlink
        # is followed (inside root) by the next component's resolution.
        sp = scopedpath.resolve(root, cur)
        try:
            if sp.fd is None and sp.name:
                os.mkdir(sp.name, 0o755, dir_fd=sp.dirfd)
        finally:
            sp.close()


def _resolve_dir(root: str, path: str) -> str:
    """The host path of container dir `path`, its symlinks resolved inside root."""
    sp = scopedpath.resolve(root, path, follow_last=True)
    try:
        return os.path.join(root, *sp.parts) if sp.parts else root
    finally:
        sp.close()


def _copy_one(src: str, dst: str, owner: Optional[tuple[int, int]], keep: bool) -> None:
    st = os.lstat(src)
    if os.path.isdir(dst) and not os.path.islink(dst) and not stat.S_ISDIR(st.st_mode):
        shutil.rmtree(dst)
    elif os.path.lexists(dst) and not os.path.isdir(dst):
        os.unlink(dst)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(dst):
            os.mkdir(dst, stat.S_IMODE(st.st_mode))
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    else:
        shutil.copyfile(src, dst, follow_symlinks=False)
        os.chmod(dst, stat.S_IMODE(st.st_mode))
    uid, gid = owner if owner else ((st.st_uid, st.st_gid) if keep else (0, 0))
    os.lchown(dst, uid, gid)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_tree(src: str, dst: str, owner: Optional[tuple[int, int]], keep: bool) -> None:
    for name in sorted(os.listdir(src)):
        s = os.path.join(src, name)
        d = os.path.join(dst, name)
        _copy_one(s, d, owner, keep)
        if os.path.isdir(s) and not os.path.islink(s):
            _copy_tree(s, d, owner, keep)
            st = os.lstat(s)
            os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
