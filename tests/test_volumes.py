"""Volumes and mounts end to end: the volume API and CLI, -v/--mount/--tmpfs/
--volumes-from, image VOLUMEs, copy-up, rm -v, and data that survives
containers and daemon kills. Through the real docker CLI and our own."""

from __future__ import annotations

import json
import os
import signal
import stat

import pytest

from conftest import Daemon, assert_no_mounts_left, busybox_rootfs, make_tar


@pytest.fixture(scope="module")
def vd(tmp_path_factory, busybox_tar):
    base = tmp_path_factory.mktemp("voldaemon")
    d = Daemon(base, "overlay")
    try:
        d.start()
        d.cli("import", "-c", 'CMD ["sh"]', str(busybox_tar), "busybox:latest")
        # an image with content at a VOLUME path, owned by a non-root user
        root = busybox_rootfs(base / "dbroot")
        data = root / "var" / "lib" / "db"
        data.mkdir(parents=True)
        (data / "seed.txt").write_text("seed\n")
        (data / "sub").mkdir()
        (data / "sub" / "x").write_text("x")
        os.symlink("/etc/passwd", data / "link")
        for p in (data, data / "seed.txt", data / "sub", data / "sub" / "x"):
            os.lchown(p, 1000, 1000)
        os.chmod(data, 0o700)
        (root / "afile").write_text("a file\n")
        d.cli("import", "-c", 'CMD ["sh"]', "-c", "VOLUME /var/lib/db",
              str(make_tar(root, base / "db.tar")), "dbimage:latest")
        yield d
    finally:
        try:
            if d.proc:
                for c in d.client().get_json("/containers/json", {"all": 1}):
                    d.client().request("DELETE", f"/containers/{c['Id']}", {"force": 1},
                                       check=False).close()
        finally:
            d.stop()
            assert_no_mounts_left(base)


def dk(d: Daemon, *args: str, check: bool = True):
    r = d.docker(*args, check=check)
    r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
    return r


def api(d: Daemon, method: str, path: str, body=None, query=None):
    r = d.client().request(method, path, query or {}, body=json.dumps(body).encode()
                           if body is not None else None, check=False)
    data = r.read() if r.status not in (204, 304) else b""
    r.close()
    return r.status, (json.loads(data) if data else None)


@pytest.fixture
def clean(vd):
    yield
    for c in vd.client().get_json("/containers/json", {"all": 1}):
        vd.client().request("DELETE", f"/containers/{c['Id']}", {"force": 1, "v": 1},
                            check=False).close()
    for v in vd.client().get_json("/volumes")["Volumes"]:
        vd.client().request("DELETE", f"/volumes/{v['Name']}", {"force": 1},
                            check=False).close()


def test_volume_api_and_cli(vd, clean):
    assert dk(vd, "volume", "create", "--label", "app=x", "data1").stdout == "data1\n"
    assert dk(vd, "volume", "create", "data1").stdout == "data1\n"  # idempotent
    v = json.loads(dk(vd, "volume", "inspect", "data1").stdout)[0]
    assert v["Name"] == "data1" and v["Driver"] == "local" and v["Scope"] == "local"
    assert v["Labels"] == {"app": "x"} and v["Mountpoint"].endswith("/volumes/data1/_data")
    assert os.path.isdir(v["Mountpoint"])
    anon = vd.cli("volume", "create").stdout.decode().strip()
    assert len(anon) == 64
    assert dk(vd, "volume", "ls", "-q", "-f", "label=app=x").stdout == "data1\n"
    assert sorted(dk(vd, "volume", "ls", "-q").stdout.split()) == sorted(["data1", anon])
    for args in (["volume", "ls"], ["volume", "ls", "-f", "name=data"],
                 ["volume", "inspect", "-f", "{{.Name}} {{.Labels}}", "data1"]):
        assert vd.cli(*args).stdout.decode() == dk(vd, *args).stdout, args
    assert api(vd, "POST", "/volumes/create", {"Name": "a/b"}) == (400, {"message": (
        'create a/b: "a/b" includes invalid characters for a local volume name, only '
        '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, '
        "use absolute path")})
    assert api(vd, "GET", "/volumes/nope") == (404, {"message": "get nope: no such volume"})
    cid = dk(vd, "run", "-d", "-v", "data1:/d", "busybox", "sleep", "300").stdout.strip()
    status, body = api(vd, "DELETE", "/volumes/data1")
    assert status == 409 and body["message"] == f"remove data1: volume is in use - [{cid}]"
    assert dk(vd, "volume", "ls", "-q", "-f", "dangling=true").stdout == anon + "\n"
    dk(vd, "rm", "-f", cid)
    out = dk(vd, "volume", "prune", "-f").stdout
    assert "Deleted Volumes:" in out and "data1" in out and anon in out
    assert dk(vd, "volume", "ls", "-q").stdout == ""


def test_named_volume_outlives_containers(vd, clean):
    dk(vd, "run", "--rm", "-v", "keep:/data", "busybox", "sh", "-c", "echo hi > /data/f")
    out = dk(vd, "run", "--rm", "-v", "keep:/data:ro", "busybox", "sh", "-c",
             "cat /data/f; echo x > /data/g", check=False)
    assert out.stdout == "hi\n" and "Read-only file system" in out.stderr
    assert dk(vd, "volume", "ls", "-q").stdout == "keep\n"


def test_anonymous_volumes_and_rm_v(vd, clean):
    cid = dk(vd, "create", "-v", "/scratch", "-v", "named:/n", "busybox", "true").stdout.strip()
    mounts = json.loads(dk(vd, "inspect", cid).stdout)[0]["Mounts"]
    anon = next(m for m in mounts if m["Destination"] == "/scratch")
    assert anon["Type"] == "volume" and len(anon["Name"]) == 64
    assert anon["Driver"] == "local" and anon["RW"] is True and anon["Propagation"] == ""
    dk(vd, "rm", "-v", cid)
    names = dk(vd, "volume", "ls", "-q").stdout.split()
    assert names == ["named"]  # rm -v takes the anonymous one only
    dk(vd, "run", "--rm", "-v", "/tmpvol", "busybox", "true")
    assert dk(vd, "volume", "ls", "-q").stdout.split() == ["named"]


def test_image_volume_copy_up(vd, clean):
    cid = dk(vd, "run", "-d", "dbimage", "sleep", "300").stdout.strip()
    m = json.loads(dk(vd, "inspect", cid).stdout)[0]["Mounts"]
    assert [x["Destination"] for x in m] == ["/var/lib/db"]
    src = m[0]["Source"]
    st = os.lstat(src)
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1000, 1000, 0o700)
    assert open(os.path.join(src, "seed.txt")).read() == "seed\n"
    assert os.readlink(os.path.join(src, "link")) == "/etc/passwd"
    assert os.lstat(os.path.join(src, "sub", "x")).st_uid == 1000
    # a named volume gets the content too, unless nocopy; a non-empty one is left alone
    dk(vd, "run", "--rm", "-v", "filled:/var/lib/db", "dbimage", "true")
    assert dk(vd, "run", "--rm", "-v", "filled:/v", "busybox", "ls", "/v").stdout.split() == [
        "link", "seed.txt", "sub"]
    dk(vd, "run", "--rm", "-v", "empty:/var/lib/db:nocopy", "dbimage", "true")
    assert dk(vd, "run", "--rm", "-v", "empty:/v", "busybox", "ls", "/v").stdout == ""
    dk(vd, "run", "--rm", "-v", "filled:/var/lib/db", "dbimage", "sh", "-c",
       "rm /var/lib/db/seed.txt")
    dk(vd, "run", "--rm", "-v", "filled:/var/lib/db", "dbimage", "true")
    assert "seed.txt" not in dk(vd, "run", "--rm", "-v", "filled:/v", "busybox", "ls",
                                "/v").stdout
    r = dk(vd, "run", "--rm", "-v", "onfile:/afile", "dbimage", "true", check=False)
    assert r.returncode != 0 and "cannot mount volume over existing file" in r.stderr


def test_binds_mount_and_tmpfs(vd, clean, tmp_path):
    host = tmp_path / "h"
    host.mkdir()
    (host / "in").write_text("from host\n")
    missing = tmp_path / "made-by-v"
    out = dk(vd, "run", "--rm", "-v", f"{host}:/h:ro", "-v", f"{missing}:/m",
             "--mount", "type=tmpfs,destination=/t,tmpfs-size=65536,tmpfs-mode=1770",
             "--tmpfs", "/run:size=64k", "busybox", "sh", "-c",
             "cat /h/in; touch /h/x 2>&1; echo > /m/new; grep -E ' /(t|run) ' /proc/mounts")
    assert "from host" in out.stdout and "Read-only file system" in out.stdout
    assert (missing / "new").exists()  # -v made the missing host path
    assert "/t tmpfs" in out.stdout and "size=64k" in out.stdout and "mode=1770" in out.stdout
    r = dk(vd, "run", "--rm", "--mount", f"type=bind,source={tmp_path}/nope,target=/x",
           "busybox", "true", check=False)
    assert r.returncode == 125
    assert (f'invalid mount config for type "bind": bind source path does not exist: '
            f"{tmp_path}/nope") in r.stderr
    cid = dk(vd, "create", "-v", f"{host}:/h:ro", "--mount", "type=volume,src=mv,dst=/mv",
             "busybox", "true").stdout.strip()
    ins = json.loads(dk(vd, "inspect", cid).stdout)[0]
    assert ins["HostConfig"]["Binds"] == [f"{host}:/h:ro"]
    assert ins["HostConfig"]["Mounts"] == [{"Type": "volume", "Source": "mv", "Target": "/mv"}]
    by = {m["Destination"]: m for m in ins["Mounts"]}
    assert by["/h"] == {"Type": "bind", "Source": str(host), "Destination": "/h", "Mode": "ro",
                        "RW": False, "Propagation": "rprivate"}
    assert by["/mv"]["Name"] == "mv" and by["/mv"]["Mode"] == "z"


def test_volumes_from_and_read_only(vd, clean):
    dk(vd, "run", "-d", "--name", "src-c", "-v", "shared:/s", "busybox", "sh", "-c",
       "echo shared > /s/f; sleep 300")
    out = dk(vd, "run", "--rm", "--volumes-from", "src-c:ro", "busybox", "sh", "-c",
             "cat /s/f; touch /s/g", check=False)
    assert out.stdout == "shared\n" and "Read-only file system" in out.stderr
    out = dk(vd, "run", "--rm", "--read-only", "-v", "rw:/w", "busybox", "sh", "-c",
             "touch /w/ok && echo ok; touch /nope", check=False)
    assert out.stdout == "ok\n" and "Read-only file system" in out.stderr


def test_volumes_survive_daemon_kill(vd, clean):
    cid = dk(vd, "run", "-d", "-v", "durable:/d", "busybox", "sh", "-c",
             "echo kept > /d/f; sleep 300").stdout.strip()
    vd.proc.send_signal(signal.SIGKILL)
    vd.proc.wait()
    vd.start()
    assert dk(vd, "volume", "ls", "-q").stdout == "durable\n"
    status, body = api(vd, "DELETE", "/volumes/durable")
    assert status == 409 and cid in body["message"]
    dk(vd, "rm", "-f", cid)
    assert dk(vd, "run", "--rm", "-v", "durable:/d", "busybox", "cat", "/d/f").stdout == "kept\n"


def test_interrupted_copy_up_is_redone(vd, clean):
    """A copy-up cut short by a crash (its marker left beside _data) is redone
    before the volume is used, never left half-copied."""
    dk(vd, "volume", "create", "half")
    path = vd.client().get_json("/volumes/half")["Mountpoint"]
    open(os.path.join(path, "partial"), "w").write("junk")
    open(os.path.join(os.path.dirname(path), ".copyup-incomplete"), "w").close()
    out = dk(vd, "run", "--rm", "-v", "half:/var/lib/db", "dbimage", "ls", "/var/lib/db").stdout
    assert out.split() == ["link", "seed.txt", "sub"]
    assert not os.path.exists(os.path.join(os.path.dirname(path), ".copyup-incomplete"))


def test_mount_targets_stay_inside_the_container(vd, clean, tmp_path):
    """An image whose mount target is a symlink out of its root cannot make a
    volume or a bind land on the host: the target resolves inside the rootfs."""
    victim = tmp_path / "victim"
    victim.mkdir()
    root = busybox_rootfs(tmp_path / "evilroot")
    os.symlink(str(victim), root / "evil")  # absolute: the host's path, were it followed
    vd.cli("import", "-c", 'CMD ["sh"]', str(make_tar(root, tmp_path / "evil.tar")),
           "evil:latest")
    host = tmp_path / "src"
    host.mkdir()
    (host / "marker").write_text("m")
    # The symlink is resolved inside the rootfs: as dockerd does, the missing
    # target is made there and the mount lands on it, never on the host.
    for spec, seen in ((f"{host}:/evil", ["marker"]), ("evilvol:/evil", [])):
        out = dk(vd, "run", "--rm", "-v", spec, "evil", "sh", "-c",
                 f"ls {victim}; echo x > /evil/y").stdout
        assert out.split() == seen  # the mount is at the target's path inside the rootfs
    assert os.listdir(victim) == []  # nothing mounted or written onto the host's directory
    assert (host / "y").read_text() == "x\n"
    # a symlink whose target exists inside the rootfs is followed there, as dockerd does
    (root / "tmp").mkdir(exist_ok=True)
    os.symlink("/tmp", root / "totmp")
    vd.cli("import", "-c", 'CMD ["sh"]', str(make_tar(root, tmp_path / "evil2.tar")),
           "evil2:latest")
    out = dk(vd, "run", "--rm", "-v", f"{host}:/totmp", "evil2", "ls", "/tmp").stdout
    assert "marker" in out.split()


def test_local_driver_options(vd, clean):
    """A volume with type/device/o is mounted at its first user's start and
    unmounted after the last one's exit."""
    r = dk(vd, "volume", "create", "-o", "type=tmpfs", "bad", check=False)
    assert r.returncode != 0 and 'missing required option: "device"' in r.stderr
    dk(vd, "volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m",
       "tv")
    path = vd.client().get_json("/volumes/tv")["Mountpoint"]
    out = dk(vd, "run", "--rm", "-v", "tv:/t", "busybox", "sh", "-c",
             "grep ' /t ' /proc/mounts").stdout
    assert "tmpfs" in out and "size=1024k" in out
    assert not os.path.ismount(path)
    assert vd.client().get_json("/volumes/tv")["Options"] == {
        "type": "tmpfs", "device": "tmpfs", "o": "size=1m"}


def test_system_df_volumes(vd, clean):
    dk(vd, "run", "-d", "-v", "dfvol:/d", "busybox", "sh", "-c",
       "head -c 100000 /dev/zero > /d/f; sleep 300")
    dk(vd, "volume", "create", "idle")
    import time
    for _ in range(50):
        vols = {v["Name"]: v for v in vd.client().get_json("/system/df")["Volumes"]}
        if vols["dfvol"]["UsageData"]["Size"] >= 100000:
            break
        time.sleep(0.1)
    assert vols["dfvol"]["UsageData"]["RefCount"] == 1 and vols["idle"]["UsageData"] == {
        "Size": 0, "RefCount": 0}
    for args in (["system", "df"], ["system", "df", "-v"]):
        ours = vd.cli(*args).stdout.decode()
        theirs = dk(vd, *args).stdout
        pick = (lambda t: [ln for ln in t.splitlines() if "Local Volumes" in ln or
                           ln.startswith(("dfvol", "idle"))])
        assert pick(ours) == pick(theirs), (ours, theirs)


def test_cp_into_and_out_of_volumes_and_binds(vd, clean, tmp_path):
    host = tmp_path / "b"
    host.mkdir()
    src = tmp_path / "in.txt"
    src.write_text("copied in\n")
    cid = dk(vd, "run", "-d", "-v", "cpvol:/data", "-v", f"{host}:/bind",
             "-v", "rovol:/ro:ro", "busybox", "sleep", "300").stdout.strip()
    dk(vd, "cp", str(src), f"{cid}:/data/in.txt")
    dk(vd, "cp", str(src), f"{cid}:/bind/")
    assert dk(vd, "exec", cid, "cat", "/data/in.txt").stdout == "copied in\n"
    assert (host / "in.txt").read_text() == "copied in\n"
    dk(vd, "exec", cid, "sh", "-c", "echo made inside > /data/out.txt")
    dk(vd, "cp", f"{cid}:/data/out.txt", str(tmp_path / "out.txt"))
    assert (tmp_path / "out.txt").read_text() == "made inside\n"
    dk(vd, "cp", f"{cid}:/data", str(tmp_path / "whole"))
    assert sorted(os.listdir(tmp_path / "whole")) == ["in.txt", "out.txt"]
    r = dk(vd, "cp", str(src), f"{cid}:/ro/", check=False)
    assert r.returncode != 0 and "mounted volume is marked read-only" in r.stderr


def test_diff_commit_export_leave_volumes_out(vd, clean, tmp_path):
    import tarfile
    import time

    since = str(int(time.time()) - 1)
    cid = dk(vd, "run", "-d", "-v", "outvol:/data", "busybox", "sh", "-c",
             "echo v > /data/inside; echo r > /outside; sleep 300").stdout.strip()
    for _ in range(50):
        if "/outside" in dk(vd, "diff", cid).stdout:
            break
        time.sleep(0.1)
    diff = dk(vd, "diff", cid).stdout
    assert "A /outside" in diff and "/data/inside" not in diff
    dk(vd, "commit", cid, "committed:1")
    assert dk(vd, "run", "--rm", "committed:1", "ls", "/data").stdout == ""
    out = tmp_path / "export.tar"
    with open(out, "wb") as f:
        f.write(vd.docker("export", cid).stdout)
    names = tarfile.open(out).getnames()
    assert "outside" in names and "data/inside" not in names
    dk(vd, "rm", "-f", cid)
    dk(vd, "volume", "rm", "outvol")
    ev = dk(vd, "events", "--since", since, "--until", str(int(time.time()) + 1), "--filter",
            "type=volume", "--format", "{{.Action}} {{.Actor.ID}}").stdout.splitlines()
    for want in ("create outvol", "mount outvol", "unmount outvol", "destroy outvol"):
        assert want in ev, (want, ev)


def test_concurrent_creates_and_driver_conflict(vd, clean):
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        got = list(ex.map(lambda _: api(vd, "POST", "/volumes/create", {"Name": "race"}),
                          range(16)))
    assert {s for s, _ in got} == {201} and len({b["CreatedAt"] for _, b in got}) == 1
    assert dk(vd, "volume", "ls", "-q").stdout == "race\n"
    status, body = api(vd, "POST", "/volumes/create", {"Name": "race", "Driver": "other"})
    assert status == 404 and 'plugin "other" not found' in body["message"]
