"""`--userns-remap` as dockerd does it: a daemon remapped to a user of this
test's own (`dockyard-test-remap`, created here with subordinate ranges in
/etc/subuid and /etc/subgid, all removed at the end), its data root
<root>/<uid>.<gid>, containers whose root is the range's first ID on the
host (native and runc drivers), files owned accordingly, images that save,
commit and export as a daemon without remapping writes them, --userns=host,
and dockerd's refusals and messages (pinned against dockerd 20.10.24).
On overlay by default; DOCKYARD_USERNS_DRIVERS=overlay,vfs runs vfs too.
"""

from __future__ import annotations

import io
import os
import pwd
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import Daemon, drop_subid_ranges, stop_and_check

from dockyard import idmap

USER = "dockyard-test-remap"
SIZE = 65536
#: Storage drivers the remapped daemon runs on; DOCKYARD_USERNS_DRIVERS=overlay,vfs
#: adds vfs (whose layers are copies of their parents: shifted once only).
DRIVERS = os.environ.get("DOCKYARD_USERNS_DRIVERS", "overlay").split(",")


def open_to_remapped_root(path: Path) -> None:
    """Let the remapped root through every directory above its data root:
    pytest makes its base directories 0700, /tmp/pytest-of-root among them."""
    for p in (path, *path.parents):
        mode = p.stat().st_mode
        if not mode & 0o001:
            p.chmod((mode & 0o7777) | 0o011)


def _drop_user(name: str) -> None:
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["groupdel", name], capture_output=True)
    drop_subid_ranges(name)


def _free_start() -> int:
    """A start past every range in both files (and past dockerd's default)."""
    start = 300000
    for path in (idmap.SUBUID, idmap.SUBGID):
        if os.path.exists(path):
            for s, n in idmap.parse_subid(path, "ALL"):
                start = max(start, s + n)
    return start


@pytest.fixture(scope="module")
def remap_user():
    if not shutil.which("useradd") or not shutil.which("userdel"):
        pytest.skip("useradd/userdel are not installed")
    _drop_user(USER)  # a run killed before its clean-up
    start = _free_start()
    subprocess.run(["useradd", "-r", "-M", "-s", "/bin/false", USER], check=True,
                   capture_output=True)
    try:
        for path in (idmap.SUBUID, idmap.SUBGID):
            with open(path, "a") as f:
                f.write(f"{USER}:{start}:{SIZE}\n")
        yield start
    finally:
        _drop_user(USER)


@pytest.fixture(scope="module", params=DRIVERS)
def rd(tmp_path_factory, remap_user, busybox_tar, request):
    """A daemon with --userns-remap on its own data root, busybox imported."""
    base = tmp_path_factory.mktemp("userns")
    open_to_remapped_root(base)
    d = Daemon(base, request.param, ["--userns-remap", USER])
    try:
        d.start()
        d.client().request("POST", "/images/create", {
            "fromSrc": "-", "repo": "busybox", "tag": "latest", "changes": 'CMD ["sh"]'},
            busybox_tar.read_bytes()).read()
        yield d
    finally:
        stop_and_check(d, base)


def _run(d: Daemon, *args: str) -> str:
    return d.cli("run", "--rm", *args).stdout.decode()


def _rw_layer(d: Daemon, c: dict) -> Path:
    """The container's read-write layer on the host (overlay's upper dir)."""
    data = c["GraphDriver"]["Data"] or {}
    if data.get("UpperDir"):
        return Path(data["UpperDir"])
    return Path(d.client().get_json("/info")["DockerRootDir"]) / d.driver / "dir" / c["Id"]


def _owner(p: str | Path) -> tuple[int, int]:
    st = os.lstat(p)
    return st.st_uid, st.st_gid


def test_data_root_and_info(rd, remap_user):
    s = remap_user
    sub = rd.root / f"{s}.{s}"
    st = os.stat(sub)
    assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o710, 0, s)
    st = os.stat(rd.root)
    assert (st.st_mode & 0o777, st.st_gid) == (0o710, s)
    info = rd.client().get_json("/info")
    assert info["DockerRootDir"] == str(sub)
    assert "name=userns" in info["SecurityOptions"]


def test_container_root_is_the_subordinate_range(rd, remap_user):
    out = _run(rd, "busybox", "sh", "-c", "cat /proc/self/uid_map /proc/self/gid_map; id")
    maps = [ln.split() for ln in out.splitlines()[:2]]
    assert maps == [["0", str(remap_user), str(SIZE)]] * 2
    assert out.splitlines()[2].startswith("uid=0(root) gid=0(root)") or \
        out.splitlines()[2].startswith("uid=0 gid=0")


def test_sysfs_is_the_containers_own(rd):
    """Its network namespace was made outside its user namespace: its sysfs
    is made by the runtime's parent, not the host's /sys bound (as dockerd's
    containers see their own interfaces only)."""
    for driver in ("native", "runc"):
        out = _run(rd, "--runtime", driver, "busybox", "ls", "/sys/class/net")
        assert out.split() == ["lo"]


def test_files_owned_by_remapped_root(rd, remap_user):
    s = remap_user
    api = rd.client()
    out = rd.cli("run", "--name", "owned", "-v", "uvol:/vol", "busybox", "sh", "-c",
                 "touch /vol/f /rwfile; mkdir /newdir; ls -ln /etc/hosts /bin/busybox"
                 ).stdout.decode()
    try:
        # Inside, all of it is root's (the init layer's /etc/hosts included).
        assert "0        0" in out and "65534" not in out
        c = api.get_json("/containers/owned/json")
        vol = api.get_json("/volumes/uvol")
        assert _owner(Path(vol["Mountpoint"]) / "f") == (s, s)
        assert _owner(vol["Mountpoint"]) == (s, s)
        upper = _rw_layer(rd, c)
        assert _owner(upper / "rwfile") == (s, s)
        assert _owner(upper / "newdir") == (s, s)
        lower = (c["GraphDriver"]["Data"] or {}).get("LowerDir")
        image_layer = Path(lower.split(":")[-1]) if lower else upper  # vfs: a copy
        assert _owner(image_layer / "bin" / "busybox") == (s, s)
        assert _owner(image_layer / "bin") == (s, s)
        cdir = rd.root / f"{s}.{s}" / "containers" / c["Id"]
        assert _owner(cdir / "hosts") == (s, s)
        assert _owner(cdir)[1] == s
    finally:
        api.delete_json("/containers/owned", {"force": 1})
        api.delete_json("/volumes/uvol")


def _layer_owners(tar_bytes: bytes) -> dict[str, tuple[int, int]]:
    """Each member's (uid, gid), across every layer of a saved image."""
    out: dict[str, tuple[int, int]] = {}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as outer:
        for m in outer.getmembers():
            if not m.isfile() or m.name.endswith((".json", "oci-layout")):
                continue
            data = outer.extractfile(m).read()
            try:
                inner = tarfile.open(fileobj=io.BytesIO(data))
            except tarfile.TarError:
                continue
            with inner:
                for im in inner.getmembers():
                    out[im.name.lstrip("./")] = (im.uid, im.gid)
    return out


def test_commit_save_export_map_ids_back(rd):
    api = rd.client()
    rd.cli("run", "--name", "tocommit", "busybox", "sh", "-c", "touch /rwfile; mkdir /newdir")
    try:
        api.post_json("/commit", {"container": "tocommit", "repo": "remapped", "tag": "commit"})
        r = api.request("GET", "/images/get", {"names": "remapped:commit"})
        owners = _layer_owners(r.read())
        assert owners["rwfile"] == (0, 0) and owners["newdir"] == (0, 0)
        assert owners["bin/busybox"] == (0, 0)
        exported = api.request("GET", "/containers/tocommit/export").read()
        with tarfile.open(fileobj=io.BytesIO(exported)) as t:
            assert {(m.uid, m.gid) for m in t.getmembers()} == {(0, 0)}
        # The committed image runs like any other: its files are root's inside.
        out = _run(rd, "remapped:commit", "ls", "-ln", "/rwfile")
        assert out.split()[2:4] == ["0", "0"]
    finally:
        api.delete_json("/containers/tocommit", {"force": 1})
        api.delete_json("/images/remapped:commit")


def test_exec_joins_the_user_namespace(rd, remap_user):
    api = rd.client()
    rd.cli("run", "-d", "--name", "execd", "busybox", "sleep", "100")
    try:
        ex = api.post_json("/containers/execd/exec", body={
            "Cmd": ["sh", "-c", "cat /proc/self/uid_map; touch /x; ls -ln /x"],
            "AttachStdout": True, "AttachStderr": True, "Tty": True})
        r = api.request("POST", f"/exec/{ex['Id']}/start", body=b'{"Tty": true}',
                        headers={"Content-Type": "application/json"})
        out = r.read().decode().split()
        assert out[:3] == ["0", str(remap_user), str(SIZE)]
        assert out[5:7] == ["0", "0"]
    finally:
        api.delete_json("/containers/execd", {"force": 1})


def test_cp_into_container_maps_ids(rd, remap_user):
    """`docker cp` in: the tar's owners are the container's IDs (dockerd's
    ToHost); out: the host's, as dockerd 20.10 leaves them."""
    s = remap_user
    api = rd.client()
    rd.cli("run", "--name", "cpd", "busybox", "true")
    try:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for name, uid in (("byroot", 0), ("by1000", 1000)):
                ti = tarfile.TarInfo(name)
                ti.uid = ti.gid = uid
                t.addfile(ti, io.BytesIO(b""))
        api.request("PUT", "/containers/cpd/archive", {"path": "/"}, buf.getvalue()).read()
        upper = _rw_layer(rd, api.get_json("/containers/cpd/json"))
        assert _owner(upper / "byroot") == (s, s)
        assert _owner(upper / "by1000") == (s + 1000, s + 1000)
        out = api.request("GET", "/containers/cpd/archive", {"path": "/by1000"}).read()
        with tarfile.open(fileobj=io.BytesIO(out)) as t:
            assert (t.getmembers()[0].uid, t.getmembers()[0].gid) == (s + 1000, s + 1000)
    finally:
        api.delete_json("/containers/cpd", {"force": 1})


def test_runc_driver(rd, remap_user):
    out = _run(rd, "--runtime", "runc", "busybox", "cat", "/proc/self/uid_map")
    assert out.split() == ["0", str(remap_user), str(SIZE)]


def test_device_is_bound_in_the_user_namespace(rd):
    """--device: mknod is not allowed in a user namespace; the host's node is
    bound instead, as runc does (runc binds the host's node at the container's
    path: a renamed one fails there, in Docker too)."""
    script = ("stat -c %t:%T /dev/net/tun; grep -c ' /dev/net/tun ' /proc/self/mountinfo; "
              "stat -c %t:%T /dev/sub/mynull 2>/dev/null && echo x > /dev/sub/mynull && "
              "grep -c /dev/sub/mynull /proc/self/mountinfo")
    out = _run(rd, "--device", "/dev/net/tun", "--device", "/dev/null:/dev/sub/mynull",
               "busybox", "sh", "-c", script)
    assert out.split() == ["a:c8", "1", "1:3", "1"], out
    out = _run(rd, "--runtime", "runc", "--device", "/dev/net/tun", "busybox", "sh", "-c",
               script + "; true")
    assert out.split() == ["a:c8", "1"], out


def test_userns_host(rd):
    out = _run(rd, "--userns=host", "busybox", "cat", "/proc/self/uid_map")
    assert out.split() == ["0", "0", "4294967295"]
    # dockerd allows the host's namespaces then.
    _run(rd, "--userns=host", "--net=host", "--pid=host", "busybox", "true")


@pytest.mark.parametrize("opt,msg", [
    ("--privileged", "privileged mode is incompatible with user namespaces.  You must run "
                     "the container in the host namespace when running privileged mode"),
    ("--net=host", "cannot share the host's network namespace when user namespaces are "
                   "enabled"),
    ("--pid=host", "cannot share the host PID namespace when user namespaces are enabled"),
])
def test_refusals(rd, opt, msg):
    r = rd.cli("create", opt, "busybox", "true", check=False)
    assert r.returncode != 0
    assert f"Error response from daemon: {msg}" in r.stderr.decode()


def test_cli_rejects_bad_userns_mode(rd):
    r = rd.cli("create", "--userns=foo", "busybox", check=False)
    assert r.returncode == 125 and "--userns: invalid USER mode" in r.stderr.decode()


# --- parsing the option (dockerd's parseRemappedRoot) ------------------------------
def _no_uid() -> int:
    uid = 4_000_000
    while True:
        try:
            pwd.getpwuid(uid)
            uid += 1
        except KeyError:
            return uid


def test_bad_values():
    for value, msg in [
        ("a:b:c", 'Invalid user/group specification in --userns-remap: "a:b:c"'),
        ("dockyard-no-such-user", 'Error during uid lookup for "dockyard-no-such-user": '
                                  'getent unable to find entry "dockyard-no-such-user" in '
                                  "passwd database"),
        ("root:dockyard-no-such-group", 'Error during groupname lookup for '
                                        '"dockyard-no-such-group": getent unable to find '
                                        'entry "dockyard-no-such-group" in group database'),
        (str(_no_uid()), f"Uid {_no_uid()} has no entry in /etc/passwd: getent unable to "
                         f'find entry "{_no_uid()}" in passwd database'),
    ]:
        with pytest.raises(idmap.RemapError) as e:
            idmap.parse_remapped_root(value)
        assert str(e.value) == msg
    assert idmap.parse_remapped_root("0") == ("root", "root")
    assert idmap.setup("root") is None  # dockerd: a warning, and no remapping


def test_user_without_ranges(tmp_path):
    nobody = pwd.getpwuid(65534).pw_name
    if idmap.parse_subid(idmap.SUBUID, nobody) or idmap.parse_subid(idmap.SUBUID, "65534"):
        pytest.skip(f"{nobody} has subordinate uids here")
    with pytest.raises(idmap.RemapError) as e:
        idmap.setup(f"{nobody}:{nobody if _has_group(nobody) else 65534}")
    assert str(e.value) == f'Can\'t create ID mappings: no subuid ranges found for user "{nobody}"'


def _has_group(name: str) -> bool:
    import grp
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_data_root_must_be_reachable(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o700)
    m = idmap.IDMap(((0, 300000, SIZE),), ((0, 300000, SIZE),))
    open_to_remapped_root(tmp_path)
    with pytest.raises(idmap.RemapError) as e:
        idmap.remapped_root(str(locked / "root"), m)
    assert str(e.value) == (
        f"a subdirectory in your graphroot path ({locked}/root/300000.300000) restricts "
        "access to the remapped root uid/gid; please fix by allowing 'o+x' permissions on "
        "existing directories")
    locked.chmod(0o711)
    assert idmap.remapped_root(str(locked / "root"), m) == f"{locked}/root/300000.300000"


def test_option_from_flag_and_file(tmp_path):
    from dockyard.daemon.config import ConfigError, load

    f = tmp_path / "daemon.json"
    f.write_text('{"userns-remap": "default"}')
    assert load({}, str(f)).userns_remap == "default"
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    assert load({"userns-remap": "x:y"}, str(empty)).userns_remap == "x:y"
    with pytest.raises(ConfigError, match="userns-remap: \\(from flag: a, from file: default\\)"):
        load({"userns-remap": "a"}, str(f))


def test_daemon_refuses_bad_value(tmp_path):
    """The daemon stops with dockerd's message (before it opens any store)."""
    import asyncio

    from dockyard.daemon.config import load
    from dockyard.daemon.main import serve

    (tmp_path / "daemon.json").write_text("{}")
    cfg = load({"userns-remap": "a:b:c", "hosts": [f"unix://{tmp_path}/d.sock"],
                "data-root": str(tmp_path / "root"), "exec-root": str(tmp_path / "exec"),
                "pidfile": str(tmp_path / "d.pid")}, str(tmp_path / "daemon.json"))
    with pytest.raises(SystemExit) as e:
        asyncio.run(serve(cfg))
    assert str(e.value) == 'Invalid user/group specification in --userns-remap: "a:b:c"'
    assert not (tmp_path / "root").exists()


def test_default_creates_dockremap(tmp_path):
    """`default`: the dockremap system user and group, and 65536 subordinate
    uids and gids from the first free start at or after 100000 (dockerd's
    AddNamespaceRangesUser); removed again here."""
    if _has_user(idmap.DEFAULT_USER):
        pytest.skip("a dockremap user exists on this host: not touching it")
    if not (shutil.which("adduser") or shutil.which("useradd")) or not shutil.which("usermod"):
        pytest.skip("adduser/useradd and usermod are not installed")
    expect = idmap.next_range_start(idmap.SUBUID) if os.path.exists(idmap.SUBUID) else 100000
    try:
        remap = idmap.setup("default")
        assert remap is not None and remap.setting == "dockremap:dockremap"
        pw = pwd.getpwnam("dockremap")
        assert pw.pw_shell == "/bin/false"
        assert idmap.parse_subid(idmap.SUBUID, "dockremap") == [(expect, SIZE)]
        assert remap.idmap.uids[0] == (0, expect, SIZE)
        # Once made, it is used as it is.
        assert idmap.setup("default").idmap == remap.idmap
    finally:
        _drop_user(idmap.DEFAULT_USER)
    assert not _has_user(idmap.DEFAULT_USER)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
