"""Values of the `run`/`create` flags, parsed as docker's opts package (and
go-units, time.ParseDuration) parses them: sizes, durations, env files,
KEY=VALUE lists, published ports, --mount, --device, --ulimit, --restart,
--security-opt. Errors raise runflags.UsageError in docker's words."""

from __future__ import annotations

import os

from .runflags import UsageError

TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any


def ram_in_bytes(s: str) -> int:
    """units.RAMInBytes: binary multiples, "512m", "1.5g"."""
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?", s.strip())
    if not m:
        raise UsageError(f"invalid size: '{s}'")
    mult = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}
    return int(float(m.group(1)) * mult[(m.group(2) or "").lower()])


def go_duration(s: str, flag: str | None = None) -> int:
    """time.ParseDuration, in nanoseconds; with `flag`, pflag's message for it."""
    from ..units import parse_go_duration

    try:
        return parse_go_duration(s) if s else 0
    except ValueError as e:
        if flag is None:
            raise UsageError(str(e)) from None
        raise UsageError(f'invalid argument "{s}" for "{flag}" flag: {e}') from None


def parse_int(v: str, flag: str) -> int:
    """strconv.ParseInt, with pflag's message for `flag`."""
    try:
        return int(v)
    except ValueError:
        raise UsageError(f'invalid argument "{v}" for "{flag}" flag: strconv.ParseInt: '
                         f'parsing "{v}": invalid syntax') from None


def env_list(files: list[str], envs: list[str]) -> list[str]:
    """--env-file lines, then -e values; a bare NAME takes its value from our
    environment when it is set there (opts.ReadKVEnvStrings)."""
    out: list[str] = []
    for f in files:
        try:
            lines = open(f).read().splitlines()
        except OSError as e:
            raise UsageError(f"open {f}: {(e.strerror or str(e)).lower()}") from None
        for line in lines:
            line = line.lstrip()
            if not line or line.startswith("#"):
                continue
            out.append(_env_value(line))
    out += [_env_value(e) for e in envs]
    return out


def _env_value(e: str) -> str:
    k, eq, _ = e.partition("=")
    if eq:
        return e
    v = os.environ.get(k)
    return f"{k}={v}" if v is not None else e


def kv_map(items: list[str]) -> dict[str, str]:
    """KEY=VALUE items as a map (a bare KEY maps to "")."""
    out = {}
    for it in items:
        k, _, v = it.partition("=")
        out[k] = v
    return out


def parse_port_specs(specs: list[str]
                     ) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """-p [ip:][host_port:]container_port[/proto] (ranges too): the exposed ports
    and their bindings (nat.ParsePortSpecs)."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}

    def rng(s: str) -> list[str]:
        if not s:
            return [""]
        a, dash, b = s.partition("-")
        if not dash:
            return [s]
        return [str(p) for p in range(int(a), int(b) + 1)]

    for spec in specs:
        spec, _, proto = spec.partition("/")
        proto = proto or "tcp"
        parts = spec.rsplit(":", 2) if not spec.startswith("[") else None
        if parts is None:  # [ipv6]:host:ctr
            ip, _, rest = spec[1:].partition("]:")
            hp, _, cp = rest.rpartition(":")
            parts = [ip, hp, cp]
        ip, hp, cp = ([""] * (3 - len(parts)) + parts)
        if not cp:
            raise UsageError(f"No port specified: {spec}<empty>")
        cports, hports = rng(cp), rng(hp)
        for n, c in enumerate(cports):
            key = f"{c}/{proto}"
            exposed[key] = {}
            h = hports[n] if len(hports) == len(cports) else (hports[0] if hp else "")
            bindings.setdefault(key, []).append({"HostIp": ip, "HostPort": h})
    return exposed, bindings


def parse_mount(spec: str) -> dict[str, Any]:
    """--mount type=...,source=...,target=...[,readonly,...] (opts.MountOpt)."""
    m: dict[str, Any] = {"Type": "volume"}
    for field in spec.split(","):
        k, eq, v = field.partition("=")
        k = k.strip().lower()
        if k == "type":
            m["Type"] = v
        elif k in ("source", "src"):
            m["Source"] = v
        elif k in ("target", "destination", "dst"):
            m["Target"] = v
        elif k in ("readonly", "ro"):
            m["ReadOnly"] = not eq or v.lower() in ("1", "true")
        elif k == "bind-propagation":
            m.setdefault("BindOptions", {})["Propagation"] = v
        elif k == "tmpfs-size":
            m.setdefault("TmpfsOptions", {})["SizeBytes"] = ram_in_bytes(v)
        elif k == "tmpfs-mode":
            m.setdefault("TmpfsOptions", {})["Mode"] = int(v, 8)
        elif k == "consistency":
            m["Consistency"] = v
        else:
            raise UsageError(f'invalid argument "{spec}" for "--mount" flag: unexpected key '
                             f"'{k}' in '{field}'")
    if "Target" not in m:
        raise UsageError(f'invalid argument "{spec}" for "--mount" flag: target is required')
    return m


def label_map(files: list[str], labels: list[str]) -> dict[str, str]:
    """--label-file lines (blank and # lines skipped), then --label, as one map."""
    out: dict[str, str] = {}
    for f in files:
        for line in open(f).read().splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                out.update(kv_map([line]))
    out.update(kv_map(labels))
    return out


def restart_policy(value: str | None) -> dict[str, Any]:
    """--restart no|always|unless-stopped|on-failure[:max-retries]."""
    if not value:
        return {"Name": "", "MaximumRetryCount": 0}
    name, _, count = value.partition(":")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise UsageError(f"invalid restart policy {name}")
    if count and name != "on-failure":
        raise UsageError(f"maximum retry count cannot be used with restart policy '{name}'")
    return {"Name": name, "MaximumRetryCount": int(count or 0)}


def security_opts(values: list[str]) -> list[str]:
    """--security-opt, with a seccomp profile's path replaced by its JSON."""
    security = []
    for s in values:
        k, eq, v = s.partition("=") if "=" in s else s.partition(":")
        if k == "seccomp" and v not in ("unconfined", "builtin"):
            # Like the docker CLI: the daemon gets the profile's (compacted) JSON, not its path.
            try:
                with open(v) as f:
                    text = f.read()
            except OSError as e:
                raise UsageError(f"opening seccomp profile ({v}) failed: open {v}: "
                                 f"{(e.strerror or '').lower()}") from None
            import json as stdjson  # separators, and the stdlib's own error text

            try:
                text = stdjson.dumps(stdjson.loads(text), separators=(",", ":"))
            except ValueError as e:
                raise UsageError(f"compacting json for seccomp profile ({v}) failed: {e}") from None
            s = f"seccomp={text}"
        security.append(s)
    return security


def device_mappings(values: list[str]) -> list[dict[str, str]]:
    """--device host[:container][:permissions]."""
    devices = []
    for d in values:
        parts = d.split(":")
        src = parts[0]
        dst = parts[1] if len(parts) > 1 and not set(parts[1]) <= set("rwm") else src
        perm = parts[-1] if len(parts) > 1 and set(parts[-1]) <= set("rwm") else "rwm"
        devices.append({"PathOnHost": src, "PathInContainer": dst, "CgroupPermissions": perm})
    return devices


def ulimits(values: list[str]) -> list[dict[str, Any]]:
    """--ulimit name=soft[:hard]."""
    out = []
    for u in values:
        name, _, lim = u.partition("=")
        soft, _, hard = lim.partition(":")
        out.append({"Name": name, "Soft": parse_int(soft, "--ulimit"),
                    "Hard": parse_int(hard or soft, "--ulimit")})
    return out


def tmpfs_map(values: list[str]) -> dict[str, str]:
    """--tmpfs path[:options]."""
    tmpfs = {}
    for t in values:
        p, _, topts = t.partition(":")
        tmpfs[p] = topts
    return tmpfs
