"""Dockerfile instructions applied to an image config, as `docker import -c`
and `docker commit -c` take them (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL,
ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from .errors import InvalidParameter

ALLOWED = {"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "USER", "VOLUME",
           "WORKDIR", "STOPSIGNAL"}


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
