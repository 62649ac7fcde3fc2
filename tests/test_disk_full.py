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
