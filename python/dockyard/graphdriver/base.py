"""The storage (graph) driver interface.

A driver stores layers by id under its `home` and assembles them into root
filesystems. Image layers are created read-only on their parent and filled by
extracting a layer tar into `diff_path(id)` with the driver's whiteout mode; a
container gets a `<id>-init` layer and a read-write `<id>` layer on top
(`initlayer.create_container_layers`).

Typical use by the image store::

    driver.create(cache_id, parent_cache_id)
    path, whiteouts = driver.layer_dir_for_diff(cache_id)
    info = _core.extract_layer_file(tar, path, whiteouts)    # or a LayerUnpacker
    ...
    rootfs = driver.get(container_id)     # mounts (refcounted)
    driver.put(container_id)              # unmounts when the count hits 0
"""

from __future__ import annotations

import array
import ctypes
import fcntl
import os
import queue
import re
import shutil
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import IO, Any, Iterable

from .. import _core
from ..idmap import IDMap
from ..errors import NotFound, StorageDriverError
from . import changes as _changes
from .mounts import mounts_under

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
RW_MARKS = ".rw"


def check_id(id: str) -> str:
    if not isinstance(id, str) or not _ID.match(id) or id in (".", ".."):
        raise StorageDriverError(f"invalid layer id {id!r}")
    return id


class GraphDriver(ABC):
    #: The driver's name as `docker info` shows it and `-s` selects it.
    name: str = ""
    #: How a layer tar must be extracted into `diff_path(id)`: "overlay" (into
    #: an empty upper dir, whiteouts as 0/0 char devices and opaque xattrs) or
    #: "naive" (into a full copy of the parent, deletions applied).
    whiteouts: str = "naive"
    #: Storage options this driver accepts (`--storage-opt key=value`).
    known_options: frozenset[str] = frozenset()
    #: Whether a container's layers must be synced at create: False where
    #: they are a few empty entries that `layer_intact` can check and the
    #: container service makes again after a power cut.
    sync_container_layers: bool = True

    def __init__(self, home: Path | str, options: dict[str, str] | None = None) -> None:
        self.home = Path(home)
        self.options = dict(options or {})
        for key in self.options:
            if key not in self.known_options:
                raise StorageDriverError(f"{self.name}: unknown storage option {key!r}")
        self.home.mkdir(parents=True, exist_ok=True, mode=0o710)
        spread_subdirs(self.home)
        (self.home / RW_MARKS).mkdir(exist_ok=True, mode=0o700)
        self._lock = threading.RLock()
        self._refs: dict[str, int] = {}
        #: --userns-remap: the host (uid, gid) of containers' root, owner of
        #: new layers' roots, and the maps diffs are written back through.
        self.remap_root: tuple[int, int] | None = None
        self.id_ranges: Any = None

    def set_idmap(self, idmap: IDMap) -> None:
        """Layers made from now on are owned for containers whose root is the
        map's; the home lets that root's group through (0710), as dockerd's."""
        self.remap_root = idmap.root
        self.id_ranges = idmap.ranges()
        for d in [self.home, *self.layer_parents()]:
            os.chown(d, -1, idmap.root[1])
            d.chmod(0o710)

    def layer_parents(self) -> list[Path]:
        """Directories between the home and the layers' roots (vfs: dir/)."""
        return []

    # --- layers ------------------------------------------------------------
    def create(self, id: str, parent: str | None = None, read_only: bool = True,
               mount_label: str = "") -> None:
        """Create layer `id` on `parent` (None: a base layer). Raises
        StorageDriverError if `id` exists, NotFound if `parent` doesn't."""
        check_id(id)
        if parent is not None:
            check_id(parent)
            if not self.exists(parent):
                raise NotFound(f"{self.name}: parent layer {parent} does not exist")
        if self.exists(id):
            raise StorageDriverError(f"{self.name}: layer {id} already exists")
        with self._lock:
            try:
                if not read_only:  # first: `_create` may ask is_container_layer
                    (self.home / RW_MARKS / id).touch()
                self._create(id, parent)
                if self.remap_root is not None and parent is None:
                    os.chown(self.diff_path(id), *self.remap_root)  # a child copies it
            except BaseException:
                self._remove_quietly(id)
                raise

    def create_read_write(self, id: str, parent: str | None = None, mount_label: str = "") -> None:
        """A container layer: `create(..., read_only=False)`."""
        self.create(id, parent, read_only=False, mount_label=mount_label)

    @abstractmethod
    def _create(self, id: str, parent: str | None) -> None: ...

    @abstractmethod
    def exists(self, id: str) -> bool: ...

    @abstractmethod
    def list_ids(self) -> list[str]:
        """Every layer id stored (image and container layers)."""

    def layer_intact(self, id: str, parent: bool | None) -> bool:
        """Whether layer `id`'s own entries are all there (drivers that sync
        container layers at create: always)."""
        return True

    def read_write_ids(self) -> list[str]:
        """The layers made by `create_read_write` (containers' and their -init)."""
        try:
            return [p.name for p in (self.home / RW_MARKS).iterdir()]
        except FileNotFoundError:
            return []

    def is_container_layer(self, id: str) -> bool:
        """True for layers made by `create_read_write` and `<id>-init` layers."""
        return id.endswith("-init") or (self.home / RW_MARKS / id).exists()

    def remove(self, id: str) -> None:
        """Delete layer `id` (unmounting it first if needed). Missing: no error."""
        check_id(id)
        with self._lock:
            self._unmount_all(id)
            self._refs.pop(id, None)
            self._remove(id)
            try:
                (self.home / RW_MARKS / id).unlink()
            except FileNotFoundError:
                pass

    @abstractmethod
    def _remove(self, id: str) -> None: ...

    def _remove_quietly(self, id: str) -> None:
        try:
            self.remove(id)
        except Exception:
            pass

    def reparent(self, id: str, parent: str | None) -> None:
        """Point the empty-or-filling layer `id` at another parent with the same
        content (a pull prepared it on a copy that lost a race to be
        registered). Drivers whose layers copy their parent never need it."""

    # --- filling a layer ----------------------------------------------------
    @abstractmethod
    def diff_path(self, id: str) -> str:
        """The directory a layer tar for `id` is extracted into."""

    def layer_dir_for_diff(self, id: str) -> tuple[str, str]:
        """(directory, whiteout mode) to pass to `_core.extract_layer_file` or
        `_core.LayerUnpacker` for layer `id`, right after `create`."""
        return self.diff_path(id), self.whiteouts

    def unpacker(self, id: str) -> "_core.LayerUnpacker":
        """A streaming extractor into layer `id` (feed it the HTTP body)."""
        path, mode = self.layer_dir_for_diff(id)
        return _core.LayerUnpacker(path, mode)

    def apply_diff(self, id: str, parent: str | None,
                   src: str | os.PathLike | IO[bytes] | Iterable[bytes]) -> "_core.LayerInfo":
        """Extract a layer tar (path, binary file object or iterable of chunks;
        compressed or not) into the freshly created layer `id`."""
        path, mode = self.layer_dir_for_diff(id)
        if isinstance(src, (str, os.PathLike)):
            return _core.extract_layer_file(os.fspath(src), path, mode)
        u = _core.LayerUnpacker(path, mode)
        try:
            if hasattr(src, "read"):
                while chunk := src.read(1 << 20):  # type: ignore[union-attr]
                    u.write(chunk)
            else:
                for chunk in src:  # type: ignore[union-attr]
                    u.write(chunk)
        except BaseException:
            u.abort()
            raise
        return u.finish()

    # --- mounting -------------------------------------------------------------
    def get(self, id: str, mount_label: str = "") -> str:
        """Mount layer `id` with its parents and return the root path.
        Refcounted: every `get` needs a `put`."""
        check_id(id)
        with self._lock:
            if not self.exists(id):
                raise NotFound(f"{self.name}: layer {id} does not exist")
            n = self._refs.get(id, 0)
            path = self._mount(id, first=(n == 0))
            self._refs[id] = n + 1
            return path

    def put(self, id: str) -> None:
        """Release one `get`; unmounts when the last user is gone."""
        check_id(id)
        with self._lock:
            n = self._refs.get(id, 0)
            if n <= 0:
                raise StorageDriverError(f"{self.name}: put of layer {id} that is not mounted")
            if n == 1:
                self._unmount(id)
                del self._refs[id]
            else:
                self._refs[id] = n - 1

    def refcount(self, id: str) -> int:
        return self._refs.get(id, 0)

    def _mount(self, id: str, first: bool) -> str:
        """Mount (when `first`) and return the rootfs path. Default: the layer
        directory itself is the full tree."""
        return self.diff_path(id)

    def _unmount(self, id: str) -> None:
        pass

    def unmount_stale(self, keep: set[str]) -> None:
        """At start, before anything mounts: unmount what a killed daemon left
        mounted under the driver (a build's or commit's layer, an image
        mounted for COPY --from), except the rootfs of containers that may
        still run (`keep`), which recovery adopts. Removing a layer directory
        with a mount inside would otherwise delete through the mount."""
        for m in mounts_under(self.home):
            rel = os.path.relpath(m, self.home).split(os.sep)
            if rel[0] in keep:
                continue
            try:
                _core.unmount(m, detach=True)
            except Exception:  # noqa: BLE001 - gone meanwhile
                pass

    def _unmount_all(self, id: str) -> None:
        if self._refs.get(id):
            self._unmount(id)

    def cleanup(self) -> None:
        """Unmount everything this driver mounted (daemon shutdown), and finish
        the removals still running in the background."""
        with self._lock:
            for id in list(self._refs):
                try:
                    self._unmount(id)
                except Exception:
                    pass
            self._refs.clear()
        drain_removals()

    # --- exporting ------------------------------------------------------------
    def diff(self, id: str, parent: str | None, dest: str | int,
             compression: str = "none") -> "_core.LayerInfo":
        """Write the changes of `id` over `parent` as a layer tar to a path or
        an open fd; returns its LayerInfo (diff_id, digest, sizes)."""
        check_id(id)
        root = self.diff_path(id)
        if parent is None:
            return _core.create_layer(root, dest, compression, id_map=self.id_ranges)
        return _core.create_layer(root, dest, compression, parent_root=self.diff_path(parent),
                                  id_map=self.id_ranges)

    def move_diff(self, src: str, dst: str) -> bool:
        """Make the changes of the unmounted layer `src` (over its parent)
        the contents of the new, empty layer `dst` (which may sit on another
        parent holding the same files), leaving `src` empty; False where this
        driver's layer directories are whole trees and the move can't be
        done (the caller then extracts the diff instead)."""
        return False

    def changes(self, id: str, parent: str | None) -> list[dict[str, Any]]:
        """`docker diff`: [{"Path": "/etc/x", "Kind": 0|1|2}] (modify, add, delete)."""
        check_id(id)
        return _changes.tree_changes(self.diff_path(id), self.diff_path(parent) if parent else None)

    def diff_size(self, id: str, parent: str | None) -> int:
        """Bytes of the files changed in `id` over `parent` (container SizeRw)."""
        return _changes.changed_size(self.diff_path(id), self.changes(id, parent))

    # --- information ----------------------------------------------------------
    def status(self) -> list[tuple[str, str]]:
        """Rows for `docker info`'s "Storage Driver" section."""
        return [("Backing Filesystem", backing_fs(self.home))]

    def metadata(self, id: str) -> dict[str, str]:
        """`GraphDriver.Data` of `docker inspect`."""
        return {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.home}>"


def backing_fs(path: Path | str) -> str:
    """Docker's name of the filesystem under `path` (or its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return _core.fs_type(str(p))


_libc = ctypes.CDLL(None, use_errno=True)

_FS_IOC_GETFLAGS = 0x80086601
_FS_IOC_SETFLAGS = 0x40086602
_FS_TOPDIR_FL = 0x00020000


def inode_flags(fd: int) -> int:
    """The inode flags of the file open at `fd` (`lsattr`'s); OSError where
    the filesystem has none."""
    flags = array.array("l", [0])
    fcntl.ioctl(fd, _FS_IOC_GETFLAGS, flags, True)
    return flags[0]


def spread_subdirs(path: Path | str) -> None:
    """Mark `path` a top of unrelated directory trees (chattr +T): ext4's
    Orlov allocator then places each new subdirectory (a layer, a volume) in
    a block group of its own choosing instead of next to its siblings. On a
    long-used ext4 that keeps a new layer's inodes away from the ones a
    removed layer just freed, which ext4 (without a journal) skips one by
    one for a minute after their deletion, on every file it creates. A
    filesystem without the flag is left as it is."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        flags = inode_flags(fd)
        if not flags & _FS_TOPDIR_FL:
            fcntl.ioctl(fd, _FS_IOC_SETFLAGS, array.array("l", [flags | _FS_TOPDIR_FL]))
    except OSError:
        pass
    finally:
        os.close(fd)


def sync_filesystems(*paths: Path | str) -> None:
    """syncfs(2) once for each distinct filesystem the paths live on: every
    file written there so far (data, inodes, directory entries) is on disk
    when this returns. One call per operation costs less than an fsync per
    file and also covers the renames and mkdirs an fsync of files misses."""
    seen: set[int] = set()
    for p in paths:
        fd = os.open(p, os.O_RDONLY | os.O_CLOEXEC)
        try:
            dev = os.fstat(fd).st_dev
            if dev in seen:
                continue
            seen.add(dev)
            if _libc.syncfs(fd) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"syncfs {p}: {os.strerror(err)}")
        finally:
            os.close(fd)


def fsync_dir(path: Path | str) -> None:
    """Make the entries a directory gained or lost (creates, renames,
    unlinks) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rmtree(path: Path | str) -> None:
    """Remove a tree even with read-only dirs; missing is fine.

    The tree is renamed out of the way at once (a half-removed layer never
    looks like a layer) and deleted by a background thread, so `docker rm`
    doesn't wait for the unlinks; `drain_removals()` waits for them, and each
    driver deletes leftover `.removing-*` trees when it starts."""
    p = Path(path)
    if not os.path.lexists(p):
        return
    doomed = p.with_name(f".removing-{p.name}-{os.getpid()}-{threading.get_ident()}")
    try:
        os.rename(p, doomed)
    except OSError:
        doomed = p
    if doomed.is_symlink() or not doomed.is_dir():
        doomed.unlink()
        return
    if doomed == p:
        shutil.rmtree(doomed)
        return
    _removals().put(doomed)


_queue: "queue.Queue[Path | Callable[[], None]] | None" = None
_queue_lock = threading.Lock()


def later(fn: "Callable[[], None]") -> None:
    """Run `fn` on the background remover, in order with the trees queued
    around it (`drain_removals()` waits for it too)."""
    _removals().put(fn)


def _removals() -> "queue.Queue[Path | Callable[[], None]]":
    global _queue
    with _queue_lock:
        if _queue is None:
            _queue = queue.Queue()
            threading.Thread(target=_remover, args=(_queue,), name="dockyard-rmtree",
                             daemon=True).start()
        return _queue


def _remover(q: "queue.Queue[Path | Callable[[], None]]") -> None:
    while True:
        p = q.get()
        try:
            if callable(p):
                p()
            else:
                shutil.rmtree(p, ignore_errors=True)
        except Exception:  # noqa: BLE001 - background work: nobody to tell
            pass
        finally:
            q.task_done()


def drain_removals() -> None:
    """Wait until every tree handed to rmtree() is gone."""
    with _queue_lock:
        q = _queue
    if q is not None:
        q.join()
