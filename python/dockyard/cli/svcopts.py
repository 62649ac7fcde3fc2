"""Values of the swarm service flags and compose keys, parsed as docker's
opts package parses them (PortOpt, MountOpt, NetworkOpt, SecretOpt,
ConfigOpt, NanoCPUs, MemBytes, durations), each raising ValueError with
docker's words; and the image reference rules docker's client applies to a
service spec. Shared by the `service` and `stack` groups."""

from __future__ import annotations

import csv
import os
import re
from fractions import Fraction
from typing import Any

# swarmkit's defaults (api/defaults): what `--update-*`, `--rollback-*` and
# `--restart-*` start from when only some of them are given.
UPDATE_DEFAULTS = {"Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000,
                   "MaxFailureRatio": 0, "Order": "stop-first"}
RESTART_DEFAULTS = {"Condition": "any", "Delay": 5_000_000_000, "MaxAttempts": 0}


def uint(v: str, base: int = 0) -> int:
    """strconv.ParseUint(v, base, 64); base 0 reads Go's prefixes (0x, 0o, 0b,
    and a leading 0 for octal)."""
    try:
        if base == 0:
            t = v.replace("_", "")
            low = t[:2].lower()
            if low in ("0x", "0o", "0b"):
                n = int(t[2:], {"0x": 16, "0o": 8, "0b": 2}[low])
            elif len(t) > 1 and t[0] == "0":
                n = int(t[1:], 8)
            elif "_" in v:  # Go takes underscores only after a base prefix
                raise ValueError
            else:
                n = int(t, 10)
        else:
            n = int(v, base)
        if n < 0 or not v[:1].isalnum() or (base != 0 and not v.isdigit()):
            raise ValueError
    except ValueError:
        raise ValueError(f'strconv.ParseUint: parsing "{v}": invalid syntax') from None
    if n >= 1 << 64:
        raise ValueError(f'strconv.ParseUint: parsing "{v}": value out of range')
    return n


def uint10(v: str) -> int:
    return uint(v, 10)


def int64(v: str) -> int:
    try:
        return int(v, 10)
    except ValueError:
        raise ValueError(f'strconv.ParseInt: parsing "{v}": invalid syntax') from None


def float32(v: str) -> float:
    try:
        return float(v)
    except ValueError:
        raise ValueError(f'strconv.ParseFloat: parsing "{v}": invalid syntax') from None


def duration(v: str) -> int:
    """time.ParseDuration, in nanoseconds."""
    from ..units import parse_go_duration

    return parse_go_duration(v)


def positive_duration(v: str) -> int:
    """opts.DurationOpt / PositiveDurationOpt."""
    d = duration(v)
    if d < 0:
        raise ValueError("duration cannot be negative")
    return d


def nano_cpus(v: str) -> int:
    """opts.ParseCPUs: a decimal number of CPUs, in billionths."""
    try:
        f = Fraction(v.strip()) if re.fullmatch(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
                                                r"(/\d+)?\s*", v) else None
    except (ValueError, ZeroDivisionError):
        f = None
    if f is None:
        raise ValueError(f"failed to parse {v} as a rational number")
    nano = f * 1_000_000_000
    if nano.denominator != 1:
        raise ValueError("value is too precise")
    return int(nano)


def mem_bytes(v: str) -> int:
    """units.RAMInBytes."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?", v)
    if not m:
        raise ValueError(f"invalid size: '{v}'")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    return int(float(m.group(1)) * mult[(m.group(2) or "").lower()])


def env(v: str) -> str:
    """opts.ValidateEnv: a bare NAME takes its value from our environment."""
    k, eq, _ = v.partition("=")
    if not k:
        raise ValueError(f"invalid environment variable: {v}")
    if not eq and k in os.environ:
        return f"{k}={os.environ[k]}"
    return v


def label(v: str) -> str:
    key = v.partition("=")[0].lstrip(" \t")
    if not key:
        raise ValueError(f"invalid label '{v}': empty name")
    if any(c in key for c in " \t"):
        raise ValueError(f"label '{key}' contains whitespaces")
    return v


def extra_host(v: str) -> str:
    import ipaddress

    host, colon, ip = v.partition(":")
    if not colon or not host:
        raise ValueError(f'bad format for add-host: "{v}"')
    if ip != "host-gateway":
        try:
            ipaddress.ip_address(ip.strip("[]"))
        except ValueError:
            raise ValueError(f'invalid IP address in add-host: "{ip}"') from None
    return v


def ip_address(v: str) -> str:
    import ipaddress

    try:
        return str(ipaddress.ip_address(v.strip()))
    except ValueError:
        raise ValueError(f"{v} is not an ip address") from None


def kv_map(items: list[str]) -> dict[str, str]:
    """opts.ConvertKVStringsToMap: KEY=VALUE, a bare KEY maps to ""."""
    out: dict[str, str] = {}
    for it in items:
        k, _, v = it.partition("=")
        out[k] = v
    return out


def _csv(v: str) -> list[str]:
    try:
        return next(csv.reader([v], skipinitialspace=False, strict=True))
    except (csv.Error, StopIteration) as e:
        raise ValueError(str(e)) from None


_LONG_SYNTAX = re.compile(r"\w+=\w+(,\w+=\w+)*")


def ports(v: str) -> list[dict[str, Any]]:
    """opts.PortOpt: `published=8080,target=80[,protocol=udp][,mode=host]` or
    `[published:]target[/protocol]` with ranges."""
    if _LONG_SYNTAX.search(v):
        p: dict[str, Any] = {}
        for field in _csv(v):
            k, eq, val = field.partition("=")
            if not eq:
                raise ValueError(f"invalid field {field}")
            k, val = k.lower(), val.lower()
            if k == "protocol":
                if val not in ("tcp", "udp", "sctp"):
                    raise ValueError(f"invalid protocol value {val}")
                p["Protocol"] = val
            elif k == "mode":
                if val not in ("ingress", "host"):
                    raise ValueError(f"invalid publish mode value {val}")
                p["PublishMode"] = val
            elif k in ("target", "published"):
                n = uint(val, 10)
                if n >= 1 << 16:
                    raise ValueError(f'strconv.ParseUint: parsing "{val}": value out of range')
                p["TargetPort" if k == "target" else "PublishedPort"] = n
            else:
                raise ValueError(f"invalid field key {k}")
        if not p.get("TargetPort"):
            raise ValueError('missing mandatory field "target"')
        return [{"Protocol": p.get("Protocol", "tcp"), "TargetPort": p["TargetPort"],
                 "PublishedPort": p.get("PublishedPort", 0),
                 "PublishMode": p.get("PublishMode", "ingress")}]
    spec, _, proto = v.partition("/")
    proto = (proto or "tcp").lower()
    parts = spec.rsplit(":", 2)
    if len(parts) > 2:
        import ipaddress

        try:
            ipaddress.ip_address(parts[0].strip("[]"))
        except ValueError:
            raise ValueError(f"Invalid ip address: {parts[0]}") from None
        raise ValueError("hostip is not supported")
    hp, cp = (parts[0], parts[1]) if len(parts) == 2 else ("", parts[0])
    if not cp:
        raise ValueError(f"No port specified: {v}<empty>")
    cs, ce = _port_range(cp, "containerPort")
    hs, he = _port_range(hp, "hostPort") if hp else (0, 0)
    out = []
    n = ce - cs + 1
    if hp and he - hs + 1 != n and n != 1:
        raise ValueError(f"Invalid ranges specified for container and host Ports: {cp} and {hp}")
    for i in range(n):
        if not hp:
            pubs = [0]
        elif n == 1:
            pubs = list(range(hs, he + 1))
        else:
            pubs = [hs + i]
        out += [{"Protocol": proto, "TargetPort": cs + i, "PublishedPort": pb,
                 "PublishMode": "ingress"} for pb in pubs]
    return out


def _port_range(s: str, what: str) -> tuple[int, int]:
    a, dash, b = s.partition("-")
    try:
        start = int(a)
        end = int(b) if dash else start
        if not 0 <= start <= end <= 65535:
            raise ValueError
    except ValueError:
        raise ValueError(f"Invalid {what}: {s}") from None
    return start, end


def mount(v: str) -> dict[str, Any]:
    """opts.MountOpt: type=volume|bind|tmpfs,source=,target=[,readonly,...]."""
    m: dict[str, Any] = {"Type": "volume"}

    def vol() -> dict:
        vo = m.setdefault("VolumeOptions", {"Labels": {}})
        vo.setdefault("DriverConfig", {})
        return vo

    def setmap(d: dict, val: str) -> None:
        k, eq, x = val.partition("=")
        d[k] = x if eq else ""

    for field in _csv(v):
        k, eq, val = field.partition("=")
        key = k.lower()
        if not eq:
            if key in ("readonly", "ro"):
                m["ReadOnly"] = True
                continue
            if key == "volume-nocopy":
                vol()["NoCopy"] = True
                continue
            if key == "bind-nonrecursive":
                m.setdefault("BindOptions", {})["NonRecursive"] = True
                continue
            raise ValueError(f"invalid field '{field}' must be a key=value pair")
        if key == "type":
            m["Type"] = val.lower()
        elif key in ("source", "src"):
            m["Source"] = val
        elif key in ("target", "dst", "destination"):
            m["Target"] = val
        elif key in ("readonly", "ro", "bind-nonrecursive", "volume-nocopy"):
            lv = val.lower()
            if lv not in ("1", "t", "true", "0", "f", "false"):
                raise ValueError(f"invalid value for {key}: {val}" if key != "volume-nocopy"
                                 else f"invalid value for volume-nocopy: {val}")
            b = lv in ("1", "t", "true")
            if key in ("readonly", "ro"):
                m["ReadOnly"] = b
            elif key == "bind-nonrecursive":
                m.setdefault("BindOptions", {})["NonRecursive"] = b
            else:
                vol()["NoCopy"] = b
        elif key == "consistency":
            m["Consistency"] = val.lower()
        elif key == "bind-propagation":
            m.setdefault("BindOptions", {})["Propagation"] = val.lower()
        elif key == "volume-label":
            setmap(vol()["Labels"], val)
        elif key == "volume-driver":
            vol()["DriverConfig"]["Name"] = val
        elif key == "volume-opt":
            setmap(vol()["DriverConfig"].setdefault("Options", {}), val)
        elif key == "tmpfs-size":
            try:
                m.setdefault("TmpfsOptions", {})["SizeBytes"] = mem_bytes(val)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {val}") from None
        elif key == "tmpfs-mode":
            try:
                m.setdefault("TmpfsOptions", {})["Mode"] = int(val, 8)
            except ValueError:
                raise ValueError(f"invalid value for {key}: {val}") from None
        else:
            raise ValueError(f"unexpected key '{key}' in '{field}'")
    if not m["Type"]:
        raise ValueError("type is required")
    if not m.get("Target"):
        raise ValueError("target is required")
    for opt, kind in (("VolumeOptions", "volume"), ("BindOptions", "bind"),
                      ("TmpfsOptions", "tmpfs")):
        if opt in m and m["Type"] != kind:
            raise ValueError(f"cannot mix '{kind}-*' options with mount type '{m['Type']}'")
    return m


def network(v: str) -> dict[str, Any]:
    """opts.NetworkOpt: a name, or name=...,alias=...,driver-opt=k=v."""
    if not _LONG_SYNTAX.search(v):
        return {"Target": v}
    n: dict[str, Any] = {"Target": "", "Aliases": []}
    for field in _csv(v):
        k, eq, val = field.partition("=")
        if not eq:
            raise ValueError(f"invalid field {field}")
        k, val = k.strip().lower(), val.strip().lower()
        if k == "name":
            n["Target"] = val
        elif k == "alias":
            n["Aliases"].append(val)
        elif k in ("ip", "ip6"):
            pass
        elif k == "driver-opt":
            dk, deq, dv = val.partition("=")
            if not deq:
                raise ValueError("invalid key value pair format in driver options")
            n.setdefault("DriverOpts", {})[dk.strip().lower()] = dv.strip().lower()
        else:
            raise ValueError(f"invalid field key {k}")
    if not n["Target"]:
        raise ValueError("network name/id is not specified")
    return n


def _file_ref(v: str, kind: str) -> dict[str, Any]:
    name_key = "SecretName" if kind == "secret" else "ConfigName"
    ref: dict[str, Any] = {"File": {"Name": "", "UID": "0", "GID": "0", "Mode": 0o444},
                           name_key: ""}
    fields = _csv(v)
    if len(fields) == 1 and "=" not in fields[0]:
        ref["File"]["Name"] = ref[name_key] = fields[0]
        return ref
    for field in fields:
        k, eq, val = field.partition("=")
        if not eq:
            raise ValueError(f"invalid field '{field}' must be a key=value pair")
        k = k.lower()
        if k in ("source", "src"):
            ref[name_key] = val
        elif k == "target":
            ref["File"]["Name"] = val
        elif k == "uid":
            ref["File"]["UID"] = val
        elif k == "gid":
            ref["File"]["GID"] = val
        elif k == "mode":
            try:
                ref["File"]["Mode"] = uint(val)
            except ValueError as e:
                raise ValueError(f"invalid mode specified: {e}") from None
        else:
            raise ValueError(f"invalid field in {kind} request: {k}")
    if not ref[name_key]:
        raise ValueError("source is required")
    if not ref["File"]["Name"]:
        ref["File"]["Name"] = ref[name_key]
    return ref


def secret(v: str) -> dict[str, Any]:
    return _file_ref(v, "secret")


def config(v: str) -> dict[str, Any]:
    return _file_ref(v, "config")


def credential_spec(v: str) -> dict[str, str] | None:
    """credentialSpecOpt: config://, file:// or registry://; "" for none."""
    for prefix, key in (("config://", "Config"), ("file://", "File"),
                        ("registry://", "Registry")):
        if v.startswith(prefix):
            return {key: v[len(prefix):]}
    if v == "":
        return None
    raise ValueError('invalid credential spec: value must be prefixed with "config://", '
                     '"file://", or "registry://"')


def placement_pref(v: str) -> dict[str, Any]:
    fields = v.split("=")
    if len(fields) != 2:
        raise ValueError('placement preference must be of the format "<strategy>=<arg>"')
    if fields[0] != "spread":
        raise ValueError(f"unsupported placement preference {fields[0]} (only spread is "
                         "supported)")
    return {"Spread": {"SpreadDescriptor": fields[1]}}


def ulimit(v: str) -> dict[str, Any]:
    """units.ParseUlimit: name=soft[:hard]."""
    name, eq, lim = v.partition("=")
    if not eq:
        raise ValueError(f"invalid ulimit argument: {v}")
    soft, colon, hard = lim.partition(":")
    try:
        s = int(soft)
        h = int(hard) if colon else s
    except ValueError:
        raise ValueError(f"invalid ulimit argument: {v}") from None
    if s > h:
        raise ValueError(f"ulimit soft limit must be less than or equal to hard limit: "
                         f"{s} > {h}")
    return {"Name": name, "Hard": h, "Soft": s}


def shlex_words(v: str) -> list[str]:
    """google/shlex's Split, with its messages."""
    import shlex

    try:
        return shlex.split(v)
    except ValueError as e:
        if "quotation" in str(e):
            raise ValueError("EOF found when expecting closing quote") from None
        raise ValueError("EOF found after escape character") from None


def capabilities(add: list[str], drop: list[str]) -> tuple[list[str], list[str]]:
    """opts.EffectiveCapAddCapDrop: CAP_-prefixed, ALL wins, sorted."""
    def norm(c: str) -> str:
        c = c.strip().upper()
        return c if c in ("ALL", "RESET") or c.startswith("CAP_") else "CAP_" + c

    a, d = {norm(c) for c in add}, {norm(c) for c in drop}
    if "ALL" in a:
        a = {"ALL"}
    if "ALL" in d:
        d = {"ALL"}
    return sorted(c for c in a if c != "RESET"), sorted(c for c in d - a if c != "RESET")


# --- image references as docker's client rewrites them in a service spec ---------------

def image_with_tag(image: str) -> str:
    """imageWithTagString: busybox -> busybox:latest (unless it has a digest);
    text that is no reference stays as is."""
    from .. import reference
    from ..errors import InvalidReference

    try:
        ref = reference.parse_normalized(image)
    except (InvalidReference, ValueError):
        return image
    if not ref.tag and not ref.digest:
        ref = ref.with_tag("latest")
    return ref.familiar()


def digest_warning(image: str) -> str:
    return (f"image {image} could not be accessed on a registry to record\nits digest. "
            f"Each node will access {image} independently,\npossibly leading to different "
            "nodes running different\nversions of the image.\n")


def resolve_image(task: dict, auth: str | None = None) -> str | None:
    """The client's registry query (QueryRegistry): pin the image to its
    digest and platforms; a warning to print when the registry can't be asked."""
    from .. import reference
    from .client import APIError, ConnectError, path_quote
    from .common import client

    cs = task["ContainerSpec"]
    image = cs.get("Image", "")
    try:
        r = client().request("GET", f"/distribution/{path_quote(image)}/json", None, None,
                             {"X-Registry-Auth": auth} if auth else None)
        try:
            info = r.json()
        finally:
            r.close()
    except (APIError, ConnectError):
        return digest_warning(image)
    dg = (info.get("Descriptor") or {}).get("digest", "")
    try:
        ref = reference.parse_normalized(image)
        if not ref.digest and dg:
            cs["Image"] = ref.with_digest(dg).familiar()
    except Exception:  # noqa: BLE001 - left as given, as docker does
        pass
    plats = [{"Architecture": "" if (p.get("architecture") or "").lower() == "arm"
              else p.get("architecture", ""), "OS": p.get("os", "")}
             for p in info.get("Platforms") or []]
    if plats:
        task.setdefault("Placement", {})["Platforms"] = plats
    return None


def send_spec(path: str, params: dict | None, spec: dict, registry_auth: bool,
              query_registry: bool) -> tuple[dict, list[str]]:
    """POST a service spec as docker's client does: the image tagged and, when
    asked, pinned to its digest; the daemon's answer and the warnings (the one
    about an unreachable registry last)."""
    import json

    from .common import client
    from .transfer import auth_header

    cs = spec["TaskTemplate"].get("ContainerSpec")
    headers = {"Content-Type": "application/json"}
    if registry_auth and cs is not None:
        headers.update(auth_header(cs.get("Image", "")))
    warning = None
    if cs is not None:
        cs["Image"] = image_with_tag(cs.get("Image", ""))
        if query_registry:
            warning = resolve_image(spec["TaskTemplate"], headers.get("X-Registry-Auth"))
    r = client().request("POST", path, params, json.dumps(spec).encode(), headers)
    try:
        resp = r.json() or {}
    finally:
        r.close()
    warnings = list(resp.get("Warnings") or [])
    if warning:
        warnings.append(warning)
    return resp, warnings


def resolve_refs(kind: str, refs: list[dict]) -> list[dict]:
    """ParseSecrets/ParseConfigs: each reference gets its object's ID, looked
    up by name; ValueError in docker's words when one is missing."""
    import json

    from .common import client

    if not refs:
        return []
    name_key, id_key = ("SecretName", "SecretID") if kind == "secret" else \
        ("ConfigName", "ConfigID")
    by_target: dict[str, dict] = {}
    runtime = []
    for r in refs:
        if r.get("Runtime") is not None:
            runtime.append(dict(r))
            continue
        target = (r.get("File") or {}).get("Name")
        if target in by_target:
            raise ValueError(f"duplicate {kind} target for {r[name_key]} not allowed")
        by_target[target] = dict(r)
    wanted = list(by_target.values()) + runtime
    names = {r[name_key]: True for r in wanted}
    found = client().get_json(f"/{kind}s", {"filters": json.dumps({"name": names})})
    ids = {(o.get("Spec") or {}).get("Name"): o.get("ID") for o in found or []}
    out = []
    for r in wanted:
        if r[name_key] not in ids:
            raise ValueError(f"{kind} not found: {r[name_key]}")
        r[id_key] = ids[r[name_key]]
        out.append(r)
    return out
