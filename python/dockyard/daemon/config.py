"""The daemon's configuration: `DaemonConfig`, built from the command line and
`daemon.json` (`--config-file`) under dockerd's key names and rules: an unknown
key is an error, and so is an option set both by a flag and in the file.

Flags reach `load` already in the file's shape (`{"hosts": [...], "debug": True}`),
so one table converts and checks both, and a SIGHUP reload can redo the merge
with the same flags (`DaemonConfig.flags`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable

from ..rootless import rootless_uid, user_paths

log = logging.getLogger("dockyard.daemon")

DEFAULT_CONFIG_FILE = "/etc/dockyard/daemon.json"
DEFAULT_HOST = "unix:///var/run/dockyard.sock"
USERNS_REMAP_ROOTLESS = ("failed to start daemon: --userns-remap is not supported in rootless "
                         "mode: the daemon already runs in a user namespace of its own")
LOG_LEVELS = ("debug", "info", "warn", "warning", "error", "fatal", "panic")

#: What a SIGHUP changes in a running daemon (dockerd's reloadable subset).
RELOADABLE = ("debug", "log_level", "labels", "insecure_registries",
              "max_concurrent_downloads", "max_concurrent_uploads", "max_download_attempts")


class ConfigError(Exception):
    """A configuration the daemon refuses; the message is what the user sees."""


@dataclass
class DaemonConfig:
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_HOST])
    group: str = "dockyard"
    data_root: str = "/var/lib/dockyard"
    exec_root: str = "/var/run/dockyard"
    pidfile: str = "/var/run/dockyard.pid"
    storage_driver: str | None = None
    storage_opts: dict[str, str] = field(default_factory=dict)
    debug: bool = False
    log_level: str = "info"
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str | None = None
    tlscert: str | None = None
    tlskey: str | None = None
    insecure_tcp: bool = False
    authorization_plugins: list[str] = field(default_factory=list)
    default_ulimits: list[dict[str, Any]] = field(default_factory=list)
    exec_opts: dict[str, str] = field(default_factory=dict)
    cgroup_driver: str = "cgroupfs"
    exec_driver: str = "native"  # Dockyard's own: native, or runc from OCI bundles
    insecure_registries: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    max_concurrent_downloads: int = 3
    max_concurrent_uploads: int = 5
    max_download_attempts: int = 3  # dockerd's default is 5; each retry waits longer
    selinux_enabled: bool = False
    # networking (dockerd's names; the default bridge is Dockyard's own dockyard0)
    bridge: str = "dockyard0"
    bip: str | None = None
    fixed_cidr: str | None = None
    default_address_pools: list[dict[str, Any]] = field(default_factory=list)
    icc: bool = True
    ip: str = "0.0.0.0"
    ip_forward: bool = True
    ip_masq: bool = True
    iptables: bool = True
    mtu: int = 1500
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opts: list[str] = field(default_factory=list)
    log_driver: str = "json-file"
    log_opts: dict[str, str] = field(default_factory=dict)
    #: --userns-remap: user[:group] (names or IDs) or "default" (dockremap).
    userns_remap: str = ""
    #: the Kubernetes CRI endpoint (unix://...), off unless given; CNI for its pods
    cri: str = ""
    cni_conf_dir: str = "/etc/cni/net.d"
    cni_bin_dirs: list[str] = field(default_factory=lambda: ["/opt/cni/bin", "/usr/lib/cni"])
    #: host:port of the CRI streaming server (exec, attach, port-forward); port 0: a free one
    cri_stream_addr: str = "127.0.0.1:0"
    #: rootless, limits it can't apply (no delegated cgroup or controller):
    #: refuse (Dockyard's default) or warn (discarded with a warning, as Docker)
    rootless_limits: str = "refuse"
    config_file: str = DEFAULT_CONFIG_FILE
    config_file_required: bool = False  # given with --config-file, so it must exist
    #: The options given as flags, by file key, in the file's shape (for reloads).
    flags: dict[str, Any] = field(default_factory=dict, repr=False)


# --- values -------------------------------------------------------------------------
def _want(key: str, v: Any, types: type | tuple[type, ...], what: str) -> None:
    if not isinstance(v, types) or (isinstance(v, bool) and bool not in
                                    (types if isinstance(types, tuple) else (types,))):
        raise ConfigError(f"invalid value for {key}: want {what}, got {json.dumps(v)}")


def _str(key: str, v: Any) -> str:
    _want(key, v, str, "a string")
    return v


def _bool(key: str, v: Any) -> bool:
    _want(key, v, bool, "true or false")
    return v


def _int(key: str, v: Any) -> int:
    _want(key, v, int, "an integer")
    if v < 0:
        raise ConfigError(f"invalid {key.replace('-', ' ')}: {v}")
    return v


def _strs(key: str, v: Any) -> list[str]:
    _want(key, v, list, "a list of strings")
    for x in v:
        _want(key, x, str, "a list of strings")
    return list(v)


def _pairs(key: str, v: Any) -> dict[str, str]:
    """`["k=v", ...]`, as --storage-opt and --exec-opt take them."""
    out = {}
    for x in _strs(key, v):
        k, eq, val = x.partition("=")
        if not eq or not k.strip():
            raise ConfigError(f"invalid {key} {x!r}: want key=value")
        out[k.strip().lower() if key == "exec-opts" else k.strip()] = val.strip()
    return out


def _exec_driver(key: str, v: Any) -> str:
    s = _str(key, v)
    if s not in ("native", "runc"):
        raise ConfigError(f"invalid {key} {s!r}: want native or runc")
    return s


def _labels(key: str, v: Any) -> list[str]:
    out = _strs(key, v)
    for x in out:
        if "=" not in x:
            raise ConfigError(f"bad attribute format: {x}")
    return out


def _cidr(key: str, v: Any) -> str:
    s = _str(key, v)
    try:
        ipaddress.ip_interface(s) if key == "bip" else ipaddress.ip_network(s, strict=False)
    except ValueError:
        raise ConfigError(f"invalid {key} {s!r}: want an address in CIDR notation") from None
    if "/" not in s:
        raise ConfigError(f"invalid {key} {s!r}: want an address in CIDR notation")
    return s


def _ip(key: str, v: Any) -> str:
    s = _str(key, v)
    try:
        ipaddress.ip_address(s)
    except ValueError:
        raise ConfigError(f"invalid {key} {s!r}: want an IP address") from None
    return s


def _ips(key: str, v: Any) -> list[str]:
    return [_ip(key, x) for x in _strs(key, v)]


def _bridge(key: str, v: Any) -> str:
    s = _str(key, v)
    if not s or len(s) > 15 or "/" in s or " " in s:
        raise ConfigError(f"invalid bridge name {s!r}")
    return s


def _pools(key: str, v: Any) -> list[dict[str, Any]]:
    """`[{"base": "10.231.0.0/16", "size": 24}]` (daemon.json), or the flag's
    `base=...,size=...` strings."""
    _want(key, v, list, 'a list like [{"base": "10.231.0.0/16", "size": 24}]')
    out = []
    for p in v:
        if isinstance(p, str):
            kv = dict(x.split("=", 1) for x in p.split(",") if "=" in x)
            p = {"base": kv.get("base"), "size": int(kv["size"]) if
                 str(kv.get("size", "")).isdigit() else kv.get("size")}
        _want(key, p, dict, 'objects like {"base": "10.231.0.0/16", "size": 24}')
        try:
            base = ipaddress.IPv4Network(p.get("base"))
        except (ValueError, TypeError):
            raise ConfigError(f"invalid {key}: bad base {p.get('base')!r}") from None
        size = p.get("size")
        if not isinstance(size, int) or not base.prefixlen <= size <= 30:
            raise ConfigError(f"invalid {key}: size {size!r} does not fit in {base}")
        out.append({"base": str(base), "size": size})
    return out


def _log_opts(key: str, v: Any) -> dict[str, str]:
    """daemon.json's `{"max-size": "10m"}`, or the flag's `["max-size=10m"]`."""
    if isinstance(v, list):
        out = {}
        for x in _strs(key, v):
            k, eq, val = x.partition("=")
            if not eq:
                raise ConfigError(f"invalid log opt {x!r}: want key=value")
            out[k] = val
        return out
    _want(key, v, dict, 'an object like {"max-size": "10m"}')
    for x in v.values():
        _want(key, x, str, "string values")
    return dict(v)


def _rootless_limits(key: str, v: Any) -> str:
    s = _str(key, v)
    if s not in ("refuse", "warn"):
        raise ConfigError(f"invalid {key} {s!r}: want refuse or warn")
    return s


def _log_level(key: str, v: Any) -> str:
    s = _str(key, v)
    if s not in LOG_LEVELS:
        raise ConfigError(f"unable to parse logging level: {s}")
    return s


def _hosts(key: str, v: Any) -> list[str]:
    out = _strs(key, v)
    for h in out:
        scheme = h.split("://", 1)[0] if "://" in h else ""
        if scheme not in ("unix", "tcp", "fd"):
            raise ConfigError(f"invalid host {h!r}: want unix://PATH, tcp://[HOST]:PORT, "
                              "fd:// or fd://N")
    return out


def parse_ulimit(s: str) -> dict[str, Any]:
    """`nofile=1024[:2048]` (the --default-ulimit flag) in the file's object shape."""
    name, eq, val = s.partition("=")
    soft, _, hard = val.partition(":")
    if not eq or not name or not soft.lstrip("-").isdigit() or (
            hard and not hard.lstrip("-").isdigit()):
        raise ConfigError(f"invalid ulimit argument: {s}")
    return {"Name": name, "Soft": int(soft), "Hard": int(hard or soft)}


def _ulimits(key: str, v: Any) -> list[dict[str, Any]]:
    """dockerd's object form: `{"nofile": {"Name": "nofile", "Soft": 1, "Hard": 2}}`."""
    _want(key, v, dict, 'an object like {"nofile": {"Name": "nofile", "Soft": 1024, '
          '"Hard": 2048}}')
    out = []
    for name, u in v.items():
        _want(f"{key}.{name}", u, dict, "an object with Name, Soft and Hard")
        soft, hard = u.get("Soft"), u.get("Hard")
        _want(f"{key}.{name}.Soft", soft, int, "an integer")
        _want(f"{key}.{name}.Hard", hard, int, "an integer")
        out.append({"Name": u.get("Name") or name, "Soft": soft, "Hard": hard})
    return out


def insecure_registry_config(names: list[str]) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """dockerd's view of `--insecure-registry`: the CIDRs (normalised, then
    127.0.0.0/8 last) and an IndexConfigs entry per host[:port] plus docker.io."""
    cidrs: list[str] = []
    index: dict[str, dict[str, Any]] = {}
    for r in [*names, "127.0.0.0/8"]:
        low = r.lower()
        if low.startswith("http://"):
            r = r[7:]
        elif low.startswith("https://"):
            r = r[8:]
        elif "://" in r:
            raise ConfigError(f"insecure registry {r} should not contain '://'")
        if r.startswith("-") or r.endswith("-"):
            raise ConfigError(f"invalid index name ({r}). Cannot begin or end with a hyphen.")
        try:
            net = str(ipaddress.ip_network(r, strict=False)) if "/" in r else None
        except ValueError:
            net = None
        if net is not None:
            if net not in cidrs:
                cidrs.append(net)
            continue
        host, colon, port = r.rpartition(":") if ":" in r.strip("[]") else (r, "", "")
        if not host or (colon and not (port.isdigit() and int(port) <= 65535)) or "/" in r:
            raise ConfigError(f"insecure registry {r} is not valid: invalid host {r!r}")
        index[r] = {"Name": r, "Mirrors": [], "Secure": False, "Official": False}
    index["docker.io"] = {"Name": "docker.io", "Mirrors": [], "Secure": True, "Official": True}
    return cidrs, dict(sorted(index.items()))


def insecure_registries(names: list[str]) -> list[str]:
    """The names with any http(s):// prefix dropped, checked as dockerd does."""
    insecure_registry_config(names)
    out = []
    for r in names:
        for p in ("http://", "https://"):
            if r.lower().startswith(p):
                log.warning("insecure registry %s should not contain '%s' and '%s' has been "
                            "removed from the insecure registry config", r, p, p)
                r = r[len(p):]
        out.append(r)
    return out


def _cri(key: str, v: Any) -> str:
    s = _str(key, v)
    if s and not s.startswith("unix://"):
        raise ConfigError(f"invalid value for {key}: the CRI is served on a unix socket: "
                          f"unix:///path, got {json.dumps(s)}")
    return s


def _stream_addr(key: str, v: Any) -> str:
    s = _str(key, v)
    host, sep, port = s.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535 or \
            (host.startswith("[") != host.endswith("]")):
        raise ConfigError(f"invalid value for {key}: want host:port, got {json.dumps(s)}")
    return s


def _registries(key: str, v: Any) -> list[str]:
    return insecure_registries(_strs(key, v))


# --- the table ----------------------------------------------------------------------
#: file key -> (DaemonConfig attribute, converter)
OPTIONS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "hosts": ("hosts", _hosts),
    "group": ("group", _str),
    "data-root": ("data_root", _str),
    "exec-root": ("exec_root", _str),
    "pidfile": ("pidfile", _str),
    "storage-driver": ("storage_driver", _str),
    "storage-opts": ("storage_opts", _pairs),
    "debug": ("debug", _bool),
    "log-level": ("log_level", _log_level),
    "tls": ("tls", _bool),
    "tlsverify": ("tlsverify", _bool),
    "tlscacert": ("tlscacert", _str),
    "tlscert": ("tlscert", _str),
    "tlskey": ("tlskey", _str),
    "insecure-tcp": ("insecure_tcp", _bool),  # Dockyard's own
    "authorization-plugins": ("authorization_plugins", _strs),
    "default-ulimits": ("default_ulimits", _ulimits),
    "exec-opts": ("exec_opts", _pairs),
    "insecure-registries": ("insecure_registries", _registries),
    "labels": ("labels", _labels),
    "max-concurrent-downloads": ("max_concurrent_downloads", _int),
    "max-concurrent-uploads": ("max_concurrent_uploads", _int),
    "max-download-attempts": ("max_download_attempts", _int),
    "selinux-enabled": ("selinux_enabled", _bool),
    "exec-driver": ("exec_driver", _exec_driver),  # Dockyard's own
    "bridge": ("bridge", _bridge),
    "bip": ("bip", _cidr),
    "fixed-cidr": ("fixed_cidr", _cidr),
    "default-address-pools": ("default_address_pools", _pools),
    "icc": ("icc", _bool),
    "ip": ("ip", _ip),
    "ip-forward": ("ip_forward", _bool),
    "ip-masq": ("ip_masq", _bool),
    "iptables": ("iptables", _bool),
    "mtu": ("mtu", _int),
    "dns": ("dns", _ips),
    "dns-search": ("dns_search", _strs),
    "dns-opts": ("dns_opts", _strs),
    "log-driver": ("log_driver", _str),
    "log-opts": ("log_opts", _log_opts),
    "userns-remap": ("userns_remap", _str),
    "cri": ("cri", _cri),  # Dockyard's own, as the next three
    "cni-conf-dir": ("cni_conf_dir", _str),
    "cni-bin-dirs": ("cni_bin_dirs", _strs),
    "cri-stream-addr": ("cri_stream_addr", _stream_addr),  # Dockyard's own
    "rootless-limits": ("rootless_limits", _rootless_limits),  # Dockyard's own
}

#: dockerd keys Dockyard accepts but does not act on (networking, runtimes,
#: swarm, ...): a daemon.json written for dockerd still loads, with a warning.
IGNORED = frozenset("""
    allow-nondistributable-artifacts api-cors-header builder
    cgroup-parent cluster-advertise cluster-store cluster-store-opts containerd
    containerd-namespace containerd-plugins-namespace cpu-rt-period cpu-rt-runtime
    cri-containerd default-cgroupns-mode default-gateway default-gateway-v6 default-ipc-mode
    default-runtime default-shm-size experimental features fixed-cidr-v6 host-gateway-ip
    init init-path ip6tables ipv6 live-restore
    metrics-addr no-new-privileges node-generic-resources oom-score-adjust raw-logs
    registry-mirrors runtimes seccomp-profile shutdown-timeout swarm-default-advertise-addr
    userland-proxy userland-proxy-path
""".split())


def _go(v: Any) -> str:
    """A value as Go's %v prints it, for dockerd's conflict message."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + " ".join(_go(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_go(x)}" for k, x in sorted(v.items())) + "]"
    return str(v)


def read_file(path: str, required: bool) -> dict[str, Any]:
    """The file's directives; {} when the default file is absent."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        if not required:
            return {}
        raise ConfigError(f"open {path}: no such file or directory") from None
    except OSError as e:
        raise ConfigError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if not isinstance(data, dict):
        raise ConfigError("the configuration file must hold a JSON object")
    unknown = sorted(k for k in data if k not in OPTIONS and k not in IGNORED and k != "graph")
    if unknown:
        raise ConfigError("the following directives don't match any configuration option: "
                          + ", ".join(unknown))
    if "graph" in data:  # dockerd's deprecated name for data-root
        if "data-root" in data:
            raise ConfigError("cannot specify both graph and data-root")
        data["data-root"] = data.pop("graph")
    ignored = sorted(k for k in data if k in IGNORED)
    if ignored:
        log.warning("%s: directives not supported by Dockyard are ignored: %s", path,
                    ", ".join(ignored))
    return {k: v for k, v in data.items() if k in OPTIONS}


def _apply(cfg: DaemonConfig, values: dict[str, Any]) -> None:
    for key, v in values.items():
        attr, convert = OPTIONS[key]
        setattr(cfg, attr, convert(key, v))


def load(flags: dict[str, Any], config_file: str | None = None) -> DaemonConfig:
    """The configuration from `flags` (file keys, file shapes) and the file:
    `config_file`, which must exist, or the default one, which may not."""
    cfg = DaemonConfig(config_file=DEFAULT_CONFIG_FILE,
                       config_file_required=config_file is not None, flags=dict(flags))
    uid = rootless_uid()
    if uid is not None:
        # Rootless: the user's paths; the default bridge, its rules and
        # forwarding live in the daemon's own network namespace (its way out,
        # slirp4netns, is optional).
        p = user_paths(uid)
        cfg.hosts, cfg.data_root, cfg.exec_root = [p.host], p.data_root, p.exec_root
        cfg.pidfile, cfg.config_file = p.pidfile, p.config_file
    path = cfg.config_file = config_file or cfg.config_file
    try:
        file = read_file(path, required=config_file is not None)
        both = sorted(k for k in file if k in flags)
        if both:
            raise ConfigError(
                "the following directives are specified both as a flag and in the "
                "configuration file: " + ", ".join(
                    f"{k}: (from flag: {_go(flags[k])}, from file: {_go(file[k])})"
                    for k in both))
        _apply(cfg, file)
    except ConfigError as e:
        raise ConfigError(f"unable to configure the Docker daemon with file {path}: {e}") from None
    _apply(cfg, flags)
    cfg.tls = cfg.tls or cfg.tlsverify
    if uid is not None and cfg.userns_remap:
        raise ConfigError(USERNS_REMAP_ROOTLESS)
    return cfg


def reload(cfg: DaemonConfig) -> dict[str, Any]:
    """Re-read `cfg`'s file with the same flags and copy the reloadable options
    into `cfg`; returns them. Raises ConfigError, leaving `cfg` as it was."""
    fresh = load(cfg.flags, cfg.config_file if cfg.config_file_required else None)
    changed = {a: getattr(fresh, a) for a in RELOADABLE}
    for a, v in changed.items():
        setattr(cfg, a, v)
    return changed


def selinux_check(cfg: DaemonConfig) -> None:
    """--selinux-enabled needs SELinux in the kernel; say so where it is absent."""
    if cfg.selinux_enabled and not os.path.exists("/sys/fs/selinux/enforce"):
        raise ConfigError("SELinux is not supported on this host: /sys/fs/selinux is not "
                          "mounted")
