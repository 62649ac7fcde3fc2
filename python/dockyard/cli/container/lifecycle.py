"""Commands that change a container's state: start, stop, restart, kill,
pause, unpause, rm, rename, wait, and container prune."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from ..client import APIError, path_quote
from ..common import call, client, fail
from .api import each, post
from .attach import attach_flow


def start(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
          attach: bool = typer.Option(False, "-a", "--attach",
                                      help="Attach STDOUT/STDERR and forward signals"),
          interactive: bool = typer.Option(False, "-i", "--interactive",
                                           help="Attach container's STDIN"),
          detach_keys: Optional[str] = typer.Option(None, "--detach-keys")) -> None:
    """Start one or more stopped containers"""
    if attach or interactive:
        if len(containers) > 1:
            fail("you cannot start and attach multiple containers at once")
        raise SystemExit(attach_flow(containers[0], True, interactive, detach_keys, True))
    each(containers, lambda n: post(f"/containers/{path_quote(n)}/start"),
         tail=lambda f: f"Error: failed to start containers: {', '.join(f)}")


def stop(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
         time: int = typer.Option(10, "-t", "--time", help="Seconds to wait for stop before "
                                  "killing it")) -> None:
    """Stop one or more running containers"""
    each(containers, lambda n: post(f"/containers/{path_quote(n)}/stop", {"t": time}))


def restart(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
            time: int = typer.Option(10, "-t", "--time")) -> None:
    """Restart one or more containers"""
    each(containers, lambda n: post(f"/containers/{path_quote(n)}/restart", {"t": time}))


def kill(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
         signal: str = typer.Option("KILL", "-s", "--signal", help="Signal to send")) -> None:
    """Kill one or more running containers"""
    each(containers, lambda n: post(f"/containers/{path_quote(n)}/kill", {"signal": signal}))


def pause(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]")) -> None:
    """Pause all processes within one or more containers"""
    each(containers, lambda n: post(f"/containers/{path_quote(n)}/pause"))


def unpause(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]")
            ) -> None:
    """Unpause all processes within one or more containers"""
    each(containers, lambda n: post(f"/containers/{path_quote(n)}/unpause"))


def rm(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]"),
       force: bool = typer.Option(False, "-f", "--force",
                                  help="Force the removal of a running container"),
       link: bool = typer.Option(False, "-l", "--link", help="Remove the specified link"),
       volumes: bool = typer.Option(False, "-v", "--volumes",
                                    help="Remove anonymous volumes")) -> None:
    """Remove one or more containers"""
    def one(n: str) -> None:
        client().request("DELETE", f"/containers/{path_quote(n.strip('/'))}",
                         {"v": volumes or None, "force": force or None,
                          "link": link or None}).close()
    each(containers, one, not_found="rm")


def rename(container: str = typer.Argument(...), new_name: str = typer.Argument(...)) -> None:
    """Rename a container"""
    if not new_name.strip():
        fail("Error: Neither old nor new names may be empty")
    try:
        call(lambda: post(f"/containers/{path_quote(container)}/rename",
                          {"name": new_name.strip()}))
    except SystemExit:
        print(f"Error: failed to rename container named {container}", file=sys.stderr)
        raise


def wait(containers: List[str] = typer.Argument(..., metavar="CONTAINER [CONTAINER...]")) -> None:
    """Block until one or more containers stop, then print their exit codes"""
    failed = False
    for n in containers:
        try:
            r = client().request("POST", f"/containers/{path_quote(n)}/wait")
            res = r.json()
            r.close()
        except APIError as e:
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            failed = True
            continue
        if (res.get("Error") or {}).get("Message"):
            print(res["Error"]["Message"], file=sys.stderr)
            failed = True
            continue
        print(res.get("StatusCode", 0))
    if failed:
        raise SystemExit(1)


def prune(force: bool = typer.Option(False, "-f", "--force"),
          filter: Optional[List[str]] = typer.Option(None, "--filter")) -> None:
    """Remove all stopped containers"""
    from .. import prune as pruning

    if not force and not pruning.confirm("WARNING! This will remove all stopped containers.\n"
                                         "Are you sure you want to continue?"):
        return
    pruning.report(*pruning.containers(filter))
