"""Storage drivers on the real kernel (run as root): overlay, vfs, and btrfs on
a loopback filesystem made here. Every test checks that it leaves no mount
behind; the loop device is detached even when tests fail."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest

from dockyard import _core
from dockyard.errors import MountError, NotFound, StorageDriverError
from dockyard.graphdriver import (ALIASES, create_container_layers, get_driver, priority,
                                  remove_container_layers, select_driver, supported)
from dockyard.graphdriver import mounts as gd_mounts
from dockyard.graphdriver.base import drain_removals
from dockyard.graphdriver.overlay import MAX_DEPTH

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="storage drivers need root")



_FIXTURE_MOUNTS: set[str] = set()  # the btrfs loop mount, shared by a module


def _mount_points(tmp_path: Path) -> list[str]:
    """Mounts beneath this test's directories only: another process's (a
    daemon of the suite, a second suite on the machine) are none of ours."""
    roots = [os.path.realpath(tmp_path), *_FIXTURE_MOUNTS]
    return [m for m in gd_mounts.mount_points() if m not in _FIXTURE_MOUNTS
            and any(m == r or m.startswith(r + "/") for r in roots)]


@pytest.fixture(autouse=True)
def no_leaked_mounts(tmp_path):
    before = _mount_points(tmp_path)
    yield
    after = _mount_points(tmp_path)
    leaked = [m for m in after if m not in before]
    for m in reversed(leaked):
        subprocess.run(["umount", "-l", m], check=False)
    assert not leaked, f"mounts leaked: {leaked}"


# --- btrfs on a loop device --------------------------------------------------------
@pytest.fixture(scope="module")
def btrfs_root(tmp_path_factory):
    if subprocess.run(["which", "mkfs.btrfs"], capture_output=True).returncode != 0:
        pytest.skip("mkfs.btrfs not installed")
    base = tmp_path_factory.mktemp("btrfs")
    img = base / "fs.img"
    mnt = base / "mnt"
    mnt.mkdir()
    loop = None
    mounted = False
    try:
        with open(img, "wb") as f:
            f.truncate(1 << 30)
        subprocess.run(["mkfs.btrfs", "-q", str(img)], check=True, capture_output=True)
        loop = subprocess.run(["losetup", "--find", "--show", str(img)], check=True,
                              capture_output=True, text=True).stdout.strip()
        subprocess.run(["mount", "-t", "btrfs", loop, str(mnt)], check=True, capture_output=True)
        mounted = True
        _FIXTURE_MOUNTS.add(os.path.realpath(mnt))
        yield mnt
    finally:
        if mounted:
            _FIXTURE_MOUNTS.discard(os.path.realpath(mnt))
            if subprocess.run(["umount", str(mnt)]).returncode != 0:
                subprocess.run(["umount", "-l", str(mnt)])
        if loop:
            subprocess.run(["losetup", "-d", loop])
        img.unlink(missing_ok=True)


def _make_driver(name: str, request, tmp_path: Path):
    if name == "btrfs":
        root = request.getfixturevalue("btrfs_root") / uuid.uuid4().hex[:12]
    else:
        root = tmp_path / "root"
    root.mkdir()
    d = get_driver(name, root / name, {})
    return d, root


@pytest.fixture(params=["overlay", "vfs", "btrfs"])
def driver(request, tmp_path, no_leaked_mounts):
    d, root = _make_driver(request.param, request, tmp_path)
    try:
        yield d
    finally:
        d.cleanup()
        for i in d.list_ids():
            try:
                d.remove(i)
            except Exception:
                pass


@pytest.fixture
def overlay(tmp_path, no_leaked_mounts):
    d = get_driver("overlay2", tmp_path / "overlay", {})
    try:
        yield d
    finally:
        d.cleanup()


# --- helpers ----------------------------------------------------------------------
def write_layer(d, id: str, files: dict[str, bytes | None], deletes: tuple[str, ...] = (),
                opaque: tuple[str, ...] = ()) -> None:
    """Put a diff into a fresh layer without the archive code: files (None for
    a directory), deletions (whiteouts on overlay, removals on naive drivers)
    and opaque directories."""
    root = Path(d.diff_path(id))
    for name in opaque:
        p = root / name
        if d.whiteouts == "overlay":
            p.mkdir(parents=True, exist_ok=True)
            os.setxattr(p, "trusted.overlay.opaque", b"y")
        else:
            subprocess.run(["rm", "-rf", str(p)], check=True)
            p.mkdir(parents=True)
    for name in deletes:
        p = root / name
        if d.whiteouts == "overlay":
            p.parent.mkdir(parents=True, exist_ok=True)
            os.mknod(p, stat.S_IFCHR | 0o000, 0)
        else:
            subprocess.run(["rm", "-rf", str(p)], check=True)
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            p.mkdir(exist_ok=True)
        else:
            if p.exists():
                p.unlink()
            p.write_bytes(data)


def tar_bytes(entries: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_700_000_000
            if data is None:
                ti.type = tarfile.DIRTYPE
                ti.mode = 0o755
                t.addfile(ti)
            else:
                ti.size = len(data)
                ti.mode = 0o644
                t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def tar_names(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as t:
        return {m.name.rstrip("/").removeprefix("./"): m for m in t.getmembers()}


def build_base_and_child(d):
    d.create("base", None)
    write_layer(d, "base", {
        "etc": None, "etc/os-release": b"base\n", "etc/keep": b"keep\n",
        "bin": None, "bin/sh": b"#!sh\n", "opt/old/a": b"a", "opt/old/b": b"b",
        "var/gone": b"bye",
    })
    d.create("child", "base")
    write_layer(d, "child", {"etc/os-release": b"child\n", "etc/new": b"new\n",
                             "opt/old/c": b"c"},
                deletes=("var/gone",), opaque=("opt/old",))


# --- the driver contract, for each driver -------------------------------------------
def test_merged_view(driver):
    build_base_and_child(driver)
    root = Path(driver.get("child"))
    try:
        assert (root / "etc/os-release").read_bytes() == b"child\n"
        assert (root / "etc/keep").read_bytes() == b"keep\n"
        assert (root / "etc/new").read_bytes() == b"new\n"
        assert (root / "bin/sh").exists()
        assert not (root / "var/gone").exists()
        assert sorted(os.listdir(root / "opt/old")) == ["c"]
    finally:
        driver.put("child")
    base = Path(driver.get("base"))
    try:
        assert (base / "etc/os-release").read_bytes() == b"base\n"
        assert (base / "var/gone").exists()
        assert sorted(os.listdir(base / "opt/old")) == ["a", "b"]
    finally:
        driver.put("base")


def test_exists_list_and_remove(driver):
    build_base_and_child(driver)
    assert driver.exists("base") and driver.exists("child")
    assert driver.list_ids() == ["base", "child"]
    assert not driver.exists("nope")
    with pytest.raises(StorageDriverError):
        driver.create("base", None)
    with pytest.raises(NotFound):
        driver.create("x", "missing-parent")
    with pytest.raises(StorageDriverError):
        driver.create("../evil", None)
    driver.get("child")
    driver.remove("child")  # mounted: unmounted first
    assert not driver.exists("child")
    assert driver.list_ids() == ["base"]
    driver.remove("base")
    driver.remove("base")  # idempotent
    assert driver.list_ids() == []
    drain_removals()  # removed trees are deleted in the background
    leftovers = [p.name for p in driver.home.rglob("*")]
    if driver.name == "overlay":
        assert os.listdir(driver.home / "l") == []
    assert not [n for n in leftovers if n in ("base", "child")]
    assert gd_mounts.mounts_under(driver.home) == []


def test_refcounted_get_put(driver):
    build_base_and_child(driver)
    a = driver.get("child")
    b = driver.get("child")
    assert a == b and driver.refcount("child") == 2
    if driver.name == "overlay":
        assert gd_mounts.is_mounted(a)
    driver.put("child")
    assert driver.refcount("child") == 1
    assert os.path.exists(os.path.join(a, "etc/new"))
    driver.put("child")
    assert driver.refcount("child") == 0
    if driver.name == "overlay":
        assert not gd_mounts.is_mounted(a)
    with pytest.raises(StorageDriverError):
        driver.put("child")
    with pytest.raises(NotFound):
        driver.get("missing")


def test_changes(driver):
    build_base_and_child(driver)
    ch = {c["Path"]: c["Kind"] for c in driver.changes("child", "base")}
    assert ch["/etc/os-release"] == 0
    assert ch["/etc/new"] == 1
    assert ch["/var/gone"] == 2
    assert ch["/etc"] == 0  # parent of changes
    assert "/bin" not in ch and "/bin/sh" not in ch and "/etc/keep" not in ch
    assert ch.get("/opt/old/c") == 1
    assert driver.changes("base", None)[0] == {"Path": "/bin", "Kind": 1}
    assert driver.diff_size("child", "base") >= len(b"child\nnew\nc")


def test_container_layers(driver):
    build_base_and_child(driver)
    # A hostile image: /etc/hosts is a symlink out of the rootfs, /dev a symlink.
    driver.create("evil", "child")
    r = Path(driver.diff_path("evil"))
    (r / "etc").mkdir(exist_ok=True)
    os.symlink("/tmp/escaped-hosts", r / "etc/hosts")
    os.symlink("/tmp", r / "dev")
    iid = create_container_layers(driver, "ctr", "evil")
    assert iid == "ctr-init"
    assert driver.is_container_layer("ctr") and driver.is_container_layer("ctr-init")
    assert not driver.is_container_layer("child")
    root = Path(driver.get("ctr"))
    try:
        for f in ("etc/hosts", "etc/resolv.conf", "etc/hostname", "dev/console", ".dockerenv"):
            p = root / f
            assert p.is_file() and not p.is_symlink(), f
            assert p.stat().st_size == 0
        for dname in ("dev/pts", "dev/shm", "proc", "sys"):
            assert (root / dname).is_dir() and not (root / dname).is_symlink()
        assert os.readlink(root / "etc/mtab") == "/proc/mounts"
        assert (root / "etc/os-release").read_bytes() == b"child\n"
        assert not os.path.exists("/tmp/escaped-hosts")
        (root / "scratch").write_text("rw")
    finally:
        driver.put("ctr")
    ch = {c["Path"]: c["Kind"] for c in driver.changes("ctr", "ctr-init")}
    assert ch == {"/scratch": 1}
    remove_container_layers(driver, "ctr")
    assert not driver.exists("ctr") and not driver.exists("ctr-init")
    assert driver.exists("evil")


def test_overlay_init_layers_share_a_read_only_template(driver):
    if driver.name != "overlay":
        pytest.skip("the shared init template is the overlay driver's")
    build_base_and_child(driver)
    create_container_layers(driver, "a", "child")
    create_container_layers(driver, "b", "child")
    ta, tb = (os.path.realpath(driver.diff_path(i)) for i in ("a-init", "b-init"))
    assert ta == tb == str(driver.home / ".init" / "0-0")
    assert ".init" not in driver.list_ids() and driver.exists("a-init")
    root = Path(driver.get("a"))
    try:
        (root / ".dockerenv").write_text("written in a")  # copied up into a's own layer
        assert (root / "etc/os-release").read_bytes() == b"child\n"
    finally:
        driver.put("a")
    assert (Path(ta) / ".dockerenv").read_bytes() == b""
    assert [c["Path"] for c in driver.changes("a", "a-init")] == ["/.dockerenv"]
    # An init layer mounted on its own gets its work/merged dirs then.
    assert (Path(driver.get("b-init")) / "etc/hosts").is_file()
    driver.put("b-init")
    remove_container_layers(driver, "a")
    remove_container_layers(driver, "b")
    drain_removals()
    assert (Path(ta) / "etc/hosts").is_file() and driver.exists("child")


def test_status_and_metadata(driver):
    rows = dict(driver.status())
    if driver.name == "overlay":
        assert rows["Backing Filesystem"] in ("extfs", "xfs", "tmpfs", "btrfs")
        assert rows["Supports d_type"] == "true"
        assert rows["Native Overlay Diff"] in ("true", "false")
        driver.create("m", None)
        driver.create("n", "m")
        md = driver.metadata("n")
        assert md["LowerDir"] == os.path.realpath(driver.diff_path("m"))
        assert md["UpperDir"] == driver.diff_path("n")
    elif driver.name == "btrfs":
        assert rows["Backing Filesystem"] == "btrfs"


def test_home_spreads_layers_where_the_filesystem_can(driver):
    """On ext4 the home is a top of unrelated trees (chattr +T): each layer
    gets a block group of the allocator's choosing, away from the inodes a
    removed layer just freed (see graphdriver.base.spread_subdirs)."""
    from dockyard.graphdriver.base import _FS_TOPDIR_FL, inode_flags

    if _core.fs_type(str(driver.home)) != "extfs":
        return  # only ext4's allocator reads the flag
    fd = os.open(driver.home, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert inode_flags(fd) & _FS_TOPDIR_FL
    finally:
        os.close(fd)


def test_cleanup_unmounts_everything(driver):
    build_base_and_child(driver)
    driver.get("child")
    driver.get("child")
    driver.cleanup()
    assert gd_mounts.mounts_under(driver.home) == []
    assert driver.refcount("child") == 0


def test_diff_tar(driver, tmp_path):
    build_base_and_child(driver)
    out = tmp_path / "child.tar"
    info = driver.diff("child", "base", str(out), "none")
    names = tar_names(out)
    assert "etc/os-release" in names and "etc/new" in names
    assert "var/.wh.gone" in names
    assert "bin/sh" not in names and "etc/keep" not in names
    assert info.diff_id.startswith("sha256:") and info.size == out.stat().st_size
    assert _core.sha256_file(str(out)) == info.diff_id
    with tarfile.open(out) as t:
        assert t.extractfile("etc/os-release").read() == b"child\n"
    base = tmp_path / "base.tar.gz"
    info = driver.diff("base", None, str(base), "gzip")
    assert "bin/sh" in tar_names(base)
    assert info.compression == "gzip"


def test_apply_diff_from_tar(driver, tmp_path):
    driver.create("base", None)
    src = tmp_path / "base.tar"
    src.write_bytes(tar_bytes([("etc", None), ("etc/a", b"a"), ("etc/b", b"b"),
                               ("usr", None), ("usr/lib", None), ("usr/lib/x", b"x")]))
    info = driver.apply_diff("base", None, str(src))
    assert info.diff_id == _core.sha256_file(str(src))
    driver.create("child", "base")
    data = tar_bytes([("etc", None), ("etc/.wh.a", b""), ("etc/c", b"c"),
                      ("usr/lib", None), ("usr/lib/.wh..wh..opq", b""), ("usr/lib/y", b"y")])
    driver.apply_diff("child", "base", io.BytesIO(data))
    root = Path(driver.get("child"))
    try:
        assert sorted(os.listdir(root / "etc")) == ["b", "c"]
        assert sorted(os.listdir(root / "usr/lib")) == ["y"]
    finally:
        driver.put("child")


def test_failed_create_leaves_nothing(driver, monkeypatch):
    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(driver), "_create", boom)
    with pytest.raises(OSError):
        driver.create("x", None)
    assert not driver.exists("x")


def test_diff_roundtrip_and_commit(driver, tmp_path):
    """A layer's diff applied onto the same parent elsewhere gives the same
    view; a container's diff over its init layer holds only its own changes."""
    build_base_and_child(driver)
    out = tmp_path / "child.tar.zst"
    info = driver.diff("child", "base", str(out), "zstd")
    assert info.compression == "zstd"
    driver.create("copy", "base")
    got = driver.apply_diff("copy", "base", str(out))
    assert got.diff_id == info.diff_id
    a, b = Path(driver.get("child")), Path(driver.get("copy"))
    try:
        def view(r):
            return sorted((str(p.relative_to(r)), p.read_bytes() if p.is_file() else b"")
                          for p in r.rglob("*"))
        assert view(a) == view(b)
    finally:
        driver.put("copy")
        driver.put("child")
    create_container_layers(driver, "ctr", "child")
    root = Path(driver.get("ctr"))
    try:
        (root / "etc/committed").write_text("yes")
        os.unlink(root / "etc/keep")
    finally:
        driver.put("ctr")
    fd = os.open(tmp_path / "commit.tar", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        driver.diff("ctr", "ctr-init", fd)
    finally:
        os.close(fd)
    names = tar_names(tmp_path / "commit.tar")
    assert "etc/committed" in names and "etc/.wh.keep" in names
    assert not any(n in names for n in ("etc/hosts", ".dockerenv", "proc", "dev/console"))


def test_unpacker_streaming(driver):
    driver.create("s", None)
    u = driver.unpacker("s")
    data = tar_bytes([("a", None), ("a/b", b"bee")])
    for i in range(0, len(data), 1000):
        u.write(data[i:i + 1000])
    info = u.finish()
    assert info.size == len(data)
    assert Path(driver.diff_path("s"), "a/b").read_bytes() == b"bee"


def test_overlay_naive_diff_fallback(overlay, tmp_path):
    build_base_and_child(overlay)
    native = tmp_path / "native.tar"
    overlay.diff("child", "base", str(native))
    overlay._native_diff = False  # as on a kernel with redirect_dir
    naive = tmp_path / "naive.tar"
    overlay.diff("child", "base", str(naive))
    n1, n2 = tar_names(native), tar_names(naive)
    for name in ("etc/os-release", "etc/new", "var/.wh.gone", "opt/old/c"):
        assert name in n1 and name in n2, name
    assert gd_mounts.mounts_under(overlay.home) == []


# --- overlay specifics ------------------------------------------------------------
def test_overlay_layout(overlay):
    overlay.create("a", None)
    overlay.create("b", "a")
    a, b = overlay.home / "a", overlay.home / "b"
    link_a = (a / "link").read_text()
    assert len(link_a) == 26
    assert os.readlink(overlay.home / "l" / link_a) == "../a/diff"
    assert (b / "lower").read_text() == f"l/{link_a}"
    assert (a / "committed").exists()
    assert all((b / s).is_dir() for s in ("diff", "work", "merged"))
    assert overlay.layer_dir_for_diff("b") == (str(b / "diff"), "overlay")


def test_overlay_deep_chain_128_layers(overlay):
    parent = None
    for i in range(128):
        id = f"layer{i:03d}"
        overlay.create(id, parent)
        Path(overlay.diff_path(id), f"f{i:03d}").write_text(str(i))
        parent = id
    assert len((overlay.home / "layer127" / "lower").read_text().split(":")) == 127
    root = Path(overlay.get("layer127"))
    try:
        assert len(os.listdir(root)) == 128
        assert (root / "f000").read_text() == "0"
        assert (root / "f127").read_text() == "127"
    finally:
        overlay.put("layer127")
    # a 128-lower layer (a read-write one on top of 128) mounts too
    overlay.create_read_write("rw", "layer127")
    root = Path(overlay.get("rw"))
    try:
        assert len(os.listdir(root)) == 128
        (root / "new").write_text("x")
    finally:
        overlay.put("rw")
    # a committed layer mounts lower-only (diff + 127 lowers), read-only
    root = Path(overlay.get("layer127"))
    try:
        with pytest.raises(OSError):
            (root / "nope").write_text("x")
    finally:
        overlay.put("layer127")
    with pytest.raises(StorageDriverError, match="max depth"):
        overlay.create("too-deep", "rw")


def test_overlay_base_layer_is_not_mounted(overlay):
    overlay.create("a", None)
    assert overlay.get("a") == overlay.diff_path("a")
    assert gd_mounts.mounts_under(overlay.home) == []
    overlay.put("a")


def test_overlay_cwd_unchanged_and_opaque_changes(overlay):
    cwd = os.getcwd()
    overlay.create("a", None)
    write_layer(overlay, "a", {"d/x": b"x", "d/y": b"y"})
    overlay.create_read_write("c", "a")
    root = Path(overlay.get("c"))
    try:
        subprocess.run(["rm", "-rf", str(root / "d")], check=True)
        (root / "d").mkdir()
        (root / "d/z").write_text("z")
    finally:
        overlay.put("c")
    assert os.getcwd() == cwd
    ch = [(c["Path"], c["Kind"]) for c in overlay.changes("c", "a")]
    assert ("/d", 2) in ch and ("/d/z", 1) in ch
    assert not any(p in ("/d/x", "/d/y") for p, _ in ch)


# --- Rust primitives ----------------------------------------------------------------
def test_unmount_errors(tmp_path):
    with pytest.raises(MountError, match="not a mount point"):
        _core.unmount(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        _core.unmount(str(tmp_path / "missing"))


def test_mount_overlay_errors(tmp_path):
    with pytest.raises(MountError):
        _core.mount_overlay([], None, None, str(tmp_path))
    with pytest.raises(MountError):
        _core.mount_overlay([str(tmp_path / "missing")], None, None, str(tmp_path))
    long = [str(tmp_path / ("x" * 200)) for _ in range(30)]
    with pytest.raises(MountError, match="page limit"):
        _core.mount_overlay(long, None, None, str(tmp_path))


def test_copy_tree_exact(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "d").mkdir(parents=True)
    f = src / "d/suid"
    f.write_bytes(b"x" * 10000)
    os.chown(f, 1000, 2000)
    os.chmod(f, 0o4755)
    os.setxattr(f, "user.k", b"v")
    os.setxattr(src / "d", "trusted.overlay.opaque", b"y")
    os.link(f, src / "hard")
    os.symlink("d/suid", src / "sym")
    os.mkfifo(src / "fifo")
    os.mknod(src / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    with open(src / "sparse", "wb") as s:
        s.seek(64 << 20)
        s.write(b"end")
    _core.copy_tree(str(src), str(dst))
    g = dst / "d/suid"
    st = g.lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 2000, 0o4755)
    assert os.getxattr(g, "user.k") == b"v"
    assert os.getxattr(dst / "d", "trusted.overlay.opaque") == b"y"
    assert (dst / "hard").stat().st_ino == st.st_ino
    assert os.readlink(dst / "sym") == "d/suid"
    assert stat.S_ISFIFO((dst / "fifo").lstat().st_mode)
    assert (dst / "null").lstat().st_rdev == os.makedev(1, 3)
    sp = (dst / "sparse").stat()
    assert sp.st_size == (64 << 20) + 3 and sp.st_blocks * 512 < (1 << 20)
    assert (dst / "d/suid").read_bytes() == b"x" * 10000
    assert st.st_mtime_ns == f.stat().st_mtime_ns


def test_fs_type(tmp_path):
    assert _core.fs_type("/proc") == "proc"
    assert _core.fs_type(str(tmp_path)) in ("extfs", "xfs", "tmpfs", "btrfs", "overlayfs")
    assert not _core.is_btrfs_subvolume(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        _core.fs_type(str(tmp_path / "missing"))


def test_btrfs_primitives(btrfs_root):
    base = btrfs_root / f"prim-{uuid.uuid4().hex[:8]}"
    base.mkdir()
    assert _core.fs_type(str(base)) == "btrfs"
    sv = base / "sv"
    _core.btrfs_subvolume_create(str(sv))
    assert _core.is_btrfs_subvolume(str(sv))
    assert not _core.is_btrfs_subvolume(str(base))
    (sv / "f").write_text("1")
    _core.btrfs_subvolume_create(str(sv / "nested"))
    _core.btrfs_subvolume_create(str(sv / "nested" / "deeper"))
    (sv / "nested/deeper/g").write_text("2")
    snap = base / "snap"
    _core.btrfs_subvolume_snapshot(str(sv), str(snap), readonly=True)
    assert (snap / "f").read_text() == "1"
    with pytest.raises(OSError):
        (snap / "x").write_text("ro")
    with pytest.raises(StorageDriverError):
        _core.btrfs_subvolume_snapshot(str(base), str(base / "s2"))
    with pytest.raises(StorageDriverError):
        _core.btrfs_subvolume_delete(str(base))
    _core.btrfs_subvolume_delete(str(sv))  # with nested subvolumes
    _core.btrfs_subvolume_delete(str(snap))  # read-only
    assert os.listdir(base) == []


# --- registry ------------------------------------------------------------------------
def test_registry(tmp_path, monkeypatch):
    assert ALIASES["overlay2"] == "overlay"
    assert priority.index("btrfs") < priority.index("overlay") < priority.index("vfs")
    assert supported("vfs", tmp_path) == (True, "")
    assert supported("overlay2", tmp_path)[0]
    ok, why = supported("btrfs", tmp_path)
    assert not ok and "not btrfs" in why
    for name, word in (("aufs", "aufs"), ("zfs", "ZFS"), ("devicemapper", "thin pool")):
        ok, why = supported(name, tmp_path)
        assert not ok and word in why
        with pytest.raises(StorageDriverError, match=word):
            get_driver(name, tmp_path / name)
    with pytest.raises(StorageDriverError, match="unknown storage driver"):
        get_driver("floppy", tmp_path / "floppy")
    with pytest.raises(StorageDriverError, match="not btrfs"):
        get_driver("btrfs", tmp_path / "btrfs")
    with pytest.raises(StorageDriverError, match="unknown storage option"):
        get_driver("vfs", tmp_path / "vfs", {"vfs.size": "10G"})
    monkeypatch.delenv("DOCKYARD_DRIVER", raising=False)
    monkeypatch.delenv("DOCKER_DRIVER", raising=False)
    d = select_driver(tmp_path / "auto")
    assert d.name == "overlay" and d.home == tmp_path / "auto" / "overlay"
    d = select_driver(tmp_path / "asked", "vfs")
    assert d.name == "vfs"
    monkeypatch.setenv("DOCKER_DRIVER", "vfs")
    assert select_driver(tmp_path / "env", "overlay2").name == "vfs"
    monkeypatch.delenv("DOCKER_DRIVER")
    # the driver that already holds layers wins
    prior = select_driver(tmp_path / "prior", "vfs")
    prior.create("x", None)
    assert select_driver(tmp_path / "prior").name == "vfs"


def test_select_prefers_btrfs_on_btrfs(btrfs_root, monkeypatch):
    monkeypatch.delenv("DOCKYARD_DRIVER", raising=False)
    monkeypatch.delenv("DOCKER_DRIVER", raising=False)
    root = btrfs_root / f"auto-{uuid.uuid4().hex[:8]}"
    root.mkdir()
    d = select_driver(root)
    assert d.name == "btrfs"
    d.cleanup()


def test_is_mount_point_sees_mounts_and_plain_directories(tmp_path):
    """`mounts.is_mount_point` answers as os.path.ismount for the engine's
    own directories, with two lstats."""
    d = tmp_path / "m"
    d.mkdir()
    (d / "sub").mkdir()
    assert gd_mounts.is_mount_point(d) is False
    assert gd_mounts.is_mount_point(tmp_path / "missing") is False
    assert gd_mounts.is_mount_point("/") is True
    _core.mount_tmpfs(str(d), 1 << 20)
    try:
        (d / "inside").mkdir()
        assert gd_mounts.is_mount_point(d) is True
        assert gd_mounts.is_mount_point(d / "inside") is False
        assert gd_mounts.is_mount_point(d) == os.path.ismount(d)
        link = tmp_path / "link"
        # a symlink is never a mount point, though its `..` is on another filesystem
        link.symlink_to(d / "inside")
        assert gd_mounts.is_mount_point(link) is False and not os.path.ismount(link)
    finally:
        _core.unmount(str(d))
    assert gd_mounts.is_mount_point(d) is False


def test_overlay_short_ids_are_distinct_link_names():
    from dockyard.graphdriver.overlay import ID_LEN, _ALPHABET, _short_id

    ids = {_short_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == ID_LEN and set(i) <= set(_ALPHABET) for i in ids)
