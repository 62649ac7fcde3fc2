"""The container commands and the `container` group that holds them, one
module a family as in docker/cli's cli/command/container:

- run.py: run, create (options generated from runflags.FLAGS)
- lifecycle.py: start, stop, restart, kill, pause, unpause, rm, rename, wait, prune
- attach.py: attach, logs, exec
- listing.py: ps (ls), inspect, port
- files.py: diff, commit, export, cp
- stats.py: stats, top
- update.py: update
- api.py: the requests and error handling they share

COMMANDS is what cli/main.py adds at the top level (`dockyard ps`...).
"""

from __future__ import annotations

from typing import Any, Callable

import typer

from .attach import attach, exec_, logs
from .files import commit, cp, diff, export
from .lifecycle import kill, pause, prune, rename, restart, rm, start, stop, unpause, wait
from .listing import inspect_container, port, ps
from .run import FLAG_CTX, create, run
from .stats import stats, top
from .update import update

app = typer.Typer(help="Manage containers", no_args_is_help=True, add_completion=False)

# (command name, function, typer.command keywords)
COMMANDS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("run", run, {"context_settings": FLAG_CTX}),
    ("create", create, {"context_settings": FLAG_CTX}),
    ("start", start, {}), ("stop", stop, {}), ("restart", restart, {}), ("kill", kill, {}),
    ("rm", rm, {}), ("wait", wait, {}), ("ps", ps, {}), ("logs", logs, {}),
    ("attach", attach, {}),
    ("exec", exec_, {"context_settings": FLAG_CTX}),
    ("top", top, {"context_settings": {"allow_interspersed_args": False,
                                       "ignore_unknown_options": True}}),
    ("pause", pause, {}), ("unpause", unpause, {}), ("rename", rename, {}), ("diff", diff, {}),
    ("commit", commit, {}), ("cp", cp, {}), ("export", export, {}), ("stats", stats, {}),
    ("port", port, {}), ("update", update, {}),
]

for _name, _fn, _kw in COMMANDS:
    app.command(_name, **_kw)(_fn)
app.command("ls")(ps)
app.command("list", hidden=True)(ps)
app.command("remove", hidden=True)(rm)
app.command("prune")(prune)
app.command("inspect")(inspect_container)
