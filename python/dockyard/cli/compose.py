"""Compose files (version 3) for `stack deploy`, loaded and converted to
swarm specs as docker/cli's compose loader and convert packages do: the
version check, forbidden/unsupported/deprecated options, `${VAR}`
interpolation, several files merged, relative paths, then the network,
secret, config and service specs of a stack (namespace `<stack>_`).

What it does not do: full JSON-schema validation (only unknown service keys
are reported, in the validator's words) and compose's list-merging rules
for several files (a later file's list replaces the earlier one)."""

from __future__ import annotations

import os
import re
from typing import Any

from . import svcopts as so

NAMESPACE_LABEL = "com.docker.stack.namespace"
IMAGE_LABEL = "com.docker.stack.image"

UNSUPPORTED = ["build", "cgroupns_mode", "cgroup_parent", "devices", "domainname",
               "external_links", "ipc", "links", "mac_address", "network_mode", "pid",
               "privileged", "restart", "security_opt", "shm_size", "userns_mode"]
DEPRECATED = {
    "container_name": "Setting the container name is not supported.",
    "expose": "Exposing ports is unnecessary - services on the same network can access each "
              "other's containers on any port.",
}
FORBIDDEN = {
    "extends": "Support for `extends` is not implemented yet.",
    "volume_driver": "Instead of setting the volume driver on the service, define a volume "
                     "using the top-level `volumes` option and specify the driver there.",
    "volumes_from": "To share a volume between services, define it using the top-level "
                    "`volumes` option and reference it from each service that shares it using "
                    "the service-level `volumes` option.",
    "cpu_quota": "Set resource limits using deploy.resources",
    "cpu_shares": "Set resource limits using deploy.resources",
    "cpuset": "Set resource limits using deploy.resources",
    "mem_limit": "Set resource limits using deploy.resources",
    "memswap_limit": "Set resource limits using deploy.resources",
}
# the service keys of the 3.x schemas (config_schema_v3.9.json)
SERVICE_KEYS = set(UNSUPPORTED) | set(DEPRECATED) | set(FORBIDDEN) | {
    "deploy", "cap_add", "cap_drop", "command", "configs", "credential_spec", "depends_on",
    "dns", "dns_search", "entrypoint", "env_file", "environment", "extra_hosts",
    "healthcheck", "hostname", "image", "init", "isolation", "labels", "logging", "networks",
    "ports", "read_only", "secrets", "stdin_open", "stop_grace_period", "stop_signal",
    "sysctls", "tmpfs", "tty", "ulimits", "user", "volumes", "working_dir"}
VERSIONS = {"3", "3.0", "3.1", "3.2", "3.3", "3.4", "3.5", "3.6", "3.7", "3.8", "3.9"}


class ComposeError(Exception):
    """A compose file docker's CLI rejects, in its words (exit 1)."""


# --- loading -----------------------------------------------------------------------------

def _version(d: dict) -> str:
    v = d.get("version")
    if v is None:
        return "1.0"
    v = str(v) if not isinstance(v, float) else repr(v)
    return "3.0" if v == "3" else v


_VAR = re.compile(r"\$(?:(?P<escaped>\$)|(?P<named>[_a-z][_a-z0-9]*)|\{(?P<braced>[^}]*)\}|"
                  r"(?P<invalid>))", re.IGNORECASE)


def _substitute(text: str, env: dict[str, str]) -> str:
    def repl(m: re.Match) -> str:
        if m.group("escaped"):
            return "$"
        if m.group("named"):
            return env.get(m.group("named"), "")
        braced = m.group("braced")
        if braced is None:
            raise ValueError(text)
        for sep in (":?", "?", ":-", "-"):
            name, found, rest = braced.partition(sep)
            if not found:
                continue
            val = env.get(name)
            if sep == ":-":
                return val if val else rest
            if sep == "-":
                return val if val is not None else rest
            if (sep == ":?" and not val) or (sep == "?" and val is None):
                raise ComposeError(f"required variable {name} is missing a value: {rest}")
            return val or ""
        if not re.fullmatch(r"[_a-z][_a-z0-9]*", braced, re.IGNORECASE):
            raise ValueError(text)
        return env.get(braced, "")

    return _VAR.sub(repl, text)


_INTS = {"replicas", "parallelism", "max_attempts", "max_replicas_per_node", "target",
         "published", "retries", "mode", "hard", "soft"}
_FLOATS = {"max_failure_ratio"}
_BOOLS = {"read_only", "tty", "stdin_open", "external", "internal", "attachable", "disable",
          "nocopy", "privileged"}


def _cast(value: str, key: str, path: str) -> Any:
    """interpolateTypeCastMapping: a substituted value where a number or a
    boolean belongs becomes one."""
    try:
        if key in _INTS:
            return int(value)
        if key in _FLOATS:
            return float(value)
        if key in _BOOLS:
            lv = value.lower()
            if lv in ("y", "yes", "true", "on"):
                return True
            if lv in ("n", "no", "false", "off"):
                return False
            raise ComposeError(f"failed to cast to expected type: invalid boolean: {value}")
    except ValueError as e:
        raise ComposeError(f"{path}: failed to cast to expected type: {e}") from None
    return value


def _interpolate(value: Any, env: dict[str, str], path: str) -> Any:
    if isinstance(value, str):
        try:
            new = _substitute(value, env)
        except ValueError:
            import json

            raise ComposeError(f"invalid interpolation format for {path}: "
                               f"{json.dumps(value)}; you may need to escape any $ with "
                               "another $") from None
        if new == value:
            return value
        return _cast(new, path.rsplit(".", 1)[-1], path)
    if isinstance(value, dict):
        return {k: _interpolate(v, env, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, f"{path}.[]") for v in value]
    return value


def _properties(services: dict, table: dict[str, str]) -> dict[str, str]:
    found = {}
    for svc in services.values():
        if isinstance(svc, dict):
            for k in svc:
                if k in table:
                    found[k] = table[k]
    return found


def _warnings(props: dict[str, str]) -> str:
    return "\n\n".join(sorted(f"{k}: {v}" for k, v in props.items()))


def read_files(files: list[str], stdin: Any) -> tuple[str, list[dict]]:
    """The working directory and the parsed YAML of each file."""
    import yaml

    if not files:
        raise ComposeError("Please specify a Compose file (with --compose-file)")
    if files[0] == "-" and len(files) == 1:
        workdir = os.getcwd()
    else:
        workdir = os.path.dirname(os.path.abspath(files[0]))
    dicts = []
    for f in files:
        try:
            data = stdin.read() if f == "-" else open(f, "rb").read()
        except OSError as e:
            raise ComposeError(f"open {f}: {(e.strerror or str(e)).lower()}") from None
        try:
            d = yaml.load(data, Loader=_loader())  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as e:
            raise ComposeError(f"yaml: {e}") from None
        if not isinstance(d, dict):
            raise ComposeError("Top-level object must be a mapping")
        dicts.append(_string_keys(d, ""))
    return workdir, dicts


def _loader() -> Any:
    """YAML 1.1 as go-yaml v2 reads it: y/Y/n/N are booleans too."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.bool_values = dict(yaml.SafeLoader.bool_values, y=True, n=False)
    Loader.yaml_implicit_resolvers = {k: list(v) for k, v in
                                      yaml.SafeLoader.yaml_implicit_resolvers.items()}
    Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"),
                                 list("yYnN"))
    return Loader


def _go_repr(v: Any) -> str:
    """%#v of a YAML scalar key."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "<nil>"
    return str(v)


def _string_keys(value: Any, prefix: str) -> Any:
    """convertToStringKeysRecursive: every mapping key must be a string."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                where = f"in {prefix}" if prefix else "at top level"
                raise ComposeError(f"Non-string key {where}: {_go_repr(k)}")
            out[k] = _string_keys(v, f"{prefix}.{k}" if prefix else k)
        return out
    if isinstance(value, list):
        return [_string_keys(v, f"{prefix}[{i}]") for i, v in enumerate(value)]
    return value


def load(files: list[str], stdin: Any, warn: Any) -> dict:
    """loader.LoadComposefile: the merged config; warnings go to `warn`."""
    workdir, dicts = read_files(files, stdin)
    env = dict(os.environ)
    version = ""
    merged: dict[str, Any] = {}
    for d in dicts:
        v = _version(d)
        version = version or v
        if v != version:
            raise ComposeError(f"version mismatched between two composefiles : {version} and {v}")
        services = d.get("services") if isinstance(d.get("services"), dict) else {}
        forbidden = _properties(services, FORBIDDEN)
        if forbidden:
            raise ComposeError("Compose file contains unsupported options:\n\n"
                               f"{_warnings(forbidden)}\n")
        d = {k: _interpolate(v, env, k) if k in ("services", "networks", "volumes",
                                                    "secrets", "configs") else v
             for k, v in d.items()}
        if version not in VERSIONS:
            raise ComposeError(f"unsupported Compose file version: {version}")
        for name, svc in (d.get("services") or {}).items():
            for k in (svc or {}):
                if k not in SERVICE_KEYS:
                    raise ComposeError(f"services.{name} Additional property {k} is not allowed")
        _merge(merged, d)
    unsupported = sorted({k for d in dicts for s in (d.get("services") or {}).values()
                          if isinstance(s, dict) for k in s if k in UNSUPPORTED})
    if unsupported:
        warn(f"Ignoring unsupported options: {', '.join(unsupported)}\n\n")
    deprecated: dict[str, str] = {}
    for d in dicts:
        deprecated.update(_properties(d.get("services") or {}, DEPRECATED))
    if deprecated:
        warn(f"Ignoring deprecated options:\n\n{_warnings(deprecated)}\n\n")
    merged["_workdir"] = workdir
    merged["_env"] = env
    return merged


def _merge(into: dict, d: dict) -> None:
    for k, v in d.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


# --- values ------------------------------------------------------------------------------

def _str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return ""
    return str(v)


def _map(v: Any, sep: str = "=") -> dict[str, str | None]:
    """A mapping given as a dict or as a list of KEY=VALUE (KEY alone: None)."""
    if isinstance(v, dict):
        return {str(k): (None if x is None else _str(x)) for k, x in v.items()}
    out: dict[str, str | None] = {}
    for item in v or []:
        k, found, x = str(item).partition(sep)
        out[k] = x if found else None
    return out


def _labels(v: Any) -> dict[str, str]:
    return {k: x or "" for k, x in _map(v).items()}


def _words(v: Any) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return so.shlex_words(v)
    return [_str(x) for x in v]


def _duration(v: Any) -> int:
    if isinstance(v, (int, float)):
        return int(v * 1e9)
    return so.duration(str(v))


def _bytes(v: Any) -> int:
    if isinstance(v, int):
        return v
    return so.mem_bytes(str(v))


def _abs(workdir: str, p: str) -> str:
    if p.startswith("~"):
        p = os.path.expanduser(p)
    return p if os.path.isabs(p) else os.path.join(workdir, p)


def _ports(v: list) -> list[dict]:
    out = []
    for p in v or []:
        if isinstance(p, dict):
            out.append({"Protocol": p.get("protocol", ""), "TargetPort": p.get("target", 0),
                        "PublishedPort": p.get("published", 0), "PublishMode": p.get("mode", "")})
            continue
        try:
            parsed = so.ports(str(p))
        except ValueError as e:
            raise ComposeError(str(e)) from None
        out += sorted(parsed, key=lambda x: (f"{x['TargetPort']}/{x['Protocol']}",
                                             x["PublishedPort"]))
    return out


def _volume_short(spec: str, workdir: str) -> dict:
    """loader.ParseVolume: [source:]target[:mode]."""
    parts = spec.split(":")
    vol: dict[str, Any] = {}
    if len(parts) == 1:
        vol = {"type": "volume", "target": parts[0]}
    else:
        src, tgt = parts[0], parts[1]
        vol = {"source": src, "target": tgt,
               "type": "bind" if src.startswith((".", "/", "~")) else "volume"}
        for m in (parts[2].split(",") if len(parts) > 2 else []):
            if m == "ro":
                vol["read_only"] = True
            elif m == "nocopy":
                vol["volume"] = {"nocopy": True}
            elif m in ("shared", "rshared", "slave", "rslave", "private", "rprivate"):
                vol["bind"] = {"propagation": m}
    return vol


def mounts(svc: dict, stack_volumes: dict, ns: str, workdir: str) -> list[dict]:
    out = []
    for v in svc.get("volumes") or []:
        vol = _volume_short(v, workdir) if isinstance(v, str) else dict(v)
        typ = vol.get("type") or "volume"
        src = vol.get("source", "")
        if typ == "bind" and src:
            src = _abs(workdir, src)
        m: dict[str, Any] = {"Type": typ, "Target": vol.get("target", ""),
                             "ReadOnly": bool(vol.get("read_only")), "Source": src}
        if vol.get("consistency"):
            m["Consistency"] = vol["consistency"]
        if typ == "volume":
            if vol.get("tmpfs") is not None:
                raise ComposeError("tmpfs options are incompatible with type volume")
            if vol.get("bind") is not None:
                raise ComposeError("bind options are incompatible with type volume")
            if src:
                if src not in stack_volumes:
                    raise ComposeError(f'undefined volume "{src}"')
                sv = stack_volumes[src] or {}
                m["Source"] = _external_name(src, sv) if _external(sv) else \
                    sv.get("name") or f"{ns}_{src}"
                m["VolumeOptions"] = {}
                if vol.get("volume") is not None:
                    m["VolumeOptions"]["NoCopy"] = bool(vol["volume"].get("nocopy"))
                if not _external(sv):
                    m["VolumeOptions"]["Labels"] = {**_labels(sv.get("labels")),
                                                    NAMESPACE_LABEL: ns}
                    if sv.get("driver") or sv.get("driver_opts") is not None:
                        m["VolumeOptions"]["DriverConfig"] = {
                            "Name": sv.get("driver", ""),
                            "Options": {k: _str(x) for k, x in
                                        (sv.get("driver_opts") or {}).items()}}
        elif typ == "bind":
            if not src:
                raise ComposeError("invalid bind source, source cannot be empty")
            if vol.get("volume") is not None:
                raise ComposeError("volume options are incompatible with type bind")
            if vol.get("tmpfs") is not None:
                raise ComposeError("tmpfs options are incompatible with type bind")
            if vol.get("bind") is not None:
                m["BindOptions"] = {"Propagation": vol["bind"].get("propagation", "")}
        elif typ == "tmpfs":
            if src:
                raise ComposeError("invalid tmpfs source, source must be empty")
            if vol.get("bind") is not None:
                raise ComposeError("bind options are incompatible with type tmpfs")
            if vol.get("volume") is not None:
                raise ComposeError("volume options are incompatible with type tmpfs")
            if vol.get("tmpfs") is not None:
                m["TmpfsOptions"] = {"SizeBytes": _bytes(vol["tmpfs"].get("size", 0))}
        else:
            raise ComposeError("volume type must be volume, bind, tmpfs or npipe")
        out.append(m)
    return out


def _external(obj: Any) -> bool:
    ext = (obj or {}).get("external")
    if isinstance(ext, dict):
        return True
    return bool(ext)


def _external_name(key: str, obj: dict) -> str:
    ext = obj.get("external")
    if isinstance(ext, dict) and ext.get("name"):
        return ext["name"]
    return obj.get("name") or key


# --- converting -------------------------------------------------------------------------

def service_networks(svc: dict) -> list[str]:
    nets = svc.get("networks")
    if not nets:
        return ["default"]
    return list(nets) if isinstance(nets, (dict, list)) else []


def networks(cfg: dict, ns: str) -> tuple[dict[str, dict], list[str]]:
    """convert.Networks: the networks to create (by name) and the external ones."""
    declared = cfg.get("networks") or {}
    used = sorted({n for s in (cfg.get("services") or {}).values()
                   for n in service_networks(s or {})})
    create: dict[str, dict] = {}
    external: list[str] = []
    for name in used:
        net = declared.get(name) or {}
        if _external(net):
            external.append(_external_name(name, net))
            continue
        opts: dict[str, Any] = {"Labels": {**_labels(net.get("labels")), NAMESPACE_LABEL: ns},
                                "Driver": net.get("driver") or "overlay",
                                "Options": {k: _str(v) for k, v in
                                            (net.get("driver_opts") or {}).items()},
                                "Internal": bool(net.get("internal")),
                                "Attachable": bool(net.get("attachable"))}
        ipam = net.get("ipam") or {}
        if ipam.get("driver") or ipam.get("config"):
            opts["IPAM"] = {"Driver": ipam.get("driver", ""),
                            "Config": [{"Subnet": c.get("subnet", "")}
                                       for c in ipam.get("config") or []]}
        create[net.get("name") or f"{ns}_{name}"] = opts
    return create, external


def file_objects(cfg: dict, key: str, ns: str) -> list[dict]:
    """convert.Secrets / convert.Configs: the specs of the stack's own objects."""
    import base64

    out = []
    for name, obj in sorted((cfg.get(key) or {}).items()):
        obj = obj or {}
        if _external(obj):
            continue
        spec: dict[str, Any] = {"Name": obj.get("name") or f"{ns}_{name}",
                                "Labels": {**_labels(obj.get("labels")), NAMESPACE_LABEL: ns}}
        if key == "secrets" and obj.get("driver"):
            spec["Data"] = ""
            spec["Driver"] = {"Name": obj["driver"], "Options": obj.get("driver_opts") or {}}
        else:
            path = _abs(cfg["_workdir"], obj.get("file", ""))
            try:
                data = open(path, "rb").read()
            except OSError as e:
                raise ComposeError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
            spec["Data"] = base64.b64encode(data).decode()
        if obj.get("template_driver"):
            spec["Templating"] = {"Name": obj["template_driver"]}
        out.append(spec)
    return out


def _file_refs(svc: dict, cfg: dict, key: str, ns: str, sname: str) -> list[dict]:
    kind = key[:-1]
    out = []
    for ref in svc.get(key) or []:
        ref = {"source": ref} if isinstance(ref, str) else dict(ref)
        src = ref.get("source", "")
        objs = cfg.get(key) or {}
        if src not in objs:
            raise ComposeError(f'service {sname}: undefined {kind} "{src}"')
        obj = objs[src] or {}
        # an external object is known by its own name, never the stack's
        name = _external_name(src, obj) if _external(obj) else obj.get("name") or f"{ns}_{src}"
        out.append({"File": {"Name": ref.get("target") or src, "UID": _str(ref.get("uid")) or "0",
                             "GID": _str(ref.get("gid")) or "0",
                             "Mode": ref.get("mode", 0o444)},
                    ("SecretName" if kind == "secret" else "ConfigName"): name})
    return out


def _restart_policy(svc: dict) -> dict | None:
    rp = (svc.get("deploy") or {}).get("restart_policy")
    if rp is None:
        restart = svc.get("restart") or ""
        name, _, count = restart.partition(":")
        if name in ("", "no"):
            return None
        if name in ("always", "unless-stopped"):
            return {"Condition": "any"}
        if name == "on-failure":
            return {"Condition": "on-failure", "MaxAttempts": int(count or 0)}
        raise ComposeError(f"invalid restart policy {name}")
    out: dict[str, Any] = {"Condition": rp.get("condition", "")}
    if rp.get("delay") is not None:
        out["Delay"] = _duration(rp["delay"])
    if rp.get("max_attempts") is not None:
        out["MaxAttempts"] = rp["max_attempts"]
    if rp.get("window") is not None:
        out["Window"] = _duration(rp["window"])
    return out


def _update_config(c: dict | None) -> dict | None:
    if c is None:
        return None
    out: dict[str, Any] = {"Parallelism": c.get("parallelism", 1),
                           "MaxFailureRatio": c.get("max_failure_ratio", 0),
                           "Order": c.get("order", "")}
    if c.get("delay") is not None:
        out["Delay"] = _duration(c["delay"])
    if c.get("failure_action"):
        out["FailureAction"] = c["failure_action"]
    if c.get("monitor") is not None:
        out["Monitor"] = _duration(c["monitor"])
    return out


def _resources(r: dict) -> dict:
    out: dict[str, Any] = {}
    for key, field in (("limits", "Limits"), ("reservations", "Reservations")):
        src = r.get(key)
        if src is None:
            continue
        part: dict[str, Any] = {}
        if src.get("cpus") not in (None, ""):
            part["NanoCPUs"] = so.nano_cpus(_str(src["cpus"]))
        if src.get("memory") is not None:
            part["MemoryBytes"] = _bytes(src["memory"])
        if key == "limits" and src.get("pids"):
            part["Pids"] = src["pids"]
        out[field] = part
    return out


def _healthcheck(h: dict | None) -> dict | None:
    if h is None:
        return None
    if h.get("disable"):
        if h.get("test"):
            raise ComposeError("test and disable can't be set at the same time")
        return {"Test": ["NONE"]}
    test = h.get("test")
    out: dict[str, Any] = {}
    if isinstance(test, str):
        out["Test"] = ["CMD-SHELL", test]
    elif test:
        out["Test"] = list(test)
    for key, field in (("timeout", "Timeout"), ("interval", "Interval"),
                       ("start_period", "StartPeriod")):
        if h.get(key) is not None:
            out[field] = _duration(h[key])
    if h.get("retries") is not None:
        out["Retries"] = h["retries"]
    return out


def _environment(svc: dict, cfg: dict) -> list[str]:
    env: dict[str, str | None] = {}
    for f in ([svc["env_file"]] if isinstance(svc.get("env_file"), str)
              else svc.get("env_file") or []):
        path = _abs(cfg["_workdir"], f)
        try:
            lines = open(path).read().splitlines()
        except OSError as e:
            raise ComposeError(f"open {path}: {(e.strerror or str(e)).lower()}") from None
        for line in lines:
            line = line.lstrip()
            if line and not line.startswith("#"):
                k, found, v = line.partition("=")
                env[k] = v if found else None
    env.update(_map(svc.get("environment")))
    out = []
    for k, v in env.items():
        if v is None:
            v = cfg["_env"].get(k)
        out.append(k if v is None else f"{k}={v}")
    return sorted(out)


def service_spec(name: str, svc: dict, cfg: dict, ns: str) -> dict:
    """convert.Service, with the secret and config references still by name."""
    deploy = svc.get("deploy") or {}
    mode = deploy.get("mode") or "replicated"
    replicas = deploy.get("replicas")
    if mode == "global":
        if replicas is not None:
            raise ComposeError(f"service {name}: replicas can only be used with replicated mode")
        smode: dict = {"Global": {}}
    elif mode == "replicated":
        smode = {"Replicated": {} if replicas is None else {"Replicas": replicas}}
    else:
        raise ComposeError(f"service {name}: Unknown mode: {mode}")
    try:
        cs: dict[str, Any] = {
            "Image": svc.get("image", ""),
            "Labels": {**_labels(svc.get("labels")), NAMESPACE_LABEL: ns},
            "Env": _environment(svc, cfg),
            "Mounts": mounts(svc, cfg.get("volumes") or {}, ns, cfg["_workdir"]),
            "Privileges": {},
        }
        for key, field in (("hostname", "Hostname"), ("working_dir", "Dir"), ("user", "User"),
                           ("stop_signal", "StopSignal"), ("isolation", "Isolation")):
            if svc.get(key):
                cs[field] = _str(svc[key])
        for key, field in (("tty", "TTY"), ("stdin_open", "OpenStdin"),
                           ("read_only", "ReadOnly")):
            if svc.get(key):
                cs[field] = True
        if svc.get("init") is not None:
            cs["Init"] = bool(svc["init"])
        if svc.get("entrypoint") is not None:
            cs["Command"] = _words(svc["entrypoint"])
        if svc.get("command") is not None:
            cs["Args"] = _words(svc["command"])
        hosts = _map(svc.get("extra_hosts"), ":") if isinstance(svc.get("extra_hosts"), list) \
            else {k: _str(v) for k, v in (svc.get("extra_hosts") or {}).items()}
        cs["Hosts"] = [f"{ip} {h}" for h, ip in hosts.items() if ip is not None]
        dns, search = svc.get("dns"), svc.get("dns_search")
        if dns is not None or search is not None:
            cs["DNSConfig"] = {"Nameservers": [dns] if isinstance(dns, str) else dns,
                               "Search": [search] if isinstance(search, str) else search}
        hc = _healthcheck(svc.get("healthcheck"))
        if hc is not None:
            cs["Healthcheck"] = hc
        if svc.get("stop_grace_period") is not None:
            cs["StopGracePeriod"] = _duration(svc["stop_grace_period"])
        if svc.get("sysctls"):
            cs["Sysctls"] = {k: v or "" for k, v in _map(svc["sysctls"]).items()}
        add, drop = so.capabilities([_str(c) for c in svc.get("cap_add") or []],
                                    [_str(c) for c in svc.get("cap_drop") or []])
        if add:
            cs["CapabilityAdd"] = add
        if drop:
            cs["CapabilityDrop"] = drop
        if svc.get("ulimits"):
            lims = []
            for k, u in sorted(svc["ulimits"].items()):
                if isinstance(u, dict):
                    lims.append({"Name": k, "Hard": u.get("hard", 0), "Soft": u.get("soft", 0)})
                else:
                    lims.append({"Name": k, "Hard": u, "Soft": u})
            cs["Ulimits"] = lims
        secrets = _file_refs(svc, cfg, "secrets", ns, name)
        configs = _file_refs(svc, cfg, "configs", ns, name)
        resources = _resources(deploy.get("resources") or {})
    except ValueError as e:
        raise ComposeError(f"service {name}: {e}") from None
    except ComposeError as e:
        msg = str(e)
        raise ComposeError(msg if msg.startswith("service ") else f"service {name}: {msg}") \
            from None
    placement = deploy.get("placement") or {}
    pl: dict[str, Any] = {"Preferences": [{"Spread": {"SpreadDescriptor": p.get("spread", "")}}
                                          for p in placement.get("preferences") or []]}
    if placement.get("constraints"):
        pl["Constraints"] = placement["constraints"]
    if placement.get("max_replicas_per_node"):
        pl["MaxReplicas"] = placement["max_replicas_per_node"]
    task: dict[str, Any] = {"ContainerSpec": cs, "Resources": resources, "Placement": pl}
    logging = svc.get("logging")
    if logging is not None:
        task["LogDriver"] = {"Name": logging.get("driver", ""),
                             "Options": {k: _str(v) for k, v in
                                         (logging.get("options") or {}).items()}}
    rp = _restart_policy(svc)
    if rp is not None:
        task["RestartPolicy"] = rp
    declared = cfg.get("networks") or {}
    nets = []
    svc_nets = svc.get("networks") or {"default": None}
    if isinstance(svc_nets, list):
        svc_nets = {n: None for n in svc_nets}
    for net, conf in svc_nets.items():
        if net not in declared and net != "default":
            raise ComposeError(f'service {name}: undefined network "{net}"')
        nc = declared.get(net) or {}
        target = f"{ns}_{net}"
        if nc.get("name"):
            target = nc["name"]
        elif _external(nc):
            target = _external_name(net, nc)
        aliases = list((conf or {}).get("aliases") or [])
        if target not in ("default", "bridge", "host", "none") and \
                not target.startswith("container:"):
            aliases.append(name)
        nets.append({"Target": target, "Aliases": aliases})
    task["Networks"] = sorted(nets, key=lambda n: n["Target"])
    ports = sorted(_ports(svc.get("ports") or []), key=lambda p: p["PublishedPort"])
    spec: dict[str, Any] = {
        "Name": f"{ns}_{name}",
        "Labels": {**_labels(deploy.get("labels")), NAMESPACE_LABEL: ns,
                   IMAGE_LABEL: svc.get("image", "")},
        "TaskTemplate": task, "Mode": smode,
        "EndpointSpec": {"Mode": (deploy.get("endpoint_mode") or "").lower(), "Ports": ports},
    }
    for key, field in (("update_config", "UpdateConfig"), ("rollback_config", "RollbackConfig")):
        c = _update_config(deploy.get(key))
        if c is not None:
            spec[field] = c
    if secrets:
        cs["Secrets"] = secrets
    if configs:
        cs["Configs"] = configs
    return spec
