"""A compression bomb, and a disk that fills: with the daemon's root on a
small filesystem, a layer that would eat into the space reserve (5% of the
filesystem, at most 512 MiB) stops with ENOSPC and a clear message, nothing
is registered, the store checks clean, the daemon keeps serving, and the
space comes back."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registries import BadRegistry, busybox_layer, files_layer

from conftest import Daemon, kill_containers_left, mounts_under, unmount_all


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        k = min(len(b), self.left)
        b[:k] = bytes(k)
        self.left -= k
        return k


def _bomb(path, size: int) -> None:
    """A gzip tar whose one file is `size` zero bytes (~230:1 at level 1)."""
    with gzip.open(path, "wb", compresslevel=1) as gz, tarfile.open(fileobj=gz, mode="w|") as t:
        info = tarfile.TarInfo("zeros")
        info.size = size
        t.addfile(info, io.BufferedReader(_Zeros(size), 1 << 20))


def test_compression_bomb_stops_at_the_reserve(tmp_path, busybox_tar):
    fs = tmp_path / "small"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400m", "tmpfs", str(fs)], check=True)
    d = Daemon(fs / "d", "overlay")
    d.base.mkdir()
    try:
        bomb = tmp_path / "bomb.tar.gz"
        _bomb(bomb, 2 << 30)
        assert bomb.stat().st_size < 16 << 20
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        before = d.client().get_json("/images/json", {"all": 1})
        free_before = os.statvfs(fs).f_bavail
        r = d.cli("import", str(bomb), "bomb:1", check=False)
        assert r.returncode != 0
        err = r.stderr.decode()
        assert "unpacking stopped after" in err and "MiB would be left free" in err, err
        # nothing registered, the space given back, the store clean, still serving
        assert d.client().get_json("/images/json", {"all": 1}) == before
        assert os.statvfs(fs).f_bavail >= free_before * 0.95
        assert d.client().get_json("/system/check", {"grace": 0}) == {"Problems": []}
        r = d.docker("run", "--rm", "busybox", "echo", "still serving")
        assert r.stdout == b"still serving\n"
    finally:
        d.stop()
        left = kill_containers_left(d.base)
        leaked = mounts_under(d.base)
        unmount_all(d.base)
        subprocess.run(["umount", "-l", str(fs)], check=False)
    assert not left and not leaked


# --- a full disk for each operation that writes the store ----------------------------
#
# One daemon on a 96 MiB tmpfs; before each operation a filler file leaves too
# little room for it. The operation must fail with a clear error and leave the
# store as it was (images, `system check`), the daemon must keep serving, and
# once the filler is gone the same operation must succeed.

BIG = 24 << 20


@pytest.fixture(scope="module")
def small(tmp_path_factory, busybox_tar) -> Iterator[tuple[Daemon, Path]]:
    base = tmp_path_factory.mktemp("diskfull")
    fs = base / "small"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=96m", "tmpfs", str(fs)], check=True)
    d = Daemon(fs / "d", "overlay")
    d.base.mkdir()
    d.log = base / "daemon.log"  # off the small filesystem: it must not fill it
    try:
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d, fs
    finally:
        d.stop()
        left = kill_containers_left(d.base)
        leaked = mounts_under(d.base)
        unmount_all(d.base)
        subprocess.run(["umount", "-l", str(fs)], check=False)
        assert not left and not leaked


class Full:
    """Fill the filesystem to `leave` bytes free; check the failed operation
    changed nothing; free the space again."""

    def __init__(self, d: Daemon, fs: Path) -> None:
        self.d, self.fs = d, fs
        self.filler = fs / "filler"

    def __enter__(self) -> Full:
        self.images = self.d.client().get_json("/images/json", {"all": 1})
        self.containers = self.d.client().get_json("/containers/json", {"all": 1})
        return self

    def fill(self, leave: int) -> None:
        st = os.statvfs(self.fs)
        free = st.f_bavail * st.f_frsize
        subprocess.run(["fallocate", "-l", str(max(free - leave, 4096)), str(self.filler)],
                       check=True)

    def unchanged(self) -> None:
        c = self.d.client()
        assert c.get_json("/images/json", {"all": 1}) == self.images
        assert c.get_json("/containers/json", {"all": 1}) == self.containers
        assert c.get_json("/system/check", {"grace": 0}) == {"Problems": []}
        tmp = self.d.root / "tmp"
        assert not tmp.exists() or not list(tmp.iterdir())

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        self.free()


def _no_space(err: str) -> None:
    assert "no space left on device" in err.lower() or "MiB would be left free" in err, err
    assert "Traceback" not in err, err


def _big_layer_image(reg: BadRegistry) -> Any:
    return reg.serve("big/layer", "v1", [busybox_layer(),
                                         files_layer({"big": os.urandom(BIG)})])


def test_pull_and_load_into_a_full_disk(small, tmp_path):
    d, fs = small
    reg = BadRegistry().start()
    try:
        img = _big_layer_image(reg)
        with Full(d, fs) as full:
            full.fill(BIG // 2)
            r = d.cli("pull", img.ref, check=False)
            assert r.returncode != 0
            _no_space(r.stderr.decode())
            full.unchanged()
            full.free()
            d.cli("pull", img.ref)
        saved = tmp_path / "big.tar"
        d.cli("save", "-o", str(saved), img.ref)
        d.cli("rmi", img.ref)
        with Full(d, fs) as full:
            full.fill(BIG // 2)
            r = d.cli("load", "-i", str(saved), check=False)
            assert r.returncode != 0
            _no_space(r.stderr.decode())
            full.unchanged()
            full.free()
            d.cli("load", "-i", str(saved))
        d.cli("rmi", img.ref)
    finally:
        reg.stop()


def test_build_run_and_copy_into_a_full_disk(small, tmp_path):
    d, fs = small
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1M count={BIG >> 20}\n")
    with Full(d, fs) as full:
        full.fill(BIG // 2)
        r = d.cli("build", "-q", "--force-rm", "-t", "big:run", str(ctx), check=False)
        assert r.returncode != 0
        _no_space(r.stderr.decode() + r.stdout.decode())
        full.unchanged()
        full.free()
        d.cli("build", "-q", "-t", "big:run", str(ctx))
    d.cli("rmi", "big:run")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big /big\n")
    (ctx / "big").write_bytes(os.urandom(BIG))
    with Full(d, fs) as full:
        full.fill(BIG // 2)
        r = d.cli("build", "-q", "-t", "big:copy", str(ctx), check=False)
        assert r.returncode != 0
        _no_space(r.stderr.decode() + r.stdout.decode())
        full.unchanged()
        full.free()
        d.cli("build", "-q", "-t", "big:copy", str(ctx))
    d.cli("rmi", "big:copy")
    d.cli("builder", "prune", "-af", check=False)


def test_commit_into_a_full_disk(small):
    d, fs = small
    d.cli("run", "--name", "writer", "busybox", "dd", "if=/dev/urandom", "of=/big", "bs=1M",
          f"count={BIG >> 20}")
    try:
        with Full(d, fs) as full:
            full.fill(BIG // 2)
            r = d.cli("commit", "writer", "big:commit", check=False)
            assert r.returncode != 0
            _no_space(r.stderr.decode())
            full.unchanged()
            full.free()
            d.cli("commit", "writer", "big:commit")
        d.cli("rmi", "big:commit")
    finally:
        d.cli("rm", "-f", "writer", check=False)


def test_logs_fill_the_disk(small):
    d, fs = small
    with Full(d, fs) as full:
        full.fill(8 << 20)
        d.cli("run", "-d", "--name", "chatty", "busybox", "sh", "-c",
              "while :; do echo aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa; done")
        try:
            deadline = time.monotonic() + 60
            while os.statvfs(fs).f_bavail > 0:
                assert time.monotonic() < deadline, "the log never filled the disk"
                time.sleep(0.2)
            cid = d.client().get_json("/containers/chatty/json")["Id"]
            log = Path(d.client().get_json("/containers/chatty/json")["LogPath"])
            size = log.stat().st_size
            # the daemon keeps serving: inspect, logs, a new container
            assert d.client().get_json("/containers/json", {"all": 1})
            r = d.cli("logs", "--tail", "1", "chatty")
            assert r.stdout.startswith(b"aaaa")
            full.free()
            r = d.cli("run", "--rm", "busybox", "echo", "still serving")
            assert r.stdout == b"still serving\n"
            assert cid
            assert size > 0
        finally:
            d.cli("rm", "-f", "chatty", check=False)
        assert d.client().get_json("/system/check", {"grace": 0}) == {"Problems": []}
