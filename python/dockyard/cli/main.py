"""The `dockyard` command: docker's client commands, plus `dockyard daemon`.

Only Typer and the small socket client load at start; each command imports
what it needs when it runs, which keeps `dockyard version` fast.
"""

from __future__ import annotations

import copy
import sys
from typing import Optional

import typer

from . import (build, checkpoint, config, container, context, daemon, image, manifest, network,
               node, plugin, registry, rootless, secret, service, stack, swarm, system, trust,
               volume)
from .common import G, check_host_and_context

app = typer.Typer(
    name="dockyard", add_completion=False, no_args_is_help=True,
    context_settings={"help_option_names": ["--help"]},
    help="A self-sufficient runtime for containers",
    pretty_exceptions_enable=False, rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        from .fast import version_line

        typer.echo(version_line())
        raise typer.Exit()


@app.callback()
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


app.add_typer(container.app, name="container")
app.add_typer(image.app, name="image")
app.add_typer(system.app, name="system")
app.add_typer(network.app, name="network")
app.add_typer(volume.app, name="volume")
app.add_typer(plugin.app, name="plugin")
app.add_typer(trust.app, name="trust")
app.add_typer(build.app, name="builder")
app.add_typer(checkpoint.app, name="checkpoint")
app.add_typer(rootless.app, name="rootless")
app.add_typer(context.app, name="context")
app.add_typer(manifest.app, name="manifest")
app.add_typer(swarm.app, name="swarm")
app.add_typer(node.app, name="node")
app.add_typer(secret.app, name="secret")
app.add_typer(config.app, name="config")
app.add_typer(service.app, name="service")
app.add_typer(stack.app, name="stack")
image.app.command("build", context_settings=build.RAW)(build.image_build)
app.command("images")(image.list_images)
app.command("import")(image.import_image)
app.command("tag")(image.tag)
app.command("rmi")(image.rmi)
app.command("history")(image.history)
app.command("save")(image.save)
app.command("load")(image.load)
app.command("version")(system.version)
app.command("info")(system.info)
app.command("events")(system.events)
app.command("inspect")(system.inspect)
for _name, _fn, _kw in container.COMMANDS:
    app.command(_name, **_kw)(_fn)
for _name, _fn, _kw in build.COMMANDS:
    app.command(_name, **_kw)(_fn)
for _name, _fn in registry.COMMANDS:
    app.command(_name)(_fn)


app.command("daemon", context_settings={"ignore_unknown_options": False})(daemon.daemon)


def pruned(t: typer.Typer, argv: list[str]) -> typer.Typer:
    """`t` with only the command (or group) `argv` names, and in a group only
    its command argv names next, when they are known: Typer makes a click
    command of every command and option at each start (~0.2 s for the ~180
    of them) and a run needs one. Anything unknown keeps the whole level, for
    its help and its "No such command"."""
    if not argv or argv[0].startswith("-"):
        return t
    cmds = [c for c in t.registered_commands if c.name == argv[0]]
    groups = [copy.copy(g) for g in t.registered_groups if g.name == argv[0]]
    if not cmds and not groups:
        return t
    for g in groups:
        if g.typer_instance is not None:
            g.typer_instance = pruned(g.typer_instance, argv[1:])
    small = copy.copy(t)
    small.registered_commands, small.registered_groups = cmds, groups
    return small


def main(argv: list[str] | None = None) -> None:
    from .fast import parse_globals

    args = sys.argv[1:] if argv is None else argv
    i = parse_globals(list(args))
    (app if i is None else pruned(app, args[i:]))(args)
