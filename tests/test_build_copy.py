"""COPY/ADD of the classic builder (`dockyard.build.copy`), on temp dirs: Docker's
source and destination rules, ownership, hostile contexts, archives and URLs; then
the same steps side by side with a reference dockerd (DOCKER_BUILDKIT=0): the
`created_by` hashes and the resulting file trees must be equal."""

from __future__ import annotations

import bz2
import gzip
import http.server
import io
import lzma
import os
import shutil
import struct
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from conftest import busybox_rootfs
from dockyard.build.copy import (ContextSums, CopyError, copy_sources, created_by, plan_copy,
                                 resolve_in_root)


def ctx_tree(root: Path) -> Path:
    """A small context: files with modes, a nested dir, a symlink, a hardlink."""
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("hello\n")
    (root / "b.txt").write_text("world\n")
    os.chmod(root / "b.txt", 0o640)
    (root / "dir" / "x").write_text("x\n")
    (root / "dir" / "sub" / "y").write_text("y\n")
    os.chmod(root / "dir" / "sub", 0o700)
    os.symlink("a.txt", root / "link")
    os.link(root / "dir" / "x", root / "dir" / "hard")
    os.utime(root / "a.txt", (1_600_000_000.7, 1_600_000_000.7))
    return root


@pytest.fixture
def env(tmp_path):
    ctx = ctx_tree(tmp_path / "ctx")
    ctx.mkdir(exist_ok=True)
    target = busybox_rootfs(tmp_path / "rootfs")

    def run(sources, dest, *, workdir="/", is_add=False, chown=None, chmod=None, src_root=None,
            **kw):
        return copy_sources(list(sources), dest, context=ctx, src_root=src_root,
                            target_root=target, workdir=workdir, is_add=is_add, chown=chown,
                            chmod=chmod, passwd_root=target, **kw)
    return ctx, target, run


def meta(p: Path) -> tuple[int, int, int]:
    s = p.lstat()
    return (s.st_mode, s.st_uid, s.st_gid)


# -- rules ------------------------------------------------------------------------------

def test_file_to_name_and_into_dir(env):
    ctx, t, run = env
    r = run(["a.txt"], "/x")
    assert (t / "x").read_text() == "hello\n" and r.dest == "/x"
    assert r.comment.startswith("COPY file:") and r.comment.endswith(" in /x ")
    run(["a.txt"], "/newdir/")
    assert (t / "newdir" / "a.txt").is_file()
    run(["a.txt"], "/etc")            # an existing dir: the file goes inside
    assert (t / "etc" / "a.txt").is_file()
    # mtime kept from the context (whole seconds, as dockerd's tar round trip), mode kept
    assert (t / "x").stat().st_mtime == 1_600_000_000
    run(["b.txt"], "/b")
    assert meta(t / "b") == (0o100640, 0, 0)


def test_dir_copies_contents_and_parents(env):
    ctx, t, run = env
    os.chown(ctx / "dir" / "x", 123, 456)          # context owners never survive
    r = run(["dir"], "/a/b/c")
    assert r.comment.startswith("COPY dir:")
    assert sorted(os.listdir(t / "a/b/c")) == ["hard", "sub", "x"]
    for d in ("a", "a/b", "a/b/c"):
        assert meta(t / d) == (0o40755, 0, 0)
    assert meta(t / "a/b/c/sub") == (0o40700, 0, 0)
    assert meta(t / "a/b/c/x")[1:] == (0, 0)
    assert (t / "a/b/c/x").stat().st_ino == (t / "a/b/c/hard").stat().st_ino
    run(["."], "/all/")
    assert os.readlink(t / "all" / "link") == "a.txt"   # symlinks inside a dir stay links


def test_multiple_sources_and_wildcards(env):
    ctx, t, run = env
    with pytest.raises(CopyError, match="^When using COPY with more than one source file, the "
                       "destination must be a directory and end with a /$"):
        run(["a.txt", "b.txt"], "/m")
    with pytest.raises(CopyError, match="When using ADD with more"):
        run(["*.txt"], "/m", is_add=True)
    r1 = run(["a.txt", "b.txt"], "/m/")
    r2 = run(["*.txt"], "/w/")
    assert r1.source_hash == r2.source_hash and r1.source_hash.startswith("multi:")
    assert sorted(os.listdir(t / "w")) == ["a.txt", "b.txt"]
    one = run(["a*"], "/one")               # a single match needs no slash
    assert one.source_hash.startswith("file:") and (t / "one").is_file()
    run(["d?r/s*"], "/deep/")               # patterns match whole relative paths
    assert os.listdir(t / "deep") == ["y"]
    with pytest.raises(CopyError, match="^COPY failed: no source files were specified$"):
        run(["nomatch*"], "/n/")


def test_workdir_relative_dest(env):
    ctx, t, run = env
    r = run(["a.txt"], "rel", workdir="/wd")
    assert r.dest == "/wd/rel" and (t / "wd" / "rel").is_file()
    assert r.comment.endswith(" in rel ")      # the history shows the dest as written
    r = run(["a.txt"], "sub/", workdir="/wd")
    assert r.dest == "/wd/sub/" and (t / "wd" / "sub" / "a.txt").is_file()


def test_missing_source_errors(env):
    ctx, t, run = env
    with pytest.raises(CopyError) as e:
        run(["nope"], "/x")
    assert str(e.value) == ("COPY failed: file not found in build context or excluded by "
                            ".dockerignore: stat nope: file does not exist")
    assert e.value.status == 404
    with pytest.raises(CopyError, match="^ADD failed: file not found"):
        run(["nope"], "/x", is_add=True)
    with pytest.raises(CopyError, match="^COPY failed: stat nope: file does not exist$"):
        run(["nope"], "/x", src_root=t)
    with pytest.raises(CopyError, match="source can't be a URL for COPY"):
        run(["http://127.0.0.1:1/x"], "/x")


def test_chown(env):
    ctx, t, run = env
    (t / "etc" / "passwd").write_text("root:x:0:0::/:/bin/sh\nbob:x:1000:1001::/:/bin/sh\n")
    (t / "etc" / "group").write_text("root:x:0:\nstaff:x:1001:\nbob:x:1005:\n")
    run(["a.txt"], "/o1", chown="bob")              # a lone name is the group's name too
    assert meta(t / "o1")[1:] == (1000, 1005)
    run(["a.txt"], "/o2", chown="bob:staff")
    assert meta(t / "o2")[1:] == (1000, 1001)
    run(["dir"], "/o3/n/", chown="7:8")
    assert {meta(p)[1:] for p in (t / "o3/n").rglob("*")} == {(7, 8)}
    assert meta(t / "o3/n")[1:] == (7, 8) and meta(t / "o3")[1:] == (0, 0)
    run(["a.txt"], "/o4/deep/", chown="7:8")        # new parents of a file get the owner
    assert meta(t / "o4")[1:] == (7, 8)
    r = run(["a.txt"], "/o5", chown="bob:staff")
    assert r.comment.startswith("COPY --chown=bob:stafffile:")   # sic, as dockerd 20.10
    with pytest.raises(CopyError) as e:
        run(["a.txt"], "/o6", chown="alice")
    assert str(e.value) == ("unable to convert uid/gid chown string to host mapping: can't find "
                            "uid for user alice: no such user: alice")
    with pytest.raises(CopyError, match="can't find gid for group nope: no such group: nope$"):
        run(["a.txt"], "/o6", chown="bob:nope")
    with pytest.raises(CopyError, match="invalid chown string format: a:b:c$"):
        run(["a.txt"], "/o6", chown="a:b:c")
    # /etc/passwd is read inside the rootfs: an absolute symlink stays in it
    (t / "etc" / "passwd").unlink()
    (t / "users").write_text("carol:x:42:42::/:/bin/sh\n")
    os.symlink("/users", t / "etc" / "passwd")
    run(["a.txt"], "/o7", chown="carol:0")
    assert meta(t / "o7")[1:] == (42, 0)


def test_from_keeps_owners(env, tmp_path):
    ctx, t, run = env
    img = tmp_path / "img"
    (img / "app").mkdir(parents=True)
    (img / "app" / "f").write_text("f")
    os.chown(img / "app" / "f", 5, 6)
    os.symlink("/app/f", img / "abs")              # followed inside the image root
    r = run(["/app"], "/got", src_root=img)
    assert meta(t / "got" / "f")[1:] == (5, 6)
    assert r.source_hash.startswith("dir:")
    run(["abs"], "/abs", src_root=img)
    assert (t / "abs").read_text() == "f" and meta(t / "abs")[1:] == (5, 6)
    os.chmod(img / "app" / "f", 0o4755)
    run(["/app/f"], "/chowned", src_root=img, chown="1:1")
    assert meta(t / "chowned") == (0o100755, 1, 1)      # a chown drops setuid, as dockerd's
    run(["/app"], "/kept", src_root=img)
    assert meta(t / "kept" / "f") == (0o104755, 5, 6)    # --from alone keeps it
    # security.capability: kept in a tree copied from an image, dropped for a single
    # file and for context files (dockerd's context untar loses it)
    os.setxattr(img / "app" / "f", "security.capability", CAP_NET_RAW)
    os.setxattr(ctx / "a.txt", "security.capability", CAP_NET_RAW)
    run(["/app"], "/capdir", src_root=img)
    run(["/app/f"], "/capfile", src_root=img)
    run(["a.txt", "dir"], "/ctxcap/")

    def cap(p):
        try:
            return os.getxattr(p, "security.capability")
        except OSError:
            return None
    assert cap(t / "capdir" / "f") == CAP_NET_RAW
    assert cap(t / "capfile") is None and cap(t / "ctxcap" / "a.txt") is None


def test_chmod_extension_and_refusal(env):
    ctx, t, run = env
    with pytest.raises(CopyError, match="^the --chmod option requires BuildKit"):
        run(["a.txt"], "/x", chmod="755", allow_chmod=False)
    r = run(["dir"], "/cm", chmod="751")
    assert all(p.stat().st_mode & 0o7777 == 0o751 for p in (t / "cm").rglob("*"))
    assert "--chmod=751" in r.comment
    with pytest.raises(CopyError, match="invalid chmod"):
        run(["a.txt"], "/x", chmod="9z")


def test_dry_run_touches_nothing(env):
    ctx, t, run = env
    before = sorted(os.listdir(t))
    r = run(["dir", "a.txt"], "/x/", dry_run=True)
    assert r.source_hash.startswith("multi:") and sorted(os.listdir(t)) == before


def test_context_sums_from_tar_equal_tree(env, tmp_path):
    """Sums read from a context tar (as the CLI writes it: uid 0, no type bits)
    equal those computed from the unpacked tree."""
    ctx, t, run = env
    tar = tmp_path / "ctx.tar"
    with tarfile.open(tar, "w", format=tarfile.PAX_FORMAT) as tf:
        for p in sorted(ctx.rglob("*"), key=lambda p: str(p.relative_to(ctx))):
            ti = tf.gettarinfo(str(p), str(p.relative_to(ctx)))
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            if ti.isreg():
                with open(p, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti)
    a = run(["."], "/x/", dry_run=True, context_sums=ContextSums.from_tar(tar))
    b = run(["."], "/x/", dry_run=True)
    assert a.source_hash == b.source_hash


# -- hostile inputs ---------------------------------------------------------------------

def test_context_symlinks_cannot_leave(env, tmp_path):
    ctx, t, run = env
    secret = tmp_path / "secret"
    secret.write_text("secret")
    os.symlink(str(secret), ctx / "abs-out")
    os.symlink("../../../../../../" + str(secret), ctx / "rel-out")
    os.symlink("/", ctx / "rootlink")
    for name in ("abs-out", "rel-out"):
        with pytest.raises(CopyError, match=f"stat {name}: file does not exist"):
            run([name], "/x")
    with pytest.raises(CopyError, match="file not found"):
        run(["rootlink/" + str(secret)], "/x")
    # a source leaving the root lexically is refused (dockerd's words); inside, `..` is fine
    with pytest.raises(CopyError, match=r"^COPY failed: forbidden path outside the build "
                       r"context: \.\./\.\./a\.txt \(\)$"):
        run(["../../a.txt"], "/dots")
    with pytest.raises(CopyError, match="forbidden path outside"):
        run(["/dir/../../a.txt"], "/dots", src_root=t)
    run(["dir/../a.txt"], "/dots")
    assert (t / "dots").read_text() == "hello\n"
    # the links themselves are copied as links, never followed
    run(["."], "/all/")
    assert os.readlink(t / "all" / "abs-out") == str(secret)
    assert not any(p.read_bytes() == b"secret" for p in (t / "all").rglob("*")
                   if p.is_file() and not p.is_symlink())


def test_dest_symlinks_stay_in_root(env, tmp_path):
    ctx, t, run = env
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(str(outside), t / "abs")              # /abs -> <host path>, resolved in root
    os.symlink("../../../../../../../" + str(outside), t / "rel")
    os.symlink("/etc", t / "etclink")
    run(["a.txt"], "/abs/f")
    run(["a.txt"], "/rel/g")
    run(["dir"], "/abs/d")
    assert os.listdir(outside) == []
    assert (t / str(outside).lstrip("/") / "f").is_file()
    assert (t / str(outside).lstrip("/") / "g").is_file()
    run(["a.txt"], "/etclink")                       # a link to a dir: into the dir
    assert (t / "etc" / "a.txt").is_file()
    # inside a copied tree an existing link is replaced, not followed
    (t / "tree").mkdir()
    os.symlink(str(outside), t / "tree" / "sub")
    run(["dir"], "/tree")
    assert (t / "tree" / "sub").is_dir() and not (t / "tree" / "sub").is_symlink()
    assert os.listdir(outside) == []
    fd = os.open(t, os.O_PATH)
    try:
        assert resolve_in_root(fd, "/abs/x") == [*str(outside).strip("/").split("/"), "x"]
    finally:
        os.close(fd)


def _tar_bytes(entries: list[tuple[str, bytes | None]], **kw) -> bytes:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_500_000_000
            ti.uid, ti.gid = kw.get("uid", 3), kw.get("gid", 4)
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o750
                tf.addfile(ti)
            else:
                ti.size, ti.mode = len(data), 0o604
                tf.addfile(ti, io.BytesIO(data))
    return bio.getvalue()


@pytest.mark.parametrize("comp", ["plain", "gzip", "bzip2", "xz", "zstd"])
def test_add_extracts_archives(env, comp):
    ctx, t, run = env
    raw = _tar_bytes([("top", None), ("top/f", b"data"), (".wh.gone", b""), ("op", None),
                      ("op/.wh..wh..opq", b""), ("op/new", b"n")])
    data = {"plain": lambda b: b, "gzip": gzip.compress, "bzip2": bz2.compress,
            "xz": lzma.compress,
            "zstd": lambda b: subprocess.run(["zstd", "-q", "-c"], input=b, check=True,
                                             capture_output=True).stdout}[comp](raw)
    (ctx / "arch").write_bytes(data)
    (t / "dst" / "top").mkdir(parents=True)
    (t / "dst" / "top" / "keep").write_text("k")
    (t / "dst" / "gone").write_text("g")
    (t / "dst" / "op").mkdir()
    (t / "dst" / "op" / "old").write_text("o")
    r = run(["arch"], "/dst", is_add=True, chown="1:1")
    assert r.comment.startswith("ADD --chown=1:1file:")
    assert (t / "dst" / "top" / "f").read_bytes() == b"data"
    assert (t / "dst" / "top" / "keep").read_text() == "k"      # merged, not replaced
    # the archive's owners, modes and times win; --chown does not apply (as 20.10)
    assert meta(t / "dst" / "top" / "f") == (0o100604, 3, 4)
    assert meta(t / "dst" / "top")[0] == 0o40750
    assert (t / "dst" / "top" / "f").stat().st_mtime == 1_500_000_000
    assert not [n for n in os.listdir(t / "dst") if n.startswith(".dockyard")]
    # whiteouts: dockerd writes them as files, which its layer commit makes whiteouts
    assert not (t / "dst" / ".wh.gone").exists() and not (t / "dst" / "gone").exists()
    assert os.listdir(t / "dst" / "op") == ["new"]
    # COPY never extracts
    run(["arch"], "/copied")
    assert (t / "copied").read_bytes() == data


def test_add_not_a_tar_is_copied(env):
    ctx, t, run = env
    (ctx / "fake.tar.gz").write_bytes(gzip.compress(b"not a tar at all" * 40))
    (ctx / "fake.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"junk" * 10)
    run(["fake.tar.gz", "fake.zst"], "/f/", is_add=True)
    assert (t / "f" / "fake.tar.gz").is_file() and (t / "f" / "fake.zst").is_file()


def test_add_tar_breakout_refused(env, tmp_path):
    ctx, t, run = env
    (ctx / "evil.tar").write_bytes(_tar_bytes([("../../../../escape", b"x")]))
    with pytest.raises(CopyError):
        run(["evil.tar"], "/e", is_add=True)
    assert not (tmp_path / "escape").exists() and not Path("/escape").exists()
    assert not [n for n in os.listdir(t / "e") if n.startswith(".dockyard")]
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w") as tf:
        ti = tarfile.TarInfo("l")
        ti.type, ti.linkname = tarfile.SYMTYPE, "../../../../../../tmp"
        tf.addfile(ti)
        ti = tarfile.TarInfo("l/planted")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    (ctx / "evil2.tar").write_bytes(bio.getvalue())
    with pytest.raises(CopyError):
        run(["evil2.tar"], "/e2", is_add=True)
    assert not Path("/tmp/planted").exists()


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@pytest.fixture
def http_dir(tmp_path):
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "file.txt").write_text("remote\n")
    os.utime(root / "file.txt", (1_400_000_000, 1_400_000_000))
    (root / "t.tar").write_bytes(_tar_bytes([("inner", b"i")]))
    srv = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: _Handler(*a, directory=str(root)))
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
        th.join()


def test_add_url(env, http_dir):
    ctx, t, run = env
    r = run([f"{http_dir}/file.txt"], "/u/", is_add=True)
    f = t / "u" / "file.txt"
    assert f.read_text() == "remote\n" and meta(f) == (0o100600, 0, 0)
    assert f.stat().st_mtime == 1_400_000_000                 # Last-Modified
    assert len(r.source_hash) == 64 and ":" not in r.source_hash    # a URL's bare sum
    run([f"{http_dir}/file.txt"], "/named", is_add=True)
    assert (t / "named").read_text() == "remote\n"
    run([f"{http_dir}/t.tar"], "/tt/", is_add=True)             # a remote tar stays a file
    assert (t / "tt" / "t.tar").is_file()
    with pytest.raises(CopyError, match="^ADD failed: cannot determine filename for source "):
        run([f"{http_dir}/sub/"], "/x/", is_add=True)
    with pytest.raises(CopyError) as e:
        run([f"{http_dir}/missing"], "/x", is_add=True)
    assert str(e.value).startswith(f"ADD failed: failed to GET {http_dir}/missing with "
                                   "status 404 File not found: ")  # the server's phrase, as Go


# -- side by side with dockerd ----------------------------------------------------------

STEPS = [
    # (instruction, sources, dest, flags)
    ("COPY", ["a.txt"], "/a", {}),
    ("COPY", ["dir"], "/d", {}),
    ("COPY", ["."], "/all/", {}),
    ("COPY", ["a.txt", "b.txt"], "/m/", {}),
    ("COPY", ["a.txt"], "/c/deep/", {"chown": "1:2"}),
    ("COPY", ["dir"], "/cd", {"chown": "nobody:nogroup"}),
    ("COPY", ["*.txt"], "/w/", {}),
    ("COPY", ["link"], "/l", {}),
    ("COPY", ["link"], "/ld/", {}),
    ("COPY", ["dir"], "/tmp", {}),
    ("COPY", ["/etc/passwd"], "/p", {"from": "busybox"}),
    ("COPY", ["/etc"], "/e", {"from": "busybox"}),
    ("COPY", ["/bin/sh"], "/sh", {"from": "busybox"}),
    ("ADD", ["arch.tgz"], "/x", {"chown": "1:1"}),
    ("ADD", ["a.txt"], "/addfile", {}),
    ("ADD", ["arch2.tar"], "/bin/", {}),
    ("ADD", ["URL/file.txt"], "/url/", {}),
    ("COPY", ["capfile"], "/cap", {}),
    ("COPY", ["capdir"], "/capdir", {}),
    ("COPY", ["/"], "/fromcap/", {"from": "capimg"}),
    ("COPY", ["dir2"], "/dir2", {}),
    ("COPY", ["suid"], "/suid", {}),
    ("COPY", ["suid/s"], "/s1", {}),
    ("COPY", ["suid"], "/suidc", {"chown": "5:5"}),
    ("COPY", ["dir2/abs"], "/viaabs", {}),
    ("COPY", ["/bin"], "/b", {"from": "busybox"}),
    ("COPY", ["/capf"], "/fromcapfile", {"from": "capimg"}),
]

CAP_NET_RAW = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)   # vfs_cap_data v2


def test_against_dockerd(ref_dockerd, busybox_tar, tmp_path, http_dir):
    ctx = ctx_tree(tmp_path / "ctx")
    (ctx / "dir2").mkdir()
    os.symlink("nowhere", ctx / "dir2" / "dangling")   # hashed as its own path, by dockerd
    os.symlink("/a.txt", ctx / "dir2" / "abs")          # resolved inside the context
    os.symlink("../dir", ctx / "dir2" / "up")
    (ctx / "suid" / "sd").mkdir(parents=True)
    for name, mode in (("s", 0o4755), ("g", 0o2775), ("g2", 0o2745), ("sd", 0o2755)):
        if name != "sd":
            (ctx / "suid" / name).write_text(name)
        os.chmod(ctx / "suid" / name, mode)
    for p in (ctx / "capfile", ctx / "capdir" / "f"):
        p.parent.mkdir(exist_ok=True)
        p.write_text("cap")
        os.setxattr(p, "security.capability", CAP_NET_RAW)
    (ctx / "arch.tgz").write_bytes(gzip.compress(_tar_bytes(
        [("top", None), ("top/f", b"d"), ("top/.wh.f2", b"w"), ("top/.wh..wh..opq", b"")])))
    (ctx / "arch2.tar").write_bytes(_tar_bytes([(".wh.cat", b""), (".wh.ls", b"")]))
    lines = ["FROM busybox"]
    for inst, srcs, dest, fl in STEPS:
        flags = "".join(f"--{k}={v} " for k, v in fl.items())
        srcs = [s.replace("URL", http_dir) for s in srcs]
        lines.append(f"{inst} {flags}{' '.join(srcs)} {dest}")
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    ref_dockerd.docker("import", str(busybox_tar), "busybox:latest")
    capimg = tmp_path / "capimg"           # an image whose file has a capability
    capimg.mkdir()
    (capimg / "capf").write_text("c")
    os.utime(capimg / "capf", (1_300_000_000, 1_300_000_000))
    os.setxattr(capimg / "capf", "security.capability", CAP_NET_RAW)
    subprocess.run(["tar", "-C", str(capimg), "--xattrs", "--xattrs-include=*", "-cf",
                    str(tmp_path / "capimg.tar"), "capf"], check=True)
    ref_dockerd.docker("import", str(tmp_path / "capimg.tar"), "capimg")
    env = dict(os.environ, DOCKER_BUILDKIT="0", DOCKER_HOST=ref_dockerd.host,
               DOCKER_CONFIG=str(ref_dockerd.base / "docker-config"))
    b = subprocess.run(["docker", "build", "-q", "-t", "copytest", str(ctx)], env=env,
                       capture_output=True, timeout=300)
    assert b.returncode == 0, b.stderr.decode()
    hist = ref_dockerd.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}",
                              "copytest").stdout.decode().splitlines()
    ref_created = list(reversed(hist))[-len(STEPS):]

    bb = tmp_path / "bb"          # the image dockerd copies from, with the same mtimes
    bb.mkdir()
    subprocess.run(["tar", "-C", str(bb), "--numeric-owner", "-xpf", str(busybox_tar)], check=True)
    target = tmp_path / "ours"   # the FROM image's rootfs, as dockerd's
    target.mkdir()
    subprocess.run(["tar", "-C", str(target), "--numeric-owner", "-xpf", str(busybox_tar)],
                   check=True)
    sums = ContextSums.from_tree(ctx)
    ours = []
    for inst, srcs, dest, fl in STEPS:
        r = copy_sources([s.replace("URL", http_dir) for s in srcs], dest, context=ctx,
                         src_root={"busybox": bb, "capimg": capimg}.get(fl.get("from", "")),
                         target_root=target, workdir="/",
                         is_add=inst == "ADD", chown=fl.get("chown"), chmod=None,
                         passwd_root=target, context_sums=sums)
        ours.append(created_by(r.comment))
    assert ours == ref_created

    # the trees dockerd produced for those paths equal ours
    c = ref_dockerd.docker("create", "copytest", "sh").stdout.decode().strip()
    try:
        exp = tmp_path / "exp"
        exp.mkdir()
        tar = ref_dockerd.docker("export", c).stdout
        subprocess.run(["tar", "-C", str(exp), "--numeric-owner", "--xattrs",
                        "--xattrs-include=security.capability", "-xpf", "-"], input=tar, check=True)
    finally:
        ref_dockerd.docker("rm", "-f", c, check=False)
    top = sorted({d.split("/")[1] for _, _, d, _ in STEPS})

    def listing(root: Path) -> dict[str, tuple]:
        out = {}
        for t in top:
            top_dir = (root / t).is_dir() and not (root / t).is_symlink()
            for p in [root / t, *sorted((root / t).rglob("*"))] if top_dir else [root / t]:
                s = p.lstat()
                rel = str(p.relative_to(root))
                # new directories get "now" as mtime on both sides: compare the rest
                mt = None if p.is_dir() else int(s.st_mtime)
                try:
                    cap = os.getxattr(p, "security.capability", follow_symlinks=False)
                except OSError:
                    cap = b""
                out[rel] = (oct(s.st_mode), s.st_uid, s.st_gid, s.st_size if not p.is_dir() else 0,
                            mt, os.readlink(p) if p.is_symlink() else "", cap)
        return out
    assert listing(target) == listing(exp)
    shutil.rmtree(exp)


ERRORS = [
    "COPY nope /x",
    "ADD nope /x",
    "COPY a.txt b.txt /m",
    "COPY nomatch* /n/",
    "COPY --chown=alice a.txt /x",
    "COPY --chown=root:nogrp a.txt /x",
    "COPY --chmod=755 a.txt /x",
    "COPY ../../a.txt /dots",
    "COPY --from=busybox /nope /x",
    "COPY a.txt/x /y",
    "COPY --from=busybox /etc/passwd/x /y",
    "COPY dir/../../x /y",
    "COPY a.txt /bin/sh/x",
    "COPY dir /etc/passwd",
]


def test_errors_against_dockerd(ref_dockerd, busybox_tar, tmp_path):
    """Each failing step gives dockerd's message (host paths aside: dockerd
    names its own directory where we name the path in the image)."""
    ctx = ctx_tree(tmp_path / "ctx")
    ref_dockerd.docker("import", str(busybox_tar), "busybox:latest")
    bb = tmp_path / "bb"
    bb.mkdir()
    subprocess.run(["tar", "-C", str(bb), "--numeric-owner", "-xpf", str(busybox_tar)], check=True)
    env = dict(os.environ, DOCKER_BUILDKIT="0", DOCKER_HOST=ref_dockerd.host,
               DOCKER_CONFIG=str(ref_dockerd.base / "docker-config"))
    for line in ERRORS:
        (ctx / "Dockerfile").write_text(f"FROM busybox\n{line}\n")
        b = subprocess.run(["docker", "build", "-q", str(ctx)], env=env, capture_output=True,
                           timeout=120)
        assert b.returncode != 0, line
        theirs = b.stderr.decode().strip().splitlines()[-1]
        words = line.split()
        flags = {w[2:].split("=")[0]: w.split("=", 1)[1] for w in words[1:] if w.startswith("--")}
        args = [w for w in words[1:] if not w.startswith("--")]
        target = busybox_rootfs(tmp_path / "t" / str(ERRORS.index(line)))
        with pytest.raises(CopyError) as e:
            copy_sources(args[:-1], args[-1], context=ctx,
                         src_root=bb if "from" in flags else None, target_root=target,
                         workdir="/", is_add=words[0] == "ADD", chown=flags.get("chown"),
                         chmod=flags.get("chmod"), passwd_root=target, allow_chmod=False)
        ours = str(e.value)
        if "/vfs/dir/" in theirs:
            inner = theirs.split("/vfs/dir/", 1)[1].split("/", 1)[1]
            theirs = theirs.split(" /", 1)[0] + " /" + inner
        assert ours == theirs, line


def test_plan_then_apply_downloads_once(env, http_dir, tmp_path):
    """The executor's flow: plan (hash for the cache probe), then apply on a miss;
    an ADD URL is fetched once and its temporary copy goes with the plan."""
    ctx, t, run = env
    calls = []

    def opener(url, timeout):
        calls.append(url)
        import urllib.request
        return urllib.request.urlopen(url, timeout=timeout)
    with plan_copy([f"{http_dir}/file.txt", "a.txt"], "/p/", context=ctx, src_root=None,
                   is_add=True, url_opener=opener) as plan:
        assert plan.comment == f"ADD {plan.source_hash} in /p/ "
        assert plan.source_hash.startswith("multi:")
        r = plan.apply(t, "/", None)
        tmp = plan._tmpdirs[0]
    assert calls == [f"{http_dir}/file.txt"] and not tmp.exists()
    assert r.entries == 2 and (t / "p" / "file.txt").is_file() and (t / "p" / "a.txt").is_file()


class _FakeResponse(io.BytesIO):
    def __init__(self, data: bytes, headers: dict[str, str]) -> None:
        super().__init__(data)
        self.headers = headers


def test_add_url_names_and_times(env):
    """No Last-Modified: the epoch (dockerd's zero time, clamped); no name in the
    path: Content-Disposition's, else `__unnamed__` (only for a file dest)."""
    ctx, t, run = env
    answers = {"http://h/a/": _FakeResponse(b"1", {"Content-Disposition":
                                                   'attachment; filename="cd.bin"'}),
               "http://h/b/": _FakeResponse(b"2", {}),
               "http://h/c/": _FakeResponse(b"3", {})}
    r = run(["http://h/a/"], "/d/", is_add=True, url_opener=lambda u, timeout: answers[u])
    assert (t / "d" / "cd.bin").read_bytes() == b"1" and (t / "d" / "cd.bin").stat().st_mtime == 0
    assert ":" not in r.source_hash
    run(["http://h/b/"], "/unnamed", is_add=True, url_opener=lambda u, timeout: answers[u])
    assert (t / "unnamed").read_bytes() == b"2"
    with pytest.raises(CopyError, match="cannot determine filename for source http://h/c/"):
        run(["http://h/c/"], "/d/", is_add=True, url_opener=lambda u, timeout: answers[u])
