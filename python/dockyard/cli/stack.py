"""The `stack` command group (docker's `stack` commands for swarm): deploy
a compose file as the stack's networks, secrets, configs and services
(labelled com.docker.stack.namespace), list stacks, their services and
tasks, remove them. Output, messages and exit codes as docker's CLI."""

from __future__ import annotations

import json
import sys
from typing import Callable

import typer

from . import compose as cp
from . import svcopts as so
from .common import client
from .pflags import Command, Parsed

RAW = {"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}

app = typer.Typer(help="Manage Docker stacks", no_args_is_help=True, add_completion=False)


class Failure(Exception):
    """An error docker's CLI prints as is (exit 1)."""


def _api_error(e: Exception) -> str:
    from .client import APIError

    if isinstance(e, APIError):
        return f"Error response from daemon: {e.message}"
    return str(e)


def _run(cmd: Command, argv: list[str], fn: Callable[[Parsed], None]) -> None:
    from .client import APIError, ConnectError

    p = cmd.parse(argv)
    try:
        fn(p)
    except (Failure, cp.ComposeError) as e:
        sys.stdout.flush()
        print(str(e), file=sys.stderr)
        raise SystemExit(1) from None
    except (APIError, ConnectError) as e:
        sys.stdout.flush()
        print(_api_error(e), file=sys.stderr)
        raise SystemExit(1) from None


def _register(cmd: Command, fn: Callable[[Parsed], None], *aliases: str) -> None:
    def command(ctx: typer.Context) -> None:
        _run(cmd, list(ctx.args), fn)

    name = cmd.path.rsplit(" ", 1)[-1]
    for n in (name, *aliases):
        app.command(n, context_settings=RAW, help=cmd.short, hidden=n != name)(command)


def _check_name(ns: str) -> None:
    if not ns.strip(" \t\r\n\v\f\"'"):
        raise Failure(f'invalid stack name: "{ns}"')


def _label_filter(ns: str | None, extra: list[str] | None = None) -> str:
    f: dict[str, dict[str, bool]] = {}
    for v in extra or []:
        k, _, val = v.partition("=")
        f.setdefault(k.strip().lower(), {})[val] = True
    f.setdefault("label", {})[cp.NAMESPACE_LABEL + (f"={ns}" if ns is not None else "")] = True
    return json.dumps(f)


def _filter_value(v: str) -> str:
    if "=" not in v:
        raise ValueError("bad format of filter (expected name=value)")
    return v


# --- deploy -------------------------------------------------------------------------------

DEPLOY = Command("stack deploy", "deploy [OPTIONS] STACK",
                 "Deploy a new stack or update an existing stack", [
                     (("-c", "--compose-file"), "compose_file", "l",
                      'Path to a Compose file, or "-" to read from stdin'),
                     (("--with-registry-auth",), "registry_auth", "b",
                      "Send registry authentication details to Swarm agents"),
                     (("--prune",), "prune", "b", "Prune services that are no longer referenced"),
                     (("--resolve-image",), "resolve_image", "s",
                      'Query the registry to resolve image digest and supported platforms '
                      '("always"|"changed"|"never")'),
                     (("--namespace",), "namespace", "s", "Kubernetes namespace to use"),
                 ], ("exact", 1))


def _deploy(p: Parsed) -> None:
    ns = p.args[0]
    _check_name(ns)
    files = [f for v in p["compose_file"] for f in v.split(",")]  # a StringSlice flag
    cfg = cp.load(files, sys.stdin.buffer, lambda m: sys.stderr.write(m))
    resolve = p["resolve_image"] or "always"
    if resolve not in ("always", "changed", "never"):
        raise Failure(f"Invalid option {resolve} for flag --resolve-image")
    info = client().get_json("/info")
    if not ((info.get("Swarm") or {}).get("ControlAvailable")):
        raise Failure('this node is not a swarm manager. Use "docker swarm init" or "docker '
                      'swarm join" to connect this node to swarm and try again')
    services = cfg.get("services") or {}
    if p["prune"]:
        _prune(ns, set(services))
    networks, external = cp.networks(cfg, ns)
    _check_external(external)
    _create_networks(ns, networks)
    for kind in ("secret", "config"):
        _create_objects(kind, cp.file_objects(cfg, kind + "s", ns))
    specs = {}
    for name in sorted(services):
        spec = cp.service_spec(name, services[name] or {}, cfg, ns)
        cs = spec["TaskTemplate"]["ContainerSpec"]
        try:
            for kind, key in (("secret", "Secrets"), ("config", "Configs")):
                if cs.get(key):
                    refs = so.resolve_refs(kind, cs[key])
                    cs[key] = sorted(refs, key=lambda r: r.get(f"{kind.title()}Name", ""))
        except ValueError as e:
            raise Failure(f"service {name}: {e}") from None
        specs[name] = spec
    _deploy_services(ns, specs, p["registry_auth"], resolve)


def _check_external(names: list[str]) -> None:
    from .client import APIError, path_quote

    for n in names:
        if n in ("default", "bridge", "host", "none") or n.startswith("container:"):
            continue
        try:
            net = client().get_json(f"/networks/{path_quote(n)}")
        except APIError as e:
            if e.status == 404:
                raise Failure(f'network "{n}" is declared as external, but could not be found. '
                              "You need to create a swarm-scoped network before the stack is "
                              "deployed") from None
            raise
        if net.get("Scope") != "swarm":
            raise Failure(f'network "{n}" is declared as external, but it is not in the right '
                          f'scope: "{net.get("Scope")}" instead of "swarm"')


def _create_networks(ns: str, networks: dict[str, dict]) -> None:
    from .client import APIError

    existing = {n["Name"] for n in client().get_json(
        "/networks", {"filters": _label_filter(ns)}) or []}
    for name in sorted(networks):
        if name in existing:
            continue
        print(f"Creating network {name}")
        sys.stdout.flush()
        body = {"Name": name, "CheckDuplicate": False, **networks[name]}
        try:
            client().post_json("/networks/create", None, body)
        except APIError as e:
            raise Failure(f"failed to create network {name}: {_api_error(e)}") from None


def _create_objects(kind: str, specs: list[dict]) -> None:
    from .client import APIError, path_quote

    for spec in specs:
        name = spec["Name"]
        try:
            obj = client().get_json(f"/{kind}s/{path_quote(name)}")
        except APIError as e:
            if e.status != 404:
                raise
            print(f"Creating {kind} {name}")
            sys.stdout.flush()
            try:
                client().post_json(f"/{kind}s/create", None, spec)
            except APIError as e2:
                raise Failure(f"failed to create {kind} {name}: {_api_error(e2)}") from None
            continue
        try:
            client().post_json(f"/{kind}s/{obj['ID']}/update",
                               {"version": (obj.get("Version") or {}).get("Index", 0)}, spec)
        except APIError as e:
            raise Failure(f"failed to update {kind} {name}: {_api_error(e)}") from None


def _deploy_services(ns: str, specs: dict[str, dict], registry_auth: bool,
                     resolve: str) -> None:
    from .client import APIError, ConnectError, path_quote

    existing = {s["Spec"]["Name"]: s for s in client().get_json(
        "/services", {"filters": _label_filter(ns)}) or []}
    for internal, spec in specs.items():
        name = f"{ns}_{internal}"
        cs = spec["TaskTemplate"]["ContainerSpec"]
        image = cs.get("Image", "")
        old = existing.get(name)
        if old is not None:
            print(f"Updating service {name} (id: {old['ID']})")
            sys.stdout.flush()
            query = resolve == "always"
            same = image == (old["Spec"].get("Labels") or {}).get(cp.IMAGE_LABEL)
            if resolve == "changed" and not same:
                query = True
            elif resolve != "always" and same:
                cs["Image"] = old["Spec"]["TaskTemplate"]["ContainerSpec"].get("Image", "")
            spec["TaskTemplate"]["ForceUpdate"] = old["Spec"]["TaskTemplate"].get(
                "ForceUpdate", 0)
            try:
                _, warnings = so.send_spec(
                    f"/services/{path_quote(old['ID'])}/update",
                    {"version": (old.get("Version") or {}).get("Index", 0)}, spec,
                    registry_auth, query)
            except (APIError, ConnectError) as e:
                raise Failure(f"failed to update service {name}: {_api_error(e)}") from None
            for w in warnings:
                print(w, file=sys.stderr)
        else:
            print(f"Creating service {name}")
            sys.stdout.flush()
            try:
                so.send_spec("/services/create", None, spec, registry_auth,
                             resolve in ("always", "changed"))
            except (APIError, ConnectError) as e:
                raise Failure(f"failed to create service {name}: {_api_error(e)}") from None


def _prune(ns: str, keep: set[str]) -> None:
    from .client import APIError, ConnectError

    try:
        old = client().get_json("/services", {"filters": _label_filter(ns)}) or []
    except (APIError, ConnectError) as e:
        print(f"Failed to list services: {_api_error(e)}", file=sys.stderr)
        old = []
    prefix = ns + "_"
    gone = [s for s in old if (s["Spec"]["Name"][len(prefix):] if s["Spec"]["Name"].startswith(
        prefix) else s["Spec"]["Name"]) not in keep]
    _remove_services(gone)


_register(DEPLOY, _deploy, "up")


# --- removing -----------------------------------------------------------------------------

def _remove_each(kind: str, objs: list[dict], name_of: Callable[[dict], str],
                 id_key: str = "ID") -> bool:
    from .client import APIError, ConnectError, path_quote

    failed = False
    for o in objs:
        print(f"Removing {kind} {name_of(o)}")
        sys.stdout.flush()
        try:
            client().request("DELETE", f"/{kind}s/{path_quote(o[id_key])}").close()
        except (APIError, ConnectError) as e:
            failed = True
            msg = f"Error: No such {kind}: {o[id_key]}" if isinstance(e, APIError) and \
                e.status == 404 else _api_error(e)
            sys.stderr.write(f"Failed to remove {kind} {o[id_key]}: {msg}")
            sys.stderr.flush()
    return failed


def _remove_services(services: list[dict]) -> bool:
    services = sorted(services, key=lambda s: s["Spec"]["Name"])
    return _remove_each("service", services, lambda s: s["Spec"]["Name"])


RM = Command("stack rm", "rm [OPTIONS] STACK [STACK...]", "Remove one or more stacks", [
    (("--namespace",), "namespace", "s", "Kubernetes namespace to use")], ("min", 1))


def _rm(p: Parsed) -> None:
    for ns in p.args:
        _check_name(ns)
    errs = []
    for ns in p.args:
        f = {"filters": _label_filter(ns)}
        services = client().get_json("/services", f) or []
        networks = client().get_json("/networks", f) or []
        secrets = client().get_json("/secrets", f) or []
        configs = client().get_json("/configs", f) or []
        if not (services or networks or secrets or configs):
            print(f"Nothing found in stack: {ns}", file=sys.stderr)
            continue
        failed = _remove_services(services)
        failed = _remove_each("secret", secrets, lambda s: s["Spec"]["Name"]) or failed
        failed = _remove_each("config", configs, lambda s: s["Spec"]["Name"]) or failed
        failed = _remove_each("network", networks, lambda n: n["Name"], "Id") or failed
        if failed:
            errs.append(f"Failed to remove some resources from stack: {ns}")
    if errs:
        raise Failure("\n".join(errs))


_register(RM, _rm, "remove", "down")


# --- listing ------------------------------------------------------------------------------

LS = Command("stack ls", "ls [OPTIONS]", "List stacks", [
    (("--format",), "format", "s", "Pretty-print stacks using a Go template"),
    (("--namespace",), "namespace", "l", "Kubernetes namespaces to use"),
    (("--all-namespaces",), "all_namespaces", "b", "List stacks from all Kubernetes namespaces"),
], ("none", 0))


def _ls(p: Parsed) -> None:
    from functools import cmp_to_key

    from .output import print_rows
    from .swarmlist import go_rows, natural_cmp

    services = client().get_json("/services", {"filters": _label_filter(None)}) or []
    stacks: dict[str, int] = {}
    for s in services:
        labels = s["Spec"].get("Labels") or {}
        if cp.NAMESPACE_LABEL not in labels:
            raise Failure(f"cannot get label {cp.NAMESPACE_LABEL} for service {s['ID']}")
        name = labels[cp.NAMESPACE_LABEL]
        stacks[name] = stacks.get(name, 0) + 1
    rows = [{"Name": n, "Services": str(c), "Orchestrator": "Swarm", "Namespace": ""}
            for n, c in stacks.items()]
    rows.sort(key=cmp_to_key(lambda a, b: natural_cmp(a["Name"], b["Name"])))
    fmt = p["format"]
    if not fmt or fmt == "table":
        fmt = "table {{.Name}}\t{{.Services}}\t{{.Orchestrator}}"
    print_rows(fmt, go_rows("*formatter.stackContext", rows),
               {"Name": "NAME", "Services": "SERVICES", "Orchestrator": "ORCHESTRATOR",
                "Namespace": "NAMESPACE"})


_register(LS, _ls, "list")

SERVICES = Command("stack services", "services [OPTIONS] STACK",
                   "List the services in the stack", [
                       (("-q", "--quiet"), "quiet", "b", "Only display IDs"),
                       (("--format",), "format", "s",
                        "Pretty-print services using a Go template"),
                       (("-f", "--filter"), "filter", ("l", _filter_value),
                        "Filter output based on conditions provided"),
                       (("--namespace",), "namespace", "s", "Kubernetes namespace to use"),
                   ], ("exact", 1))


def _services(p: Parsed) -> None:
    from .swarmlist import print_services

    ns = p.args[0]
    _check_name(ns)
    services = client().get_json("/services", {"filters": _label_filter(ns, p["filter"]),
                                               "status": None if p["quiet"] else "true"}) or []
    if not services:
        print(f"Nothing found in stack: {ns}", file=sys.stderr)
        return
    print_services(services, p["format"], p["quiet"])


_register(SERVICES, _services)

PS = Command("stack ps", "ps [OPTIONS] STACK", "List the tasks in the stack", [
    (("--no-trunc",), "no_trunc", "b", "Do not truncate output"),
    (("--no-resolve",), "no_resolve", "b", "Do not map IDs to Names"),
    (("-f", "--filter"), "filter", ("l", _filter_value),
     "Filter output based on conditions provided"),
    (("-q", "--quiet"), "quiet", "b", "Only display task IDs"),
    (("--format",), "format", "s", "Pretty-print tasks using a Go template"),
    (("--namespace",), "namespace", "s", "Kubernetes namespace to use"),
], ("exact", 1))


def _ps(p: Parsed) -> None:
    from .swarmlist import IDResolver, print_tasks

    ns = p.args[0]
    _check_name(ns)
    tasks = client().get_json("/tasks", {"filters": _label_filter(ns, p["filter"])}) or []
    if not tasks:
        raise Failure(f"nothing found in stack: {ns}")
    print_tasks(tasks, IDResolver(p["no_resolve"]), not p["no_trunc"], p["quiet"], p["format"])


_register(PS, _ps)
