"""A compression bomb, and a disk that fills: with the daemon's root on a
small filesystem, a layer that would eat into the space reserve (5% of the
filesystem, at most 512 MiB) stops with ENOSPC and a clear message, nothing
is registered, the store checks clean, the daemon keeps serving, and the
space comes back.

Then pull, load, build (RUN writing a big file, COPY of a big context),
commit and a container's logs on a data root that is full: each ends with
"no space left on device" (or the step's own failure, for RUN), registers
nothing, leaves the store checking clean and the daemon serving, and the same
operation succeeds once space is freed. The daemon keeps a few MiB beside its
database for its records (store/db.py): a container that fills the disk must
not keep its stop or removal from being recorded."""

from __future__ import annotations

import gzip
import io
import json
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
# One daemon on a 40 MiB tmpfs; before each operation a filler file leaves too
# little room for it. The operation must fail with a clear error and leave the
# store as it was (images, `system check`), the daemon must keep serving, and
# once the filler is gone the same operation must succeed.
#
# dockerd 20.10's words, on a 60 MiB data root with 4 MiB left (ours in the tests):
#   pull   write /var/lib/docker/tmp/GetImageBlob967336518: no space left on device
#          (ours: failed to register layer: write big: no space left on device)
#   load   Error processing tar file(exit status 1): write /<id>/layer.tar: no space left
#          on device (ours: write <root>/tmp/<dir>/blobs/sha256/<hex>: no space ...)
#   COPY   Error processing tar file(exit status 1): write /big: no space left on device
#          (ours: write <root>/builder/<id>/context.raw: ..., the context is spooled first)
#   RUN    The command '/bin/sh -c dd ...' returned a non-zero code: 1 (the same)
#   commit Error processing tar file(exit status 1): write /big: no space left on device
#          (ours: write layer: no space left on device)

BIG = 8 << 20


@pytest.fixture(scope="module")
def small(tmp_path_factory, busybox_tar) -> Iterator[tuple[Daemon, Path]]:
    base = tmp_path_factory.mktemp("diskfull")
    # Only the data root is the small filesystem; the exec root, the socket
    # and the log stay off it (as /var/run is not /var/lib).
    d = Daemon(base / "d", "overlay")
    fs = d.root
    fs.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(fs)], check=True)
    try:
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        yield d, fs
    finally:
        d.stop()
        left = kill_containers_left(d.base)
        leaked = [m for m in mounts_under(d.base) if m != str(fs)]
        unmount_all(fs)
        subprocess.run(["umount", "-l", str(fs)], check=False)
        assert not left and not leaked


class Full:
    """Fill the filesystem to `leave` bytes free; check the failed operation
    changed nothing; free the space again."""

    def __init__(self, d: Daemon, fs: Path) -> None:
        self.d, self.fs = d, fs
        self.filler = fs / "filler"  # beside the store, in the data root

    def __enter__(self) -> Full:
        self.images = self.d.client().get_json("/images/json", {"all": 1})
        self.containers = self._containers()
        return self

    def _containers(self) -> list[tuple[str, str]]:
        return sorted((c["Id"], c["State"])
                      for c in self.d.client().get_json("/containers/json", {"all": 1}))

    def fill(self, leave: int) -> None:
        st = os.statvfs(self.fs)
        free = st.f_bavail * st.f_frsize
        subprocess.run(["fallocate", "-l", str(max(free - leave, 4096)), str(self.filler)],
                       check=True)

    def unchanged(self) -> None:
        c = self.d.client()
        assert c.get_json("/images/json", {"all": 1}) == self.images
        assert self._containers() == self.containers
        assert c.get_json("/system/check", {"grace": 0}) == {"Problems": []}
        for spool in ("tmp", "builder"):  # a load's, a build context's
            where = self.d.root / spool
            assert not where.exists() or not list(where.iterdir()), spool

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def __exit__(self, *exc: object) -> None:
        self.free()


def _no_space(err: str | None) -> None:
    assert err is not None, "the operation succeeded"
    assert "no space left on device" in err.lower() or "MiB would be left free" in err, err
    assert "Traceback" not in err and "Error:" not in err.split(":")[0], err


def _error(stream: Any) -> str | None:
    """Run a docker SDK call (its stream, if it returns one): the error it
    ends with (an HTTP error or a streamed one), None if it succeeded."""
    import docker

    try:
        out = stream()
        for msg in out if not isinstance(out, (dict, str, bytes)) else []:
            if isinstance(msg, dict) and "error" in msg:
                return str(msg["error"])
    except docker.errors.APIError as e:
        return str(e.explanation)
    return None


@pytest.fixture
def api(small) -> Iterator[Any]:
    docker = pytest.importorskip("docker")
    c = docker.APIClient(base_url=small[0].host, timeout=120)
    try:
        yield c
    finally:
        c.close()


def test_pull_and_load_into_a_full_disk(small, api, tmp_path):
    d, fs = small
    reg = BadRegistry().start()
    try:
        img = reg.serve("big/layer", "v1", [busybox_layer(),
                                            files_layer({"big": os.urandom(BIG)})])
        pull = lambda: api.pull(img.ref, stream=True, decode=True)  # noqa: E731
        with Full(d, fs) as full:
            full.fill(BIG // 2)
            _no_space(_error(pull))
            full.unchanged()
            full.free()
            assert _error(pull) is None
        saved = tmp_path / "big.tar"
        with open(saved, "wb") as f:
            for chunk in api.get_image(img.ref):
                f.write(chunk)
        api.remove_image(img.ref)
        load = lambda: api.load_image(saved.read_bytes())  # noqa: E731
        with Full(d, fs) as full:
            full.fill(BIG // 2)
            _no_space(_error(load))
            full.unchanged()
            full.free()
            assert _error(load) is None
        api.remove_image(img.ref)
    finally:
        reg.stop()


def test_build_run_and_copy_into_a_full_disk(small, api, tmp_path):
    d, fs = small
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        f"FROM busybox\nRUN dd if=/dev/urandom of=/big bs=1M count={BIG >> 20}\n")
    # forcerm: the failed step's container goes too (dockerd keeps it without)
    build = lambda tag: lambda: api.build(path=str(ctx), tag=tag, rm=True,  # noqa: E731
                                          forcerm=True, decode=True)
    with Full(d, fs) as full:
        full.fill(BIG // 2)
        out = list(build("big:run")())
        err = next((m["error"] for m in out if "error" in m), None)
        text = "".join(m.get("stream", "") for m in out)
        # the step's own failure: dd's words in its output
        assert err is not None and "returned a non-zero code: 1" in err, err
        assert "No space left on device" in text, text
        full.unchanged()
        full.free()
        assert _error(build("big:run")) is None
    api.remove_image("big:run")
    (ctx / "Dockerfile").write_text("FROM busybox\nCOPY big /big\n")
    (ctx / "big").write_bytes(os.urandom(BIG))
    with Full(d, fs) as full:
        full.fill(BIG // 2)
        _no_space(_error(build("big:copy")))
        full.unchanged()
        full.free()
        assert _error(build("big:copy")) is None
    api.remove_image("big:copy")
    api.prune_builds()


def test_commit_into_a_full_disk(small, api):
    d, fs = small
    c = api.create_container("busybox", ["dd", "if=/dev/urandom", "of=/big", "bs=1M",
                                         f"count={BIG >> 20}"], name="writer")["Id"]
    try:
        api.start(c)
        assert api.wait(c)["StatusCode"] == 0
        commit = lambda: api.commit(c, "big", "commit")  # noqa: E731
        with Full(d, fs) as full:
            full.fill(BIG // 2)
            _no_space(_error(commit))
            full.unchanged()
            full.free()
            assert _error(commit) is None
        api.remove_image("big:commit")
    finally:
        api.remove_container(c, force=True)


def test_logs_fill_the_disk(small, api):
    d, fs = small
    with Full(d, fs) as full:
        full.fill(4 << 20)
        c = api.create_container("busybox", ["sh", "-c", "while :; do echo " + "a" * 60 +
                                             "; done"], name="chatty")["Id"]
        try:
            api.start(c)
            deadline = time.monotonic() + 60
            while os.statvfs(fs).f_bavail > 0:
                assert time.monotonic() < deadline, "the log never filled the disk"
                time.sleep(0.1)
            # the daemon keeps serving: inspect, the logs so far, a new container
            info = api.inspect_container(c)
            assert info["State"]["Running"]
            assert api.logs(c, tail=1).startswith(b"aaaa")
            log = Path(info["LogPath"])
            size = log.stat().st_size
            full.free()
            r = d.docker("run", "--rm", "busybox", "echo", "still serving")
            assert r.stdout == b"still serving\n"
            # once there is room the log goes on, with no entry cut in half
            while log.stat().st_size < size + (1 << 20):
                assert time.monotonic() < deadline + 60, "the log did not go on"
                time.sleep(0.1)
            api.kill(c)
            api.wait(c)  # the last entry written
            lines = log.read_bytes().splitlines()
            assert all(json.loads(x)["log"] == "a" * 60 + "\n" for x in lines)
        finally:
            api.remove_container(c, force=True)
        assert api.containers(all=True) == []
        assert d.client().get_json("/system/check", {"grace": 0}) == {"Problems": []}
