"""The `node` command group (docker's `node` commands): list, inspect and
update a swarm's nodes, their tasks, promote, demote and remove them, over
the Engine API, with docker's tables, templates and messages."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from .common import call, client, fail
from .swarmkit import check_args, error_text, go_time_string, pretty

app = typer.Typer(help="Manage Swarm nodes", no_args_is_help=True, add_completion=False)

TABLE = ("table {{.ID}} {{if .Self}}*{{else}} {{ end }}\t{{.Hostname}}\t{{.Status}}\t"
         "{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}")
RAW = ("node_id: {{.ID}}\\nhostname: {{.Hostname}}\\nstatus: {{.Status}}\\n"
       "availability: {{.Availability}}\\nmanager_status: {{.ManagerStatus}}\\n")
HEADERS = {"ID": "ID", "Self": "", "Hostname": "HOSTNAME", "Status": "STATUS",
           "Availability": "AVAILABILITY", "ManagerStatus": "MANAGER STATUS",
           "EngineVersion": "ENGINE VERSION", "TLSStatus": "TLS STATUS"}

PRETTY = """ID:\t\t\t{{.ID}}
{{- if .Name }}
Name:\t\t\t{{.Name}}
{{- end }}
{{- if .Labels }}
Labels:
{{- range $k, $v := .Labels }}
 - {{ $k }}{{if $v }}={{ $v }}{{ end }}
{{- end }}{{ end }}
Hostname:              \t{{.Hostname}}
Joined at:             \t{{.CreatedAt}}
Status:
 State:\t\t\t{{.StatusState}}
 {{- if .HasStatusMessage}}
 Message:              \t{{.StatusMessage}}
 {{- end}}
 Availability:         \t{{.SpecAvailability}}
 {{- if .Status.Addr}}
 Address:\t\t{{.StatusAddr}}
 {{- end}}
{{- if .HasManagerStatus}}
Manager Status:
 Address:\t\t{{.ManagerStatusAddr}}
 Raft Status:\t\t{{.ManagerStatusReachability}}
 {{- if .IsManagerStatusLeader}}
 Leader:\t\tYes
 {{- else}}
 Leader:\t\tNo
 {{- end}}
{{- end}}
Platform:
 Operating System:\t{{.PlatformOS}}
 Architecture:\t\t{{.PlatformArchitecture}}
Resources:
 CPUs:\t\t\t{{.ResourceNanoCPUs}}
 Memory:\t\t{{.ResourceMemory}}
{{- if .HasEnginePlugins}}
Plugins:
{{- range $k, $v := .EnginePlugins }}
 {{ $k }}:{{if $v }}\t\t{{ $v }}{{ end }}
{{- end }}
{{- end }}
Engine Version:\t\t{{.EngineVersion}}
{{- if .EngineLabels}}
Engine Labels:
{{- range $k, $v := .EngineLabels }}
 - {{ $k }}{{if $v }}={{ $v }}{{ end }}
{{- end }}{{- end }}
{{- if .HasTLSInfo}}
TLS Info:
 TrustRoot:
{{.TLSInfoTrustRoot}}
 Issuer Subject:\t{{.TLSInfoCertIssuerSubject}}
 Issuer Public Key:\t{{.TLSInfoCertIssuerPublicKey}}
{{- end}}"""


class NodeRow:
    """One line of `node ls` (node.nodeContext)."""

    def __init__(self, node: dict[str, Any], info: dict[str, Any]) -> None:
        self._n, self._info = node, info

    def ID(self) -> str:
        return self._n.get("ID", "")

    def Self(self) -> bool:
        return self._n.get("ID") == (self._info.get("Swarm") or {}).get("NodeID")

    def Hostname(self) -> str:
        return (self._n.get("Description") or {}).get("Hostname", "")

    def Status(self) -> str:
        return pretty((self._n.get("Status") or {}).get("State", ""))

    def Availability(self) -> str:
        return pretty((self._n.get("Spec") or {}).get("Availability", ""))

    def ManagerStatus(self) -> str:
        ms = self._n.get("ManagerStatus")
        if not ms:
            return ""
        return pretty("Leader" if ms.get("Leader") else ms.get("Reachability", ""))

    def TLSStatus(self) -> str:
        cluster = ((self._info.get("Swarm") or {}).get("Cluster") or {}).get("TLSInfo") or {}
        mine = (self._n.get("Description") or {}).get("TLSInfo") or {}
        if not any(cluster.values()) or not any(mine.values()):
            return "Unknown"
        return "Ready" if mine == cluster else "Needs Rotation"

    def EngineVersion(self) -> str:
        return ((self._n.get("Description") or {}).get("Engine") or {}).get("EngineVersion", "")


class NodePretty(dict):
    """The node as `inspect --pretty` sees it: its fields plus the template's
    methods (node.nodeInspectContext)."""

    def __init__(self, node: dict[str, Any]) -> None:
        super().__init__(node)
        n = node
        spec, desc = n.get("Spec") or {}, n.get("Description") or {}
        status, ms = n.get("Status") or {}, n.get("ManagerStatus") or {}
        res, eng = desc.get("Resources") or {}, desc.get("Engine") or {}
        tls = desc.get("TLSInfo") or {}
        plugins: dict[str, list[str]] = {}
        for p in eng.get("Plugins") or []:
            plugins.setdefault(p.get("Type", ""), []).append(p.get("Name", ""))
        mem = res.get("MemoryBytes") or 0
        from .formatter import bytes_size

        self.update({
            "Name": spec.get("Name", ""), "Labels": spec.get("Labels") or {},
            "Hostname": desc.get("Hostname", ""),
            "CreatedAt": pretty(go_time_string(n.get("CreatedAt", ""))),
            "StatusState": pretty(status.get("State", "")),
            "HasStatusMessage": bool(status.get("Message")),
            "StatusMessage": pretty(status.get("Message", "")),
            "SpecAvailability": pretty(spec.get("Availability", "")),
            "Status": status, "StatusAddr": status.get("Addr", ""),
            "HasManagerStatus": bool(n.get("ManagerStatus")),
            "ManagerStatusAddr": ms.get("Addr", ""),
            "ManagerStatusReachability": pretty(ms.get("Reachability", "")),
            "IsManagerStatusLeader": bool(ms.get("Leader")),
            "PlatformOS": (desc.get("Platform") or {}).get("OS", ""),
            "PlatformArchitecture": (desc.get("Platform") or {}).get("Architecture", ""),
            "ResourceNanoCPUs": int((res.get("NanoCPUs") or 0) / 1e9),
            "ResourceMemory": bytes_size(mem) if mem else "",
            "HasEnginePlugins": bool(eng.get("Plugins")),
            "EnginePlugins": {k: ", ".join(v) for k, v in plugins.items()},
            "EngineLabels": eng.get("Labels") or {},
            "EngineVersion": eng.get("EngineVersion", ""),
            "HasTLSInfo": any(tls.values()),
            "TLSInfoTrustRoot": tls.get("TrustRoot", ""),
            "TLSInfoCertIssuerSubject": tls.get("CertIssuerSubject", ""),
            "TLSInfoCertIssuerPublicKey": tls.get("CertIssuerPublicKey", ""),
        })


def _get(ref: str) -> Any:
    from .client import path_quote
    from .swarmkit import node_reference

    return client().get_json(f"/nodes/{path_quote(node_reference(ref))}")


@app.command("ls")
def list_nodes(args: Optional[List[str]] = typer.Argument(None, hidden=True),
               quiet: bool = typer.Option(False, "-q", "--quiet"),
               filter: Optional[List[str]] = typer.Option(None, "-f", "--filter"),
               format: Optional[str] = typer.Option(None, "--format")) -> None:
    """List nodes in the swarm"""
    check_args("node ls", "[OPTIONS]", args, 0, 0)
    from .output import print_rows
    from .swarmkit import filters_arg, natural_key

    query = {"filters": filters_arg(filter, "node ls")}
    nodes = call(lambda: client().get_json("/nodes", query)) or []
    info: dict[str, Any] = {}
    if nodes and not quiet:
        info = call(lambda: client().get_json("/info"))
    fmt = format or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if quiet else TABLE
    elif fmt == "raw":
        fmt = "node_id: {{.ID}}" if quiet else RAW
    nodes.sort(key=lambda n: natural_key((n.get("Description") or {}).get("Hostname", "")))
    print_rows(fmt, [NodeRow(n, info) for n in nodes], HEADERS)


@app.command("inspect")
def inspect(nodes: Optional[List[str]] = typer.Argument(None, metavar="self|NODE [NODE...]"),
            format: Optional[str] = typer.Option(None, "-f", "--format"),
            pretty_flag: bool = typer.Option(False, "--pretty")) -> None:
    """Display detailed information on one or more nodes"""
    from .swarmkit import inspect as inspect_objects

    nodes = check_args("node inspect", "[OPTIONS] self|NODE [NODE...]", nodes, 1)
    inspect_objects(nodes, "pretty" if pretty_flag else format, PRETTY, _get, NodePretty)


@app.command("ps")
def ps(nodes: Optional[List[str]] = typer.Argument(None, metavar="[NODE...]"),
       no_trunc: bool = typer.Option(False, "--no-trunc"),
       no_resolve: bool = typer.Option(False, "--no-resolve"),
       filter: Optional[List[str]] = typer.Option(None, "-f", "--filter"),
       format: Optional[str] = typer.Option(None, "--format"),
       quiet: bool = typer.Option(False, "-q", "--quiet")) -> None:
    """List tasks running on one or more nodes, defaults to current node"""
    import json

    from .client import APIError, ConnectError
    from .swarmkit import Resolver, filters_arg, print_tasks

    base = json.loads(filters_arg(filter, "node ps", "[OPTIONS] [NODE...]") or "{}")
    errors: list[str] = []
    tasks: list[dict[str, Any]] = []
    for ref in nodes or ["self"]:
        try:
            node = _get(ref)
            f = dict(base)
            f["node"] = dict(f.get("node") or {}, **{node["ID"]: True})
            tasks.extend(client().get_json("/tasks", {"filters": json.dumps(f)}) or [])
        except (APIError, ConnectError) as e:
            errors.append(error_text(e))
    if not errors or tasks:
        print_tasks(tasks, Resolver(no_resolve), not no_trunc, quiet, format)
    if errors:
        fail("\n".join(errors))


@app.command("rm")
def remove(nodes: Optional[List[str]] = typer.Argument(None, metavar="NODE [NODE...]"),
           force: bool = typer.Option(False, "-f", "--force")) -> None:
    """Remove one or more nodes from the swarm"""
    nodes = check_args("node rm", "[OPTIONS] NODE [NODE...]", nodes, 1)
    from .client import APIError, ConnectError, path_quote

    errors = []
    for n in nodes:
        try:
            client().request("DELETE", f"/nodes/{path_quote(n)}", {"force": force or None}).close()
            print(n)
        except (APIError, ConnectError) as e:
            errors.append(error_text(e))
    if errors:
        fail("\n".join(errors))


def _update_nodes(nodes: list[str], merge: Any, success: Any) -> None:
    """updateNodes: each node read, changed and written back; stop at the
    first error. `merge` returns False to skip a node (no role change)."""
    from .client import path_quote

    for ref in nodes:
        node = call(lambda: client().get_json(f"/nodes/{path_quote(ref)}"))
        spec = node.get("Spec") or {}
        if merge(node, spec) is False:
            continue
        call(lambda: client().post_json(
            f"/nodes/{path_quote(node['ID'])}/update",
            {"version": (node.get("Version") or {}).get("Index", 0)}, spec))
        success(ref)


@app.command("update")
def update(args: Optional[List[str]] = typer.Argument(None, metavar="NODE"),
           role: Optional[str] = typer.Option(None, "--role"),
           availability: Optional[str] = typer.Option(None, "--availability"),
           label_add: Optional[List[str]] = typer.Option(None, "--label-add"),
           label_rm: Optional[List[str]] = typer.Option(None, "--label-rm")) -> None:
    """Update a node"""
    (node,) = check_args("node update", "[OPTIONS] NODE", args, 1, 1)

    def merge(n: dict[str, Any], spec: dict[str, Any]) -> None:
        if role is not None:
            spec["Role"] = role
        if availability is not None:
            spec["Availability"] = availability
        labels = spec.get("Labels") or {}
        for kv in label_add or []:
            k, _, v = kv.partition("=")
            labels[k] = v
        for k in label_rm or []:
            if k not in labels:
                fail(f"key {k} doesn't exist in node's labels")
            del labels[k]
        spec["Labels"] = labels

    _update_nodes([node], merge, print)


@app.command("promote")
def promote(nodes: Optional[List[str]] = typer.Argument(None, metavar="NODE [NODE...]")
            ) -> None:
    """Promote one or more nodes to manager in the swarm"""
    nodes = check_args("node promote", "NODE [NODE...]", nodes, 1)

    def merge(n: dict[str, Any], spec: dict[str, Any]) -> bool:
        if spec.get("Role") == "manager":
            print(f"Node {n.get('ID')} is already a manager.")
            return False
        spec["Role"] = "manager"
        return True

    _update_nodes(nodes, merge, lambda ref: print(f"Node {ref} promoted to a manager in the "
                                                  "swarm."))


@app.command("demote")
def demote(nodes: Optional[List[str]] = typer.Argument(None, metavar="NODE [NODE...]")
           ) -> None:
    """Demote one or more nodes from manager in the swarm"""
    nodes = check_args("node demote", "NODE [NODE...]", nodes, 1)

    def merge(n: dict[str, Any], spec: dict[str, Any]) -> bool:
        if spec.get("Role") == "worker":
            print(f"Node {n.get('ID')} is already a worker.")
            return False
        spec["Role"] = "worker"
        return True

    _update_nodes(nodes, merge, lambda ref: print(f"Manager {ref} demoted in the swarm."))


app.command("list", hidden=True)(list_nodes)
app.command("remove", hidden=True)(remove)
