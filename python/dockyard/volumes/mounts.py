"""A container's mount requests, parsed and validated as dockerd 20.10 (API 1.41) does.

`HostConfig.Binds` (`-v`), `HostConfig.Mounts` (`--mount`), `HostConfig.Tmpfs` (`--tmpfs`)
and `HostConfig.VolumesFrom` become `MountPoint`s or mount option lists, with dockerd's
error messages verbatim (moby v20.10: volume/mounts/linux_parser.go, validate.go,
daemon/volumes.go, volume/local/local.go, moby/sys mount.MergeTmpfsOptions). Pure: no kernel
calls and no I/O, but the `os.path.exists` of a `--mount` bind source.

Every error is `InvalidParameter` (400). dockerd itself answers 500 for a bad Binds entry,
for a `Mounts` field of the wrong JSON type and (at start, not create) for a bad Tmpfs option;
400 for the rest. tests/test_mounts_parse.py pins each message with dockerd's status.
"""

from __future__ import annotations

import json
import os.path
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from dockyard.errors import InvalidParameter


@dataclass
class MountPoint:
    type: str                 # "bind" | "volume" | "tmpfs"
    source: str               # bind: host path; volume: its name ("" = anonymous); tmpfs: ""
    destination: str          # cleaned as Go's path.Clean (no trailing slash)
    rw: bool
    mode: str                 # Mounts[].Mode: a Binds entry's mode text; "z" for a local volume
    propagation: str          # binds: the given one or "rprivate"; volumes/tmpfs: ""
    nocopy: bool              # volume: no copy-up (`nocopy`, VolumeOptions.NoCopy)
    bind_nonrecursive: bool = False
    create_source: bool = False   # -v (Binds) creates a missing host path; --mount must not
    volume_labels: dict[str, str] = field(default_factory=dict)
    volume_driver: str = "local"
    volume_driver_opts: dict[str, str] = field(default_factory=dict)
    tmpfs_size: int = 0       # bytes, 0 = unlimited
    tmpfs_mode: int | None = None
    from_mounts: bool = False  # came from HostConfig.Mounts (inspect shows those differently)
    spec: dict | None = None  # the HostConfig.Mounts entry as dockerd stores and shows it


VALID_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")  # use with fullmatch
_PROPAGATIONS = ("private", "rprivate", "slave", "rslave", "shared", "rshared")
_MODE_GROUPS = (("rw", "ro"), ("z", "Z"), _PROPAGATIONS, ("nocopy",),  # 20.10: no "copy"
                ("consistent", "cached", "delegated"))


_GO_ESCAPES = dict(zip("\a\b\f\n\r\t\v", (r"\a", r"\b", r"\f", r"\n", r"\r", r"\t", r"\v")))


def _go_quote(s: str) -> str:
    """Go's %q (strconv.Quote) of a string."""
    out = []
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0xD800 <= o < 0xE000:  # Go's JSON decoder made a lone surrogate U+FFFD
            out.append("\ufffd")
        elif ch.isprintable():  # Go's unicode.IsPrint: L, M, N, P, S and the ASCII space
            out.append(ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif o < 0x20 or o == 0x7F:
            out.append(f"\\x{o:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    return '"' + "".join(out) + '"'


def _clean(p: str) -> str:
    """Go's path.Clean (unlike posixpath.normpath, "//a" is "/a")."""
    rooted = p.startswith("/")
    out: list[str] = []
    for seg in p.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(seg)
    s = "/".join(out)
    return "/" + s if rooted else s or "."


def _valid_mode(mode: str) -> bool:
    if mode == "":
        return True
    counts = [0] * len(_MODE_GROUPS)
    for o in mode.split(","):
        i = next((i for i, g in enumerate(_MODE_GROUPS) if o in g), None)
        if i is None:
            return False
        counts[i] += 1
    return max(counts) <= 1


def _has(mode: str, words: Iterable[str]) -> str | None:
    return next((o for o in mode.split(",") if o in words), None)


def _dest_error(target: str) -> str | None:
    """linuxValidateNotRoot then linuxValidateAbsolute (both read `\\` as `/`)."""
    p = target.replace("\\", "/")
    if _clean(p) == "/":
        return "invalid specification: destination can't be '/'"
    if not p.startswith("/"):
        return f"invalid mount path: '{p}' mount path must be absolute"
    return None


def _config_error(cfg: dict[str, Any], check_source: bool) -> str | None:
    """validateMountConfigImpl; the reason, wrapped by the caller."""
    def err(reason: str) -> str:
        return f"invalid mount config for type {_go_quote(cfg.get('Type', ''))}: {reason}"

    target, source, typ = cfg.get("Target", ""), cfg.get("Source", ""), cfg.get("Type", "")
    bind_opts, vol_opts = cfg.get("BindOptions"), cfg.get("VolumeOptions")
    if not target:
        return err("field Target must not be empty")
    if (reason := _dest_error(target)) is not None:
        return err(reason)
    if typ == "bind":
        if not source:
            return err("field Source must not be empty")
        prop = (bind_opts or {}).get("Propagation", "")
        if prop and prop not in _PROPAGATIONS:
            return err(f"invalid propagation mode: {prop}")
        if vol_opts is not None:
            return err("field VolumeOptions must not be specified")
        if not source.replace("\\", "/").startswith("/"):
            return err(f"invalid mount path: '{source.replace(chr(92), '/')}' "
                       "mount path must be absolute")
        if check_source and not os.path.exists(source):
            return err(f"bind source path does not exist: {source}")
    elif typ == "volume":
        if bind_opts is not None:
            return err("field BindOptions must not be specified")
        if not source and cfg.get("ReadOnly"):
            return err("must not set ReadOnly mode when using anonymous volumes")
    elif typ == "tmpfs":
        if bind_opts is not None:
            return err("field BindOptions must not be specified")
        if source:
            return err("field Source must not be specified")
    else:
        return err("mount type unknown")
    return None


def _point(cfg: dict[str, Any], mode: str) -> MountPoint:
    """parseMountSpec, after validation."""
    typ, source = cfg["Type"], cfg.get("Source", "")
    bind_opts, vol_opts = cfg.get("BindOptions") or {}, cfg.get("VolumeOptions") or {}
    tmpfs_opts = cfg.get("TmpfsOptions") or {}
    driver = vol_opts.get("DriverConfig") or {}
    mp = MountPoint(type=typ, source="", destination=_clean(cfg["Target"]),
                    rw=not cfg.get("ReadOnly", False), mode=mode, propagation="", nocopy=False)
    if typ == "bind":
        mp.source = _clean(source)
        mp.propagation = bind_opts.get("Propagation") or "rprivate"
        mp.bind_nonrecursive = bool(bind_opts.get("NonRecursive"))
    elif typ == "volume":
        mp.source = source
        mp.nocopy = bool(vol_opts.get("NoCopy"))
        mp.volume_labels = dict(vol_opts.get("Labels") or {})
        mp.volume_driver = driver.get("Name") or "local"
        mp.volume_driver_opts = dict(driver.get("Options") or {})
        if mp.volume_driver == "local" and not mp.mode:
            # daemon/volumes.go setBindModeIfNull: dockerd shows a local volume's Mode as "z"
            # (a named volume that turns out to have another driver keeps "")
            mp.mode = "z"
    else:
        mp.tmpfs_size = tmpfs_opts.get("SizeBytes", 0)
        mp.tmpfs_mode = tmpfs_opts.get("Mode") or None
    return mp


def parse_bind(raw: str, volume_driver: str = "") -> MountPoint:
    """One HostConfig.Binds entry (`-v`): moby's linuxParser.ParseMountRaw.

    `volume_driver` is HostConfig.VolumeDriver (volumes only). Named volumes' names are
    checked later, by the local driver (`check_volume_name`).
    """
    def invalid_spec() -> InvalidParameter:
        return InvalidParameter(f"invalid volume specification: '{raw}'")

    arr = raw.split(":", 2)
    if raw.count(":") > 2 or arr[0] == "":
        raise invalid_spec()
    mode = ""
    if len(arr) == 1:
        source, target = "", arr[0]
    elif len(arr) == 2:
        if _valid_mode(arr[1]):  # "/foo:rw": a destination and a mode, no source
            raise invalid_spec()
        source, target = arr
    else:
        source, target, mode = arr
    if not _valid_mode(mode):
        raise InvalidParameter(f"invalid mode: {mode}")
    cfg: dict[str, Any] = {"Type": "bind" if source.startswith("/") else "volume",
                           "Source": source, "Target": target, "ReadOnly": "ro" in mode.split(",")}
    vol_opts: dict[str, Any] | None = None
    if volume_driver and cfg["Type"] == "volume":
        vol_opts = {"DriverConfig": {"Name": volume_driver}}
    if _has(mode, ("nocopy",)):
        vol_opts = dict(vol_opts or {}, NoCopy=True)
    cfg["VolumeOptions"] = vol_opts
    if prop := _has(mode, _PROPAGATIONS):
        cfg["BindOptions"] = {"Propagation": prop}
    if (reason := _config_error(cfg, check_source=False)) is not None:
        raise InvalidParameter(f"invalid volume specification: '{raw}': {reason}")
    mp = _point(cfg, mode)
    mp.create_source = mp.type == "bind"
    return mp


# --- HostConfig.Mounts, decoded from JSON as Go's encoding/json fills mount.Mount ---

_STRUCTS: dict[str, tuple[str, dict[str, str]]] = {  # Go type -> (struct name, fields)
    "mount.Mount": ("Mount", {
        "Type": "mount.Type", "Source": "string", "Target": "string", "ReadOnly": "bool",
        "Consistency": "mount.Consistency", "BindOptions": "mount.BindOptions",
        "VolumeOptions": "mount.VolumeOptions", "TmpfsOptions": "mount.TmpfsOptions"}),
    "mount.BindOptions": ("BindOptions", {"Propagation": "mount.Propagation",
                                          "NonRecursive": "bool"}),
    "mount.VolumeOptions": ("VolumeOptions", {"NoCopy": "bool", "Labels": "map[string]string",
                                              "DriverConfig": "mount.Driver"}),
    "mount.Driver": ("Driver", {"Name": "string", "Options": "map[string]string"}),
    "mount.TmpfsOptions": ("TmpfsOptions", {"SizeBytes": "int64", "Mode": "fs.FileMode"}),
}
_STRINGS = ("string", "mount.Type", "mount.Consistency", "mount.Propagation")
_INTS = {"int64": (-(1 << 63), 1 << 63), "fs.FileMode": (0, 1 << 32)}


def _json_kind(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "bool"}.get(type(v), "number")


def _decode_struct(obj: Any, gotype: str, where: tuple[str, str],
                   into: dict[str, Any] | None = None) -> dict[str, Any]:
    """`obj` decoded as a `gotype` struct: keys matched case-insensitively, the last wins,
    null leaves a value as it was (and clears a pointer or map); the first value of the
    wrong JSON type is Go's error. `where` is the (struct, field path) it is found at."""
    name, fields = _STRUCTS[gotype]

    def type_error(value: str, fld: str, t: str, owner: str = name, path: str = "") -> NoReturn:
        raise InvalidParameter(f"json: cannot unmarshal {value} into Go struct field "
                               f"{owner}.{path or where[1]}.{fld} of type {t}")

    if not isinstance(obj, dict):
        type_error(_json_kind(obj), where[1].rsplit(".", 1)[-1], gotype, where[0],
                   where[1].rsplit(".", 1)[0])
    out = into if into is not None else {}
    folded = {f.casefold(): f for f in fields}
    for key, v in obj.items():
        f = key if key in fields else folded.get(key.casefold())
        if f is None:
            continue  # unknown fields are ignored
        t = fields[f]
        if t in _STRUCTS:
            if v is None:
                out.pop(f, None)
            else:
                out[f] = _decode_struct(v, t, (name, f"{where[1]}.{f}"), out.get(f))
        elif v is None:
            if t.startswith("map["):
                out.pop(f, None)
        elif t in _STRINGS:
            if not isinstance(v, str):
                type_error(_json_kind(v), f, t)
            out[f] = v
        elif t == "bool":
            if not isinstance(v, bool):
                type_error(_json_kind(v), f, t)
            out[f] = v
        elif t in _INTS:
            lo, hi = _INTS[t]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                type_error(_json_kind(v), f, t)
            if isinstance(v, float) or not lo <= v < hi:
                type_error(f"number {json.dumps(v)}", f, t)
            out[f] = v
        else:  # map[string]string, merged into a map decoded before
            if not isinstance(v, dict):
                type_error(_json_kind(v), f, t)
            m = out.setdefault(f, {})
            for k, s in v.items():
                if s is not None and not isinstance(s, str):
                    type_error(_json_kind(s), f, "string")
                m[k] = s or ""
    return out


def _go_encode(cfg: dict[str, Any], gotype: str) -> dict[str, Any]:
    """`cfg` re-encoded as Go does (fields in order, `omitempty`; an empty struct stays)."""
    out: dict[str, Any] = {}
    for f, t in _STRUCTS[gotype][1].items():
        v = cfg.get(f)
        if t in _STRUCTS and v is not None:
            out[f] = _go_encode(v, t)
        elif v:
            out[f] = dict(v) if isinstance(v, dict) else v
    return out


def parse_mount(m: dict) -> MountPoint:
    """One HostConfig.Mounts entry (`--mount`): decoded, validated as moby's
    ValidateMountConfig (the bind source must exist), and parsed as ParseMountSpec.
    Volume names are checked later, by the local driver (`check_volume_name`)."""
    cfg = _decode_struct({} if m is None else m, "mount.Mount", ("HostConfig", "HostConfig.Mounts"))
    if (reason := _config_error(cfg, check_source=True)) is not None:
        raise InvalidParameter(reason)
    mp = _point(cfg, "")
    mp.from_mounts, mp.spec = True, _go_encode(cfg, "mount.Mount")
    return mp


# --- tmpfs ---

# moby/sys mount.MergeTmpfsOptions: flags that collide (the later one wins), by group
_TMPFS_FLAGS = {
    **{f: f.removeprefix("no") for f in ("suid", "nosuid", "dev", "nodev", "exec", "noexec",
                                          "atime", "noatime", "diratime", "nodiratime",
                                          "relatime", "norelatime", "strictatime",
                                          "nostrictatime", "mand", "nomand")},
    "ro": "rdonly", "rw": "rdonly", "sync": "sync", "async": "sync", "dirsync": "dirsync",
    "remount": "remount",
    **{f: "propagation" for f in ("bind", "rbind", "unbindable", "runbindable", *_PROPAGATIONS)},
}
_TMPFS_DATA = ("", "size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol")
_TMPFS_DEFAULTS = ["noexec", "nosuid", "nodev", "rprivate"]  # daemon/oci_linux.go


def _merge_tmpfs(options: list[str]) -> list[str]:
    """MergeTmpfsOptions: read from the end, the first of each flag group or data key kept."""
    seen: set[str] = set()
    out: list[str] = []
    for o in reversed(options):
        if o == "defaults":
            continue
        key = _TMPFS_FLAGS.get(o)
        if key is None:
            kv = o.split("=", 1)
            if len(kv) != 2 or kv[0] not in _TMPFS_DATA:
                raise InvalidParameter(f"invalid tmpfs option [{' '.join(map(_go_quote, kv))}]")
            key = "=" + kv[0]
        if key not in seen:
            seen.add(key)
            out.insert(0, o)
    return out


def parse_tmpfs(destination: str, options: str) -> list[str]:
    """One HostConfig.Tmpfs entry -> the runtime's mount options: dockerd's defaults
    (noexec,nosuid,nodev,rprivate) then the user's, the later of two alike winning.
    The destination is used as given (dockerd does not clean it). dockerd checks these
    options only at start (500); "mode=abc" or "size=-1" it leaves to the kernel."""
    if (reason := _dest_error(destination)) is not None:
        raise InvalidParameter(reason)
    return _merge_tmpfs(_TMPFS_DEFAULTS + (options.split(",") if options else []))


def tmpfs_options(mp: MountPoint) -> list[str]:
    """A `--mount type=tmpfs` point's options: ConvertTmpfsOptions (ro, mode=%o,
    size=N[kmg] when it divides evenly) after the same defaults as parse_tmpfs."""
    opts = [] if mp.rw else ["ro"]
    if mp.tmpfs_mode:
        opts.append(f"mode={mp.tmpfs_mode:o}")
    if size := mp.tmpfs_size:
        suffix = ""
        for s, div in (("g", 1 << 30), ("m", 1 << 20), ("k", 1 << 10)):
            if size % div == 0:
                size, suffix = size // div, s
                break
        opts.append(f"size={size}{suffix}")
    return _merge_tmpfs(_TMPFS_DEFAULTS + opts)


# --- the rest ---

def parse_volumes_from(raw: str) -> tuple[str, str]:
    """One HostConfig.VolumesFrom entry, "ctr[:mode]" -> (container, mode); the mode is "rw"
    when absent ("" when given empty, as 20.10 does); no propagation or copy modes."""
    if raw == "":
        raise InvalidParameter("volumes-from specification cannot be an empty string")
    ctr, sep, mode = raw.partition(":")
    if not sep:
        return ctr, "rw"
    if not _valid_mode(mode) or _has(mode, _PROPAGATIONS) or _has(mode, ("nocopy",)):
        raise InvalidParameter(f"invalid mode: {mode}")
    return ctr, mode


def check_duplicates(points: list[MountPoint], tmpfs: Iterable[str] = ()) -> None:
    """dockerd's "Duplicate mount point" among Binds then Mounts points (daemon/volumes.go
    registerMountPoints): a Mounts entry is named by its Target as given, a Binds one by its
    cleaned destination, which also must not be a HostConfig.Tmpfs key (`tmpfs`)."""
    seen: set[str] = set()
    tmpfs = set(tmpfs)
    for p in points:
        if p.destination in seen or (not p.from_mounts and p.destination in tmpfs):
            name = (p.spec or {}).get("Target", p.destination) if p.from_mounts else p.destination
            raise InvalidParameter(f"Duplicate mount point: {name}")
        seen.add(p.destination)


def check_volume_name(name: str) -> None:
    """The local driver's rule for a volume's name. dockerd's volume service prefixes its
    message with "create <name>: " (400)."""
    if len(name) == 1:
        raise InvalidParameter("volume name is too short, names should be at least two "
                               "alphanumeric characters")
    if not VALID_VOLUME_NAME.fullmatch(name):
        raise InvalidParameter(f"{_go_quote(name)} includes invalid characters for a local "
                               'volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. '
                               "If you intended to pass a host directory, use absolute path")
