"""The requests and the error handling that several container commands share:
one POST, one action per container with docker's per-name report, and the
inspect whose 404 reads `No such container`."""

from __future__ import annotations

import sys
from typing import Any, Callable

from ..client import APIError, ConnectError, path_quote
from ..common import client, fail


def each(names: list[str], fn: Callable[[str], None], tail: Callable[[list[str]], str] | None
         = None, not_found: str | None = None) -> None:
    """Run fn for each container, print its name; errors go to stderr, exit 1."""
    failed: list[str] = []
    for n in names:
        try:
            fn(n)
        except APIError as e:
            if not_found and e.status == 404 and "no such container" in e.message.lower():
                print(f"Error: No such container: {n}", file=sys.stderr)
            else:
                print(f"Error response from daemon: {e.message}", file=sys.stderr)
            failed.append(n)
            continue
        except ConnectError as e:
            fail(str(e))
        print(n)
        sys.stdout.flush()
    if failed:
        if tail:
            print(tail(failed), file=sys.stderr)
        raise SystemExit(1)


def post(path: str, params: dict[str, Any] | None = None) -> None:
    client().request("POST", path, params).close()


def inspect_json(name: str) -> dict[str, Any]:
    """The Go client's ContainerInspect: a 404 reads `Error: No such container: x`."""
    return not_found_as("container", name,
                        lambda: client().get_json(f"/containers/{path_quote(name)}/json"))


def not_found_as(kind: str, ident: str, fn: Callable[[], Any]) -> Any:
    """fn(), exiting 1 with `Error: No such <kind>: <ident>` on a 404."""
    try:
        return fn()
    except ConnectError as e:
        fail(str(e))
    except APIError as e:
        if e.status == 404:
            fail(f"Error: No such {kind}: {ident}")
        fail(f"Error response from daemon: {e.message}")
