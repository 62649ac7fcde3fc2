"""The `volume` command group (docker's `volume` commands), over the Engine
API, with docker's flags, output and exit codes."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from .common import call, client, fail
from .opts import key_values

app = typer.Typer(help="Manage volumes", no_args_is_help=True, add_completion=False)

HEADERS = {"Driver": "DRIVER", "Name": "VOLUME NAME", "Scope": "SCOPE",
           "Mountpoint": "MOUNTPOINT", "Labels": "LABELS"}



@app.command("create")
def create(name: Optional[str] = typer.Argument(None, metavar="[VOLUME]"),
           driver: str = typer.Option("local", "-d", "--driver"),
           label: Optional[List[str]] = typer.Option(None, "--label"),
           opt: Optional[List[str]] = typer.Option(None, "-o", "--opt"),
           name_flag: Optional[str] = typer.Option(None, "--name", hidden=True)) -> None:
    """Create a volume"""
    if name and name_flag and name != name_flag:
        fail('conflicting options: either specify --name or provide positional arg, not both',
             1)
    body = {"Name": name or name_flag or "", "Driver": driver,
            "DriverOpts": key_values(opt, "--opt"), "Labels": key_values(label, "--label")}
    print(call(lambda: client().post_json("/volumes/create", None, body))["Name"])


@app.command("ls")
def list_volumes(quiet: bool = typer.Option(False, "-q", "--quiet"),
                 filter: Optional[List[str]] = typer.Option(None, "-f", "--filter"),
                 format: Optional[str] = typer.Option(None, "--format")) -> None:
    """List volumes"""
    from .opts import filters_param

    vols = call(lambda: client().get_json("/volumes", {"filters": filters_param(filter)}))
    rows = sorted(vols.get("Volumes") or [], key=lambda v: v["Name"])
    for v in rows:
        v["Labels"] = ",".join(f"{k}={x}" for k, x in (v.get("Labels") or {}).items())
    if quiet and not format:
        sys.stdout.write("".join(v["Name"] + "\n" for v in rows))
        return
    from .output import print_rows

    print_rows(format or "table {{.Driver}}\t{{.Name}}", rows, HEADERS)


@app.command("inspect")
def inspect(volumes: List[str] = typer.Argument(..., metavar="VOLUME..."),
            format: Optional[str] = typer.Option(None, "-f", "--format")) -> None:
    """Display detailed information on one or more volumes"""
    from .inspector import inspect_named

    inspect_named("volume", "/volumes", volumes, format)


@app.command("rm")
def remove(volumes: List[str] = typer.Argument(..., metavar="VOLUME..."),
           force: bool = typer.Option(False, "-f", "--force")) -> None:
    """Remove one or more volumes"""
    from .inspector import remove_named

    remove_named("/volumes", volumes, {"force": force or None})


@app.command("prune")
def prune(force: bool = typer.Option(False, "-f", "--force"),
          filter: Optional[List[str]] = typer.Option(None, "--filter")) -> None:
    """Remove all unused local volumes"""
    from . import prune as pruning

    if not force and not pruning.confirm("WARNING! This will remove all local volumes not used "
                                         "by at least one container.\nAre you sure you want to "
                                         "continue?"):
        return
    pruning.report(*pruning.volumes(filter))


# (command name, function, typer.command keywords) for the `dockyard` app
COMMANDS: list = []
