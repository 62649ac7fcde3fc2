"""The `service` command group (docker's `service` commands, swarm mode),
one module a family as in docker/cli's cli/command/service:

- create.py: create (the ServiceSpec from docker's flags, flags.py)
- update.py: update, rollback, scale, rm
- listing.py: ls, ps, inspect
- logs.py: logs
- api.py: errors in docker's words, the runner, reading a service

create/update/scale/rollback show the service converging unless -d. Against
a daemon in no swarm (Dockyard's own) they print what docker's CLI prints.
"""

from __future__ import annotations

from typing import Callable

import typer

from ..pflags import Command, Parsed
from .api import RAW, run_command
from .create import CREATE, create
from .listing import INSPECT, LS, PS, inspect, ls, ps
from .logs import LOGS, logs
from .update import RM, ROLLBACK, SCALE, UPDATE, rm, rollback, scale, update

app = typer.Typer(help="Manage services", no_args_is_help=True, add_completion=False)


def _register(cmd: Command, fn: Callable[[Parsed], None], *aliases: str) -> None:
    def command(ctx: typer.Context) -> None:
        run_command(cmd, list(ctx.args), fn)

    name = cmd.path.rsplit(" ", 1)[-1]
    for n in (name, *aliases):
        app.command(n, context_settings=RAW, help=cmd.short, hidden=n != name)(command)


for _cmd, _fn, _aliases in ((CREATE, create, ()), (INSPECT, inspect, ()), (LOGS, logs, ()),
                            (LS, ls, ("list",)), (PS, ps, ()), (RM, rm, ("remove",)),
                            (ROLLBACK, rollback, ()), (SCALE, scale, ()), (UPDATE, update, ())):
    _register(_cmd, _fn, *_aliases)
