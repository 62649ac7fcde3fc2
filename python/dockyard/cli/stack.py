"""The `stack` command group (placeholder while being written)."""

from __future__ import annotations

import typer

app = typer.Typer(help="Manage Docker stacks", no_args_is_help=True, add_completion=False)
