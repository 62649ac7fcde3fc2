"""`inspect` for containers and images (docker's cli/command/inspect): the
raw JSON of each object, indented, or each one through a `--format`
template. Used by `dockyard inspect`, `container inspect` and `image inspect`."""

from __future__ import annotations

import sys
TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any

from .common import client


def sorted_maps(v: Any) -> Any:
    """Dicts with their keys sorted, at every depth."""
    if isinstance(v, dict):
        return {k: sorted_maps(v[k]) for k in sorted(v)}
    if isinstance(v, list):
        return [sorted_maps(x) for x in v]
    return v


def inspect_objects(names: list[str], format: str | None, kind: str | None,
                    size: bool = False) -> None:
    """Print the objects named; kind None tries a container, then an image.
    Exits 1 after printing what was found if any name was not."""
    from .client import APIError, path_quote

    results: list[Any] = []
    failed = False
    for n in names:
        try:
            if kind in (None, "container"):
                try:
                    results.append(client().get_json(f"/containers/{path_quote(n)}/json",
                                                     {"size": size or None}))
                    continue
                except APIError as e:
                    if e.status != 404 or kind == "container":
                        raise
            if kind in (None, "image"):
                results.append(client().get_json(f"/images/{path_quote(n)}/json"))
                continue
        except APIError as e:
            if e.status != 404:
                print(f"Error response from daemon: {e.message}", file=sys.stderr)
                failed = True
                continue
        print(f"Error: No such object: {n}" if kind is None else f"Error: No such {kind}: {n}",
              file=sys.stderr)
        failed = True
    if format:
        from .output import print_one

        # docker decodes raw inspect JSON into Go maps, whose keys print sorted.
        for r in results:
            print_one(format, sorted_maps(r))
    else:
        from .output import print_json_indent

        print_json_indent(results)
    if failed:
        raise SystemExit(1)
