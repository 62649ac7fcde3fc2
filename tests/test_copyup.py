"""Volume copy-up (`_core.copy_up`): an empty volume mounted over a directory
of the image first gets that directory's content, exactly, and resolved inside
the container's root. Runs as root (owners, devices, trusted.* and
security.* xattrs)."""

from __future__ import annotations

import errno
import os
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from dockyard import _core

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")

MARKER = ".copyup-incomplete"
# v2 file capability: effective, cap_net_bind_service (10) permitted.
CAP = struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)


def make_rootfs(tmp: Path) -> Path:
    r = tmp / "rootfs"
    db = r / "var/lib/db"
    (db / "a/b/c").mkdir(parents=True)
    (r / "etc").mkdir()
    (r / "etc/passwd").write_text("root:x:0:0:the rootfs's\n")
    (r / "ROOTFS").write_text("rootfs")
    os.symlink("/", r / "slash")
    os.symlink("../../../../", r / "up")
    (db / "a/b/c/deep").write_bytes(os.urandom(3000))
    (db / "a/b/f").write_bytes(b"")
    (db / "suid").write_bytes(b"#!/bin/sh\n")
    os.chown(db / "suid", 1000, 1000)
    os.chmod(db / "suid", 0o6755)
    (db / "hl1").write_text("linked")
    os.link(db / "hl1", db / "a/hl2")
    os.symlink("/etc/passwd", db / "passwd")
    os.symlink("../../..", db / "a/up")
    os.lchown(db / "passwd", 55, 66)
    os.mkfifo(db / "fifo", 0o640)
    os.mknod(db / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    (db / "capped").write_bytes(b"\x7fELF")
    os.chmod(db / "capped", 0o755)
    os.setxattr(db / "capped", "user.x", b"hello")
    os.setxattr(db / "capped", "security.capability", CAP)
    os.setxattr(db / "passwd", "trusted.t", b"on a symlink", follow_symlinks=False)
    os.setxattr(db / "a", "trusted.overlay.opaque", b"y")
    os.chmod(db / "a/b", 0o1777)
    os.chmod(db / "a/b/c", 0o500)
    os.utime(db / "a/b/c/deep", ns=(1_000_000_123, 2_000_000_456))
    os.setxattr(db, "user.root", b"r")
    os.chown(db, 1000, 1000)
    os.chmod(db, 0o700)
    return r


def volume(tmp: Path, name: str = "vol") -> Path:
    d = tmp / "volumes" / name / "_data"
    d.mkdir(parents=True)
    return d


def xattrs(p: Path) -> dict[str, bytes]:
    return {n: os.getxattr(p, n, follow_symlinks=False) for n in os.listxattr(p, follow_symlinks=False)}


def describe(root: Path) -> dict[str, tuple]:
    """Everything a copy must keep, by relative path; hardlinks by group."""
    out: dict[str, tuple] = {}
    groups: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in ["."] + dirnames + filenames if dirpath == str(root) else dirnames + filenames:
            p = Path(dirpath) / name if name != "." else root
            rel = str(p.relative_to(root))
            st = p.lstat()
            isdir = stat.S_ISDIR(st.st_mode)
            out[rel] = (
                st.st_mode,
                st.st_uid,
                st.st_gid,
                0 if isdir else st.st_nlink,
                st.st_rdev,
                0 if isdir else st.st_size,
                st.st_mtime_ns,
                os.readlink(p) if stat.S_ISLNK(st.st_mode) else None,
                p.read_bytes() if stat.S_ISREG(st.st_mode) else None,
                xattrs(p),
            )
            if not isdir and st.st_nlink > 1:
                groups.setdefault(st.st_ino, []).append(rel)
    out["hardlinks"] = tuple(sorted(tuple(sorted(g)) for g in groups.values()))
    return out


def test_copy_is_exact(tmp_path):
    r = make_rootfs(tmp_path)
    dest = volume(tmp_path)
    assert _core.copy_up(str(r), "/var/lib/db", str(dest)) == "copied"
    src = describe(r / "var/lib/db")
    got = describe(dest)
    assert got == src
    assert got["hardlinks"] == (("a/hl2", "hl1"),)
    st = dest.lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o700)
    assert os.getxattr(dest, "user.root") == b"r"
    assert stat.S_IMODE((dest / "suid").lstat().st_mode) == 0o6755
    assert os.getxattr(dest / "capped", "security.capability") == CAP
    assert os.getxattr(dest / "capped", "user.x") == b"hello"
    assert os.readlink(dest / "passwd") == "/etc/passwd"
    assert os.readlink(dest / "a/up") == "../../.."
    assert (dest / "null").lstat().st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO((dest / "fifo").lstat().st_mode)
    assert (dest / "hl1").lstat().st_nlink == 2
    assert (dest / "a/b/c/deep").lstat().st_mtime_ns == 2_000_000_456
    assert not (dest.parent / MARKER).exists()
    # The volume has content now: a second call leaves it alone.
    (dest / "hl1").write_text("user data")
    assert _core.copy_up(str(r), "/var/lib/db", str(dest)) == "skipped"
    assert (dest / "a/hl2").read_text() == "user data"


@pytest.mark.parametrize("path", ["/slash", "/up", "up/../../..", "/up/var/lib/db/a/up/.."])
def test_symlinks_resolve_inside_rootfs(tmp_path, path):
    r = make_rootfs(tmp_path)
    dest = volume(tmp_path)
    assert _core.copy_up(str(r), path, str(dest)) == "copied"
    # The rootfs's own root, not the host's.
    assert (dest / "ROOTFS").read_text() == "rootfs"
    assert (dest / "etc/passwd").read_text() == "root:x:0:0:the rootfs's\n"
    assert sorted(os.listdir(dest)) == sorted(os.listdir(r))
    assert not (dest / "proc").exists() and not (dest / "usr").exists()


def test_symlink_inside_tree_and_to_a_file(tmp_path):
    r = make_rootfs(tmp_path)
    dest = volume(tmp_path, "a")
    # db/a/up = ../../.. from /var/lib/db/a: /var
    assert _core.copy_up(str(r), "/var/lib/db/a/up/lib/db/a", str(dest)) == "copied"
    assert (dest / "hl2").read_text() == "linked"
    # /etc/passwd of the rootfs through an absolute symlink: a file.
    dest = volume(tmp_path, "b")
    assert _core.copy_up(str(r), "/var/lib/db/passwd", str(dest)) == "file"
    assert os.listdir(dest) == []


def test_missing_file_and_errors(tmp_path):
    r = make_rootfs(tmp_path)
    dest = volume(tmp_path)
    before = dest.lstat()
    assert _core.copy_up(str(r), "/nope", str(dest)) == "missing"
    assert _core.copy_up(str(r), "/nope/deeper", str(dest)) == "missing"
    assert _core.copy_up(str(r), "/etc/passwd", str(dest)) == "file"
    assert _core.copy_up(str(r), "/var/lib/db/null", str(dest)) == "file"
    with pytest.raises(NotADirectoryError):
        _core.copy_up(str(r), "/etc/passwd/x", str(dest))
    with pytest.raises(FileNotFoundError):
        _core.copy_up(str(tmp_path / "no-rootfs"), "/etc", str(dest))
    with pytest.raises(FileNotFoundError):
        _core.copy_up(str(r), "/etc", str(tmp_path / "no-volume/_data"))
    assert os.listdir(dest) == []
    after = dest.lstat()
    assert (before.st_mode, before.st_uid, before.st_mtime_ns) == (after.st_mode, after.st_uid, after.st_mtime_ns)
    assert not (dest.parent / MARKER).exists()


def test_non_empty_volume_is_skipped(tmp_path):
    r = make_rootfs(tmp_path)
    dest = volume(tmp_path)
    (dest / ".hidden").write_text("mine")
    os.chmod(dest, 0o755)
    snapshot = describe(dest)
    assert _core.copy_up(str(r), "/var/lib/db", str(dest)) == "skipped"
    assert describe(dest) == snapshot
    assert not (dest.parent / MARKER).exists()


def test_incomplete_marker_redoes(tmp_path):
    r = make_rootfs(tmp_path)
    dest = volume(tmp_path)
    # What a crash mid-copy leaves: part of the tree, and the marker.
    (dest / "a/b").mkdir(parents=True)
    (dest / "a/b/half").write_bytes(b"x" * 100)
    (dest / "stale").write_text("partial")
    os.symlink("/", dest / "a/root")
    os.chmod(dest / "a/b", 0o500)
    (dest.parent / MARKER).touch()
    assert _core.copy_up(str(r), "/var/lib/db", str(dest)) == "copied"
    assert not (dest.parent / MARKER).exists()
    assert describe(dest) == describe(r / "var/lib/db")
    assert not (dest / "stale").exists() and not (dest / "a/b/half").exists()

    # The marker and the path gone from the image: emptied, marker dropped.
    (dest.parent / MARKER).touch()
    assert _core.copy_up(str(r), "/gone", str(dest)) == "missing"
    assert os.listdir(dest) == []
    assert not (dest.parent / MARKER).exists()


def test_from_an_overlay_rootfs(tmp_path):
    """The real case: the rootfs is the container's overlay mount."""
    lower = make_rootfs(tmp_path)
    upper, work, merged = tmp_path / "upper", tmp_path / "work", tmp_path / "merged"
    for d in (upper, work, merged):
        d.mkdir()
    (upper / "var/lib/db").mkdir(parents=True)
    (upper / "var/lib/db/from-upper").write_text("upper")
    _core.mount_overlay([str(lower)], str(upper), str(work), str(merged))
    try:
        dest = volume(tmp_path)
        assert _core.copy_up(str(merged), "/var/lib/db", str(dest)) == "copied"
        assert (dest / "from-upper").read_text() == "upper"
        got, src = describe(dest), describe(merged / "var/lib/db")
        assert got == src
        assert os.getxattr(dest / "capped", "security.capability") == CAP
        assert (dest / "hl1").lstat().st_ino == (dest / "a/hl2").lstat().st_ino
    finally:
        _core.unmount(str(merged), detach=True)


def test_many_files_and_deep(tmp_path):
    r = tmp_path / "rootfs"
    src = r / "data"
    for i in range(20):
        d = src / f"d{i}"
        d.mkdir(parents=True)
        for j in range(50):
            (d / f"f{j}").write_bytes(bytes([j]) * (1024 + 61 * j))
    deep = src
    for i in range(100):
        deep = deep / f"n{i}"
    deep.mkdir(parents=True)
    (deep / "leaf").write_text("bottom")
    dest = volume(tmp_path)
    assert _core.copy_up(str(r), "/data", str(dest)) == "copied"
    assert describe(dest) == describe(src)


def test_failed_copy_leaves_an_empty_volume(tmp_path):
    """ENOSPC halfway: the error is raised, the partial copy removed and the
    marker with it, so a later call starts from an empty volume."""
    r = tmp_path / "rootfs"
    (r / "data/sub").mkdir(parents=True)
    (r / "data/sub/small").write_text("x")
    (r / "data/sub/big").write_bytes(os.urandom(1 << 20))
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=True)
    try:
        dest = volume(small)
        with pytest.raises(OSError) as e:
            _core.copy_up(str(r), "/data", str(dest))
        assert e.value.errno == errno.ENOSPC
        assert os.listdir(dest) == []
        assert not (dest.parent / MARKER).exists()
        (r / "data/sub/big").unlink()
        assert _core.copy_up(str(r), "/data", str(dest)) == "copied"
        assert (dest / "sub/small").read_text() == "x"
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_concurrent_calls_copy_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    r = tmp_path / "rootfs"
    for i in range(20):
        d = r / "data" / f"d{i}"
        d.mkdir(parents=True)
        for j in range(20):
            (d / f"f{j}").write_bytes(b"y" * 2000)
    dest = volume(tmp_path)
    with ThreadPoolExecutor(4) as ex:
        got = sorted(ex.map(lambda _: _core.copy_up(str(r), "/data", str(dest)), range(4)))
    assert got == ["copied", "skipped", "skipped", "skipped"]
    assert describe(dest) == describe(r / "data")
