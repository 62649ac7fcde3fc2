"""What the service commands share: docker's wording of errors, the runner
that turns them into exit codes, reading a service."""

from __future__ import annotations

import sys
from typing import Callable

from ..common import client
from ..pflags import Command, Parsed

RAW = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}


class Failure(Exception):
    """An error docker's CLI prints as is (exit 1)."""


def api_error(e: Exception, kind: str = "", id: str = "") -> str:
    """docker's client wording: 404 on an object read is `Error: No such <kind>: <id>`."""
    from ..client import APIError

    if isinstance(e, APIError):
        if e.status == 404 and kind:
            return f"Error: No such {kind}: {id}"
        return f"Error response from daemon: {e.message}"
    return str(e)


def run_command(cmd: Command, argv: list[str], fn: Callable[[Parsed], None]) -> None:
    """Parse docker's flags for `cmd`, run `fn`; errors as docker's CLI prints them."""
    from ..client import APIError, ConnectError

    p = cmd.parse(argv)
    try:
        fn(p)
    except Failure as e:
        sys.stdout.flush()
        print(str(e), file=sys.stderr)
        raise SystemExit(1) from None
    except (APIError, ConnectError) as e:
        sys.stdout.flush()
        print(api_error(e), file=sys.stderr)
        raise SystemExit(1) from None


def get_service(ref: str, insert_defaults: bool = False) -> dict:
    from ..client import APIError, path_quote

    try:
        return client().get_json(f"/services/{path_quote(ref)}",
                                 {"insertDefaults": "true" if insert_defaults else None})
    except APIError as e:
        raise Failure(api_error(e, "service", ref)) from None
