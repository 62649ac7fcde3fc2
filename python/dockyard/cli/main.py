"""The `dockyard` command: docker's client commands, plus `dockyard daemon`.

Only Typer and the small socket client load at start; each command imports
what it needs when it runs, which keeps `dockyard version` fast.
"""

from __future__ import annotations

from typing import Optional

import typer

from . import container, image, system
from .common import G

app = typer.Typer(
    name="dockyard", add_completion=False, no_args_is_help=True,
    context_settings={"help_option_names": ["--help"]},
    help="A self-sufficient runtime for containers",
    pretty_exceptions_enable=False, rich_markup_mode=None,
)


@app.callback()
def options(
    host: Optional[str] = typer.Option(None, "-H", "--host", help="Daemon socket to connect to"),
    tls: bool = typer.Option(False, "--tls", help="Use TLS; implied by --tlsverify"),
    tlsverify: bool = typer.Option(False, "--tlsverify", help="Use TLS and verify the remote"),
    tlscacert: Optional[str] = typer.Option(None, "--tlscacert"),
    tlscert: Optional[str] = typer.Option(None, "--tlscert"),
    tlskey: Optional[str] = typer.Option(None, "--tlskey"),
    debug: bool = typer.Option(False, "-D", "--debug", help="Enable debug mode"),
    log_level: str = typer.Option("info", "-l", "--log-level"),
) -> None:
    G.host, G.tls, G.tlsverify = host, tls, tlsverify
    G.tlscacert, G.tlscert, G.tlskey, G.debug = tlscacert, tlscert, tlskey, debug


app.add_typer(container.app, name="container")
app.add_typer(image.app, name="image")
app.add_typer(system.app, name="system")
app.command("images")(image.list_images)
app.command("import")(image.import_image)
app.command("tag")(image.tag)
app.command("rmi")(image.rmi)
app.command("history")(image.history)
app.command("save")(image.save)
app.command("load")(image.load)
app.command("version")(system.version)
app.command("info")(system.info)
app.command("inspect")(system.inspect)
for _name, _fn, _kw in container.COMMANDS:
    app.command(_name, **_kw)(_fn)


@app.command("daemon", context_settings={"ignore_unknown_options": False})
def daemon(
    host: Optional[list[str]] = typer.Option(None, "-H", "--host"),
    group: str = typer.Option("dockyard", "-G", "--group"),
    graph: Optional[str] = typer.Option(None, "-g", "--graph"),
    data_root: Optional[str] = typer.Option(None, "--data-root"),
    exec_root: str = typer.Option("/var/run/dockyard", "--exec-root"),
    pidfile: str = typer.Option("/var/run/dockyard.pid", "-p", "--pidfile"),
    storage_driver: Optional[str] = typer.Option(None, "-s", "--storage-driver"),
    storage_opt: Optional[list[str]] = typer.Option(None, "--storage-opt"),
    debug: bool = typer.Option(False, "-D", "--debug"),
    log_level: str = typer.Option("info", "-l", "--log-level"),
    tls: bool = typer.Option(False, "--tls"),
    tlsverify: bool = typer.Option(False, "--tlsverify"),
    tlscacert: Optional[str] = typer.Option(None, "--tlscacert"),
    tlscert: Optional[str] = typer.Option(None, "--tlscert"),
    tlskey: Optional[str] = typer.Option(None, "--tlskey"),
    insecure_tcp: bool = typer.Option(False, "--insecure-tcp",
                                      help="Allow a TCP listener without TLS"),
    default_ulimit: Optional[list[str]] = typer.Option(None, "--default-ulimit",
                                                       help="type=soft[:hard]"),
    exec_opt: Optional[list[str]] = typer.Option(None, "--exec-opt"),
) -> None:
    """Run the Dockyard daemon"""
    from ..daemon.main import run
    from ..daemon.server import DaemonConfig

    if graph and data_root and graph != data_root:
        raise typer.BadParameter("--graph and --data-root name different directories")
    opts = {}
    for o in storage_opt or []:
        k, _, v = o.partition("=")
        opts[k] = v
    ulimits = []
    for u in default_ulimit or []:
        name, eq, val = u.partition("=")
        soft, _, hard = val.partition(":")
        if not eq or not soft.lstrip("-").isdigit() or (hard and not hard.lstrip("-").isdigit()):
            raise typer.BadParameter(f"invalid ulimit argument: {u}")
        ulimits.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
    exec_opts = dict(o.partition("=")[::2] for o in exec_opt or [])
    cfg = DaemonConfig(
        hosts=list(host) if host else ["unix:///var/run/dockyard.sock"], group=group,
        data_root=data_root or graph or "/var/lib/dockyard", exec_root=exec_root,
        pidfile=pidfile, storage_driver=storage_driver, storage_opts=opts, debug=debug,
        log_level=log_level, tls=tls or tlsverify, tlsverify=tlsverify, tlscacert=tlscacert,
        tlscert=tlscert, tlskey=tlskey, insecure_tcp=insecure_tcp,
        default_ulimits=ulimits, exec_opts=exec_opts)
    raise SystemExit(run(cfg))


def main() -> None:
    app()
