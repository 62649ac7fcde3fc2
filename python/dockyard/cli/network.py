"""The `network` command group (docker's `network` commands), over the Engine
API, with docker's flags, output and exit codes."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from .common import call, client, fail
from .opts import key_values

app = typer.Typer(help="Manage networks", no_args_is_help=True, add_completion=False)

HEADERS = {"ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
           "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS",
           "CreatedAt": "CREATED AT"}



@app.command("create")
def create(name: str = typer.Argument(..., metavar="NETWORK"),
           driver: str = typer.Option("bridge", "-d", "--driver"),
           subnet: Optional[List[str]] = typer.Option(None, "--subnet"),
           gateway: Optional[List[str]] = typer.Option(None, "--gateway"),
           ip_range: Optional[List[str]] = typer.Option(None, "--ip-range"),
           aux_address: Optional[List[str]] = typer.Option(None, "--aux-address"),
           ipam_driver: str = typer.Option("default", "--ipam-driver"),
           ipam_opt: Optional[List[str]] = typer.Option(None, "--ipam-opt"),
           opt: Optional[List[str]] = typer.Option(None, "-o", "--opt"),
           label: Optional[List[str]] = typer.Option(None, "--label"),
           internal: bool = typer.Option(False, "--internal"),
           attachable: bool = typer.Option(False, "--attachable"),
           ipv6: bool = typer.Option(False, "--ipv6")) -> None:
    """Create a network"""
    subnets, gws, rngs = list(subnet or []), list(gateway or []), list(ip_range or [])
    if len(gws) > len(subnets) or len(rngs) > len(subnets):
        fail("every ip-range or gateway must have a corresponding subnet", 1)
    aux = key_values(aux_address, "--aux-address")
    config = []
    for i, s in enumerate(subnets):
        c: dict = {"Subnet": s}
        if i < len(rngs):
            c["IPRange"] = rngs[i]
        if i < len(gws):
            c["Gateway"] = gws[i]
        mine = {k: v for k, v in aux.items() if _in_subnet(v, s)}
        if mine:
            c["AuxiliaryAddresses"] = mine
        config.append(c)
    body = {"Name": name, "CheckDuplicate": True, "Driver": driver, "Internal": internal,
            "Attachable": attachable, "EnableIPv6": ipv6,
            "IPAM": {"Driver": ipam_driver, "Config": config,
                     "Options": key_values(ipam_opt, "--ipam-opt")},
            "Options": key_values(opt, "--opt"), "Labels": key_values(label, "--label")}
    r = call(lambda: client().post_json("/networks/create", None, body))
    print(r["Id"])


def _in_subnet(addr: str, subnet: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(addr) in ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return False


@app.command("ls")
def list_networks(quiet: bool = typer.Option(False, "-q", "--quiet"),
                  no_trunc: bool = typer.Option(False, "--no-trunc"),
                  filter: Optional[List[str]] = typer.Option(None, "-f", "--filter"),
                  format: Optional[str] = typer.Option(None, "--format")) -> None:
    """List networks"""
    from .opts import filters_param

    nets = call(lambda: client().get_json("/networks", {"filters": filters_param(filter)}))
    nets.sort(key=lambda n: n["Name"])
    rows = [{"ID": n["Id"] if no_trunc else n["Id"][:12], "Name": n["Name"],
             "Driver": n["Driver"], "Scope": n["Scope"],
             "IPv6": str(bool(n.get("EnableIPv6"))).lower(),
             "Internal": str(bool(n.get("Internal"))).lower(),
             "Labels": ",".join(f"{k}={v}" for k, v in (n.get("Labels") or {}).items()),
             "CreatedAt": n.get("Created", "")} for n in nets]
    if quiet and not format:
        sys.stdout.write("".join(r["ID"] + "\n" for r in rows))
        return
    from .output import print_rows

    print_rows(format or "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}", rows, HEADERS)


@app.command("inspect")
def inspect(networks: List[str] = typer.Argument(..., metavar="NETWORK..."),
            format: Optional[str] = typer.Option(None, "-f", "--format"),
            verbose: bool = typer.Option(False, "-v", "--verbose")) -> None:
    """Display detailed information on one or more networks"""
    from .inspector import inspect_named

    inspect_named("network", "/networks", networks, format)


@app.command("rm")
def remove(networks: List[str] = typer.Argument(..., metavar="NETWORK..."),
           force: bool = typer.Option(False, "-f", "--force")) -> None:
    """Remove one or more networks"""
    from .inspector import remove_named

    remove_named("/networks", networks, ignore_missing=force)


@app.command("connect")
def connect(network: str = typer.Argument(..., metavar="NETWORK"),
            container: str = typer.Argument(..., metavar="CONTAINER"),
            alias: Optional[List[str]] = typer.Option(None, "--alias"),
            ip: Optional[str] = typer.Option(None, "--ip"),
            ip6: Optional[str] = typer.Option(None, "--ip6"),
            link: Optional[List[str]] = typer.Option(None, "--link"),
            driver_opt: Optional[List[str]] = typer.Option(None, "--driver-opt")) -> None:
    """Connect a container to a network"""
    from .client import path_quote

    ipam = {k: v for k, v in (("IPv4Address", ip), ("IPv6Address", ip6)) if v}
    body = {"Container": container, "EndpointConfig": {
        "IPAMConfig": ipam or None, "Aliases": list(alias or []) or None,
        "Links": list(link or []) or None,
        "DriverOpts": key_values(driver_opt, "--driver-opt") or None}}
    call(lambda: client().post_json(f"/networks/{path_quote(network)}/connect", None, body))


@app.command("disconnect")
def disconnect(network: str = typer.Argument(..., metavar="NETWORK"),
               container: str = typer.Argument(..., metavar="CONTAINER"),
               force: bool = typer.Option(False, "-f", "--force")) -> None:
    """Disconnect a container from a network"""
    from .client import path_quote

    call(lambda: client().post_json(f"/networks/{path_quote(network)}/disconnect", None,
                                    {"Container": container, "Force": force}))


@app.command("prune")
def prune(force: bool = typer.Option(False, "-f", "--force"),
          filter: Optional[List[str]] = typer.Option(None, "--filter")) -> None:
    """Remove all unused networks"""
    from . import prune as pruning

    if not force and not pruning.confirm("WARNING! This will remove all custom networks not used "
                                         "by at least one container.\nAre you sure you want to "
                                         "continue?"):
        return
    _, output = pruning.networks(filter)
    if output:
        print(output)  # no space line: networks take none


# (command name, function, typer.command keywords) for the `dockyard` app
COMMANDS: list = []
