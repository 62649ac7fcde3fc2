"""The `secret` command group (docker's `secret` commands): create a swarm
secret from a file or stdin, list, inspect and remove secrets, over the
Engine API, with docker's tables, templates and messages."""

from __future__ import annotations

from typing import List, Optional

import typer

from .common import call, client, fail
from .swarmkit import check_args

app = typer.Typer(help="Manage Swarm secrets", no_args_is_help=True, add_completion=False)

TABLE = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"
PRETTY = """ID:              {{.ID}}
Name:              {{.Name}}
{{- if .Labels }}
Labels:
{{- range $k, $v := .Labels }}
 - {{ $k }}{{if $v }}={{ $v }}{{ end }}
{{- end }}{{ end }}
Driver:            {{.Driver}}
Created at:        {{.CreatedAt}}
Updated at:        {{.UpdatedAt}}"""
MAX_SIZE = 500 * 1024


@app.command("create")
def create(args: Optional[List[str]] = typer.Argument(None, metavar="SECRET [file|-]"),
           label: Optional[List[str]] = typer.Option(None, "-l", "--label"),
           driver: str = typer.Option("", "-d", "--driver"),
           template_driver: str = typer.Option("", "--template-driver")) -> None:
    """Create a secret from a file or STDIN as content"""
    args = check_args("secret create", "[OPTIONS] SECRET [file|-]", args, 1, 2)
    name, file = args[0], (args[1] if len(args) > 1 else None)
    import base64

    from .swarmkit import check_labels, read_data

    labels = check_labels(label, "secret create", "[OPTIONS] SECRET [file|-]", "-l, --label")
    spec: dict = {"Name": name, "Labels": labels}
    if driver:
        if file:
            fail("When using secret driver secret data must be empty")
        spec["Driver"] = {"Name": driver}
    else:
        if not file:
            fail("secret file is required")
        try:
            spec["Data"] = base64.b64encode(read_data(file, MAX_SIZE)).decode()
        except ValueError as e:
            fail(str(e))
    if template_driver:
        spec["Templating"] = {"Name": template_driver}
    print(call(lambda: client().post_json("/secrets/create", None, spec))["ID"])


@app.command("ls")
def list_secrets(args: Optional[List[str]] = typer.Argument(None, hidden=True),
                 quiet: bool = typer.Option(False, "-q", "--quiet"),
                 filter: Optional[List[str]] = typer.Option(None, "-f", "--filter"),
                 format: Optional[str] = typer.Option(None, "--format")) -> None:
    """List secrets"""
    check_args("secret ls", "[OPTIONS]", args, 0, 0)
    from .swarmkit import SecretRow, list_objects

    list_objects("secret", quiet, filter, format, TABLE, SecretRow)


@app.command("inspect")
def inspect(secrets: Optional[List[str]] = typer.Argument(None, metavar="SECRET [SECRET...]"),
            format: Optional[str] = typer.Option(None, "-f", "--format"),
            pretty: bool = typer.Option(False, "--pretty")) -> None:
    """Display detailed information on one or more secrets"""
    from .swarmkit import ObjectPretty, get_object, inspect as inspect_objects

    secrets = check_args("secret inspect", "[OPTIONS] SECRET [SECRET...]", secrets, 1)
    inspect_objects(secrets, "pretty" if pretty else format, PRETTY, get_object("secret"),
                    ObjectPretty)


@app.command("rm")
def remove(secrets: Optional[List[str]] = typer.Argument(None, metavar="SECRET [SECRET...]")
           ) -> None:
    """Remove one or more secrets"""
    secrets = check_args("secret rm", "SECRET [SECRET...]", secrets, 1)
    from .swarmkit import remove_objects

    remove_objects("secret", secrets)


app.command("list", hidden=True)(list_secrets)
app.command("remove", hidden=True)(remove)
