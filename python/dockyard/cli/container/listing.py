"""Commands that show containers: ps (`container ls`), inspect, port."""

from __future__ import annotations

from typing import List, Optional

import typer

from ..common import fail
from ..pslist import list_containers
from .api import inspect_json


def ps(all: bool = typer.Option(False, "-a", "--all", help="Show all containers"),
       filter: Optional[List[str]] = typer.Option(None, "-f", "--filter",
                                                  help="Filter output based on conditions"),
       format: Optional[str] = typer.Option(None, "--format"),
       last: int = typer.Option(-1, "-n", "--last", help="Show n last created containers"),
       latest: bool = typer.Option(False, "-l", "--latest",
                                   help="Show the latest created container"),
       no_trunc: bool = typer.Option(False, "--no-trunc", help="Don't truncate output"),
       quiet: bool = typer.Option(False, "-q", "--quiet", help="Only display container IDs"),
       size: bool = typer.Option(False, "-s", "--size", help="Display total file sizes")) -> None:
    """List containers"""
    list_containers(all, filter, format, last, latest, no_trunc, quiet, size)


def inspect_container(containers: List[str] = typer.Argument(..., metavar="CONTAINER "
                                                             "[CONTAINER...]"),
                      format: Optional[str] = typer.Option(None, "-f", "--format"),
                      size: bool = typer.Option(False, "-s", "--size")) -> None:
    """Display detailed information on one or more containers"""
    from ..inspector import inspect_objects

    inspect_objects(containers, format, "container", size)


def port(container: str = typer.Argument(...),
         private_port: Optional[str] = typer.Argument(None, metavar="[PRIVATE_PORT[/PROTO]]")
         ) -> None:
    """List port mappings or a specific mapping for the container"""
    info = inspect_json(container)
    ports = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port:
        p, _, proto = private_port.partition("/")
        key = f"{p}/{proto or 'tcp'}"
        if not ports.get(key):
            fail(f"Error: No public port '{key}' published for {container}")
        for b in ports[key]:
            print(f"{b['HostIp']}:{b['HostPort']}")
        return
    for key in sorted(ports):
        for b in ports[key] or []:
            print(f"{key} -> {b['HostIp']}:{b['HostPort']}")
