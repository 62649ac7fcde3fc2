"""Which context a command talks to (docker's choice), apart from the
context store (`contexts`): the fast path (`dockyard run`) asks this at
every start and needs nothing else of it."""

from __future__ import annotations

import os

from . import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DEFAULT = "default"


def dockyard_config_dir() -> str:
    return os.environ.get("DOCKYARD_CONFIG") or os.path.expanduser("~/.dockyard")


def docker_config_dir() -> str:
    return os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")


def config_dirs() -> list[str]:
    """Dockyard's config dir (written to), then docker's (read), once each."""
    ours, docker = dockyard_config_dir(), docker_config_dir()
    if os.path.abspath(ours) == os.path.abspath(docker):
        return [ours]
    return [ours, docker]


def read_config(config_dir: str) -> dict[str, Any]:
    try:
        with open(os.path.join(config_dir, "config.json"), "rb") as f:
            data = fastjson.loads(f.read() or b"{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def configured_current() -> str:
    """`currentContext` of Dockyard's config.json, else of docker's."""
    for d in config_dirs():
        name = read_config(d).get("currentContext")
        if isinstance(name, str) and name:
            return name
    return ""


def current_name(flag_context: str | None, flag_host: str | None) -> str:
    """docker's context choice: --context, then -H (the default context), then
    the environment (a host variable means the default context, else the
    context variable; Dockyard's pair before docker's), then config.json."""
    if flag_context:
        return flag_context
    if flag_host:
        return DEFAULT
    for host_var, context_var in (("DOCKYARD_HOST", "DOCKYARD_CONTEXT"),
                                  ("DOCKER_HOST", "DOCKER_CONTEXT")):
        if os.environ.get(host_var):
            return DEFAULT
        if os.environ.get(context_var):
            return os.environ[context_var]
    return configured_current() or DEFAULT
