"""The `plugin` command group (docker's `plugin` commands), over the Engine
API. Dockyard's own daemon has no managed plugins (its drivers are built
in); against a dockerd these list and manage its plugins as docker does."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from .common import call, client

app = typer.Typer(help="Manage plugins", no_args_is_help=True, add_completion=False)

HEADERS = {"ID": "ID", "Name": "NAME", "Description": "DESCRIPTION", "Enabled": "ENABLED",
           "PluginReference": "PLUGIN REFERENCE"}


@app.command("ls")
def list_plugins(quiet: bool = typer.Option(False, "-q", "--quiet"),
                 filter: Optional[List[str]] = typer.Option(None, "-f", "--filter"),
                 format: Optional[str] = typer.Option(None, "--format"),
                 no_trunc: bool = typer.Option(False, "--no-trunc")) -> None:
    """List plugins"""
    from .opts import filters_param
    from .output import print_rows

    plugins = call(lambda: client().get_json("/plugins", {"filters": filters_param(filter)}))
    rows = []
    for p in plugins or []:
        desc = (p.get("Config") or {}).get("Description", "")
        rows.append({"ID": p.get("Id", "") if no_trunc else p.get("Id", "")[:12],
                     "Name": p.get("Name", ""), "Enabled": str(bool(p.get("Enabled"))).lower(),
                     "Description": desc if no_trunc or len(desc) <= 45 else desc[:44] + "…",
                     "PluginReference": p.get("PluginReference", "")})
    if quiet and not format:
        sys.stdout.write("".join(r["ID"] + "\n" for r in rows))
        return
    print_rows(format or "table {{.ID}}\t{{.Name}}\t{{.Description}}\t{{.Enabled}}", rows,
               HEADERS)


@app.command("inspect")
def inspect(plugins: List[str] = typer.Argument(..., metavar="PLUGIN..."),
            format: Optional[str] = typer.Option(None, "-f", "--format")) -> None:
    """Display detailed information on one or more plugins"""
    from .client import APIError, path_quote
    from .output import print_json_indent, print_one

    found, errors = [], []
    for n in plugins:
        try:
            found.append(client().get_json(f"/plugins/{path_quote(n)}/json"))
        except APIError as e:
            errors.append(f"Error: No such plugin: {n}" if e.status == 404
                          else f"Error response from daemon: {e.message}")
    if format:
        for obj in found:
            print_one(format, obj)
    else:
        print_json_indent(found)
    for msg in errors:
        print(msg, file=sys.stderr)
    if errors:
        raise SystemExit(1)


def _each(names: list[str], method: str, suffix: str, params: dict | None = None,
          not_found_as_missing: bool = False) -> None:
    """Each plugin's request, its name printed; docker's CLI words a 404 its
    own way for some commands (`rm`) and passes the daemon's on for others."""
    from .client import APIError, path_quote

    failed = False
    for n in names:
        try:
            client().request(method, f"/plugins/{path_quote(n)}{suffix}", params).close()
            print(n)
        except APIError as e:
            print(f"Error: No such plugin: {n}" if e.status == 404 and not_found_as_missing
                  else f"Error response from daemon: {e.message}", file=sys.stderr)
            failed = True
    if failed:
        raise SystemExit(1)


@app.command("rm")
def remove(plugins: List[str] = typer.Argument(..., metavar="PLUGIN..."),
           force: bool = typer.Option(False, "-f", "--force")) -> None:
    """Remove one or more plugins"""
    _each(plugins, "DELETE", "", {"force": 1 if force else None}, not_found_as_missing=True)


@app.command("enable")
def enable(plugin: str = typer.Argument(...),
           timeout: int = typer.Option(30, "--timeout")) -> None:
    """Enable a plugin"""
    _each([plugin], "POST", "/enable", {"timeout": timeout})


@app.command("disable")
def disable(plugin: str = typer.Argument(...),
            force: bool = typer.Option(False, "-f", "--force")) -> None:
    """Disable a plugin"""
    _each([plugin], "POST", "/disable", {"force": 1 if force else None})


@app.command("install")
def install(plugin: str = typer.Argument(...),
            alias: Optional[str] = typer.Option(None, "--alias"),
            grant: bool = typer.Option(False, "--grant-all-permissions"),
            disable: bool = typer.Option(False, "--disable"),
            args: Optional[List[str]] = typer.Argument(None)) -> None:
    """Install a plugin"""
    call(lambda: client().get_json("/plugins/privileges", {"remote": plugin}))
