"""Registry commands: pull, push, login, logout, search (docker's flags,
messages and exit codes). Credentials come from `distribution.credentials`
and travel to the daemon in `X-Registry-Auth`, as the docker CLI sends them."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable, List, Optional

import typer

from .common import call, client, fail


def pull(name: str = typer.Argument(..., metavar="NAME[:TAG|@DIGEST]"),
         all_tags: bool = typer.Option(False, "-a", "--all-tags",
                                       help="Download all tagged images in the repository"),
         platform: Optional[str] = typer.Option(None, "--platform",
                                                help="Set platform if server is multi-platform "
                                                     "capable"),
         quiet: bool = typer.Option(False, "-q", "--quiet", help="Suppress verbose output"),
         disable_content_trust: bool = typer.Option(True, "--disable-content-trust",
                                                    hidden=True)) -> None:
    """Pull an image or a repository from a registry"""
    from . import transfer

    transfer.pull(name, all_tags, platform, quiet)


def push(name: str = typer.Argument(..., metavar="NAME[:TAG]"),
         all_tags: bool = typer.Option(False, "-a", "--all-tags",
                                       help="Push all tagged images in the repository"),
         quiet: bool = typer.Option(False, "-q", "--quiet", help="Suppress verbose output"),
         disable_content_trust: bool = typer.Option(True, "--disable-content-trust",
                                                    hidden=True)) -> None:
    """Push an image or a repository to a registry"""
    from . import transfer

    transfer.push(name, all_tags, quiet)


def login(server: Optional[str] = typer.Argument(None, metavar="[SERVER]"),
          username: Optional[str] = typer.Option(None, "-u", "--username", help="Username"),
          password: Optional[str] = typer.Option(None, "-p", "--password", help="Password"),
          password_stdin: bool = typer.Option(False, "--password-stdin",
                                              help="Take the password from stdin")) -> None:
    """Log in to a registry.
    If no server is specified, the default is defined by the daemon."""
    from ..distribution import credentials
    from ..distribution.auth import AuthConfig
    from ..distribution.endpoints import INDEX_SERVER

    if password and password_stdin:
        fail("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            fail("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
              file=sys.stderr)
    address = server or INDEX_SERVER
    if not username or not password:
        stored = credentials.lookup(address)
        if not sys.stdin.isatty():
            if not username and stored.username and stored.password:
                username, password = stored.username, stored.password
            else:
                fail("Error: Cannot perform an interactive login from a non TTY device")
        else:
            import getpass

            if not username:
                hint = f" ({stored.username})" if stored.username else ""
                username = input(f"Username{hint}: ").strip() or stored.username
            if not password:
                password = getpass.getpass("Password: ")
    if not username:
        fail("Error: Non-null Username Required")
    if not password:
        fail("Error: Password Required")
    auth = AuthConfig(username=username, password=password, serveraddress=address)
    out = call(lambda: client().post_json("/auth", None, auth.__dict__))
    if isinstance(out, dict) and out.get("IdentityToken"):
        auth.identitytoken = out["IdentityToken"]
        auth.password = ""
    path = credentials.store(address, auth)
    print(f"WARNING! Your password will be stored unencrypted in {path}.", file=sys.stderr)
    print("Login Succeeded")


def logout(server: Optional[str] = typer.Argument(None, metavar="[SERVER]")) -> None:
    """Log out from a registry.
    If no server is specified, the default is defined by the daemon."""
    from ..distribution import credentials
    from ..distribution.endpoints import INDEX_SERVER

    address = server or INDEX_SERVER
    key = credentials.server_key(address)
    if not credentials.erase(address):
        print(f"Not logged in to {key}")
        return
    print(f"Removing login credentials for {key}")


def search(term: str = typer.Argument(..., metavar="TERM"),
           filter: Optional[List[str]] = typer.Option(None, "-f", "--filter",
                                                      help="Filter output based on conditions "
                                                           "provided"),
           format: Optional[str] = typer.Option(None, "--format",
                                                help="Pretty-print search using a Go template"),
           limit: int = typer.Option(25, "--limit", help="Max number of search results"),
           no_trunc: bool = typer.Option(False, "--no-trunc",
                                         help="Don't truncate output")) -> None:
    """Search registries for images"""
    from .output import print_rows

    f: dict[str, list[str]] = {}
    for item in filter or []:
        k, eq, v = item.partition("=")
        if not eq:
            fail("bad format of filter (expected name=value)")
        f.setdefault(k, []).append(v)
    params = {"term": term, "limit": limit, "filters": json.dumps(f) if f else None}
    from .transfer import auth_header

    hdr = auth_header(term if "/" in term else "docker.io/x")

    def fetch() -> list:
        r = client().request("GET", "/images/search", params, None, hdr)
        try:
            return r.json()
        finally:
            r.close()

    results = call(fetch)

    class Row:
        def __init__(self, r: dict) -> None:
            self.Name = r.get("name", "")
            d = (r.get("description") or "").replace("\n", " ")
            if not no_trunc and len(d) > 45:
                d = d[:44] + "…"
            self.Description = d
            self.StarCount = str(r.get("star_count", 0))
            self.IsOfficial = "[OK]" if r.get("is_official") else ""
            self.IsAutomated = "[OK]" if r.get("is_automated") else ""

    fmt = format or ("table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}\t"
                     "{{.IsAutomated}}")
    print_rows(fmt, [Row(r) for r in results],
               {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS",
                "IsOfficial": "OFFICIAL", "IsAutomated": "AUTOMATED"})


COMMANDS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("pull", pull, {}), ("push", push, {}), ("login", login, {}), ("logout", logout, {}),
    ("search", search, {})]
