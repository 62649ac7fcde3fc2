"""System commands: version, info, system df, and the generic inspect (whose
work, shared with `container inspect` and `image inspect`, is inspector.py)."""

from __future__ import annotations

import sys
from typing import Any, Callable, List, Optional

import typer

from .common import G, call, client
from .formatter import IMAGE_HEADERS, bytes_size, short_id

app = typer.Typer(help="Manage Dockyard", no_args_is_help=True, add_completion=False)


def version(format: Optional[str] = typer.Option(None, "-f", "--format")) -> None:
    """Show the Dockyard version information"""
    from .fast import show_version

    show_version(format)


def info(format: Optional[str] = typer.Option(None, "-f", "--format")) -> None:
    """Display system-wide information"""
    data = call(lambda: client().get_json("/info"))
    if format:
        from .output import print_one

        print_one(format, data)
        return
    p = data.get("Plugins") or {}
    from .fast import client_version

    cv = client_version()
    lines = ["Client:", f" Version:    {cv['Version']}", f" Context:    {cv['Context']}",
             f" Debug Mode: {'true' if G.debug else 'false'}", "", "Server:",
             f" Containers: {data['Containers']}", f"  Running: {data['ContainersRunning']}",
             f"  Paused: {data['ContainersPaused']}", f"  Stopped: {data['ContainersStopped']}",
             f" Images: {data['Images']}", f" Server Version: {data['ServerVersion']}",
             f" Storage Driver: {data['Driver']}"]
    lines += [f"  {k}: {v}" for k, v in data.get("DriverStatus") or []]
    lines += [f" Logging Driver: {data['LoggingDriver']}",
              f" Cgroup Driver: {data['CgroupDriver']}",
              f" Cgroup Version: {data['CgroupVersion']}", " Plugins:",
              f"  Volume: {' '.join(p.get('Volume') or [])}",
              f"  Network: {' '.join(p.get('Network') or [])}",
              f"  Log: {' '.join(p.get('Log') or [])}",
              f" Swarm: {data['Swarm']['LocalNodeState']}",
              f" Runtimes: {' '.join(data.get('Runtimes') or {})}",
              f" Default Runtime: {data['DefaultRuntime']}",
              f" Execution Driver: {data.get('ExecutionDriver', 'native')}",
              " Security Options:"]
    for opt in data.get("SecurityOptions") or []:
        parts = dict(x.split("=", 1) for x in opt.split(",") if "=" in x)
        lines.append(f"  {parts.get('name', opt)}")
        for k, v in parts.items():
            if k != "name":
                lines.append(f"   {k.capitalize()}: {v}")
    lines += [f" Kernel Version: {data['KernelVersion']}",
              f" Operating System: {data['OperatingSystem']}",
              f" OSType: {data['OSType']}", f" Architecture: {data['Architecture']}",
              f" CPUs: {data['NCPU']}", f" Total Memory: {bytes_size(data['MemTotal'])}",
              f" Name: {data['Name']}", f" ID: {data['ID']}",
              f" Docker Root Dir: {data['DockerRootDir']}",
              f" Debug Mode: {'true' if data.get('Debug') else 'false'}"]
    if data.get("Debug"):
        lines += [f"  File Descriptors: {data.get('NFd')}",
                  f"  Goroutines: {data.get('NGoroutines')}",
                  f"  System Time: {data.get('SystemTime')}",
                  f"  EventsListeners: {data.get('NEventsListener')}"]
    lines += [f" Experimental: {'true' if data.get('ExperimentalBuild') else 'false'}",
              " Insecure Registries:"]
    lines += [f"  {c}" for c in (data.get("RegistryConfig") or {}).get("InsecureRegistryCIDRs")
              or []]
    lines.append(f" Live Restore Enabled: {'true' if data.get('LiveRestoreEnabled') else 'false'}")
    sys.stdout.write("\n".join(lines) + "\n")
    for w in data.get("Warnings") or []:
        print(w, file=sys.stderr)


def _volume_row(vols: list) -> dict:
    """The Local Volumes line of `system df`, as docker computes it."""
    from ..units import human_size

    total = sum(v["UsageData"]["Size"] for v in vols)
    free = sum(v["UsageData"]["Size"] for v in vols if v["UsageData"]["RefCount"] == 0)
    pct = f" ({free * 100 // total}%)" if total else ""
    return {"Type": "Local Volumes", "TotalCount": str(len(vols)),
            "Active": str(sum(1 for v in vols if v["UsageData"]["RefCount"] > 0)),
            "Size": human_size(total), "Reclaimable": human_size(free) + pct}


def df(verbose: bool = typer.Option(False, "-v", "--verbose"),
       format: Optional[str] = typer.Option(None, "--format")) -> None:
    """Show dockyard disk usage"""
    from ..units import human_size

    data = call(lambda: client().get_json("/system/df"))
    imgs = data.get("Images") or []
    total = data.get("LayersSize", 0)
    active = sum(1 for i in imgs if i.get("Containers", 0) > 0)
    # docker's formula: everything but what images in use hold on their own
    used = sum(i["VirtualSize"] - i["SharedSize"] for i in imgs
               if i.get("Containers", 0) and i.get("SharedSize", -1) != -1)
    reclaim = total - used
    pct = f" ({reclaim * 100 // total}%)" if total else ""
    rows = [
        {"Type": "Images", "TotalCount": str(len(imgs)), "Active": str(active),
         "Size": human_size(total), "Reclaimable": human_size(reclaim) + pct},
        {"Type": "Containers", "TotalCount": "0", "Active": "0", "Size": "0B",
         "Reclaimable": "0B"},
        _volume_row(data.get("Volumes") or []),
        {"Type": "Build Cache", "TotalCount": "0", "Active": "0", "Size": "0B",
         "Reclaimable": "0B"},
    ]
    from .output import print_rows

    headers = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
               "Reclaimable": "RECLAIMABLE"}
    if not verbose:
        print_rows(format or "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t"
                   "{{.Reclaimable}}", rows, headers)
        return
    from ..units import since

    print("Images space usage:\n")
    irows = []
    for i in imgs:
        for t in i.get("RepoTags") or ["<none>:<none>"]:
            repo, _, tag = t.rpartition(":")
            irows.append({"Repository": repo, "Tag": tag, "ID": short_id(i["Id"], False),
                          "CreatedSince": since(i["Created"]), "Size": human_size(i["Size"], 3),
                          "SharedSize": human_size(i.get("SharedSize", 0), 3),
                          "UniqueSize": human_size(i["Size"] - i.get("SharedSize", 0)),
                          "Containers": str(i.get("Containers", 0))})
    print_rows("table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t"
               "{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}", irows, IMAGE_HEADERS)
    print("\nContainers space usage:\n")
    print("CONTAINER ID   IMAGE     COMMAND   LOCAL VOLUMES   SIZE      CREATED   STATUS    NAMES")
    print("\nLocal Volumes space usage:\n")
    vrows = [{"Name": v["Name"], "Links": str(v["UsageData"]["RefCount"]),
              "Size": human_size(v["UsageData"]["Size"])}
             for v in data.get("Volumes") or []]
    print_rows("table {{.Name}}\t{{.Links}}\t{{.Size}}", vrows,
               {"Name": "VOLUME NAME", "Links": "LINKS", "Size": "SIZE"})
    print("\nBuild cache usage: 0B\n")
    print("CACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED")


def inspect(names: List[str] = typer.Argument(..., metavar="NAME|ID [NAME|ID...]"),
            format: Optional[str] = typer.Option(None, "-f", "--format"),
            type: Optional[str] = typer.Option(None, "--type"),
            size: bool = typer.Option(False, "-s", "--size")) -> None:
    """Return low-level information on Dockyard objects"""
    from .inspector import inspect_objects

    inspect_objects(names, format, type, size)


app.command("df")(df)
app.command("info")(info)


class EventMessage:
    """An event as the docker CLI decodes it (events.Message): its fields by
    their Go names for templates (absent ones empty), and its JSON in the
    struct's order with the struct's omitempty rules."""

    def __init__(self, ev: dict) -> None:
        actor = ev.get("Actor") or {}
        attrs = actor.get("Attributes") or {}
        self.Status, self.ID, self.From = ev.get("status", ""), ev.get("id", ""), ev.get("from", "")
        self.Type, self.Action = ev.get("Type", ""), ev.get("Action", "")
        self.Actor = {"ID": actor.get("ID", ""), "Attributes": {k: attrs[k] for k in sorted(attrs)}}
        self.Scope = ev.get("scope", "")
        self.Time, self.TimeNano = int(ev.get("time") or 0), int(ev.get("timeNano") or 0)

    def __json__(self) -> dict:
        out: dict = {}
        for key, val in (("status", self.Status), ("id", self.ID), ("from", self.From)):
            if val:
                out[key] = val
        out.update(Type=self.Type, Action=self.Action, Actor=self.Actor, scope=self.Scope)
        for key, num in (("time", self.Time), ("timeNano", self.TimeNano)):
            if num:
                out[key] = num
        return out


def _event_line(ev: dict) -> str:
    """docker's default event line: local time with nanoseconds, type,
    action, actor, then the attributes sorted by key."""
    import time as _t

    ns = ev.get("timeNano") or int(ev.get("time", 0)) * 10**9
    sec, frac = divmod(int(ns), 10**9)
    lt = _t.localtime(sec)
    off = lt.tm_gmtoff or 0
    zone = "Z" if off == 0 else "%s%02d:%02d" % ("+-"[off < 0], abs(off) // 3600,
                                                 abs(off) % 3600 // 60)
    when = _t.strftime("%Y-%m-%dT%H:%M:%S", lt) + f".{frac:09d}{zone}"
    actor = ev.get("Actor") or {}
    line = f"{when} {ev.get('Type', '')} {ev.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line + "\n"


def events(filter: Optional[List[str]] = typer.Option(None, "-f", "--filter",
                                                      help="Filter output based on conditions "
                                                      "provided"),
           format: Optional[str] = typer.Option(None, "--format"),
           since: Optional[str] = typer.Option(None, "--since",
                                               help="Show all events created since timestamp"),
           until: Optional[str] = typer.Option(None, "--until",
                                               help="Stream events until this timestamp")
           ) -> None:
    """Get real time events from the server"""
    import json

    from .opts import filters_param, time_param

    params = {"since": time_param(since), "until": time_param(until),
              "filters": filters_param(filter)}
    resp = call(lambda: client().request("GET", "/events",
                                         {k: v for k, v in params.items() if v}))
    try:
        for line in resp.iter_lines():
            ev = json.loads(line)
            if format:
                from .output import print_one

                print_one(format, EventMessage(ev))
            else:
                sys.stdout.write(_event_line(ev))
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    finally:
        resp.close()


app.command("events")(events)


def prune(all: bool = typer.Option(False, "-a", "--all",
                                   help="Remove all unused images not just dangling ones"),
          filter: Optional[List[str]] = typer.Option(None, "--filter",
                                                     help="Provide filter values"),
          force: bool = typer.Option(False, "-f", "--force",
                                     help="Do not prompt for confirmation"),
          volumes: bool = typer.Option(False, "--volumes", help="Prune volumes")) -> None:
    """Remove unused data"""
    from . import prune as pruning
    from ..units import human_size
    from .common import fail

    if volumes and any(f.partition("=")[0].strip().lower() == "until" for f in filter or []):
        fail('ERROR: The "until" filter is not supported with "--volumes"')
    warnings = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        warnings.append("all volumes not used by at least one container")
    warnings.append("all images without at least one container associated to them" if all
                    else "all dangling images")
    warnings.append("all build cache" if all else "all dangling build cache")
    message = ("WARNING! This will remove:\n" + "".join(f"  - {w}\n" for w in warnings)
               + "\nAre you sure you want to continue?")
    if not force and not pruning.confirm(message):
        return
    steps = [lambda: pruning.containers(filter), lambda: pruning.networks(filter)]
    if volumes:
        steps.append(lambda: pruning.volumes(filter))
    steps += [lambda: pruning.images(all, filter), lambda: pruning.build_cache(all, filter)]
    total = 0
    for step in steps:
        space, output = step()
        total += space
        if output:
            print(output)
    print(f"Total reclaimed space: {human_size(total)}")


app.command("prune")(prune)


def check(repair: bool = typer.Option(False, "--repair",
                                      help="Also remove what belongs to nothing"),
          quick: bool = typer.Option(False, "--quick",
                                     help="Don't rebuild every layer from its files"),
          format: Optional[str] = typer.Option(None, "--format")) -> None:
    """Check the engine's store, containers and volumes for damage (Dockyard's own)"""
    from .output import print_rows

    params = {"verify": 0 if quick else 1}
    if repair:
        data = call(lambda: client().post_json("/system/check", dict(params, repair=1)))
    else:
        data = call(lambda: client().get_json("/system/check", params))
    problems = data.get("Problems") or []
    rows = [{"Kind": p["Kind"], "ID": p["ID"][:19] if p["Kind"] in ("layer", "image")
             else p["ID"], "Problem": p["Problem"],
             "Repaired": "yes" if p["Repaired"] else "no" if p["Repairable"] else "-"}
            for p in problems]
    if not rows and not format:
        print("No problems found")
        return
    print_rows(format or "table {{.Kind}}\t{{.ID}}\t{{.Problem}}\t{{.Repaired}}", rows,
               {"Kind": "KIND", "ID": "ID", "Problem": "PROBLEM", "Repaired": "REPAIRED"})
    if any(not p["Repaired"] for p in problems):
        raise SystemExit(1)


app.command("check")(check)

# (command name, function, typer.command keywords): the top-level commands
# (`dockyard version`...), added by cli/main.py
COMMANDS: list[tuple[str, Callable[..., Any], dict[str, Any]]] = [
    ("version", version, {}), ("info", info, {}), ("events", events, {}),
    ("inspect", inspect, {}),
]
