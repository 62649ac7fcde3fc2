"""The `volume` command group (docker's `volume` commands), over the Engine API."""

from __future__ import annotations

# (command name, function, typer.command keywords); added to the `dockyard` app
# by cli/main.py like the other groups.
COMMANDS: list = []
