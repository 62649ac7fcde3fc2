"""Mount requests parsed as dockerd 20.10 parses them (dockyard.volumes.mounts).

Every message below was collected from Debian's dockerd 20.10.24 (API 1.41) answering
POST /containers/create (and /start, for Tmpfs options). The `dockerd` column is the status it
answered; Dockyard raises InvalidParameter (400) for all of them: dockerd's 500s are a bad
Binds entry, a Mounts field of the wrong JSON type, and a bad Tmpfs option (at start).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dockyard.errors import InvalidParameter
from dockyard.volumes.mounts import (
    VALID_VOLUME_NAME,
    MountPoint,
    check_duplicates,
    check_volume_name,
    parse_bind,
    parse_mount,
    parse_tmpfs,
    parse_volumes_from,
    tmpfs_options,
)

FAST = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXISTS, MISSING = "/etc", "/nonexistent/dockyard-mounts-test"
NAME_RULE = ('includes invalid characters for a local volume name, only '
             '"[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
             'directory, use absolute path')


def _has(mp: MountPoint, want: dict[str, Any]) -> None:
    got = {k: getattr(mp, k) for k in want}
    assert got == want


def _raises(fn: Any, arg: Any, message: str) -> None:
    with pytest.raises(InvalidParameter) as e:
        fn(arg)
    assert str(e.value) == message
    assert e.value.status == 400


# --- HostConfig.Binds ---

BIND = dict(type="bind", rw=True, propagation="rprivate", nocopy=False, create_source=True,
            from_mounts=False, spec=None)
VOLUME = dict(type="volume", rw=True, propagation="", nocopy=False, create_source=False,
              volume_driver="local", from_mounts=False)

VALID_BINDS: list[tuple[str, dict[str, Any]]] = [
    ("/d", dict(VOLUME, source="", destination="/d", mode="z")),
    ("/d/", dict(VOLUME, source="", destination="/d", mode="z")),
    ("/a:/b", dict(BIND, source="/a", destination="/b", mode="")),
    ("/a:/b:", dict(BIND, source="/a", destination="/b", mode="")),
    ("/a/:/b/:z", dict(BIND, source="/a", destination="/b", mode="z")),
    ("/tmp//x/../y:/b//c/.", dict(BIND, source="/tmp/y", destination="/b/c", mode="")),
    ("//a:/b", dict(BIND, source="/a", destination="/b", mode="")),  # Go's path.Clean
    ("/a:/b:ro", dict(BIND, source="/a", destination="/b", mode="ro", rw=False)),
    ("/a:/b:ro,rshared", dict(BIND, source="/a", destination="/b", mode="ro,rshared", rw=False,
                              propagation="rshared")),
    ("/a:/b:Z,slave,rw,cached", dict(BIND, source="/a", destination="/b", propagation="slave",
                                     mode="Z,slave,rw,cached")),
    ("/a:\\b", dict(BIND, source="/a", destination="\\b", mode="")),  # checked as "/b", kept
    ("vol1:/b", dict(VOLUME, source="vol1", destination="/b", mode="z")),
    ("vol1:/b:rw", dict(VOLUME, source="vol1", destination="/b", mode="rw")),
    ("vol1:/b:nocopy", dict(VOLUME, source="vol1", destination="/b", mode="nocopy",
                            nocopy=True)),
    ("vol1:/b:ro,nocopy,Z,cached", dict(VOLUME, source="vol1", destination="/b", rw=False,
                                        mode="ro,nocopy,Z,cached", nocopy=True)),
    ("vol1:/b:consistent", dict(VOLUME, source="vol1", destination="/b", mode="consistent")),
    # the local driver refuses these names later (check_volume_name), not the parser
    ("a/b:/b", dict(VOLUME, source="a/b", destination="/b")),
    ("~/x:/b", dict(VOLUME, source="~/x", destination="/b")),
]


@pytest.mark.parametrize("raw,want", VALID_BINDS)
def test_bind(raw: str, want: dict[str, Any]) -> None:
    _has(parse_bind(raw), want)


def test_bind_volume_driver() -> None:
    _has(parse_bind("v1:/b", volume_driver="nfs"), dict(volume_driver="nfs", mode=""))
    _has(parse_bind("v1:/b", volume_driver="local"), dict(volume_driver="local", mode="z"))
    _has(parse_bind("/a:/b", volume_driver="nfs"), dict(type="bind", volume_driver="local"))


IS_ROOT = "invalid specification: destination can't be '/'"
INVALID_BINDS: list[tuple[str, int, str]] = [
    ("", 500, "invalid volume specification: ''"),
    (":", 500, "invalid volume specification: ':'"),
    (":/d", 500, "invalid volume specification: ':/d'"),
    ("/a:/b:c:d", 500, "invalid volume specification: '/a:/b:c:d'"),
    ("/a:/b:ro:", 500, "invalid volume specification: '/a:/b:ro:'"),
    # two fields whose second is a valid mode: a destination with a mode, no source
    ("/d:rw", 500, "invalid volume specification: '/d:rw'"),
    ("/d:ro", 500, "invalid volume specification: '/d:ro'"),
    ("/a:", 500, "invalid volume specification: '/a:'"),
    ("vol1:", 500, "invalid volume specification: 'vol1:'"),
    ("/", 500, "invalid volume specification: '/': invalid mount config for type \"volume\": "
     + IS_ROOT),
    ("/a:/", 500, "invalid volume specification: '/a:/': invalid mount config for type "
     "\"bind\": " + IS_ROOT),
    ("/a:/b/../", 500, "invalid volume specification: '/a:/b/../': invalid mount config for "
     "type \"bind\": " + IS_ROOT),
    ("/a:/b\\..\\", 500, "invalid volume specification: '/a:/b\\..\\': invalid mount config "
     "for type \"bind\": " + IS_ROOT),
    ("d", 500, "invalid volume specification: 'd': invalid mount config for type \"volume\": "
     "invalid mount path: 'd' mount path must be absolute"),
    ("/d:bogus", 500, "invalid volume specification: '/d:bogus': invalid mount config for "
     "type \"bind\": invalid mount path: 'bogus' mount path must be absolute"),
    ("/a:b", 500, "invalid volume specification: '/a:b': invalid mount config for type "
     "\"bind\": invalid mount path: 'b' mount path must be absolute"),
    ("ab:b", 500, "invalid volume specification: 'ab:b': invalid mount config for type "
     "\"volume\": invalid mount path: 'b' mount path must be absolute"),
    ("/a::ro", 500, "invalid volume specification: '/a::ro': invalid mount config for type "
     "\"bind\": field Target must not be empty"),
    ("/a:/b:nocopy", 500, "invalid volume specification: '/a:/b:nocopy': invalid mount config "
     "for type \"bind\": field VolumeOptions must not be specified"),
    ("vol1:/b:rshared", 500, "invalid volume specification: 'vol1:/b:rshared': invalid mount "
     "config for type \"volume\": field BindOptions must not be specified"),
    ("/a:/b:rw,ro", 500, "invalid mode: rw,ro"),
    ("/a:/b:bogus", 500, "invalid mode: bogus"),
    ("/a:/b:z,Z", 500, "invalid mode: z,Z"),
    ("/a:/b:shared,slave", 500, "invalid mode: shared,slave"),
    ("/a:/b:nocopy,nocopy", 500, "invalid mode: nocopy,nocopy"),
    ("/a:/b:copy", 500, "invalid mode: copy"),  # 20.10 knows only "nocopy"
    ("/a:/b:cached,delegated", 500, "invalid mode: cached,delegated"),
    ("/a:/b:ro,", 500, "invalid mode: ro,"),
    ("/a:/b:RO", 500, "invalid mode: RO"),
    ("/a:/b:\\x", 500, "invalid mode: \\x"),
    ("C:\\x:/b", 500, "invalid mode: /b"),
]


@pytest.mark.parametrize("raw,dockerd,message", INVALID_BINDS)
def test_bind_invalid(raw: str, dockerd: int, message: str) -> None:
    _raises(parse_bind, raw, message)


@FAST
@given(st.text(st.sampled_from("/:,.\\ab-_zZ rwoshlavecpindy\x00é")) | st.text())
def test_bind_raises_only_invalid_parameter(raw: str) -> None:
    try:
        mp = parse_bind(raw)
    except InvalidParameter as e:
        assert str(e)
        return
    assert mp.destination.replace("\\", "/").startswith("/") and mp.destination != "/"
    assert mp.type == ("bind" if raw.startswith("/") and ":" in raw else "volume")


# --- HostConfig.Mounts ---

VALID_MOUNTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"Type": "bind", "Source": EXISTS + "/", "Target": "/x/", "Consistency": "bogus",
      "TmpfsOptions": {"SizeBytes": 5}},
     dict(type="bind", source=EXISTS, destination="/x", rw=True, mode="", propagation="rprivate",
          create_source=False, from_mounts=True,
          spec={"Type": "bind", "Source": EXISTS + "/", "Target": "/x/", "Consistency": "bogus",
                "TmpfsOptions": {"SizeBytes": 5}})),
    ({"Type": "bind", "Source": EXISTS, "Target": "/x", "ReadOnly": True,
      "BindOptions": {"NonRecursive": True, "Propagation": "rslave"}},
     dict(rw=False, propagation="rslave", bind_nonrecursive=True,
          spec={"Type": "bind", "Source": EXISTS, "Target": "/x", "ReadOnly": True,
                "BindOptions": {"Propagation": "rslave", "NonRecursive": True}})),
    ({"Type": "bind", "Source": EXISTS, "Target": "/x", "BindOptions": {}, "ReadOnly": False,
      "VolumeOptions": None, "Unknown": 1},
     dict(propagation="rprivate", spec={"Type": "bind", "Source": EXISTS, "Target": "/x",
                                        "BindOptions": {}})),
    ({"Type": "volume", "Target": "/x"},
     dict(type="volume", source="", destination="/x", mode="z", rw=True, propagation="",
          nocopy=False, volume_driver="local", spec={"Type": "volume", "Target": "/x"})),
    ({"Type": "volume", "Source": "v3", "Target": "/x", "ReadOnly": True, "VolumeOptions": {
        "NoCopy": True, "Labels": {"a": "b"},
        "DriverConfig": {"Name": "local", "Options": {"type": "tmpfs", "device": "tmpfs"}}}},
     dict(source="v3", rw=False, nocopy=True, mode="z", volume_labels={"a": "b"},
          volume_driver="local", volume_driver_opts={"type": "tmpfs", "device": "tmpfs"})),
    ({"Type": "volume", "Source": "v4", "Target": "/x",
      "VolumeOptions": {"DriverConfig": {"Name": "nfs"}, "Labels": {"a": None}}},
     dict(volume_driver="nfs", mode="", volume_labels={"a": ""})),
    ({"Type": "volume", "Source": "a/b", "Target": "/x"}, dict(source="a/b")),  # name: later
    ({"Type": "tmpfs", "Target": "/x", "ReadOnly": True,
      "TmpfsOptions": {"SizeBytes": 1048576, "Mode": 493}},
     dict(type="tmpfs", source="", destination="/x", rw=False, mode="", propagation="",
          tmpfs_size=1048576, tmpfs_mode=0o755)),
    ({"Type": "tmpfs", "Target": "/x", "VolumeOptions": {}, "TmpfsOptions": {"SizeBytes": -1}},
     dict(tmpfs_size=-1, tmpfs_mode=None)),  # the kernel refuses it at start
    ({"Type": "tmpfs", "Target": "\\x"}, dict(destination="\\x")),
    # Go's encoding/json: keys match case-insensitively, the last one wins
    ({"type": "volume", "Target": "/x", "TARGET": "/y", "source": "vvv"},
     dict(type="volume", source="vvv", destination="/y",
          spec={"Type": "volume", "Source": "vvv", "Target": "/y"})),
    ({"Type": "bind", "Source": EXISTS, "Target": "/x", "BindOptions": {"propagation": "shared"}},
     dict(propagation="shared")),
    ({"Type": "bind", "Source": EXISTS, "Target": "/x", "target": None}, dict(destination="/x")),
]


@pytest.mark.parametrize("m,want", VALID_MOUNTS)
def test_mount(m: dict[str, Any], want: dict[str, Any]) -> None:
    _has(parse_mount(m), want)


def cfg(typ: str) -> str:
    return f'invalid mount config for type "{typ}": '


def unmarshal(value: str, where: str, typ: str) -> str:
    return f"json: cannot unmarshal {value} into Go struct field {where} of type {typ}"


TMPFS_OPTS = "TmpfsOptions.HostConfig.Mounts.TmpfsOptions"
INVALID_MOUNTS: list[tuple[Any, int, str]] = [
    ({}, 400, cfg("") + "field Target must not be empty"),
    (None, 400, cfg("") + "field Target must not be empty"),
    ({"Target": "/x"}, 400, cfg("") + "mount type unknown"),
    ({"Type": "bogus", "Target": "/x"}, 400, cfg("bogus") + "mount type unknown"),
    ({"Type": "npipe", "Target": "/x"}, 400, cfg("npipe") + "mount type unknown"),
    ({"Type": "BIND", "Target": "/x"}, 400, cfg("BIND") + "mount type unknown"),
    ({"Type": "bind"}, 400, cfg("bind") + "field Target must not be empty"),
    ({"Type": "bind", "Target": "/x"}, 400, cfg("bind") + "field Source must not be empty"),
    ({"Type": "bind", "Source": EXISTS, "Target": "x"}, 400,
     cfg("bind") + "invalid mount path: 'x' mount path must be absolute"),
    ({"Type": "bind", "Source": EXISTS, "Target": "/"}, 400, cfg("bind") + IS_ROOT),
    ({"Type": "bind", "Source": EXISTS, "Target": "/x/.."}, 400, cfg("bind") + IS_ROOT),
    ({"Type": "bind", "Source": "relative", "Target": "/x"}, 400,
     cfg("bind") + "invalid mount path: 'relative' mount path must be absolute"),
    ({"Type": "bind", "Source": MISSING, "Target": "/x"}, 400,
     cfg("bind") + f"bind source path does not exist: {MISSING}"),
    ({"Type": "bind", "Source": EXISTS, "Target": "/x", "VolumeOptions": {}}, 400,
     cfg("bind") + "field VolumeOptions must not be specified"),
    ({"Type": "bind", "Source": EXISTS, "Target": "/x", "BindOptions": {"Propagation": "bogus"},
      "VolumeOptions": {}}, 400, cfg("bind") + "invalid propagation mode: bogus"),
    ({"Type": "volume", "Target": "/x", "BindOptions": {}}, 400,
     cfg("volume") + "field BindOptions must not be specified"),
    ({"Type": "volume", "Target": "/x", "ReadOnly": True}, 400,
     cfg("volume") + "must not set ReadOnly mode when using anonymous volumes"),
    ({"Type": "volume", "Source": "v2", "Target": "rel"}, 400,
     cfg("volume") + "invalid mount path: 'rel' mount path must be absolute"),
    ({"Type": "tmpfs", "Target": "/x", "Source": "foo"}, 400,
     cfg("tmpfs") + "field Source must not be specified"),
    ({"Type": "tmpfs", "Target": "/x", "BindOptions": {}}, 400,
     cfg("tmpfs") + "field BindOptions must not be specified"),
    ({"Type": "tmpfs", "Target": "/"}, 400, cfg("tmpfs") + IS_ROOT),
    ({"Type": "tmpfs", "Target": "/x\\..\\"}, 400, cfg("tmpfs") + IS_ROOT),
    ({"Type": "tmpfs", "Target": "x\\y"}, 400,
     cfg("tmpfs") + "invalid mount path: 'x/y' mount path must be absolute"),
    # decoding: dockerd answers these 500; the first in document order is reported
    ("x", 500, unmarshal("string", "HostConfig.HostConfig.Mounts", "mount.Mount")),
    ({"Type": 5, "Target": "/x"}, 500,
     unmarshal("number", "Mount.HostConfig.Mounts.Type", "mount.Type")),
    ({"Type": "tmpfs", "Target": 5}, 500,
     unmarshal("number", "Mount.HostConfig.Mounts.Target", "string")),
    ({"Type": "tmpfs", "Target": "/x", "ReadOnly": "x", "type": 1}, 500,
     unmarshal("string", "Mount.HostConfig.Mounts.ReadOnly", "bool")),
    ({"Type": "bind", "Target": "/x", "Consistency": 1}, 500,
     unmarshal("number", "Mount.HostConfig.Mounts.Consistency", "mount.Consistency")),
    ({"Type": "bind", "Target": "/x", "BindOptions": "x"}, 500,
     unmarshal("string", "Mount.HostConfig.Mounts.BindOptions", "mount.BindOptions")),
    ({"Type": "bind", "Target": "/x", "BindOptions": {"Propagation": 1}}, 500,
     unmarshal("number", "BindOptions.HostConfig.Mounts.BindOptions.Propagation",
               "mount.Propagation")),
    ({"Type": "bind", "Target": "/x", "BindOptions": {"NonRecursive": 1}}, 500,
     unmarshal("number", "BindOptions.HostConfig.Mounts.BindOptions.NonRecursive", "bool")),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": 1}, 500,
     unmarshal("number", "Mount.HostConfig.Mounts.VolumeOptions", "mount.VolumeOptions")),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": {"NoCopy": "true"}}, 500,
     unmarshal("string", "VolumeOptions.HostConfig.Mounts.VolumeOptions.NoCopy", "bool")),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": {"Labels": "x"}}, 500,
     unmarshal("string", "VolumeOptions.HostConfig.Mounts.VolumeOptions.Labels",
               "map[string]string")),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": {"Labels": {"a": 1}}}, 500,
     unmarshal("number", "VolumeOptions.HostConfig.Mounts.VolumeOptions.Labels", "string")),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": []}}, 500,
     unmarshal("array", "VolumeOptions.HostConfig.Mounts.VolumeOptions.DriverConfig",
               "mount.Driver")),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Name": 1}}}, 500,
     unmarshal("number", "Driver.HostConfig.Mounts.VolumeOptions.DriverConfig.Name", "string")),
    ({"Type": "volume", "Target": "/x", "VolumeOptions": {"DriverConfig": {"Options": {
        "a": True}}}}, 500,
     unmarshal("bool", "Driver.HostConfig.Mounts.VolumeOptions.DriverConfig.Options", "string")),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": []}, 500,
     unmarshal("array", "Mount.HostConfig.Mounts.TmpfsOptions", "mount.TmpfsOptions")),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": "1"}}, 500,
     unmarshal("string", TMPFS_OPTS + ".SizeBytes", "int64")),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": 1.5}}, 500,
     unmarshal("number 1.5", TMPFS_OPTS + ".SizeBytes", "int64")),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"SizeBytes": 99999999999999999999}}, 500,
     unmarshal("number 99999999999999999999", TMPFS_OPTS + ".SizeBytes", "int64")),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Mode": -1}}, 500,
     unmarshal("number -1", TMPFS_OPTS + ".Mode", "fs.FileMode")),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Mode": 4294967296}}, 500,
     unmarshal("number 4294967296", TMPFS_OPTS + ".Mode", "fs.FileMode")),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Mode": True}}, 500,
     unmarshal("bool", TMPFS_OPTS + ".Mode", "fs.FileMode")),
    ({"Type": "tmpfs", "Target": "/x", "TmpfsOptions": {"Mode": "755"}}, 500,
     unmarshal("string", TMPFS_OPTS + ".Mode", "fs.FileMode")),
]


@pytest.mark.parametrize("m,dockerd,message", INVALID_MOUNTS)
def test_mount_invalid(m: Any, dockerd: int, message: str) -> None:
    _raises(parse_mount, m, message)


def test_mount_bind_source_is_checked_now(tmp_path: Any) -> None:
    m = {"Type": "bind", "Source": str(tmp_path / "d"), "Target": "/x"}
    with pytest.raises(InvalidParameter, match="bind source path does not exist"):
        parse_mount(m)
    (tmp_path / "d").mkdir()
    _has(parse_mount(m), dict(source=str(tmp_path / "d"), create_source=False))


# --- HostConfig.Tmpfs and --mount type=tmpfs (as dockerd's OCI spec has them) ---

DEFAULTS = ["noexec", "nosuid", "nodev", "rprivate"]
VALID_TMPFS: list[tuple[str, str, list[str]]] = [
    ("/x", "", DEFAULTS),
    ("/x/", "", DEFAULTS),
    ("/x", "size=1m,mode=1777", DEFAULTS + ["size=1m", "mode=1777"]),
    ("/x", "exec,suid,dev,rw", ["rprivate", "exec", "suid", "dev", "rw"]),
    ("/x", "ro,shared", ["noexec", "nosuid", "nodev", "ro", "shared"]),
    ("/x", "noexec,exec,size=1k,size=2k", ["nosuid", "nodev", "rprivate", "exec", "size=2k"]),
    ("/x", "rw,ro,nosuid,suid", ["noexec", "nodev", "rprivate", "ro", "suid"]),
    ("/x", "defaults,uid=1,gid=2,nr_inodes=10,nr_blocks=5,mpol=default",
     DEFAULTS + ["uid=1", "gid=2", "nr_inodes=10", "nr_blocks=5", "mpol=default"]),
    ("/x", "noatime,atime,nodiratime,diratime", DEFAULTS + ["atime", "diratime"]),
    # dockerd passes these on; runc or the kernel refuse them at start
    ("/x", "=1", DEFAULTS + ["=1"]),
    ("/x", "mode=abc,size=-1", DEFAULTS + ["mode=abc", "size=-1"]),
    ("/x", "rbind", ["noexec", "nosuid", "nodev", "rbind"]),
]


@pytest.mark.parametrize("dest,opts,want", VALID_TMPFS)
def test_tmpfs(dest: str, opts: str, want: list[str]) -> None:
    assert parse_tmpfs(dest, opts) == want


INVALID_TMPFS: list[tuple[str, str, int, str]] = [
    ("/", "", 400, IS_ROOT),
    ("/x/..", "", 400, IS_ROOT),
    ("x", "", 400, "invalid mount path: 'x' mount path must be absolute"),
    ("", "", 400, "invalid mount path: '' mount path must be absolute"),
    # at start, 500; the options are read from the end
    ("/x", "bogus", 500, 'invalid tmpfs option ["bogus"]'),
    ("/x", "bogus=1", 500, 'invalid tmpfs option ["bogus" "1"]'),
    ("/x", "size", 500, 'invalid tmpfs option ["size"]'),
    ("/x", "size=1m,", 500, 'invalid tmpfs option [""]'),
    ("/x", "huge=never", 500, 'invalid tmpfs option ["huge" "never"]'),
    ("/x", "nosymfollow", 500, 'invalid tmpfs option ["nosymfollow"]'),
    ("/x", "Ro", 500, 'invalid tmpfs option ["Ro"]'),
    ("/x", "size=1k,SIZE=2k", 500, 'invalid tmpfs option ["SIZE" "2k"]'),
    ("/x", "a,b", 500, 'invalid tmpfs option ["b"]'),
]


@pytest.mark.parametrize("dest,opts,dockerd,message", INVALID_TMPFS)
def test_tmpfs_invalid(dest: str, opts: str, dockerd: int, message: str) -> None:
    _raises(lambda a: parse_tmpfs(*a), (dest, opts), message)


@pytest.mark.parametrize("rw,size,mode,want", [
    (True, 0, None, DEFAULTS),
    (False, 1048576, 0o755, DEFAULTS + ["ro", "mode=755", "size=1m"]),
    (True, 1000, 0o1777, DEFAULTS + ["mode=1777", "size=1000"]),
    (True, 3 << 30, None, DEFAULTS + ["size=3g"]),
    (True, 1536, None, DEFAULTS + ["size=1536"]),
    (True, 2048, None, DEFAULTS + ["size=2k"]),
    (True, -1, None, DEFAULTS + ["size=-1"]),
    (True, 0, 0xFFFFFFFF, DEFAULTS + ["mode=37777777777"]),
])
def test_tmpfs_options(rw: bool, size: int, mode: int | None, want: list[str]) -> None:
    m: dict[str, Any] = {"Type": "tmpfs", "Target": "/x", "ReadOnly": not rw,
                         "TmpfsOptions": {"SizeBytes": size, "Mode": mode or 0}}
    assert tmpfs_options(parse_mount(m)) == want


# --- VolumesFrom, duplicates, volume names ---

@pytest.mark.parametrize("raw,want", [
    ("src", ("src", "rw")), ("src:ro", ("src", "ro")), ("src:z", ("src", "z")),
    ("src:ro,Z", ("src", "ro,Z")), ("src:", ("src", "")), (":ro", ("", "ro")),
])
def test_volumes_from(raw: str, want: tuple[str, str]) -> None:
    assert parse_volumes_from(raw) == want


@pytest.mark.parametrize("raw,message", [  # all 400
    ("", "volumes-from specification cannot be an empty string"),
    ("src:bogus", "invalid mode: bogus"),
    ("src:rshared", "invalid mode: rshared"),
    ("src:ro,rshared", "invalid mode: ro,rshared"),
    ("src:nocopy", "invalid mode: nocopy"),
    ("src:ro:rw", "invalid mode: ro:rw"),
])
def test_volumes_from_invalid(raw: str, message: str) -> None:
    _raises(parse_volumes_from, raw, message)


@pytest.mark.parametrize("binds,mounts,tmpfs,message", [  # all 400
    (["/a:/b", "/c:/b"], [], {}, "Duplicate mount point: /b"),
    (["/a:/b", "/c:/b/"], [], {}, "Duplicate mount point: /b"),
    (["/a:/b"], [], {"/b": ""}, "Duplicate mount point: /b"),
    (["vol1:/b"], [{"Type": "volume", "Source": "vol2", "Target": "/b"}], {},
     "Duplicate mount point: /b"),
    (["/a:/x"], [{"Type": "tmpfs", "Target": "/x//"}], {}, "Duplicate mount point: /x//"),
    ([], [{"Type": "tmpfs", "Target": "/x"}, {"Type": "tmpfs", "Target": "/x/"}], {},
     "Duplicate mount point: /x/"),
])
def test_duplicates(binds: list[str], mounts: list[dict[str, Any]], tmpfs: dict[str, str],
                    message: str) -> None:
    points = [parse_bind(b) for b in binds] + [parse_mount(m) for m in mounts]
    _raises(lambda p: check_duplicates(p, tmpfs), points, message)


def test_no_duplicates() -> None:
    check_duplicates([parse_bind("/a:/b"), parse_bind("/a:/c")], {"/b/": ""})
    check_duplicates([parse_mount({"Type": "tmpfs", "Target": "/x"})], {"/x": ""})
    check_duplicates([])


@pytest.mark.parametrize("name", ["ab", "v_1", "a.b-c", "00", "A" * 200])
def test_volume_name(name: str) -> None:
    check_volume_name(name)
    assert VALID_VOLUME_NAME.fullmatch(name)


@pytest.mark.parametrize("name,message", [  # 400, after "create <name>: "
    ("a", "volume name is too short, names should be at least two alphanumeric characters"),
    ("a/b", '"a/b" ' + NAME_RULE),
    ("a b", '"a b" ' + NAME_RULE),
    ("-ab", '"-ab" ' + NAME_RULE),
    (".ab", '".ab" ' + NAME_RULE),
    ("~/x", '"~/x" ' + NAME_RULE),
    ("/abs", '"/abs" ' + NAME_RULE),
    ("vol/", '"vol/" ' + NAME_RULE),
    ("", '"" ' + NAME_RULE),
    ("ab\n", '"ab\\n" ' + NAME_RULE),
    ('a"\\\x01é\u200b', '"a\\"\\\\\\x01é\\u200b" ' + NAME_RULE),
])
def test_volume_name_invalid(name: str, message: str) -> None:
    _raises(check_volume_name, name, message)
