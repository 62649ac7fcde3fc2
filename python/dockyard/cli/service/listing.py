"""`service ls`, `ps` and `inspect` (raw, --format, --pretty)."""

from __future__ import annotations

import sys

from ..common import client
from ..pflags import Command, Parsed
from .api import Failure, api_error

LS = Command("service ls", "ls [OPTIONS]", "List services", [
    (("-q", "--quiet"), "quiet", "b", "Only display IDs"),
    (("--format",), "format", "s", "Pretty-print services using a Go template"),
    (("-f", "--filter"), "filter", ("l", lambda v: _filter(v)),
     "Filter output based on conditions provided")], ("none", 0))


def _filter(v: str) -> str:
    if "=" not in v:
        raise ValueError("bad format of filter (expected name=value)")
    return v


def _filters(values: list[str]) -> dict[str, dict[str, bool]]:
    f: dict[str, dict[str, bool]] = {}
    for v in values:
        k, _, val = v.partition("=")
        f.setdefault(k.strip().lower(), {})[val] = True
    return f


def ls(p: Parsed) -> None:
    import json

    from ..swarmlist import print_services

    params = {"filters": json.dumps(_filters(p["filter"])) if p["filter"] else None,
              "status": None if p["quiet"] else "true"}
    services = client().get_json("/services", params) or []
    print_services(services, p["format"], p["quiet"])



PS = Command("service ps", "ps [OPTIONS] SERVICE [SERVICE...]",
             "List the tasks of one or more services", [
                 (("-q", "--quiet"), "quiet", "b", "Only display task IDs"),
                 (("--no-trunc",), "no_trunc", "b", "Do not truncate output"),
                 (("--no-resolve",), "no_resolve", "b", "Do not map IDs to Names"),
                 (("--format",), "format", "s", "Pretty-print tasks using a Go template"),
                 (("-f", "--filter"), "filter", ("l", lambda v: _filter(v)),
                  "Filter output based on conditions provided")], ("min", 1))


def node_reference(ref: str) -> str:
    """node.Reference: `self` is this node's ID; other names are looked up."""
    from ..client import APIError, path_quote

    if ref == "self":
        info = client().get_json("/info")
        node = ((info.get("Swarm") or {}).get("NodeID")) or ""
        if not node:
            raise Failure("This node is not a swarm manager. Use \"docker swarm init\" or "
                          "\"docker swarm join\" to connect this node to swarm and try again.")
        return node
    try:
        return client().get_json(f"/nodes/{path_quote(ref)}")["ID"]
    except APIError as e:
        raise Failure(api_error(e, "node", ref)) from None


def ps(p: Parsed) -> None:
    import json

    from ..swarmlist import IDResolver, print_tasks

    filters = _filters(p["filter"])
    by_id = client().get_json("/services", {"filters": json.dumps(
        {"id": {s: True for s in p.args}})}) or []
    by_name = client().get_json("/services", {"filters": json.dumps(
        {"name": {s: True for s in p.args}})}) or []
    notfound, count = [], 0
    for s in p.args:
        hit = next((x["ID"] for x in by_id if x["ID"] == s), None) or \
            next((x["ID"] for x in by_name if (x.get("Spec") or {}).get("Name") == s), None)
        if hit:
            filters.setdefault("service", {})[hit] = True
            count += 1
            continue
        found = False
        for x in by_id:
            if x["ID"].startswith(s):
                if found:
                    raise Failure(f"multiple services found with provided prefix: {s}")
                filters.setdefault("service", {})[x["ID"]] = True
                count += 1
                found = True
        if not found:
            notfound.append(f"no such service: {s}")
    if count == 0:
        raise Failure("\n".join(notfound))
    if "node" in filters:
        filters["node"] = {node_reference(n): True for n in filters["node"]}
    tasks = client().get_json("/tasks", {"filters": json.dumps(filters)}) or []
    no_trunc = p["no_trunc"] or p["quiet"]
    print_tasks(tasks, IDResolver(p["no_resolve"]), not no_trunc, p["quiet"], p["format"])
    if notfound:
        raise Failure("\n".join(notfound))



INSPECT = Command("service inspect", "inspect [OPTIONS] SERVICE [SERVICE...]",
                  "Display detailed information on one or more services", [
                      (("-f", "--format"), "format", "s",
                       "Format the output using the given Go template"),
                      (("--pretty",), "pretty", "b",
                       "Print the information in a human friendly format")], ("min", 1))


def inspect(p: Parsed) -> None:
    from ..client import APIError, ConnectError, path_quote

    if p["pretty"] and p["format"]:
        raise Failure("--format is incompatible with human friendly format")
    fmt = "pretty" if p["pretty"] else (p["format"] or "")
    if fmt.startswith("pretty") and fmt != "pretty":
        raise Failure("Cannot supply extra formatting options to the pretty template")

    def get(ref: str) -> dict:
        try:
            return client().get_json(f"/services/{path_quote(ref)}", {"insertDefaults": "true"})
        except APIError as e:
            if e.status == 404:
                raise Failure(f"Error: no such service: {ref}") from None
            raise Failure(api_error(e)) from None
        except ConnectError as e:
            raise Failure(str(e)) from None

    if fmt == "pretty":
        from ..svcpretty import pretty

        # the first failure ends it all, before anything is written
        sys.stdout.write("".join([pretty(get(ref)) for ref in p.args]))
        return
    found, errs = [], []
    for ref in p.args:
        try:
            found.append(get(ref))
        except Failure as e:
            errs.append(str(e))
    if fmt:
        from ..inspector import sorted_maps
        from ..output import print_one

        for obj in found:
            print_one(fmt, sorted_maps(obj))
    else:
        from ..output import print_json_indent

        print_json_indent(found)
    if errs:
        raise Failure("Status: " + "\n".join(errs) + ", Code: 1")
