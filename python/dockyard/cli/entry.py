"""The `dockyard` entry point: fast commands first, then the Typer app."""

from __future__ import annotations

import sys


def main() -> None:
    from .fast import try_fast

    try:
        if try_fast(sys.argv[1:]):
            return
    except BrokenPipeError:
        return
    from .main import app

    app()
