"""The `dockyard` command: docker's client commands, plus `dockyard daemon`.

A run imports the module of the command it names, and Typer makes a click
command of that one only (`app_for`); each command imports what it needs
when it runs. `run`, `create`, `pull`, `push` and `version` don't come here
(cli/fast.py).
"""

from __future__ import annotations

import copy
import importlib
import sys
from typing import Any, Collection, Optional

import typer

from .common import G, check_host_and_context

# The groups (`dockyard <group> <command>`): name -> the module whose `app` it is.
GROUPS = {
    "container": "container", "image": "image", "system": "system", "network": "network",
    "volume": "volume", "plugin": "plugin", "trust": "trust", "builder": "build",
    "checkpoint": "checkpoint", "rootless": "rootless", "context": "context",
    "manifest": "manifest", "swarm": "swarm", "node": "node", "secret": "secret",
    "config": "config", "service": "service", "stack": "stack",
}
# The top-level commands, in the help's order: name -> the module whose
# COMMANDS (name, function, typer.command keywords) hold it.
TOP = {
    **dict.fromkeys(("images", "import", "tag", "rmi", "history", "save", "load"), "image"),
    **dict.fromkeys(("version", "info", "events", "inspect"), "system"),
    **dict.fromkeys(("run", "create", "start", "stop", "restart", "kill", "rm", "wait", "ps",
                     "logs", "attach", "exec", "top", "pause", "unpause", "rename", "diff",
                     "commit", "cp", "export", "stats", "port", "update"), "container"),
    "build": "build",
    **dict.fromkeys(("pull", "push", "login", "logout", "search"), "registry"),
    "daemon": "daemon",
}


def _module(name: str) -> Any:
    return importlib.import_module(f".{name}", __package__)


def _print_version(value: bool) -> None:
    if value:
        from .fast import version_line

        typer.echo(version_line())
        raise typer.Exit()


def options(
    host: Optional[str] = typer.Option(None, "-H", "--host", help="Daemon socket to connect to"),
    context: Optional[str] = typer.Option(
        None, "-c", "--context", help="Name of the context to use to connect to the daemon "
        "(overrides DOCKER_HOST env var and default context set with \"dockyard context use\")"),
    tls: bool = typer.Option(False, "--tls", help="Use TLS; implied by --tlsverify"),
    tlsverify: bool = typer.Option(False, "--tlsverify", help="Use TLS and verify the remote"),
    tlscacert: Optional[str] = typer.Option(None, "--tlscacert"),
    tlscert: Optional[str] = typer.Option(None, "--tlscert"),
    tlskey: Optional[str] = typer.Option(None, "--tlskey"),
    debug: bool = typer.Option(False, "-D", "--debug", help="Enable debug mode"),
    log_level: str = typer.Option("info", "-l", "--log-level"),
    version: bool = typer.Option(False, "-v", "--version", is_eager=True,
                                 callback=_print_version,
                                 help="Print version information and quit"),
) -> None:
    G.host, G.context, G.tls, G.tlsverify = host, context, tls, tlsverify
    G.tlscacert, G.tlscert, G.tlskey, G.debug = tlscacert, tlscert, tlskey, debug
    check_host_and_context()


def make_app(names: Collection[str] | None = None) -> typer.Typer:
    """The CLI with the groups and top-level commands `names` (all by default)."""
    app = typer.Typer(
        name="dockyard", add_completion=False, no_args_is_help=True,
        context_settings={"help_option_names": ["--help"]},
        help="A self-sufficient runtime for containers",
        pretty_exceptions_enable=False, rich_markup_mode=None,
    )
    app.callback()(options)
    for name, mod in GROUPS.items():
        if names is None or name in names:
            t = _module(mod).app
            if name == "image":  # `image build` is the build module's (the groups stand alone)
                build = _module("build")
                t = copy.copy(t)
                t.registered_commands = list(t.registered_commands)
                t.command("build", context_settings=build.RAW)(build.image_build)
            app.add_typer(t, name=name)
    for mod in dict.fromkeys(TOP.values()):
        wanted = [n for n, m in TOP.items() if m == mod and (names is None or n in names)]
        if wanted:
            fns = {n: (fn, kw) for n, fn, kw in _module(mod).COMMANDS}
            for n in wanted:
                app.command(n, **fns[n][1])(fns[n][0])
    return app


def app_for(argv: list[str]) -> typer.Typer:
    """The app a run of `argv` (after the global options) needs: the command
    or group it names, and in a group only the command named next when
    known. Anything unknown gets the whole level, for its help and its "No
    such command". (Typer makes a click command of every command and option
    at each start: ~0.1 s for the ~180 of them, with their imports ~0.2 s.)"""
    if not argv or (argv[0] not in GROUPS and argv[0] not in TOP):
        return make_app()
    app = make_app((argv[0],))
    for g in app.registered_groups:
        t = g.typer_instance
        cmds = [c for c in t.registered_commands if c.name == argv[1]] \
            if t is not None and len(argv) > 1 else []
        if cmds:
            g.typer_instance = copy.copy(t)
            g.typer_instance.registered_commands = cmds
    return app


def main(argv: list[str] | None = None) -> None:
    from .fast import parse_globals

    args = sys.argv[1:] if argv is None else argv
    i = parse_globals(list(args))
    (make_app() if i is None else app_for(args[i:]))(args)
