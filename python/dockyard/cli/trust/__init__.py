"""The `trust` command group (docker's Docker Content Trust commands): signed tags
and signers of a repository on a Notary server (DOCKER_CONTENT_TRUST_SERVER, else
the registry's host, notary.docker.io for Docker Hub), signing keys in
`<config>/trust/private`, and trusted metadata in `<config>/trust/tuf`, laid out
as docker's CLI keeps them. `<config>` is $DOCKYARD_CONFIG when set, else docker's
own ($DOCKER_CONFIG or ~/.docker), so both CLIs share keys and trusted roots.

One module a command family, as docker/cli's cli/command/trust: inspect.py,
key.py (generate, load), sign.py, revoke.py, signer.py (add, remove), over
shared.py. The notary client itself is dockyard.distribution.trust.
"""

from __future__ import annotations

import typer

from .inspect import inspect
from .key import key_generate, key_load
from .revoke import revoke
from .sign import sign
from .signer import signer_add, signer_remove

app = typer.Typer(help="Manage trust on Docker images", no_args_is_help=True,
                  add_completion=False)
key_app = typer.Typer(help="Manage keys for signing Docker images", no_args_is_help=True,
                      add_completion=False)
signer_app = typer.Typer(help="Manage entities who can sign Docker images", no_args_is_help=True,
                         add_completion=False)
app.command("inspect")(inspect)
app.command("sign")(sign)
app.command("revoke")(revoke)
app.add_typer(key_app, name="key")
app.add_typer(signer_app, name="signer")
key_app.command("generate")(key_generate)
key_app.command("load")(key_load)
signer_app.command("add")(signer_add)
signer_app.command("remove")(signer_remove)
