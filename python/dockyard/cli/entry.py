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
    try:
        from .main import main as typer_main
    except ImportError:
        if not sys.flags.no_site:
            raise
        # started with -S (the installed launcher) and a dependency lives
        # where only site would look: let site add it
        import site

        site.main()
        from .main import main as typer_main
    typer_main()
