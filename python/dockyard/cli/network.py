"""The `network` command group (docker's `network` commands), over the Engine API."""

from __future__ import annotations

# (command name, function, typer.command keywords); added to the `dockyard` app
# by cli/main.py like the other groups.
COMMANDS: list = []
