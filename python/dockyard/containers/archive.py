"""`docker cp`: the archive endpoints. HEAD and GET stat a container path and
tar it; PUT extracts a tar into a container directory. Every path is resolved
inside the rootfs by `scopedpath` (directory fds, never a host path join)."""

from __future__ import annotations

import base64
import json
import os
import stat as st
import tarfile
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from .. import _core
from ..errors import InvalidParameter, NotFound
from .model import Container
from .records import ContainerRecords
from .rootfs import mounted
from .scopedpath import ScopedPath, resolve


def go_file_mode(m: int) -> int:
    """os.FileMode bits from st_mode, as Go's fs.FileMode."""
    out = m & 0o777
    fmt = st.S_IFMT(m)
    if fmt == st.S_IFDIR:
        out |= 1 << 31
    elif fmt == st.S_IFLNK:
        out |= 1 << 27
    elif fmt == st.S_IFBLK:
        out |= 1 << 26
    elif fmt == st.S_IFCHR:
        out |= (1 << 26) | (1 << 21)
    elif fmt == st.S_IFIFO:
        out |= 1 << 25
    elif fmt == st.S_IFSOCK:
        out |= 1 << 24
    if m & st.S_ISUID:
        out |= 1 << 23
    if m & st.S_ISGID:
        out |= 1 << 22
    if m & st.S_ISVTX:
        out |= 1 << 20
    return out


def _rfc3339(ts: float) -> str:
    t = datetime.fromtimestamp(ts, timezone.utc)
    frac = f"{t.microsecond:06d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def _clean(path: str) -> str:
    """The container path as dockerd names it: absolute, keeping a trailing
    '/' or '/.' (they mean 'the directory itself')."""
    p = os.path.normpath("/" + path.lstrip("/"))  # not "//x", which POSIX normpath keeps
    if path.endswith("/.") or path == ".":
        p = p.rstrip("/") + "/."
    elif path.endswith("/") and p != "/":
        p += "/"
    return p


def _stat_of(sp: ScopedPath, root: str, abspath: str) -> dict[str, Any]:
    if sp.fd is None:
        raise FileNotFoundError(abspath)
    s = os.stat(sp.fd) if sp.name is None else os.stat(sp.name, dir_fd=sp.dirfd,
                                                       follow_symlinks=False)
    link = ""
    if st.S_ISLNK(s.st_mode):
        full = resolve(root, abspath, follow_last=True)
        try:
            link = full.abs
        finally:
            full.close()
    name = os.path.basename(abspath.rstrip("/")) if abspath.rstrip("/") else "/"
    if abspath.endswith("/."):
        name = "."
    return {"name": name, "size": s.st_size, "mode": go_file_mode(s.st_mode),
            "mtime": _rfc3339(s.st_mtime), "linkTarget": link}


@contextmanager
def _scope(svc: ContainerRecords, c: Container, abspath: str) -> Iterator[tuple[str, str, bool]]:
    """Where a container path lives for the daemon: inside one of its volumes or
    binds (their host directory, the rest of the path, read-only or not), or in
    its rootfs. A running container sees its mounts over its rootfs; so does
    `docker cp`, as with dockerd."""
    plain = abspath.rstrip("/.") or "/"
    for d in sorted(c.state.get("MountPoints") or [], key=lambda d: len(d["destination"]),
                    reverse=True):
        dest = d["destination"].rstrip("/")
        if d["type"] not in ("volume", "bind") or svc.volumes is None:
            continue
        if plain == dest or plain.startswith(dest + "/"):
            src = str(svc.volumes.path(d["source"])) if d["type"] == "volume" else d["source"]
            yield src, "/" + abspath[len(dest):].lstrip("/"), not d["rw"]
            return
    with mounted(svc, c.id) as root:
        yield root, abspath, False


def _in_mount(c: Container, abspath: str) -> bool:
    plain = abspath.rstrip("/.") or "/"
    return any(plain == d["destination"].rstrip("/") or
               plain.startswith(d["destination"].rstrip("/") + "/")
               for d in c.state.get("MountPoints") or [] if d["type"] in ("volume", "bind"))


def _shown_name(abspath: str) -> str:
    if abspath.endswith("/."):
        return "."
    return os.path.basename(abspath.rstrip("/")) if abspath.rstrip("/") else "/"


def _not_found(c: Container, path: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {c.name.lstrip('/')}")


def stat_path(svc: ContainerRecords, ref: str, path: str) -> dict[str, Any]:
    c = svc.get(ref)
    abspath = _clean(path)
    with _scope(svc, c, abspath) as (root, inner, _ro):
        try:
            sp = resolve(root, inner)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(c, path) from None
        try:
            return dict(_stat_of(sp, root, inner), name=_shown_name(abspath))
        except FileNotFoundError:
            raise _not_found(c, path) from None
        finally:
            sp.close()


def stat_header(stat: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


def archive_to(svc: ContainerRecords, ref: str, path: str, out: str) -> dict[str, Any]:
    """Stat container path `path` and write its tar to the host file `out`;
    returns the stat. The tar names the entry by the path's base name, as
    docker cp expects (a directory: `name/`, `name/...`)."""
    c = svc.get(ref)
    abspath = _clean(path)
    with _scope(svc, c, abspath) as (root, inner, _ro):
        try:
            sp = resolve(root, inner)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(c, path) from None
        try:
            try:
                stat = dict(_stat_of(sp, root, inner), name=_shown_name(abspath))
            except FileNotFoundError:
                raise _not_found(c, path) from None
            _tar_entry(sp, stat["name"], out, os.path.dirname(out))
        finally:
            sp.close()
    return stat


def _tar_entry(sp: ScopedPath, name: str, out: str, tmpdir: str) -> None:
    assert sp.fd is not None
    s = os.fstat(sp.fd) if sp.name is None else os.stat(sp.name, dir_fd=sp.dirfd,
                                                        follow_symlinks=False)
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
        ti = tarfile.TarInfo(name)
        ti.mode = st.S_IMODE(s.st_mode)
        ti.uid, ti.gid = s.st_uid, s.st_gid
        ti.mtime = int(s.st_mtime)
        ti.uname = ti.gname = ""
        if st.S_ISDIR(s.st_mode):
            ti.type = tarfile.DIRTYPE
            t.addfile(ti)
            # The contents, from the directory's own fd (never a path join).
            inner = os.path.join(tmpdir, "inner.tar")
            _core.create_layer(f"/proc/self/fd/{sp.fd}", inner, "none")
            with tarfile.open(inner, "r:") as src:
                for m in src:
                    f = src.extractfile(m) if m.isreg() else None
                    m.name = f"{name}/{m.name}"
                    if m.islnk():
                        m.linkname = f"{name}/{m.linkname}"
                    t.addfile(m, f)
        elif st.S_ISLNK(s.st_mode):
            ti.type = tarfile.SYMTYPE
            ti.linkname = os.readlink(sp.name or "", dir_fd=sp.dirfd)
            t.addfile(ti)
        elif st.S_ISREG(s.st_mode):
            ti.size = s.st_size
            fd = os.open(f"/proc/self/fd/{sp.fd}", os.O_RDONLY | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                t.addfile(ti, f)
        elif st.S_ISFIFO(s.st_mode):
            ti.type = tarfile.FIFOTYPE
            t.addfile(ti)
        elif st.S_ISCHR(s.st_mode) or st.S_ISBLK(s.st_mode):
            ti.type = tarfile.CHRTYPE if st.S_ISCHR(s.st_mode) else tarfile.BLKTYPE
            ti.devmajor, ti.devminor = os.major(s.st_rdev), os.minor(s.st_rdev)
            t.addfile(ti)


def extract_to(svc: ContainerRecords, ref: str, path: str, src: str,
               no_overwrite_dir_non_dir: bool = False) -> None:
    """`PUT /containers/{id}/archive`: extract the tar file `src` into the
    container directory `path`. The tar goes first into a fresh directory
    next to its destination (the extractor confines every write beneath it
    with openat2); its entries are then renamed into place through directory
    fds, merging into existing directories."""
    c = svc.get(ref)
    abspath = _clean(path)
    with _scope(svc, c, abspath) as (root, inner, read_only):
        try:
            sp = resolve(root, inner, follow_last=True)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(c, path) from None
        try:
            if sp.fd is None:
                raise _not_found(c, path)
            if not st.S_ISDIR(os.fstat(sp.fd).st_mode):
                raise InvalidParameter("extraction point is not a directory")
            if read_only:
                raise InvalidParameter("mounted volume is marked read-only")
            if c.hostconfig.get("ReadonlyRootfs") and not _in_mount(c, abspath):
                raise InvalidParameter("container rootfs is marked read-only")
            target = os.open(f"/proc/self/fd/{sp.fd}",
                             os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            try:
                tmpname = f".dockyard-cp-{os.urandom(8).hex()}"
                os.mkdir(tmpname, 0o700, dir_fd=target)
                tmpfd = os.open(tmpname, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                | os.O_CLOEXEC, dir_fd=target)
                try:
                    _core.extract_layer_file(src, f"/proc/self/fd/{tmpfd}", "naive")
                    if svc.driver.id_ranges is not None:
                        # --userns-remap: the tar's IDs are the container's (dockerd's ToHost)
                        _core.shift_ids(f"/proc/self/fd/{tmpfd}", svc.driver.id_ranges)
                    _merge_into(tmpfd, target, no_overwrite_dir_non_dir, root, inner)
                finally:
                    _remove_tree_at(target, tmpname)
                    os.close(tmpfd)
            finally:
                os.close(target)
        finally:
            sp.close()


def _merge_into(src: int, dst: int, no_overwrite_dir_non_dir: bool, root: str,
                here: str) -> None:
    """Move the entries of `src` into `dst` (the directory `here` of the
    container root `root`), merging directories."""
    for name in os.listdir(src):
        s = os.stat(name, dir_fd=src, follow_symlinks=False)
        try:
            d = os.stat(name, dir_fd=dst, follow_symlinks=False)
        except FileNotFoundError:
            d = None
        if d is not None and st.S_ISLNK(d.st_mode) and st.S_ISDIR(s.st_mode):
            # A directory of the tar over a symlink: dockerd's extraction goes
            # through it, resolved in the container (never out of its root).
            _merge_through_link(src, name, no_overwrite_dir_non_dir, root,
                                os.path.join(here, name))
            continue
        if d is not None and st.S_ISDIR(d.st_mode):
            if st.S_ISDIR(s.st_mode):
                sfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=src)
                dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=dst)
                try:
                    _merge_into(sfd, dfd, no_overwrite_dir_non_dir, root, os.path.join(here, name))
                    os.chmod(f"/proc/self/fd/{dfd}", st.S_IMODE(s.st_mode))
                    os.chown(f"/proc/self/fd/{dfd}", s.st_uid, s.st_gid)
                finally:
                    os.close(sfd)
                    os.close(dfd)
                continue
            raise InvalidParameter(f"cannot overwrite directory \"{name}\" with "
                                   "non-directory")
        if d is not None and no_overwrite_dir_non_dir and st.S_ISDIR(s.st_mode):
            raise InvalidParameter(f"cannot overwrite non-directory \"{name}\" with "
                                   "directory")
        os.rename(name, name, src_dir_fd=src, dst_dir_fd=dst)


def _merge_through_link(src: int, name: str, no_overwrite_dir_non_dir: bool, root: str,
                        path: str) -> None:
    try:
        sp = resolve(root, path, follow_last=True)
    except (FileNotFoundError, NotADirectoryError):
        sp = None
    try:
        if sp is None or sp.fd is None or not st.S_ISDIR(os.fstat(sp.fd).st_mode):
            raise InvalidParameter(f"cannot overwrite non-directory \"{name}\" with directory")
        sfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                      dir_fd=src)
        dfd = os.open(f"/proc/self/fd/{sp.fd}", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            _merge_into(sfd, dfd, no_overwrite_dir_non_dir, root, path)
        finally:
            os.close(sfd)
            os.close(dfd)
    finally:
        if sp is not None:
            sp.close()


def _remove_tree_at(dirfd: int, name: str) -> None:
    try:
        s = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if st.S_ISDIR(s.st_mode):
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                     dir_fd=dirfd)
        try:
            for n in os.listdir(fd):
                _remove_tree_at(fd, n)
        finally:
            os.close(fd)
        os.rmdir(name, dir_fd=dirfd)
    else:
        os.unlink(name, dir_fd=dirfd)
