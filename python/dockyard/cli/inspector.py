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


def inspect_named(kind: str, prefix: str, names: list[str], format: str | None) -> None:
    """`network inspect`, `volume inspect`: each object by name from
    `{prefix}/{name}`, printed as docker does; exit 1 if any was missing."""
    from .client import APIError, path_quote

    found, failed = [], False
    for n in names:
        try:
            found.append(client().get_json(f"{prefix}/{path_quote(n)}"))
        except APIError as e:
            print(f"Error: No such {kind}: {n}" if e.status == 404 else
                  f"Error response from daemon: {e.message}", file=sys.stderr)
            failed = True
    if format:
        from .output import print_one

        for r in found:
            print_one(format, r)
    else:
        from .output import print_json_indent

        print_json_indent(found)
    if failed:
        raise SystemExit(1)


def remove_named(prefix: str, names: list[str], params: dict | None = None,
                 ignore_missing: bool = False) -> None:
    """`network rm`, `volume rm`: DELETE each, print its name; errors as docker
    prints them, exit 1 after trying all."""
    from .client import APIError, path_quote

    failed = False
    for n in names:
        try:
            client().request("DELETE", f"{prefix}/{path_quote(n)}", params).close()
            print(n)
        except APIError as e:
            if ignore_missing and e.status == 404:
                continue
            print(f"Error response from daemon: {e.message}", file=sys.stderr)
            failed = True
    if failed:
        raise SystemExit(1)

