"""Docker's log drivers as the daemon handles them: the `HostConfig.LogConfig`
a container gets at create (the daemon's default filled in, options checked
with dockerd's messages), and what its shim is told at start (the driver and
its options resolved: sizes in bytes, the tag, journald's fields, the
syslog priority). The shim writes; `logs.py` reads back what can be read.

Drivers: json-file, local, none, journald, syslog, and `cri` (not dockerd's:
kubelet's CRI log format at the file named by its `path` option, for the CRI
endpoint and for anyone who wants that file; see the shim's log/cri.rs).
journald and syslog also keep a `local` cache (`<container>/container-cached.log`)
unless `cache-disabled=true`, as dockerd 20.10's "dual logging" does, and
`docker logs` reads that (dockerd reads journald from the journal itself).
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

from ..errors import DockyardError, InvalidParameter
from .process import StartError

DRIVERS = ("cri", "journald", "json-file", "local", "none", "syslog")
DEFAULT = {"Type": "json-file", "Config": {}}
#: Options any driver takes (dockerd's built-in and log-cache options).
BUILTIN = {"mode", "max-buffer-size", "cache-disabled", "cache-max-size", "cache-max-file",
           "cache-compress"}
ATTRS = ("labels", "labels-regex", "env", "env-regex")
KEYS: dict[str, set[str]] = {
    "cri": {"path", "max-line"},
    "json-file": {"max-file", "max-size", "compress", "tag", *ATTRS},
    "local": {"max-file", "max-size", "compress"},
    "journald": {"tag", *ATTRS},
    "syslog": {"syslog-address", "syslog-facility", "syslog-tls-ca-cert", "syslog-tls-cert",
               "syslog-tls-key", "syslog-tls-skip-verify", "syslog-format", "tag", *ATTRS},
}
#: Drivers whose output the shim also caches for `docker logs`.
CACHED = ("journald", "syslog")
FACILITIES = {"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6,
              "news": 7, "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
              **{f"local{i}": 16 + i for i in range(8)}}
SYSLOG_FORMATS = ("", "rfc3164", "rfc5424", "rfc5424micro")
#: The journal's socket; the daemon's environment may name another (tests do:
#: nothing in the API can).
JOURNAL_SOCKET_ENV = "DOCKYARD_JOURNAL_SOCKET"


class ReadNotSupported(DockyardError):
    status = 501

    def __init__(self) -> None:
        super().__init__("configured logging driver does not support reading")


class ReopenNotSupported(DockyardError):
    """The container's log driver writes no file that can be reopened (all
    but cri: json-file and local rotate their own files)."""

    status = 501

    def __init__(self, driver: str) -> None:
        super().__init__(f"the {driver} logging driver does not support reopening its log; "
                         "only cri does")


class LogInitError(StartError):
    """The driver can't start with these options (dockerd: at start, 500,
    the container's ExitCode 128)."""

    PREFIX = "failed to initialize logging driver: "
    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(self.PREFIX + message, 128)


# --- create ---------------------------------------------------------------------------
def resolve(lc: dict[str, Any] | None, default: dict[str, Any]) -> dict[str, Any]:
    """dockerd's mergeAndVerifyLogConfig: no type is the daemon's, whose
    options fill in the ones not given; then the options are checked."""
    lc = dict(lc or {})
    typ = lc.get("Type") or default["Type"]
    cfg = {str(k): str(v) for k, v in (lc.get("Config") or {}).items()}
    dcfg = default.get("Config") or {}
    for k, v in dcfg.items():
        if (typ == default["Type"] or k in BUILTIN - {"mode", "max-buffer-size"}) \
                and k not in cfg:
            cfg[k] = v
    validate(typ, cfg)
    return {"Type": typ, "Config": cfg}


def validate(typ: str, cfg: dict[str, str]) -> None:
    """dockerd's ValidateLogOpts, with its messages."""
    if typ == "none":
        return
    mode = cfg.get("mode", "")
    if mode not in ("", "blocking", "non-blocking"):
        raise InvalidParameter(f"logger: logging mode not supported: {mode}")
    if "max-buffer-size" in cfg:
        if mode != "non-blocking":
            raise InvalidParameter("logger: max-buffer-size option is only supported with "
                                   "'mode=non-blocking'")
        try:
            ram_in_bytes(cfg["max-buffer-size"])
        except ValueError as e:
            raise InvalidParameter(f"error parsing option max-buffer-size: {e}") from None
    if cfg.get("cache-disabled", "") != "" and parse_bool(cfg["cache-disabled"]) is None:
        raise InvalidParameter(f"invalid value for option cache-disabled: "
                               f"{cfg['cache-disabled']}")
    if typ not in DRIVERS:
        raise InvalidParameter(f'error looking up logging plugin {typ}: plugin "{typ}" not found')
    for k in cfg:
        if k not in BUILTIN and k not in KEYS[typ]:
            raise InvalidParameter(f"unknown log opt '{k}' for json-file log driver"
                                   if typ == "json-file" else
                                   f"unknown log opt '{k}' for {typ} log driver"
                                   if typ in ("journald", "syslog") else
                                   f"unknown log opt '{k}' for log driver {typ}")
    if typ == "cri":
        cri_options(cfg)
    if typ == "syslog":
        try:
            syslog_address(cfg.get("syslog-address", ""))
            syslog_priority(cfg.get("syslog-facility", ""))
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        if cfg.get("syslog-format", "") not in SYSLOG_FORMATS:
            raise InvalidParameter("Invalid syslog format")


def cri_options(cfg: dict[str, str]) -> tuple[str, int]:
    """The cri driver's file and longest record (containerd's
    max_container_log_line_size, 16 KiB by default; a size as in max-size,
    binary: 16k = 16384)."""
    path = cfg.get("path", "")
    if not path:
        raise InvalidParameter("missing log opt 'path' for log driver cri: the file to write")
    if not os.path.isabs(path):
        raise InvalidParameter(f"invalid value for log opt 'path' for log driver cri: {path}: "
                               "not an absolute path")
    if os.path.isdir(path):
        raise InvalidParameter(f"invalid value for log opt 'path' for log driver cri: {path}: "
                               "is a directory")
    max_line = 16 * 1024
    if "max-line" in cfg:
        try:
            max_line = ram_in_bytes(cfg["max-line"])
        except ValueError as e:
            raise InvalidParameter(f"invalid value for log opt 'max-line' for log driver cri: "
                                   f"{e}") from None
        if max_line <= 0:
            raise InvalidParameter("invalid value for log opt 'max-line' for log driver cri: "
                                   "must be a positive size")
    return path, max_line


def validate_default(typ: str, cfg: dict[str, str]) -> None:
    """The daemon's --log-driver/--log-opt at start (dockerd checks them only
    when options are given; an unknown driver alone fails each create)."""
    if cfg:
        try:
            validate(typ, cfg)
        except InvalidParameter as e:
            raise InvalidParameter(f"failed to set log opts: {e}") from None


# --- values ---------------------------------------------------------------------------
def parse_bool(s: str) -> bool | None:
    """Go's strconv.ParseBool; None when it fails."""
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


def _size(s: str, base: int) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?", s)
    if not m:
        raise ValueError(f"invalid size: '{s}'")
    mult = base ** ("kmgtp".index(m.group(2).lower()) + 1) if m.group(2) else 1
    return int(float(m.group(1)) * mult)


def from_human_size(s: str) -> int:
    """go-units FromHumanSize: decimal (1k = 1000), as json-file and local read max-size."""
    return _size(s, 1000)


def ram_in_bytes(s: str) -> int:
    """go-units RAMInBytes: binary (1k = 1024)."""
    return _size(s, 1024)


def atoi(s: str) -> int:
    if not re.fullmatch(r"[+-]?\d+", s):
        raise ValueError(f'strconv.Atoi: parsing "{s}": invalid syntax')
    return int(s)


def syslog_address(addr: str) -> tuple[str, str]:
    """dockerd's parseAddress: (proto, address); unix sockets must exist."""
    if not addr:
        return "", ""
    proto, sep, rest = addr.partition("://")
    if not sep or proto not in ("tcp", "udp", "unix", "unixgram", "tcp+tls"):
        raise ValueError(f"syslog-address should be in form proto://address, got {addr}")
    if proto in ("unix", "unixgram"):
        path = "/" + rest.split("/", 1)[1] if "/" in rest else ""
        try:
            os.stat(path)
        except OSError as e:
            raise ValueError(f"stat {path}: {(e.strerror or '').lower()}") from None
        return proto, path
    host = rest.split("/", 1)[0]
    if not re.search(r":\d*$", host) or host.endswith("]"):
        host += ":514"
    return proto, host


def resolve_inet(proto: str, hostport: str) -> str:
    """`host:port` with the host resolved here: the static shim can't use NSS."""
    host, _, port = hostport.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM
                                   if proto == "tcp" else socket.SOCK_DGRAM)
    except (OSError, ValueError) as e:
        raise ValueError(f"dial {proto} {hostport}: {e}") from None
    ip = infos[0][4][0]
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def syslog_priority(facility: str) -> int:
    """The facility shifted into the priority (daemon by default)."""
    if not facility:
        return FACILITIES["daemon"] << 3
    if facility in FACILITIES:
        return FACILITIES[facility] << 3
    if re.fullmatch(r"\d+", facility) and 0 <= int(facility) <= 23:
        return int(facility) << 3
    raise ValueError("invalid syslog facility")


# --- start ----------------------------------------------------------------------------
def short_id(i: str) -> str:
    return i.split(":", 1)[-1][:12]


def tag(template: str, info: dict[str, str]) -> str:
    """The `tag` option: a Go template over dockerd's logger.Info
    ({{.ID}}, {{.FullID}}, {{.Name}}, {{.ImageID}}, {{.ImageFullID}},
    {{.ImageName}}, {{.DaemonName}}, {{.Command}})."""
    def field(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in info:
            raise LogInitError(f'template: log-tag:1:{m.start() + 3}: executing "log-tag" at '
                               f"<.{name}>: can't evaluate field {name} in type *logger.Info")
        return info[name]
    return re.sub(r"\{\{-?\s*\.(\w+)\s*-?\}\}", field, template or "{{.ID}}")


def extra_attributes(cfg: dict[str, str], labels: dict[str, str], env: list[str],
                     key: Any = None) -> dict[str, str]:
    """dockerd's Info.ExtraAttributes: labels and env variables named by the options."""
    out: dict[str, str] = {}
    envmap = dict(e.split("=", 1) for e in env if "=" in e)
    k = key or (lambda x: x)
    for name in filter(None, cfg.get("labels", "").split(",")):
        if name in labels:
            out[k(name)] = labels[name]
    if cfg.get("labels-regex"):
        for n, v in labels.items():
            if re.search(cfg["labels-regex"], n):
                out[k(n)] = v
    for name in filter(None, cfg.get("env", "").split(",")):
        if name in envmap:
            out[k(name)] = envmap[name]
    if cfg.get("env-regex"):
        for n, v in envmap.items():
            if re.search(cfg["env-regex"], n):
                out[k(n)] = v
    return out


def journal_key(s: str) -> str:
    """dockerd's sanitizeKeyMod: A-Z0-9_ only, no leading underscore."""
    out = ""
    for ch in s:
        ch = ch.upper() if "a" <= ch <= "z" else ch
        if not ("A" <= ch <= "Z" or "0" <= ch <= "9"):
            ch = "_"
        if not (out == "" and ch == "_"):
            out += ch
    return out


def shim_options(lc: dict[str, Any], cdir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """What the shim is given for LogConfig `lc`: `spawn_shim`'s keyword
    arguments (log_path, log_max_size, log_max_file, log_driver, log_opts).
    `info`: the container's id, name, image, image_id, command, labels, env.
    Raises LogInitError with dockerd's cause."""
    typ, cfg = lc.get("Type") or "json-file", dict(lc.get("Config") or {})
    names = {"ID": short_id(info["id"]), "FullID": info["id"],
             "Name": info["name"].lstrip("/"), "ImageID": short_id(info["image_id"]),
             "ImageFullID": info["image_id"], "ImageName": info["image"],
             "DaemonName": "docker", "Command": info["command"]}
    opts: list[str] = []
    out: dict[str, Any] = {"log_driver": typ, "log_opts": opts, "log_path": None,
                           "log_max_size": 0, "log_max_file": 1}
    try:
        if typ == "json-file":
            size = from_human_size(cfg["max-size"]) if "max-size" in cfg else -1
            if "max-size" in cfg and size <= 0:
                raise ValueError("max-size must be a positive number")
            files = atoi(cfg["max-file"]) if "max-file" in cfg else 1
            if files < 1:
                raise ValueError("max-file cannot be less than 1")
            compress = _bool(cfg, "compress", "strconv.ParseBool", False)
            if compress and (files == 1 or size == -1):
                raise ValueError("compress cannot be true when max-file is less than 2 or "
                                 "max-size is not set")
            attrs = extra_attributes(cfg, info["labels"], info["env"])
            if "tag" in cfg:
                attrs["tag"] = tag(cfg["tag"], names)
            out.update(log_path=str(cdir / f"{info['id']}-json.log"),
                       log_max_size=max(size, 0), log_max_file=files)
            opts.append(f"compress={str(compress).lower()}")
            if attrs:
                opts.append("attrs=" + json.dumps(dict(sorted(attrs.items())),
                                                  separators=(",", ":")))
        elif typ == "local":
            size = 20 * 1024 * 1024
            if "max-size" in cfg:
                try:
                    size = from_human_size(cfg["max-size"])
                except ValueError as e:
                    raise ValueError(f"invalid value for max-size: {cfg['max-size']}: {e}") \
                        from None
            files = 5
            if "max-file" in cfg:
                try:
                    files = atoi(cfg["max-file"])
                except ValueError as e:
                    raise ValueError(f"invalid value for max-file: {cfg['max-file']}: {e}") \
                        from None
            compress = _bool(cfg, "compress", "error reading compress log option: "
                             "strconv.ParseBool", True)
            if size < 0:
                raise ValueError("max size should be a positive number")
            if files < 0:
                raise ValueError("max file count cannot be less than 0")
            if compress and files <= 1:
                raise ValueError("compression cannot be enabled when max file count is 1")
            out.update(log_path=str(local_path(cdir)), log_max_size=size, log_max_file=files)
            opts.append(f"compress={str(compress).lower()}")
        elif typ == "cri":
            try:
                path, max_line = cri_options(cfg)
            except InvalidParameter as e:
                raise ValueError(str(e)) from None
            out["log_path"] = path
            opts.append(f"max-line={max_line}")
        elif typ == "journald":
            t = tag(cfg.get("tag", ""), names)
            fields = {"CONTAINER_ID": names["ID"], "CONTAINER_ID_FULL": info["id"],
                      "CONTAINER_NAME": names["Name"], "CONTAINER_TAG": t,
                      "IMAGE_NAME": info["image"], "SYSLOG_IDENTIFIER": t}
            fields.update(extra_attributes(cfg, info["labels"], info["env"], journal_key))
            opts.append("socket=" + os.environ.get(JOURNAL_SOCKET_ENV,
                                                   "/run/systemd/journal/socket"))
            opts += [f"field={k}={v}" for k, v in fields.items()]
        elif typ == "syslog":
            proto, addr = syslog_address(cfg.get("syslog-address", ""))
            opts += [f"facility={syslog_priority(cfg.get('syslog-facility', ''))}",
                     f"format={cfg.get('syslog-format', '')}",
                     f"tag={tag(cfg.get('tag', ''), names)}"]
            if proto in ("tcp", "udp"):
                addr = resolve_inet(proto, addr)
            if proto:
                opts.append(f"address={proto}://{addr}")
    except ValueError as e:
        raise LogInitError(str(e)) from None
    if typ in CACHED and not parse_bool(cfg.get("cache-disabled", "") or "false"):
        opts.append(f"cache={cache_path(cdir)}")
        for k in ("cache-max-size", "cache-max-file", "cache-compress"):
            if k in cfg:
                v = cfg[k]
                try:
                    v = str(from_human_size(v)) if k == "cache-max-size" else \
                        str(atoi(v)) if k == "cache-max-file" else \
                        str(_bool(cfg, k, "strconv.ParseBool", True)).lower()
                except ValueError as e:
                    raise LogInitError(f"error initializing local log cache driver: {e}") \
                        from None
                opts.append(f"{k}={v}")
    if out["log_path"] and typ != "cri":  # cri: the shim makes the path's directories
        Path(out["log_path"]).parent.mkdir(mode=0o700, exist_ok=True)
    return out


def _bool(cfg: dict[str, str], key: str, what: str, default: bool) -> bool:
    if key not in cfg:
        return default
    b = parse_bool(cfg[key])
    if b is None:
        raise ValueError(f'{what}: parsing "{cfg[key]}": invalid syntax')
    return b


# --- reading back ---------------------------------------------------------------------
def local_path(cdir: Path) -> Path:
    """dockerd's place for the local driver's file (not shown as LogPath)."""
    return cdir / "local-logs" / "container.log"


def cache_path(cdir: Path) -> Path:
    return cdir / "container-cached.log"


def readable(lc: dict[str, Any], cid: str, cdir: Path) -> tuple[Path, str]:
    """The file `docker logs` reads for LogConfig `lc` and its format
    ("json-file", "local" or "cri"); ReadNotSupported where there is none."""
    typ = lc.get("Type") or "json-file"
    if typ == "cri":
        return Path((lc.get("Config") or {}).get("path", "")), "cri"
    if typ == "json-file":
        return cdir / f"{cid}-json.log", "json-file"
    if typ == "local":
        return local_path(cdir), "local"
    cfg = lc.get("Config") or {}
    if typ in CACHED and not parse_bool(cfg.get("cache-disabled", "") or "false"):
        return cache_path(cdir), "local"
    raise ReadNotSupported()
