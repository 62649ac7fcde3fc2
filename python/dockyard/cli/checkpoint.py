"""The `checkpoint` command group (docker's, experimental: CRIU checkpoints
of running containers). Dockyard's daemon is not experimental and answers
the checkpoint endpoints as a dockerd that isn't; against an experimental
dockerd these create, list and remove its checkpoints as docker does."""

from __future__ import annotations

import sys
from typing import Optional

import typer

from .common import call, client, daemon_experimental

app = typer.Typer(help="Manage checkpoints", no_args_is_help=True, add_completion=False)


def _experimental(cmd: str) -> None:
    # docker's CLI asks the daemon before it looks at the arguments
    if daemon_experimental() is False:
        print(f"dockyard checkpoint {cmd} is only supported on a Docker daemon with experimental "
              "features enabled", file=sys.stderr)
        raise SystemExit(1)


@app.command("create")
def create(container: str = typer.Argument(...), checkpoint: str = typer.Argument(...),
           checkpoint_dir: Optional[str] = typer.Option(None, "--checkpoint-dir"),
           leave_running: bool = typer.Option(False, "--leave-running")) -> None:
    """Create a checkpoint from a running container"""
    from .client import path_quote

    _experimental("create")
    body = {"CheckpointID": checkpoint, "CheckpointDir": checkpoint_dir or "",
            "Exit": not leave_running}
    call(lambda: client().post_json(f"/containers/{path_quote(container)}/checkpoints",
                                    None, body))
    print(checkpoint)


@app.command("ls")
def list_checkpoints(container: str = typer.Argument(...),
                     checkpoint_dir: Optional[str] = typer.Option(None, "--checkpoint-dir")
                     ) -> None:
    """List checkpoints for a container"""
    from .client import path_quote
    from .output import print_rows

    _experimental("ls")
    params = {"dir": checkpoint_dir} if checkpoint_dir else None
    found = call(lambda: client().get_json(f"/containers/{path_quote(container)}/checkpoints",
                                           params))
    print_rows("table {{.Name}}", [{"Name": c.get("Name", "")} for c in found or []],
               {"Name": "CHECKPOINT NAME"})


@app.command("rm")
def remove(container: str = typer.Argument(...), checkpoint: str = typer.Argument(...),
           checkpoint_dir: Optional[str] = typer.Option(None, "--checkpoint-dir")) -> None:
    """Remove a checkpoint"""
    from .client import path_quote

    _experimental("rm")
    params = {"dir": checkpoint_dir} if checkpoint_dir else None
    call(lambda: client().request(
        "DELETE", f"/containers/{path_quote(container)}/checkpoints/{path_quote(checkpoint)}",
        params).close())


app.command("list", hidden=True)(list_checkpoints)
app.command("remove", hidden=True)(remove)
