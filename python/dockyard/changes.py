"""Dockerfile instructions applied to an image config, as `docker import -c`
and `docker commit -c` take them (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK,
LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from .errors import InvalidParameter
from .units import parse_go_duration

ALLOWED = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "USER",
           "VOLUME", "WORKDIR", "STOPSIGNAL"}
_HEALTHCHECK_FLAGS = ("interval", "timeout", "start-period", "retries")


def _json_or_shell(arg: str, shell_form: bool) -> list[str]:
    s = arg.strip()
    if s.startswith("["):
        try:
            v = json.loads(s)
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                return v
        except ValueError:
            pass
    return ["/bin/sh", "-c", s] if shell_form else shlex.split(s)


def _pairs(arg: str) -> list[tuple[str, str]]:
    words = shlex.split(arg)
    if len(words) >= 1 and "=" not in words[0]:
        # legacy form: ENV key value with spaces
        key, _, value = arg.strip().partition(" ")
        return [(key, value.strip())]
    out = []
    for w in words:
        k, eq, v = w.partition("=")
        if not eq:
            raise InvalidParameter(f"{w}: invalid key=value pair")
        out.append((k, v))
    return out


def apply_changes(config: dict[str, Any], changes: list[str]) -> None:
    """Apply each instruction to the container config `config` in place."""
    for line in changes:
        line = line.strip()
        if not line:
            continue
        cmd, _, arg = line.partition(" ")
        op = cmd.upper()
        if op not in ALLOWED:
            raise InvalidParameter(f"{cmd} is not a valid change command")
        if op == "CMD":
            config["Cmd"] = _json_or_shell(arg, True)
        elif op == "ENTRYPOINT":
            config["Entrypoint"] = _json_or_shell(arg, True)
        elif op == "ENV":
            env = [e for e in (config.get("Env") or [])]
            for k, v in _pairs(arg):
                env = [e for e in env if e.split("=", 1)[0] != k] + [f"{k}={v}"]
            config["Env"] = env
        elif op == "LABEL":
            labels = dict(config.get("Labels") or {})
            labels.update(dict(_pairs(arg)))
            config["Labels"] = labels
        elif op == "EXPOSE":
            ports = dict(config.get("ExposedPorts") or {})
            for p in arg.split():
                ports[p if "/" in p else f"{p}/tcp"] = {}
            config["ExposedPorts"] = ports
        elif op == "VOLUME":
            vols = dict(config.get("Volumes") or {})
            for v in _json_or_shell(arg, False):
                vols[v] = {}
            config["Volumes"] = vols
        elif op == "ONBUILD":
            config["OnBuild"] = (config.get("OnBuild") or []) + [arg.strip()]
        elif op == "USER":
            config["User"] = arg.strip()
        elif op == "WORKDIR":
            config["WorkingDir"] = arg.strip()
        elif op == "STOPSIGNAL":
            config["StopSignal"] = arg.strip()
        elif op == "HEALTHCHECK":
            config["Healthcheck"] = healthcheck(arg)


def healthcheck(arg: str) -> dict[str, Any]:
    """`HEALTHCHECK NONE` or `HEALTHCHECK [--interval=..] CMD ...` as the
    builder parses it (instructions/parse.go), with its messages."""
    rest, flags = arg.strip(), {}
    while rest.startswith("--"):  # the builder's flags come first, as --name=value
        word, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        if word == "--":
            break
        name, eq, value = word[2:].partition("=")
        flags.setdefault(name, (word, eq, value))
    if not rest:
        raise InvalidParameter("HEALTHCHECK requires at least one argument")
    parts = rest.split(None, 1)
    kind, cmd = parts[0].upper(), (parts[1].strip() if len(parts) > 1 else "")
    if kind == "NONE":
        if cmd:
            raise InvalidParameter("HEALTHCHECK NONE takes no arguments")
        return {"Test": ["NONE"]}
    for name, (word, eq, _) in flags.items():
        if name not in _HEALTHCHECK_FLAGS:
            raise InvalidParameter(f"Unknown flag: {name}")
        if not eq:
            raise InvalidParameter(f"Missing a value on flag: {word}")
    if kind != "CMD":
        raise InvalidParameter(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    test: list[str] = []
    if cmd.startswith("["):
        try:
            v = json.loads(cmd)
        except ValueError:
            v = None
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            test = ["CMD", *v] if v else []
        else:
            test = ["CMD-SHELL", cmd]
    elif cmd:
        test = ["CMD-SHELL", cmd]
    if not test:
        raise InvalidParameter("Missing command after HEALTHCHECK CMD")
    hc: dict[str, Any] = {"Test": test}
    for name, key in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start-period", "StartPeriod")):
        value = flags.get(name, ("", "", ""))[2]
        if not value:
            continue
        try:
            d = parse_go_duration(value)
        except ValueError as e:
            raise InvalidParameter(str(e)) from None
        if d < 1_000_000:
            raise InvalidParameter(f'Interval "{name}" cannot be less than 1ms')
        hc[key] = d
    retries = flags.get("retries", ("", "", ""))[2]
    if retries:
        try:
            n = int(retries)
        except ValueError:
            raise InvalidParameter(f'strconv.ParseInt: parsing "{retries}": invalid syntax'
                                   ) from None
        if n < 1:
            raise InvalidParameter(f"--retries must be at least 1 (not {n})")
        hc["Retries"] = n
    return hc
