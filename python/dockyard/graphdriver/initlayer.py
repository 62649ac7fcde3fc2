"""The container's init layer (moby `daemon/initlayer`): between the image and
the container's read-write layer sits `<id>-init`, holding the files every
container needs whatever the image has — mount points for /proc, /sys,
/dev/pts, /dev/shm, empty /etc/hosts, /etc/resolv.conf, /etc/hostname (bind
mounted over at start), /dev/console, /.dockerenv and /etc/mtab → /proc/mounts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .base import GraphDriver, fsync_dir, sync_filesystems
from .overlay import OverlayDriver

INIT_PATHS: dict[str, str] = {
    "/dev/pts": "dir",
    "/dev/shm": "dir",
    "/proc": "dir",
    "/sys": "dir",
    "/.dockerenv": "file",
    "/etc/resolv.conf": "file",
    "/etc/hosts": "file",
    "/etc/hostname": "file",
    "/dev/console": "file",
    "/etc/mtab": "/proc/mounts",
}


def _mkdirs(root: int, rel: str, uid: int, gid: int) -> int:
    """Open (creating as needed, never following symlinks) directory `rel`
    beneath the directory fd `root`; returns a new fd."""
    fd = os.dup(root)
    for part in [p for p in rel.split("/") if p]:
        try:
            os.mkdir(part, 0o755, dir_fd=fd)
            os.chown(part, uid, gid, dir_fd=fd, follow_symlinks=False)
        except FileExistsError:
            pass
        try:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        finally:
            os.close(fd)
        fd = nfd
    return fd


def setup(rootfs: str, uid: int = 0, gid: int = 0) -> None:
    """Create the init files in the mounted init layer `rootfs`.

    As moby: every component of each path is unlinked first, so a symlink or
    file planted by the image at /etc or /dev can't redirect the writes; all
    work goes through directory fds opened with O_NOFOLLOW."""
    root = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for path, kind in INIT_PATHS.items():
            parts = [p for p in path.split("/") if p]
            # unlink each component that is not a directory
            for i in range(1, len(parts) + 1):
                parent = "/".join(parts[: i - 1])
                pfd = _open_dir(root, parent)
                if pfd is None:
                    break
                try:
                    try:
                        os.unlink(parts[i - 1], dir_fd=pfd)
                    except (IsADirectoryError, FileNotFoundError, NotADirectoryError):
                        pass
                    except PermissionError:  # EPERM for directories on Linux
                        pass
                finally:
                    os.close(pfd)
            dfd = _mkdirs(root, "/".join(parts[:-1]), uid, gid)
            name = parts[-1]
            try:
                try:
                    os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    continue
                except FileNotFoundError:
                    pass
                if kind == "dir":
                    os.mkdir(name, 0o755, dir_fd=dfd)
                    os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
                elif kind == "file":
                    fd = os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW, 0o755,
                                 dir_fd=dfd)
                    try:
                        os.fchown(fd, uid, gid)
                    finally:
                        os.close(fd)
                else:
                    os.symlink(kind, name, dir_fd=dfd)
                    if uid or gid:
                        os.chown(name, uid, gid, dir_fd=dfd, follow_symlinks=False)
            finally:
                os.close(dfd)
    finally:
        os.close(root)


def populate(empty_dir: str, uid: int = 0, gid: int = 0) -> None:
    """Create the init files in `empty_dir`, a new overlay upper dir: nothing
    of the image is there to unlink or to plant symlinks, so this is one
    syscall per entry."""
    root = os.open(empty_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        made: set[str] = set()
        for path, kind in INIT_PATHS.items():
            rel = path.lstrip("/")
            parent = os.path.dirname(rel)
            if parent and parent not in made:
                os.mkdir(parent, 0o755, dir_fd=root)
                made.add(parent)
                if uid or gid:
                    os.chown(parent, uid, gid, dir_fd=root, follow_symlinks=False)
            if kind == "dir":
                os.mkdir(rel, 0o755, dir_fd=root)
                made.add(rel)
            elif kind == "file":
                os.close(os.open(rel, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o755, dir_fd=root))
            else:
                os.symlink(kind, rel, dir_fd=root)
            if uid or gid:
                os.chown(rel, uid, gid, dir_fd=root, follow_symlinks=False)
    finally:
        os.close(root)


def _open_dir(root: int, rel: str) -> int | None:
    fd = os.dup(root)
    for part in [p for p in rel.split("/") if p]:
        try:
            nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = nfd
    return fd


def init_id(container_layer_id: str) -> str:
    return f"{container_layer_id}-init"


def init_template(home: Path, uid: int = 0, gid: int = 0) -> str:
    """The overlay driver's shared init contents for (uid, gid), made once
    (in a temporary directory renamed into place, so a racing maker's copy
    is simply dropped). Never written: init layers are lower layers."""
    path = home / ".init" / f"{uid}-{gid}"
    if not path.is_dir():
        path.parent.mkdir(mode=0o700, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
        try:
            tmp.chmod(0o755)
            populate(str(tmp), uid, gid)
            # Every container's init layer points here, and creates don't
            # sync: on disk whole before it has its name.
            sync_filesystems(tmp)
            os.rename(tmp, path)
            fsync_dir(path.parent)
        except OSError:
            if not path.is_dir():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return str(path)


def create_container_layers(driver: GraphDriver, id: str, image_top: str | None,
                            mount_label: str = "", uid: int = 0, gid: int = 0,
                            reserved: bool = False) -> str:
    """Create `<id>-init` on the image's top layer, fill it, and the
    read-write layer `<id>` on top. Returns the init layer id. On failure
    nothing is left behind. `reserved`: made ahead by
    `reserve_container_layers`, only put on the image here."""
    iid = init_id(id)
    if reserved:
        assert isinstance(driver, OverlayDriver)
        try:
            driver.place(iid, id, image_top)
        except BaseException:
            remove_container_layers(driver, id)
            raise
        return iid
    if driver.remap_root is not None and not (uid or gid):
        uid, gid = driver.remap_root  # --userns-remap: the files belong to container root
    # On overlay the layer is an upper dir over the image: an entry there
    # hides whatever non-directory the image has at that path, just as
    # unlinking it in a mount would. So its contents are the same for every
    # image: made once, shared, and no mount per container.
    shared = isinstance(driver, OverlayDriver)
    if shared:
        driver.create_shared(iid, image_top, init_template(driver.home, uid, gid))
    else:
        driver.create_read_write(iid, image_top, mount_label)
    try:
        if not shared:
            root = driver.get(iid, mount_label)
            try:
                setup(root, uid, gid)
            finally:
                driver.put(iid)
        driver.create_read_write(id, iid, mount_label)
    except BaseException:
        try:
            driver.remove(iid)
        except Exception:
            pass
        raise
    return iid


def reserve_container_layers(driver: GraphDriver, id: str) -> bool:
    """Make container `id`'s layers ahead of its create, all but what depends
    on its image (their `lower` files: `create_container_layers(...,
    reserved=True)` writes them). Overlay, without a user namespace remap,
    only: False elsewhere. On failure nothing is left behind."""
    if not isinstance(driver, OverlayDriver) or driver.remap_root is not None:
        return False
    iid = init_id(id)
    driver.create_shared(iid, None, init_template(driver.home))
    try:
        driver.create_read_write(id, iid)
    except BaseException:
        driver.remove(iid)
        raise
    return True


def remove_container_layers(driver: GraphDriver, id: str) -> None:
    """Remove the read-write layer `<id>` and its init layer."""
    driver.remove(id)
    driver.remove(init_id(id))
