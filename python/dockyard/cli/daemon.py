"""`dockyard daemon`: dockerd's options. The flags given on the command line
(not their defaults) are handed to `daemon.config.load` under daemon.json's key
names, so the file and the flags merge, and conflict, as they do in dockerd."""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

import typer

#: parameter -> daemon.json key
KEYS = {
    "host": "hosts", "group": "group", "graph": "data-root", "data_root": "data-root",
    "exec_root": "exec-root", "pidfile": "pidfile", "storage_driver": "storage-driver",
    "storage_opt": "storage-opts", "debug": "debug", "log_level": "log-level", "tls": "tls",
    "tlsverify": "tlsverify", "tlscacert": "tlscacert", "tlscert": "tlscert",
    "tlskey": "tlskey", "insecure_tcp": "insecure-tcp",
    "authorization_plugin": "authorization-plugins", "default_ulimit": "default-ulimits",
    "exec_opt": "exec-opts", "insecure_registry": "insecure-registries", "label": "labels",
    "max_concurrent_downloads": "max-concurrent-downloads",
    "max_concurrent_uploads": "max-concurrent-uploads",
    "max_download_attempts": "max-download-attempts", "selinux_enabled": "selinux-enabled",
    "exec_driver": "exec-driver", "bridge": "bridge", "bip": "bip", "fixed_cidr": "fixed-cidr",
    "default_address_pool": "default-address-pools", "icc": "icc", "ip": "ip",
    "ip_forward": "ip-forward", "ip_masq": "ip-masq", "iptables": "iptables", "mtu": "mtu",
    "dns": "dns", "dns_search": "dns-search", "dns_opt": "dns-opts",
    "log_driver": "log-driver", "log_opt": "log-opts", "userns_remap": "userns-remap",
    "cri": "cri", "cni_conf_dir": "cni-conf-dir", "cni_bin_dir": "cni-bin-dirs",
    "cri_stream_addr": "cri-stream-addr", "rootless_limits": "rootless-limits",
}


#: Options that default to true, given as --name=false (Go's boolean flags).
BOOL_VALUES = ("icc", "ip_forward", "ip_masq", "iptables")


def given_flags(ctx: typer.Context) -> dict[str, Any]:
    """The options set on the command line, by daemon.json key, in its shapes."""
    from ..daemon.config import ConfigError, parse_ulimit

    graph, data_root = ctx.params.get("graph"), ctx.params.get("data_root")
    if graph and data_root and graph != data_root:
        raise typer.BadParameter("--graph and --data-root name different directories")
    flags: dict[str, Any] = {}
    for name, key in KEYS.items():
        # By name: Typer may carry its own copy of click and of this enum.
        source = ctx.get_parameter_source(name)
        if source is None or source.name not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        value = ctx.params[name]
        if name == "default_ulimit":
            try:
                value = {u["Name"]: u for u in map(parse_ulimit, value)}
            except ConfigError as e:
                raise typer.BadParameter(str(e)) from None
        if name in BOOL_VALUES:
            # Go's flags: --iptables=false
            if str(value).lower() not in ("true", "false", "1", "0"):
                raise typer.BadParameter(f"invalid boolean value {value!r} for --{key}")
            value = str(value).lower() in ("true", "1")
        flags[key] = list(value) if isinstance(value, (list, tuple)) else value
    return flags


def daemon(
    ctx: typer.Context,
    config_file: Optional[str] = typer.Option(
        None, "--config-file", help="Daemon configuration file (default "
        "/etc/dockyard/daemon.json)"),
    host: Optional[list[str]] = typer.Option(
        None, "-H", "--host", help="Daemon socket(s) to listen on: unix://PATH, "
        "tcp://HOST:PORT, fd:// or fd://N (systemd socket activation)"),
    group: str = typer.Option("dockyard", "-G", "--group", help="Group for the unix socket"),
    graph: Optional[str] = typer.Option(None, "-g", "--graph", help="Deprecated: --data-root"),
    data_root: Optional[str] = typer.Option(None, "--data-root",
                                            help="Root of persistent state"),
    exec_root: str = typer.Option("/var/run/dockyard", "--exec-root",
                                  help="Root of execution state files"),
    pidfile: str = typer.Option("/var/run/dockyard.pid", "-p", "--pidfile"),
    storage_driver: Optional[str] = typer.Option(None, "-s", "--storage-driver"),
    storage_opt: Optional[list[str]] = typer.Option(None, "--storage-opt"),
    debug: bool = typer.Option(False, "-D", "--debug", help="Enable debug mode"),
    log_level: str = typer.Option("info", "-l", "--log-level"),
    tls: bool = typer.Option(False, "--tls", help="Use TLS; implied by --tlsverify"),
    authorization_plugin: Optional[list[str]] = typer.Option(
        None, "--authorization-plugin", help="Authorization plugin(s) every API request is "
        "put to (dockerd's authz plugin protocol)"),
    tlsverify: bool = typer.Option(False, "--tlsverify",
                                   help="Use TLS and verify the remote"),
    tlscacert: Optional[str] = typer.Option(None, "--tlscacert"),
    tlscert: Optional[str] = typer.Option(None, "--tlscert"),
    tlskey: Optional[str] = typer.Option(None, "--tlskey"),
    insecure_tcp: bool = typer.Option(False, "--insecure-tcp",
                                      help="Allow a TCP listener without TLS"),
    default_ulimit: Optional[list[str]] = typer.Option(None, "--default-ulimit",
                                                       help="type=soft[:hard]"),
    exec_opt: Optional[list[str]] = typer.Option(None, "--exec-opt"),
    insecure_registry: Optional[list[str]] = typer.Option(
        None, "--insecure-registry", help="Registry (host[:port] or CIDR) reached without "
        "verified TLS"),
    label: Optional[list[str]] = typer.Option(None, "--label",
                                              help="key=value label of the daemon"),
    max_concurrent_downloads: int = typer.Option(3, "--max-concurrent-downloads"),
    max_concurrent_uploads: int = typer.Option(5, "--max-concurrent-uploads"),
    max_download_attempts: int = typer.Option(3, "--max-download-attempts"),
    selinux_enabled: bool = typer.Option(False, "--selinux-enabled",
                                         help="Enable SELinux support"),
    exec_driver: str = typer.Option("native", "--exec-driver",
                                    help="Execution driver for new containers: native "
                                    "(Dockyard's runtime) or runc (OCI bundles)"),
    bridge: str = typer.Option("dockyard0", "-b", "--bridge",
                               help="The default bridge's name (none: no default bridge)"),
    bip: Optional[str] = typer.Option(None, "--bip", help="The default bridge's IP/prefix"),
    fixed_cidr: Optional[str] = typer.Option(None, "--fixed-cidr",
                                             help="IPv4 subnet for the default bridge's IPs"),
    default_address_pool: Optional[list[str]] = typer.Option(
        None, "--default-address-pool", help="base=CIDR,size=N: where networks' subnets "
        "come from"),
    icc: Optional[str] = typer.Option(None, "--icc", metavar="BOOL",
                                      help="Inter-container traffic on the default bridge"),
    ip: str = typer.Option("0.0.0.0", "--ip", help="Default host address of published ports"),
    ip_forward: Optional[str] = typer.Option(None, "--ip-forward", metavar="BOOL"),
    ip_masq: Optional[str] = typer.Option(None, "--ip-masq", metavar="BOOL"),
    iptables: Optional[str] = typer.Option(None, "--iptables", metavar="BOOL",
                                           help="Manage packet rules (nftables table inet "
                                           "dockyard)"),
    mtu: int = typer.Option(1500, "--mtu"),
    dns: Optional[list[str]] = typer.Option(None, "--dns"),
    dns_search: Optional[list[str]] = typer.Option(None, "--dns-search"),
    dns_opt: Optional[list[str]] = typer.Option(None, "--dns-opt"),
    log_driver: str = typer.Option("json-file", "--log-driver",
                                   help="Default driver for container logs"),
    log_opt: Optional[list[str]] = typer.Option(None, "--log-opt",
                                                help="Default log driver options (key=value)"),
    userns_remap: Optional[str] = typer.Option(
        None, "--userns-remap", help="User/Group setting for user namespaces "
        "(user[:group], or default: the dockremap user)"),
    cri: Optional[str] = typer.Option(
        None, "--cri", help="Serve the Kubernetes CRI (runtime.v1) on this unix:// socket"),
    cni_conf_dir: Optional[str] = typer.Option(
        None, "--cni-conf-dir", help="CNI network configurations for CRI pods "
        "(default /etc/cni/net.d)"),
    cni_bin_dir: Optional[list[str]] = typer.Option(
        None, "--cni-bin-dir", help="Where CNI plugins are looked for (repeatable; default "
        "/opt/cni/bin and /usr/lib/cni)"),
    cri_stream_addr: Optional[str] = typer.Option(
        None, "--cri-stream-addr", help="host:port of the CRI streaming server (exec, attach, "
        "port-forward; default 127.0.0.1 on a free port)"),
    rootless_limits: str = typer.Option(
        "refuse", "--rootless-limits", help="Rootless: resource limits without a delegated "
        "cgroup (v2) controller: refuse, or warn (discarded with a warning, as Docker)"),
) -> None:
    """Run the Dockyard daemon"""
    from ..daemon.config import ConfigError, load

    flags = given_flags(ctx)
    try:
        cfg = load(flags, config_file)
    except ConfigError as e:
        typer.echo(str(e), err=True)
        raise SystemExit(1) from None
    if os.geteuid() != 0:
        # rootless: this process only execs the launcher; the daemon it starts loads the server
        from ..daemon.launch import enter_rootless

        raise SystemExit(enter_rootless(cfg))
    from ..daemon.main import run  # the server's imports, once the configuration is good

    raise SystemExit(run(cfg))


# added to the `dockyard` app by cli/main.py
COMMANDS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("daemon", daemon, {"context_settings": {"ignore_unknown_options": False}})]
