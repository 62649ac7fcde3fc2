"""overlay (overlay2) driver, moby's layout:

    <home>/<id>/diff      the layer's files (overlay upper dir); for init layers a
                          symlink to the shared <home>/.init/<uid>-<gid>
    <home>/<id>/link      its 26-character short name
    <home>/<id>/lower     "l/AAA:l/BBB" short names of the parents, uppermost first
    <home>/<id>/work      overlay work dir
    <home>/<id>/merged    mount point
    <home>/<id>/committed present once a child layer was created on it
    <home>/l/<short>  ->  ../<id>/diff

Mounts run with their cwd in <home>, so each lower costs 29 bytes of the
one-page mount data: up to 128 lowers fit.
"""

from __future__ import annotations

import os
import secrets
import shutil
import string
import threading
from pathlib import Path
from typing import Any

from .. import _core
from ..errors import MountError, StorageDriverError
from ..rootless import rootless_uid
from . import changes as _changes
from . import mounts
from .base import GraphDriver, backing_fs, check_id, drain_removals, later, rmtree

LINK_DIR = "l"
ID_LEN = 26
MAX_DEPTH = 128
_ALPHABET = string.ascii_uppercase + string.digits

UNSUPPORTED_BACKING = {"aufs", "ecryptfs", "nfs", "overlayfs", "zfs"}


def _short_id() -> str:
    # one read of the kernel's randomness (secrets.choice reads it per letter);
    # the modulo's slight bias is nothing to a name that is checked unused
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in secrets.token_bytes(ID_LEN))


def kernel_supports_overlay() -> bool:
    def listed() -> bool:
        try:
            with open("/proc/filesystems") as f:
                return any(line.split()[-1:] == ["overlay"] for line in f)
        except OSError:
            return False

    if listed():
        return True
    # As moby does: try loading the module once.
    if shutil.which("modprobe"):
        os.system("modprobe overlay >/dev/null 2>&1")
    return listed()


def supported(home: Path) -> tuple[bool, str]:
    if not kernel_supports_overlay():
        return False, "overlay: the kernel does not support overlayfs (no 'overlay' in /proc/filesystems)"
    fs = backing_fs(home)
    if fs in UNSUPPORTED_BACKING:
        return False, f"overlay: backing filesystem {fs} is not supported (data root {home})"
    if rootless_uid() is not None:
        why = _userns_probe(home)
        if why:
            return False, f"overlay: mounting with userxattr in the user namespace failed: {why}"
    return True, ""


def _userns_probe(home: Path) -> str:
    """Mount an overlay with `userxattr` beside `home` (the rootless daemon: a
    kernel before 5.11, or a backing filesystem without user xattrs, fails);
    the error, or "" when it mounted."""
    parent = Path(home).parent
    parent.mkdir(parents=True, exist_ok=True)
    probe = parent / f".overlay-probe-{os.getpid()}-{threading.get_ident()}"
    try:
        for sub in ("l", "u", "w", "m"):
            (probe / sub).mkdir(parents=True)
        os.setxattr(probe / "l", "user.overlay.probe", b"y")  # user xattrs on the backing fs
        _core.mount_overlay(["l"], "u", "w", str(probe / "m"), str(probe), _mount_options())
        _core.unmount(str(probe / "m"))
        return ""
    except (OSError, MountError) as e:
        return str(e)
    finally:
        shutil.rmtree(probe, ignore_errors=True)


def _mount_options() -> str:
    opts = []
    if os.path.exists("/sys/module/overlay/parameters/index"):
        opts.append("index=off")
    if rootless_uid() is not None:
        # trusted.* xattrs are refused in a user namespace: overlayfs keeps its
        # whiteouts, opaque dirs and redirects in user.overlay.* (kernel 5.11+).
        opts.append("userxattr")
    return ",".join(opts)


def _xattr(name: str) -> str:
    """overlayfs' own xattr `name` (opaque, redirect) as this daemon's mounts use it."""
    return ("user.overlay." if rootless_uid() is not None else "trusted.overlay.") + name


class OverlayDriver(GraphDriver):
    name = "overlay"
    whiteouts = "overlay"
    sync_container_layers = False
    known_options = frozenset({"overlay.mountopt", "overlay2.mountopt",
                               "overlay.override_kernel_check", "overlay2.override_kernel_check"})

    def __init__(self, home: Path | str, options: dict[str, str] | None = None) -> None:
        super().__init__(home, options)
        ok, why = supported(self.home)
        if not ok:
            raise StorageDriverError(why)
        if not _core.supports_d_type(str(self.home)):
            raise StorageDriverError(
                f"overlay: the backing filesystem of {self.home} does not support d_type "
                "(xfs needs ftype=1)")
        (self.home / LINK_DIR).mkdir(exist_ok=True, mode=0o700)
        for stale in self.home.glob(".removing-*"):
            shutil.rmtree(stale, ignore_errors=True)
        extra = self.options.get("overlay2.mountopt") or self.options.get("overlay.mountopt") or ""
        self._opts = ",".join(o for o in (_mount_options(), extra) if o)
        self._native_diff: bool | None = None
        self._fs = backing_fs(self.home)
        # Detached mounts whose last reference the background remover drops.
        self._detached: dict[str, int] = {}
        self._detached_lock = threading.Lock()

    # --- paths ---------------------------------------------------------------
    def _dir(self, id: str) -> Path:
        return self.home / check_id(id)

    def diff_path(self, id: str) -> str:
        return str(self._dir(id) / "diff")

    def exists(self, id: str) -> bool:
        return (self._dir(id) / "diff").is_dir()

    def layer_intact(self, id: str, parent: bool | None) -> bool:
        """Whether layer `id`'s own entries are all there: its link and short
        link, `diff`, work and merged (but for a shared layer), and a `lower`
        if it has a `parent` (None: not checked). A power cut after a create
        nobody synced (a container's: `ContainerService`) can leave any of
        them missing."""
        d = self._dir(id)
        if not self._top_only(id):
            try:
                short = self._link(id)
            except OSError:
                return False
            if not short or "/" in short or not os.path.lexists(self.home / LINK_DIR / short):
                return False
        if parent is not None and bool(self._lower(id)) != parent:
            return False
        diff = d / "diff"
        if diff.is_symlink():
            return diff.is_dir()
        return diff.is_dir() and (d / "work").is_dir() and (d / "merged").is_dir()

    def list_ids(self) -> list[str]:
        return sorted(p.name for p in self.home.iterdir()
                      if p.name != LINK_DIR and not p.name.startswith(".") and (p / "diff").is_dir())

    def _top_only(self, id: str) -> bool:
        """A container's read-write layer: nothing is ever made on it (commit
        and build make image layers from its diff), so it has no short link."""
        return not id.endswith("-init") and self.is_container_layer(id)

    def _link(self, id: str) -> str:
        return (self._dir(id) / "link").read_text().strip()

    def _lower(self, id: str) -> list[str]:
        """Short lower paths ("l/XXX") of `id`'s parents, uppermost first."""
        try:
            s = (self._dir(id) / "lower").read_text().strip()
        except FileNotFoundError:
            return []
        return s.split(":") if s else []

    def lower_dirs(self, id: str) -> list[str]:
        """Absolute diff dirs of `id`'s parents, uppermost first."""
        return [os.path.realpath(self.home / s) for s in self._lower(id)]

    # --- create / remove --------------------------------------------------------
    def reparent(self, id: str, parent: str | None) -> None:
        chain = [f"{LINK_DIR}/{self._link(parent)}"] + self._lower(parent) if parent else []
        tmp = self._dir(id) / "lower.tmp"
        tmp.write_text(":".join(chain))
        os.replace(tmp, self._dir(id) / "lower")

    def place(self, init: str, id: str, parent: str | None) -> None:
        """Put container layers made ahead without a parent (`init`, shared,
        and `id` on it) on `parent`: the `lower` files and the parent's
        mark, as creating them on it would have written."""
        with self._lock:
            if parent is not None:
                (self._dir(init) / "lower").write_text(self._lower_on(init, parent))
                self._mark_parent(parent)
            self.reparent(id, init)

    def _lower_on(self, id: str, parent: str) -> str:
        """`id`'s lower chain on `parent`; refused past the depth limit or on
        a container's read-write layer."""
        below = self._lower(parent)
        if len(below) + 1 > MAX_DEPTH:
            raise StorageDriverError(
                f"overlay: max depth exceeded: layer {id} would have {len(below) + 1} lower "
                f"layers (at most {MAX_DEPTH})")
        if self._top_only(parent):
            raise StorageDriverError(f"overlay: layer {parent} is a container's read-write "
                                     "layer: no layer goes on it")
        return ":".join([f"{LINK_DIR}/{self._link(parent)}"] + below)

    def _mark_parent(self, parent: str) -> None:
        # The mark matters for image layers only; a stat is cheaper than a touch.
        mark = self._dir(parent) / "committed"
        if not self.is_container_layer(parent) and not mark.exists():
            mark.touch()

    def create_shared(self, id: str, parent: str | None, diff_dir: str) -> None:
        """Layer `id` on `parent` whose files are the read-only tree `diff_dir`,
        shared with other layers: the init layers' constant contents. `diff` is
        a symlink to it, and work/merged are made only if it is ever mounted:
        five directory entries instead of twenty per container."""
        check_id(id)
        if self.exists(id):
            raise StorageDriverError(f"{self.name}: layer {id} already exists")
        with self._lock:
            try:
                self._create(id, parent, shared=diff_dir)
            except BaseException:
                self._remove_quietly(id)
                raise

    def _create(self, id: str, parent: str | None, shared: str | None = None) -> None:
        d = self._dir(id)
        lower = self._lower_on(id, parent) if parent is not None else ""
        d.mkdir(mode=0o700)
        if shared is None:
            (d / "diff").mkdir(mode=0o755)
        else:
            os.symlink(os.path.relpath(shared, d), d / "diff")  # the home may move
        if not self._top_only(id):  # a layer others may go on: a short link to it
            short = _short_id()
            while (self.home / LINK_DIR / short).exists():
                short = _short_id()
            os.symlink(f"../{id}/diff", self.home / LINK_DIR / short)
            (d / "link").write_text(short)
        if parent is not None:
            (d / "lower").write_text(lower)
            self._mark_parent(parent)
        if shared is None:
            (d / "work").mkdir(mode=0o700)
            (d / "merged").mkdir(mode=0o700)
        if self.remap_root is not None:
            # dockerd's ownership under --userns-remap: the remapped root may
            # pass through the layer's directory and owns what it writes.
            uid, gid = self.remap_root
            os.chown(d, -1, gid)
            d.chmod(0o710)
            if shared is None:
                os.chown(d / "diff", uid, gid)
                os.chown(d / "work", uid, gid)

    def _remove(self, id: str) -> None:
        d = self._dir(id)
        try:
            short = self._link(id)
        except (FileNotFoundError, NotADirectoryError):
            short = ""
        if short and "/" not in short:
            try:
                os.unlink(self.home / LINK_DIR / short)
            except FileNotFoundError:
                pass
        rmtree(d)

    # --- mount ------------------------------------------------------------------
    def _mount(self, id: str, first: bool) -> str:
        d = self._dir(id)
        lower = self._lower(id)
        if not lower:
            return str(d / "diff")  # a base layer is its own root
        merged = d / "merged"
        if not first:
            return str(merged)
        self._settle(id)  # an earlier mount of it still flushing
        if not merged.is_dir():  # a layer made by create_shared
            (d / "work").mkdir(mode=0o700, exist_ok=True)
            merged.mkdir(mode=0o700)
        if mounts.is_mount_point(merged):  # two stats, not a mount table scan
            return str(merged)  # left by an earlier daemon: adopt it
        if (d / "committed").exists() and not self.is_container_layer(id):
            # A parent of other layers: never write into it; lower-only mount.
            lowers = [f"{LINK_DIR}/{self._link(id)}"] + lower
            _core.mount_overlay(lowers, None, None, str(merged), str(self.home), self._opts)
        else:
            _core.mount_overlay(lower, f"{id}/diff", f"{id}/work", str(merged),
                                str(self.home), self._opts)
        return str(merged)

    def _unmount(self, id: str) -> None:
        """Detach the mount at once and let the background remover drop the
        last reference: unmounting a read-write overlay syncs its upper
        filesystem (a journal commit: 1 ms on this disk, 6 ms on a loop
        device), which `docker rm` and `--rm` need not wait for. A mount of
        the same layer waits for it first (`_settle`)."""
        merged = self._dir(id) / "merged"
        if not self._lower(id):
            return
        try:
            hold = os.open(merged, os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return
        try:
            _core.unmount(str(merged), detach=True)
        except MountError:  # not a mount point
            os.close(hold)
            return
        self._detached[id] = hold
        later(lambda: self._settle(id, hold))

    def _settle(self, id: str, fd: int | None = None) -> None:
        """Drop the held reference of `id`'s detached mount (the one `fd`
        names, if given): the overlay's flush runs here."""
        with self._detached_lock:
            held = self._detached.get(id)
            if held is None or (fd is not None and held != fd):
                return
            del self._detached[id]
        os.close(held)

    def _unmount_all(self, id: str) -> None:
        merged = self._dir(id) / "merged"
        # Anything mounted below an unmounted `merged` would be mounted on an
        # empty directory inside the layer: not something the engine does.
        if mounts.is_mount_point(merged):
            for m in mounts.mounts_under(merged):
                _core.unmount(m, detach=True)

    def cleanup(self) -> None:
        with self._lock:
            self._refs.clear()
            for m in mounts.mounts_under(self.home):
                try:
                    _core.unmount(m)
                except (MountError, OSError):
                    try:
                        _core.unmount(m, detach=True)
                    except (MountError, OSError):
                        pass
        drain_removals()

    # --- diff -------------------------------------------------------------------
    def native_diff(self) -> bool:
        """Whether tarring `diff/` is a correct diff on this kernel (moby's
        check: an opaque dir must not be copied up as opaque, and renaming a
        dir must not leave an `overlay.redirect` xattr)."""
        if self._native_diff is None:
            try:
                self._native_diff = _probe_native_diff(self.home, self._opts)
            except OSError:
                self._native_diff = False
        return self._native_diff

    def diff(self, id: str, parent: str | None, dest: str | int,
             compression: str = "none") -> "_core.LayerInfo":
        check_id(id)
        if parent is None or self.native_diff():
            return _core.create_layer(self.diff_path(id), dest, compression, overlay_upper=True,
                                      id_map=self.id_ranges)
        # Naive: compare the mounted views of the parent and the layer.
        root = self.get(id)
        try:
            proot = self.get(parent)
            try:
                return _core.create_layer(root, dest, compression, parent_root=proot,
                                          id_map=self.id_ranges)
            finally:
                self.put(parent)
        finally:
            self.put(id)

    def move_diff(self, src: str, dst: str) -> bool:
        # `diff/` holds exactly the changes where tarring it is the diff; the
        # upper dir of a mounted layer must not move under its overlay.
        check_id(src)
        check_id(dst)
        s, d = self._dir(src), self._dir(dst)
        if not self.native_diff() or self._refs.get(src) or os.path.ismount(s / "merged") \
                or (s / "diff").is_symlink() or any(os.scandir(d / "diff")):
            return False
        os.rename(s / "diff", d / "diff")  # replaces the empty dir in one step
        (s / "diff").mkdir(mode=0o755)
        return True

    def changes(self, id: str, parent: str | None) -> list[dict[str, Any]]:
        check_id(id)
        return _changes.upper_changes(self.diff_path(id), self.lower_dirs(id))

    def diff_size(self, id: str, parent: str | None) -> int:
        total = 0
        for root, dirs, files in os.walk(self.diff_path(id)):
            for f in files:
                try:
                    st = os.lstat(os.path.join(root, f))
                except OSError:
                    continue
                total += st.st_size
        return total

    # --- information -------------------------------------------------------------
    def status(self) -> list[tuple[str, str]]:
        return [
            ("Backing Filesystem", self._fs),
            ("Supports d_type", "true"),
            ("Using metacopy", "false"),
            ("Native Overlay Diff", "true" if self.native_diff() else "false"),
            ("userxattr", "true" if "userxattr" in self._opts.split(",") else "false"),
        ]

    def metadata(self, id: str) -> dict[str, str]:
        d = self._dir(id)
        out = {
            "MergedDir": str(d / "merged"),
            "UpperDir": str(d / "diff"),
            "WorkDir": str(d / "work"),
        }
        lowers = self.lower_dirs(id)
        if lowers:
            out["LowerDir"] = ":".join(lowers)
        return out


def _probe_native_diff(home: Path, opts: str) -> bool:
    probe = home / f".check-{os.getpid()}-{threading.get_ident()}"
    try:
        for sub in ("l1/d", "l2/d", "u", "w", "m"):
            (probe / sub).mkdir(parents=True)
        (probe / "l1/d/f").write_text("x")
        os.setxattr(probe / "l2/d", _xattr("opaque"), b"y")
        _core.mount_overlay(["l2", "l1"], "u", "w", str(probe / "m"), str(probe), opts)
        try:
            (probe / "m/d/g").write_text("y")  # copies up the opaque d
            try:
                if os.getxattr(probe / "u/d", _xattr("opaque")) == b"y":
                    return False
            except OSError:
                pass
            try:
                os.rename(probe / "m/d", probe / "m/d2")
            except OSError:
                return True  # EXDEV: renames are copies, no redirects
            try:
                os.getxattr(probe / "u/d2", _xattr("redirect"))
                return False
            except OSError:
                return True
        finally:
            _core.unmount(str(probe / "m"))
    finally:
        shutil.rmtree(probe, ignore_errors=True)
