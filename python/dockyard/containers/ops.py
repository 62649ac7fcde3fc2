"""The container operations that work on a container's cgroup and filesystem
rather than its process lifecycle: pause/unpause (freezer), top, diff,
export, commit, the archive (`docker cp`) endpoints and stats.

Everything here blocks (call it from worker threads). Paths inside a
container's rootfs are resolved with directory file descriptors, one
component at a time, symlinks followed within the rootfs (as if it were `/`),
so no symlink in the container can lead a read or a write out of it.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import stat as st
import subprocess
import tarfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterator

from .. import _core
from ..errors import Conflict, DockyardError, InvalidParameter, NotFound
from ..imageconfig import DOCKER_VERSION, container_config, encode, now_rfc3339
from .model import Container

if TYPE_CHECKING:
    from .service import ContainerService

EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
ZERO_TIME = "0001-01-01T00:00:00Z"


# --- cgroups ----------------------------------------------------------------------

def cgroup_dirs(svc: "ContainerService", cid: str) -> list[str]:
    try:
        return [d for d in _core.cgroup_dirs(svc.cgroup_path(svc.get(cid)))
                if os.path.isdir(d)]
    except Exception:  # noqa: BLE001 - no cgroup: nothing to read
        return []


def _cg_file(dirs: list[str], name: str) -> str | None:
    for d in dirs:
        p = os.path.join(d, name)
        if os.path.exists(p):
            return p
    return None


def _read(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def cgroup_pids(svc: "ContainerService", cid: str) -> list[int]:
    pids: set[int] = set()
    for d in cgroup_dirs(svc, cid):
        txt = _read(os.path.join(d, "cgroup.procs"))
        if txt:
            pids.update(int(x) for x in txt.split())
            break
    return sorted(pids)


# --- pause / unpause --------------------------------------------------------------

def _freeze(svc: "ContainerService", cid: str, frozen: bool) -> None:
    dirs = cgroup_dirs(svc, cid)
    v1 = _cg_file(dirs, "freezer.state")
    if v1 is not None:
        with open(v1, "w") as f:
            f.write("FROZEN" if frozen else "THAWED")
        want = "FROZEN" if frozen else "THAWED"
        deadline = time.monotonic() + 10
        while True:
            cur = (_read(v1) or "").strip()
            if cur == want:
                return
            if time.monotonic() > deadline:
                raise DockyardError(f"freezer of container {cid} stays {cur}")
            if frozen:  # FREEZING: writing again retries the tasks that did not stop
                with open(v1, "w") as f:
                    f.write("FROZEN")
            time.sleep(0.01)
    v2 = _cg_file(dirs, "cgroup.freeze")
    if v2 is None:
        raise DockyardError(f"no freezer cgroup for container {cid}")
    with open(v2, "w") as f:
        f.write("1" if frozen else "0")
    events = os.path.join(os.path.dirname(v2), "cgroup.events")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in (_read(events) or "").splitlines():
            k, _, v = line.partition(" ")
            if k == "frozen" and v.strip() == ("1" if frozen else "0"):
                return
        time.sleep(0.01)
    raise DockyardError(f"freezer of container {cid} did not settle")


def pause(svc: "ContainerService", ref: str) -> None:
    c = svc.get(ref)
    with svc.lock(c.id):
        c = svc.get(c.id)
        if not c.state.get("Running") or c.state.get("Prepared"):
            raise Conflict(f"Container {c.id} is not running")
        if c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is already paused")
        if c.state.get("Restarting"):
            raise Conflict(f"Container {c.id} is restarting, wait until the container "
                           "is running")
        _freeze(svc, c.id, True)
        c.state.update(Paused=True, Status="paused")
        svc._save(c)  # noqa: SLF001 - the service's record writer


def unpause(svc: "ContainerService", ref: str) -> None:
    c = svc.get(ref)
    with svc.lock(c.id):
        c = svc.get(c.id)
        if not c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is not paused")
        _freeze(svc, c.id, False)
        c.state.update(Paused=False, Status="running" if c.state.get("Running") else "exited")
        svc._save(c)  # noqa: SLF001


def thaw_if_paused(svc: "ContainerService", ref: str) -> None:
    """Before stopping or killing: a frozen process cannot act on a signal."""
    try:
        c = svc.get(ref)
    except NotFound:
        return
    if c.state.get("Paused"):
        try:
            unpause(svc, c.id)
        except Conflict:
            pass


@contextmanager
def paused_for(svc: "ContainerService", c: Container, want: bool) -> Iterator[None]:
    """Freeze a running container for the duration (commit with pause=1)."""
    do = want and bool(c.state.get("Running")) and not c.state.get("Paused")
    if do:
        try:
            _freeze(svc, c.id, True)
        except DockyardError:
            do = False
    try:
        yield
    finally:
        if do:
            _freeze(svc, c.id, False)


# --- top ----------------------------------------------------------------------------

def top(svc: "ContainerService", ref: str, ps_args: str | None) -> dict[str, Any]:
    c = svc.get(ref)
    if not c.state.get("Running") or c.state.get("Prepared"):
        raise Conflict(f"Container {c.id} is not running")
    if c.state.get("Restarting"):
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    ps_args = ps_args or "-ef"
    args = [a for a in ps_args.split(" ") if a != ""]
    pids = cgroup_pids(svc, c.id)
    r = None
    if pids:
        r = subprocess.run(["ps", *args, "-q", ",".join(str(p) for p in pids)],
                           capture_output=True)
    if r is None or r.returncode != 0:
        # some options (f) cannot be combined with -q: filter the whole list
        r = subprocess.run(["ps", *args], capture_output=True)
        if r.returncode != 0:
            raise DockyardError(f"Error running ps: {r.stderr.decode(errors='replace')}"
                                f"{r.stdout.decode(errors='replace')}: exit status "
                                f"{r.returncode}")
    return parse_ps(r.stdout.decode(errors="replace"), set(pids))


def parse_ps(out: str, pids: set[int]) -> dict[str, Any]:
    lines = out.split("\n")
    titles = lines[0].split()
    try:
        pid_index = titles.index("PID")
    except ValueError:
        raise DockyardError("Couldn't find PID field in ps output") from None
    procs: list[list[str]] = []
    n = len(titles)
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        try:
            p = int(fields[pid_index])
        except ValueError:
            raise DockyardError(f"Unexpected pid '{fields[pid_index]}'") from None
        if p in pids:
            procs.append(fields[:n - 1] + [" ".join(fields[n - 1:])])
    return {"Titles": titles, "Processes": procs}


# --- diff / export ---------------------------------------------------------------------

def changes(svc: "ContainerService", ref: str) -> list[dict[str, Any]]:
    c = svc.get(ref)
    out = svc.driver.changes(c.id, f"{c.id}-init")
    return sorted(({"Path": x["Path"], "Kind": x["Kind"]} for x in out),
                  key=lambda x: x["Path"])


@contextmanager
def mounted(svc: "ContainerService", cid: str) -> Iterator[str]:
    root = svc.driver.get(cid)
    try:
        yield root
    finally:
        try:
            svc.driver.put(cid)
        except Exception:  # noqa: BLE001
            pass


def export(svc: "ContainerService", ref: str, fd: int) -> None:
    """The whole filesystem of the container as a tar, written to `fd`."""
    c = svc.get(ref)
    with mounted(svc, c.id) as root:
        _core.create_layer(root, fd, "none")


# --- commit -------------------------------------------------------------------------------

def _merge(user: dict[str, Any], image: dict[str, Any]) -> None:
    """moby's daemon `merge`: fill what the new config leaves empty from the
    container's config."""
    if not user.get("User"):
        user["User"] = image.get("User") or ""
    if image.get("ExposedPorts"):
        ports = dict(image["ExposedPorts"])
        ports.update(user.get("ExposedPorts") or {})
        user["ExposedPorts"] = ports
    if not user.get("Env"):
        user["Env"] = image.get("Env")
    else:
        keys = {e.split("=", 1)[0] for e in user["Env"]}
        user["Env"] = list(user["Env"]) + [e for e in image.get("Env") or []
                                           if e.split("=", 1)[0] not in keys]
    if image.get("Labels"):
        labels = dict(image["Labels"])
        labels.update(user.get("Labels") or {})
        user["Labels"] = labels
    if not user.get("Entrypoint"):
        if not user.get("Cmd"):
            user["Cmd"] = image.get("Cmd")
        if user.get("Entrypoint") is None:
            user["Entrypoint"] = image.get("Entrypoint")
    if not user.get("Healthcheck") and image.get("Healthcheck"):
        user["Healthcheck"] = image["Healthcheck"]
    if not user.get("WorkingDir"):
        user["WorkingDir"] = image.get("WorkingDir") or ""
    if image.get("Volumes"):
        vols = dict(image["Volumes"])
        vols.update(user.get("Volumes") or {})
        user["Volumes"] = vols
    if not user.get("StopSignal"):
        user["StopSignal"] = image.get("StopSignal") or ""


def commit(svc: "ContainerService", ref: str, repo: str = "", tag: str = "",
           comment: str = "", author: str = "", pause_it: bool = True,
           changes_: list[str] | None = None, config: dict[str, Any] | None = None) -> str:
    from .. import reference
    from ..changes import apply_changes

    eng = svc.engine
    c = svc.get(ref)
    ref_obj = None
    if repo:
        ref_obj = reference.parse_normalized(f"{repo}:{tag}" if tag else repo)
        if ref_obj.digest:
            raise InvalidParameter("refusing to create a tag with a digest reference")
        if ref_obj.name == "docker.io/library/scratch":
            raise InvalidParameter("'scratch' is a reserved name")
        ref_obj = ref_obj.with_default_tag()
    elif tag:
        raise InvalidParameter("tag requires repo")
    if c.state.get("Dead") or c.state.get("RemovalInProgress"):
        raise Conflict(f"You cannot commit container {c.id} which is being removed")
    parent = eng.images.get(c.image_id)
    new_cfg = json.loads(json.dumps(config if config else c.config))
    if changes_:
        apply_changes(new_cfg, changes_)
    _merge(new_cfg, c.config)
    tmpdir = eng.new_tempdir()
    try:
        tarpath = str(tmpdir / "layer.tar")
        with paused_for(svc, c, pause_it):
            info = svc.driver.diff(c.id, f"{c.id}-init", tarpath, "none")
        empty = info.diff_id == EMPTY_LAYER_DIFF_ID
        if not empty:
            def extract(target: str, whiteouts: str, split: str):
                return _core.extract_layer_file(tarpath, target, whiteouts, split)

            eng.layers.register(parent.top_layer, extract)
    finally:
        import shutil

        shutil.rmtree(tmpdir, ignore_errors=True)
    pcfg = parent.config
    created = now_rfc3339()
    hist: dict[str, Any] = {"created": created}
    if author:
        hist["author"] = author
    hist["created_by"] = " ".join(c.config.get("Cmd") or [])
    if comment:
        hist["comment"] = comment
    if empty:
        hist["empty_layer"] = True
    rootfs = dict(pcfg.get("rootfs") or {"type": "layers"})
    diff_ids = list(rootfs.get("diff_ids") or [])
    if not empty:
        diff_ids.append(info.diff_id)
    rootfs = {"type": rootfs.get("type") or "layers", "diff_ids": diff_ids}
    cfg_out = container_config(new_cfg)
    # The image from the container's config is recorded as created: keep its order.
    raw: dict[str, Any] = {
        "architecture": pcfg.get("architecture") or "amd64",
        "config": cfg_out,
        "container": c.id,
        "container_config": container_config(c.config),
        "created": created,
        "docker_version": DOCKER_VERSION,
        "history": list(pcfg.get("history") or []) + [hist],
        "os": pcfg.get("os") or "linux",
        "rootfs": rootfs,
    }
    if author:
        raw["author"] = author
    if comment:
        raw["comment"] = comment
    if pcfg.get("variant"):
        raw["variant"] = pcfg["variant"]
    raw = {k: raw[k] for k in sorted(raw)}
    img = eng.images.create(encode(raw), parent=parent.id)
    if ref_obj is not None:
        eng.images.tag(img.id, str(ref_obj))
    return img.id


# --- scoped path resolution -------------------------------------------------------------------

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
    p = os.path.normpath("/" + path)
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


def _not_found(c: Container, path: str) -> NotFound:
    return NotFound(f"Could not find the file {path} in container {c.name.lstrip('/')}")


def stat_path(svc: "ContainerService", ref: str, path: str) -> dict[str, Any]:
    c = svc.get(ref)
    abspath = _clean(path)
    with mounted(svc, c.id) as root:
        try:
            sp = resolve(root, abspath)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(c, path) from None
        try:
            return _stat_of(sp, root, abspath)
        except FileNotFoundError:
            raise _not_found(c, path) from None
        finally:
            sp.close()


def stat_header(stat: dict[str, Any]) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


def archive_to(svc: "ContainerService", ref: str, path: str, out: str) -> dict[str, Any]:
    """Stat container path `path` and write its tar to the host file `out`;
    returns the stat. The tar names the entry by the path's base name, as
    docker cp expects (a directory: `name/`, `name/...`)."""
    c = svc.get(ref)
    abspath = _clean(path)
    with mounted(svc, c.id) as root:
        try:
            sp = resolve(root, abspath)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(c, path) from None
        try:
            try:
                stat = _stat_of(sp, root, abspath)
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


def extract_to(svc: "ContainerService", ref: str, path: str, src: str,
               no_overwrite_dir_non_dir: bool = False) -> None:
    """`PUT /containers/{id}/archive`: extract the tar file `src` into the
    container directory `path`. The tar goes first into a fresh directory
    next to its destination (the extractor confines every write beneath it
    with openat2); its entries are then renamed into place through directory
    fds, merging into existing directories."""
    c = svc.get(ref)
    abspath = _clean(path)
    with mounted(svc, c.id) as root:
        try:
            sp = resolve(root, abspath, follow_last=True)
        except (FileNotFoundError, NotADirectoryError):
            raise _not_found(c, path) from None
        try:
            if sp.fd is None:
                raise _not_found(c, path)
            if not st.S_ISDIR(os.fstat(sp.fd).st_mode):
                raise InvalidParameter("extraction point is not a directory")
            if c.hostconfig.get("ReadonlyRootfs"):
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
                    _merge_into(tmpfd, target, no_overwrite_dir_non_dir)
                finally:
                    _remove_tree_at(target, tmpname)
                    os.close(tmpfd)
            finally:
                os.close(target)
        finally:
            sp.close()


def _merge_into(src: int, dst: int, no_overwrite_dir_non_dir: bool) -> None:
    for name in os.listdir(src):
        s = os.stat(name, dir_fd=src, follow_symlinks=False)
        try:
            d = os.stat(name, dir_fd=dst, follow_symlinks=False)
        except FileNotFoundError:
            d = None
        if d is not None and st.S_ISDIR(d.st_mode):
            if st.S_ISDIR(s.st_mode):
                sfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=src)
                dfd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                              dir_fd=dst)
                try:
                    _merge_into(sfd, dfd, no_overwrite_dir_non_dir)
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


# --- stats ---------------------------------------------------------------------------------

def _kv(txt: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (txt or "").splitlines():
        k, _, v = line.partition(" ")
        try:
            out[k] = int(v.strip())
        except ValueError:
            pass
    return out


def _int(txt: str | None) -> int | None:
    if txt is None:
        return None
    try:
        return int(txt.strip())
    except ValueError:
        return None


def system_cpu_usage() -> int:
    """Host CPU time in ns from /proc/stat's first line (dockerd's formula)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu "):
                parts = line.split()
                ticks = sum(int(x) for x in parts[1:8])
                return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return 0


def machine_memory() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def empty_stats(c: Container) -> dict[str, Any]:
    return {
        "read": ZERO_TIME, "preread": ZERO_TIME, "pids_stats": {}, "blkio_stats": {
            "io_service_bytes_recursive": None, "io_serviced_recursive": None,
            "io_queue_recursive": None, "io_service_time_recursive": None,
            "io_wait_time_recursive": None, "io_merged_recursive": None,
            "io_time_recursive": None, "sectors_recursive": None},
        "num_procs": 0, "storage_stats": {},
        "cpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                    "usage_in_usermode": 0}, "throttling_data": {
            "periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "precpu_stats": {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
                                       "usage_in_usermode": 0}, "throttling_data": {
            "periods": 0, "throttled_periods": 0, "throttled_time": 0}},
        "memory_stats": {}, "name": c.name, "id": c.id,
    }


def sample(svc: "ContainerService", c: Container) -> dict[str, Any]:
    """One stats sample of the running container (without precpu/preread)."""
    dirs = cgroup_dirs(svc, c.id)
    out = empty_stats(c)
    out["read"] = now_rfc3339()
    ncpu = len(os.sched_getaffinity(0))
    hz = os.sysconf("SC_CLK_TCK")
    cpu: dict[str, Any] = {}
    if _cg_file(dirs, "cpuacct.usage") is not None:
        total = _int(_read(_cg_file(dirs, "cpuacct.usage"))) or 0
        percpu = [int(x) for x in (_read(_cg_file(dirs, "cpuacct.usage_percpu")) or "").split()]
        s = _kv(_read(_cg_file(dirs, "cpuacct.stat")))
        cpu["cpu_usage"] = {"total_usage": total, "percpu_usage": percpu or None,
                            "usage_in_kernelmode": s.get("system", 0) * 1_000_000_000 // hz,
                            "usage_in_usermode": s.get("user", 0) * 1_000_000_000 // hz}
        if not percpu:
            del cpu["cpu_usage"]["percpu_usage"]
        t = _kv(_read(_cg_file([d for d in dirs if "cpu.cfs_period_us" in os.listdir(d)]
                               if dirs else [], "cpu.stat")))
        cpu["throttling_data"] = {"periods": t.get("nr_periods", 0),
                                  "throttled_periods": t.get("nr_throttled", 0),
                                  "throttled_time": t.get("throttled_time", 0)}
    else:
        s = _kv(_read(_cg_file(dirs, "cpu.stat")))
        cpu["cpu_usage"] = {"total_usage": s.get("usage_usec", 0) * 1000,
                            "usage_in_kernelmode": s.get("system_usec", 0) * 1000,
                            "usage_in_usermode": s.get("user_usec", 0) * 1000}
        cpu["throttling_data"] = {"periods": s.get("nr_periods", 0),
                                  "throttled_periods": s.get("nr_throttled", 0),
                                  "throttled_time": s.get("throttled_usec", 0) * 1000}
    cpu["system_cpu_usage"] = system_cpu_usage()
    cpu["online_cpus"] = ncpu
    out["cpu_stats"] = cpu
    mem: dict[str, Any] = {}
    machine = machine_memory()
    if _cg_file(dirs, "memory.usage_in_bytes") is not None:
        mem["usage"] = _int(_read(_cg_file(dirs, "memory.usage_in_bytes"))) or 0
        mem["max_usage"] = _int(_read(_cg_file(dirs, "memory.max_usage_in_bytes"))) or 0
        mem["stats"] = _kv(_read(_cg_file(dirs, "memory.stat")))
        mem["failcnt"] = _int(_read(_cg_file(dirs, "memory.failcnt"))) or 0
        limit = _int(_read(_cg_file(dirs, "memory.limit_in_bytes"))) or 0
    elif _cg_file(dirs, "memory.current") is not None:
        mem["usage"] = _int(_read(_cg_file(dirs, "memory.current"))) or 0
        mem["stats"] = _kv(_read(_cg_file(dirs, "memory.stat")))
        raw = (_read(_cg_file(dirs, "memory.max")) or "max").strip()
        limit = machine if raw == "max" else int(raw)
    else:
        limit = 0
    if mem:
        if machine and (limit == 0 or limit > machine):
            limit = machine
        mem["limit"] = limit
    out["memory_stats"] = mem
    pids: dict[str, Any] = {}
    cur = _int(_read(_cg_file(dirs, "pids.current")))
    if cur is not None:
        pids["current"] = cur
        lim = _int(_read(_cg_file(dirs, "pids.max")))
        if lim:
            pids["limit"] = lim
    out["pids_stats"] = pids
    out["networks"] = {}
    return out


def with_previous(cur: dict[str, Any], prev: dict[str, Any] | None) -> dict[str, Any]:
    if prev is not None:
        cur["preread"] = prev["read"]
        cur["precpu_stats"] = prev["cpu_stats"]
    return cur

