"""`ps`'s table (docker's formatter.ContainerContext) and the command's
work, without Typer: `cli/fast.py` runs `ps` through here, and so does the
Typer command (`container/listing.py`) for its --help and odd flags."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs the CLI ~4 ms to import
if TYPE_CHECKING:
    from typing import Any

from .common import call, client
from .formatter import created_at
from .gotemplate.strconv import go_quote
from .opts import filters_param

PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND",
              "CreatedAt": "CREATED AT", "RunningFor": "CREATED", "Ports": "PORTS",
              "Status": "STATUS", "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS",
              "Mounts": "MOUNTS", "LocalVolumes": "LOCAL VOLUMES", "Networks": "NETWORKS",
              "State": "STATE"}


def ellipsis(s: str, width: int) -> str:
    if len(s) <= width:
        return s
    return s[:width - 1] + "…"


def display_ports(ports: list[dict[str, Any]]) -> str:
    """formatter.DisplayablePorts, ranges of consecutive ports folded."""
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    out: list[str] = []
    for p in sorted(ports, key=lambda p: (p.get("Type", ""), p.get("PrivatePort", 0))):
        if p.get("IP") and p.get("PublicPort"):
            key = f"{p['IP']}:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
            if ":" in p["IP"]:
                key = f"[{p['IP']}]:{p['PublicPort']}->{p['PrivatePort']}/{p['Type']}"
            out.append(key)
            continue
        key = p.get("Type", "tcp")
        if key not in groups:
            order.append(key)
        groups.setdefault(key, []).append(p["PrivatePort"])
    for typ in order:
        nums = sorted(set(groups[typ]))
        start = prev = nums[0]
        for n in nums[1:] + [None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            out.append(f"{start}/{typ}" if start == prev else f"{start}-{prev}/{typ}")
            if n is not None:
                start = prev = n
    return ", ".join(sorted(out))


def ps_rows(items: list[dict[str, Any]], trunc: bool) -> list[dict[str, Any]]:
    from ..units import human_size, since

    rows = []
    for c in items:
        names = [n[1:] if n.startswith("/") else n for n in c.get("Names") or []]
        if trunc:
            for n in names:
                if "/" not in n:
                    names = [n]
                    break
        image = c.get("Image") or "<no image>"
        if trunc and image.startswith("sha256:"):
            image = image[7:19]
        cmd = c.get("Command", "")
        srw = human_size(c.get("SizeRw") or 0, 3)
        size = srw
        if c.get("SizeRootFs"):
            size = f"{srw} (virtual {human_size(c['SizeRootFs'], 3)})"
        labels = c.get("Labels") or {}
        nets = ((c.get("NetworkSettings") or {}).get("Networks") or {})
        mounts = [m.get("Name") or m.get("Source", "") for m in c.get("Mounts") or []]
        rows.append({
            "ID": c["Id"][:12] if trunc else c["Id"], "Image": image,
            "Command": go_quote(ellipsis(cmd, 20) if trunc else cmd),  # docker's strconv.Quote
            "CreatedAt": created_at(c.get("Created", 0)),
            "RunningFor": since(c.get("Created", 0)), "Ports": display_ports(c.get("Ports") or []),
            "Status": c.get("Status", ""), "State": c.get("State", ""), "Size": size,
            "Names": ",".join(names),
            "Labels": ",".join(f"{k}={v}" for k, v in labels.items()),
            "Mounts": ",".join(ellipsis(m, 15) if trunc else m for m in mounts),
            "LocalVolumes": str(sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")),
            "Networks": ",".join(sorted(nets)),
        })
    return rows


def list_containers(all: bool, filter: list[str] | None, format: str | None, last: int,
                    latest: bool, no_trunc: bool, quiet: bool, size: bool) -> None:
    """`ps`: list the containers, as docker's table or `format`."""
    from .output import print_rows

    limit = 1 if latest else last
    params = {"all": True if all or limit > 0 else None, "limit": limit if limit > 0 else None,
              "size": size or None, "filters": filters_param(filter)}
    if format and not size and ".Size" in format:
        params["size"] = True
    items = call(lambda: client().get_json("/containers/json", params))
    if not format or format == "table":
        if quiet:
            format = "{{.ID}}"
        else:
            format = ("table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}"
                      "\t{{.Ports}}\t{{.Names}}" + ("\t{{.Size}}" if size else ""))
    elif format == "raw":
        format = ("container_id: {{.ID}}\nimage: {{.Image}}\ncommand: {{.Command}}\n"
                  "created_at: {{.CreatedAt}}\nstate: {{- pad .State 1 0}}\n"
                  "status: {{- pad .Status 1 0}}\nnames: {{.Names}}\nlabels: {{- pad .Labels 1 0}}\n"
                  "ports: {{- pad .Ports 1 0}}\n")
    print_rows(format, ps_rows(items, not no_trunc), PS_HEADERS)
