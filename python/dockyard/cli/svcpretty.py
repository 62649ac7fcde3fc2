"""`service inspect --pretty`: the human-friendly text docker's CLI renders
from its serviceInspectPrettyTemplate, written out line by line (the
template's whitespace trimming included)."""

from __future__ import annotations

import time
from typing import Any

from .common import client
from .formatter import bytes_size
from .gotemplate.fmt import go_float
from .swarmlist import parse_time
from ..units import format_go_duration, human_duration


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def _network_names(targets: list[str]) -> dict[str, str]:
    from .client import APIError, ConnectError, path_quote

    names = {}
    for t in targets:
        try:
            n = client().get_json(f"/networks/{path_quote(t)}", {"scope": "swarm"})
            names[n["Id"]] = n["Name"]
        except (APIError, ConnectError, KeyError):
            continue
    return names


def _update_section(title: str, order: str, c: dict) -> str:
    out = f"\n{title}:\n Parallelism:\t{c.get('Parallelism', 0)}"
    if c.get("Delay", 0) > 0:
        out += f"\n Delay:\t\t{format_go_duration(c['Delay'])}"
    out += f"\n On failure:\t{c.get('FailureAction', '')}"
    if c.get("Monitor", 0) > 0:
        out += f"\n Monitoring Period: {format_go_duration(c['Monitor'])}"
    out += f"\n Max failure ratio: {go_float(float(c.get('MaxFailureRatio', 0)))}"
    return out + f"\n {order} order:{' ' * (6 if order == 'Update' else 4)}{c.get('Order', '')}"


def pretty(svc: dict[str, Any]) -> str:
    spec = svc.get("Spec") or {}
    task = spec.get("TaskTemplate") or {}
    cs = task.get("ContainerSpec") or {}
    mode = spec.get("Mode") or {}
    out = f"\nID:\t\t{svc.get('ID', '')}\nName:\t\t{spec.get('Name', '')}"
    if spec.get("Labels"):
        out += "\nLabels:" + "".join(f"\n {k}" + (f"={v}" if v else "")
                                     for k, v in sorted(spec["Labels"].items()))
    out += "\nService Mode:"
    if mode.get("Global") is not None:
        out += "\tGlobal"
    elif mode.get("Replicated") is not None:
        out += "\tReplicated"
        if mode["Replicated"].get("Replicas") is not None:
            out += f"\n Replicas:\t{mode['Replicated']['Replicas']}"
    us = svc.get("UpdateStatus") or {}
    if us.get("State"):
        out += f"\nUpdateStatus:\n State:\t\t{us['State']}"
        if us.get("StartedAt"):
            out += f"\n Started:\t{human_duration(time.time() - parse_time(us['StartedAt']))} ago"
        if us["State"] == "completed" and us.get("CompletedAt"):
            out += (f"\n Completed:\t"
                    f"{human_duration(time.time() - parse_time(us['CompletedAt']))} ago")
        out += f"\n Message:\t{us.get('Message', '')}"
    out += "\nPlacement:"
    pl = task.get("Placement") or {}
    if pl.get("Constraints"):
        out += f"\n Constraints:\t{_go_list(pl['Constraints'])}"
    prefs = [f"spread={(p.get('Spread') or {}).get('SpreadDescriptor', '')}"
             for p in pl.get("Preferences") or [] if p.get("Spread") is not None]
    if prefs:
        out += f"\n Preferences:   {_go_list(prefs)}"
    if pl.get("MaxReplicas"):
        out += f"\n Max Replicas Per Node:   {pl['MaxReplicas']}"
    if spec.get("UpdateConfig") is not None:
        out += _update_section("UpdateConfig", "Update", spec["UpdateConfig"])
    if spec.get("RollbackConfig") is not None:
        out += _update_section("RollbackConfig", "Rollback", spec["RollbackConfig"])
    out += f"\nContainerSpec:\n Image:\t\t{cs.get('Image', '')}"
    if cs.get("Args"):
        out += "\n Args:\t\t" + "".join(a + " " for a in cs["Args"])
    if cs.get("Env"):
        out += "\n Env:\t\t" + "".join(e + " " for e in cs["Env"])
    if cs.get("Dir"):
        out += f"\n Dir:\t\t{cs['Dir']}"
    if cs.get("Init") is not None:
        out += f"\n Init:\t\t{'true' if cs['Init'] else 'false'}"
    if cs.get("User"):
        out += f"\n User: {cs['User']}"
    add, drop = cs.get("CapabilityAdd") or [], cs.get("CapabilityDrop") or []
    if add or drop:
        out += "\nCapabilities:"
        if add:
            out += f"\n Add: {', '.join(add)}"
        if drop:
            out += f"\n Drop: {', '.join(drop)}"
    if cs.get("Sysctls"):
        out += "\nSysCtls:" + "".join(f"\n {k}" + (f": {v}" if v else "")
                                      for k, v in sorted(cs["Sysctls"].items()))
    if cs.get("Ulimits"):
        lims = {u["Name"]: f"{u.get('Soft', 0)}:{u.get('Hard', 0)}" for u in cs["Ulimits"]}
        out += "\nUlimits:" + "".join(f"\n {k}: {v}" for k, v in sorted(lims.items()))
    if cs.get("Mounts"):
        out += "\nMounts:"
        for m in cs["Mounts"]:
            out += (f"\n Target:\t{m.get('Target', '')}\n  Source:\t{m.get('Source', '')}"
                    f"\n  ReadOnly:\t{'true' if m.get('ReadOnly') else 'false'}"
                    f"\n  Type:\t\t{m.get('Type', '')}")
    for key, name_key, title in (("Configs", "ConfigName", "Configs"),
                                 ("Secrets", "SecretName", "Secrets")):
        if cs.get(key):
            out += f"\n{title}:" + "".join(
                f"\n Target:\t{(r.get('File') or {}).get('Name', '')}\n  Source:\t"
                f"{r.get(name_key, '')}" for r in cs[key])
    ld = task.get("LogDriver")
    if ld is not None:
        out += "\nLog Driver:"
        if ld.get("Name"):
            out += f"\n Name:\t\t{ld['Name']}"
        if ld.get("Options"):
            out += "\n LogOpts:" + "".join(f"\n  {k}" + (f":       {v}" if v else "")
                                           for k, v in sorted(ld["Options"].items()))
        out += "\n"
    res = task.get("Resources")
    if res is not None:
        out += "\nResources:"
        rv, lm = res.get("Reservations") or {}, res.get("Limits") or {}
        if rv.get("NanoCPUs", 0) > 0 or rv.get("MemoryBytes", 0) > 0:
            out += "\n Reservations:"
            if rv.get("NanoCPUs", 0) > 0:
                out += f"\n  CPU:\t\t{go_float(rv['NanoCPUs'] / 1e9)}"
            if rv.get("MemoryBytes"):
                out += f"\n  Memory:\t{bytes_size(rv['MemoryBytes'])}"
        if lm.get("NanoCPUs", 0) > 0 or lm.get("MemoryBytes", 0) > 0 or lm.get("Pids", 0) > 0:
            out += "\n Limits:"
            if lm.get("NanoCPUs", 0) > 0:
                out += f"\n  CPU:\t\t{go_float(lm['NanoCPUs'] / 1e9)}"
            if lm.get("MemoryBytes"):
                out += f"\n  Memory:\t{bytes_size(lm['MemoryBytes'])}"
    pids = ((res or {}).get("Limits") or {}).get("Pids", 0)
    if pids > 0:
        out += f"\n  PIDs:\t\t{pids}"
    nets = [n.get("Target", "") for n in task.get("Networks") or []]
    if nets:
        names = _network_names(nets)
        out += "\nNetworks:" + "".join(f" {names.get(t, t)}" for t in nets) + " "
    out += f"\nEndpoint Mode:\t{(spec.get('EndpointSpec') or {}).get('Mode', '')}"
    ports = (svc.get("Endpoint") or {}).get("Ports") or []
    if ports:
        out += "\nPorts:" + "".join(
            f"\n PublishedPort = {p.get('PublishedPort', 0)}\n  Protocol = "
            f"{p.get('Protocol', '')}\n  TargetPort = {p.get('TargetPort', 0)}\n  "
            f"PublishMode = {p.get('PublishMode', '')}" for p in ports) + " "
    hc = cs.get("Healthcheck")
    if hc is not None:
        out += (f"\n Healthcheck:\n  Interval = {format_go_duration(hc.get('Interval', 0))}"
                f"\n  Retries = {hc.get('Retries', 0)}\n  StartPeriod =\t"
                f"{format_go_duration(hc.get('StartPeriod', 0))}\n  Timeout =\t"
                f"{format_go_duration(hc.get('Timeout', 0))}")
        if hc.get("Test"):
            out += "\n  Tests:" + "".join(f"\n\t Test = {t}" for t in hc["Test"]) + " "
    return out + "\n\n"
