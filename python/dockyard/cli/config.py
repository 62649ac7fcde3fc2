"""The `config` command group (docker's `config` commands): create a swarm
config from a file or stdin, list, inspect and remove configs, over the
Engine API, with docker's tables, templates and messages."""

from __future__ import annotations

from typing import List, Optional

import typer

from .common import call, client, fail
from .swarmkit import check_args

app = typer.Typer(help="Manage Swarm configs", no_args_is_help=True, add_completion=False)

TABLE = "table {{.ID}}\t{{.Name}}\t{{.CreatedAt}}\t{{.UpdatedAt}}"
PRETTY = """ID:\t\t\t{{.ID}}
Name:\t\t\t{{.Name}}
{{- if .Labels }}
Labels:
{{- range $k, $v := .Labels }}
 - {{ $k }}{{if $v }}={{ $v }}{{ end }}
{{- end }}{{ end }}
Created at:            \t{{.CreatedAt}}
Updated at:            \t{{.UpdatedAt}}
Data:
{{.Data}}"""
MAX_SIZE = 1000 * 1024


@app.command("create")
def create(args: Optional[List[str]] = typer.Argument(None, metavar="CONFIG file|-"),
           label: Optional[List[str]] = typer.Option(None, "-l", "--label"),
           template_driver: str = typer.Option("", "--template-driver")) -> None:
    """Create a config from a file or STDIN"""
    name, file = check_args("config create", "[OPTIONS] CONFIG file|-", args, 2, 2)
    import base64

    from .swarmkit import check_labels, read_data

    labels = check_labels(label, "config create", "[OPTIONS] CONFIG file|-", "-l, --label")
    try:
        data = read_data(file, MAX_SIZE)
    except ValueError as e:
        fail(f'Error reading content from "{file}": {e}')
    spec: dict = {"Name": name, "Labels": labels, "Data": base64.b64encode(data).decode()}
    if template_driver:
        spec["Templating"] = {"Name": template_driver}
    print(call(lambda: client().post_json("/configs/create", None, spec))["ID"])


@app.command("ls")
def list_configs(args: Optional[List[str]] = typer.Argument(None, hidden=True),
                 quiet: bool = typer.Option(False, "-q", "--quiet"),
                 filter: Optional[List[str]] = typer.Option(None, "-f", "--filter"),
                 format: Optional[str] = typer.Option(None, "--format")) -> None:
    """List configs"""
    check_args("config ls", "[OPTIONS]", args, 0, 0)
    from .swarmkit import ObjectRow, list_objects

    list_objects("config", quiet, filter, format, TABLE, ObjectRow)


@app.command("inspect")
def inspect(configs: Optional[List[str]] = typer.Argument(None, metavar="CONFIG [CONFIG...]"),
            format: Optional[str] = typer.Option(None, "-f", "--format"),
            pretty: bool = typer.Option(False, "--pretty")) -> None:
    """Display detailed information on one or more configs"""
    from .swarmkit import ObjectPretty, get_object, inspect as inspect_objects

    configs = check_args("config inspect", "[OPTIONS] CONFIG [CONFIG...]", configs, 1)
    inspect_objects(configs, "pretty" if pretty else format, PRETTY, get_object("config"),
                    ObjectPretty)


@app.command("rm")
def remove(configs: Optional[List[str]] = typer.Argument(None, metavar="CONFIG [CONFIG...]")
           ) -> None:
    """Remove one or more configs"""
    configs = check_args("config rm", "CONFIG [CONFIG...]", configs, 1)
    from .swarmkit import remove_objects

    remove_objects("config", configs)


app.command("list", hidden=True)(list_configs)
app.command("remove", hidden=True)(remove)
