"""Services and tasks as docker's `service` and `stack` commands list them
(docker/cli's service formatter, task.Print and idresolver): the
ID/NAME/MODE/REPLICAS/IMAGE/PORTS table, the task table with its ` \\_ `
history rows, and the service progress display of `create`/`update`/`scale`.
Shared by the `service` and `stack` groups, which stand alone."""

from __future__ import annotations

import sys
import time
from functools import cmp_to_key
from typing import Any, Callable, Iterator

from .common import client

SERVICE_HEADERS = {"ID": "ID", "Name": "NAME", "Mode": "MODE", "Replicas": "REPLICAS",
                   "Image": "IMAGE", "Ports": "PORTS"}
SERVICE_TABLE = "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}"
SERVICE_RAW = ("id: {{.ID}}\\nname: {{.Name}}\\nmode: {{.Mode}}\\nreplicas: {{.Replicas}}"
               "\\nimage: {{.Image}}\\nports: {{.Ports}}\\n")
TASK_HEADERS = {"ID": "ID", "Name": "NAME", "Image": "IMAGE", "Node": "NODE",
                "DesiredState": "DESIRED STATE", "CurrentState": "CURRENT STATE",
                "Error": "ERROR", "Ports": "PORTS"}
TASK_TABLE = ("table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}"
              "\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}")
TASK_RAW = ("id: {{.ID}}\\nname: {{.Name}}\\nimage: {{.Image}}\\nnode: {{.Node}}\\n"
            "desired_state: {{.DesiredState}}\\ncurrent_state: {{.CurrentState}}\\n"
            "error: {{.Error}}\\nports: {{.Ports}}\\n")


def go_rows(go_type: str, rows: list[dict[str, Any]]) -> list[Any]:
    """Rows as objects of docker's formatter context type: a template asking
    for a field that isn't there fails as docker's does ("can't evaluate field
    X in type *service.serviceContext"); `json .` shows the fields, sorted."""
    cls = type(go_type, (), {})
    out = []
    for r in rows:
        o = cls()
        o.__dict__.update(r)
        out.append(o)
    return out


def natural_cmp(a: str, b: str) -> int:
    """sortorder.NaturalLess as a comparison: runs of digits compare as
    numbers (fewer leading zeros first), digits before other characters."""
    i = j = 0
    while i < len(a) and j < len(b):
        da, db = a[i].isdigit(), b[j].isdigit()
        if da != db:
            return -1 if da else 1
        if not da:
            if a[i] != b[j]:
                return -1 if a[i] < b[j] else 1
            i, j = i + 1, j + 1
            continue
        while i < len(a) and a[i] == "0":
            i += 1
        while j < len(b) and b[j] == "0":
            j += 1
        si, sj = i, j
        while i < len(a) and a[i].isdigit():
            i += 1
        while j < len(b) and b[j].isdigit():
            j += 1
        na, nb = a[si:i], b[sj:j]
        if len(na) != len(nb):
            return -1 if len(na) < len(nb) else 1
        if na != nb:
            return -1 if na < nb else 1
        if si != sj:
            return -1 if si < sj else 1
    return (len(a) > len(b)) - (len(a) < len(b))


def familiar_image(image: str) -> str:
    """A tagged reference in its short form without a digest (busybox:latest
    for docker.io/library/busybox:latest@sha256:...); other text as is."""
    from .. import reference
    from ..errors import InvalidReference

    try:
        ref = reference.parse_normalized(image)
    except (InvalidReference, ValueError):
        return image
    if not ref.tag:
        return image
    return f"{ref.familiar_name}:{ref.tag}"


def parse_time(s: str | None) -> float:
    """An RFC 3339 time (nanoseconds allowed) as Unix seconds; 0 if unset."""
    if not s or s.startswith("0001-01-01"):
        return 0.0
    from datetime import datetime

    head, _, rest = s.partition(".")
    frac, zone = "", "Z"
    if rest:
        k = 0
        while k < len(rest) and rest[k].isdigit():
            k += 1
        frac, zone = rest[:k], rest[k:] or "Z"
    elif head.endswith("Z"):
        head = head[:-1]
    elif len(head) > 19:
        head, zone = head[:19], head[19:]
    d = datetime.fromisoformat(head + ("+00:00" if zone == "Z" else zone))
    return d.timestamp() + (int(frac) / 10 ** len(frac) if frac else 0.0)


# --- services ---------------------------------------------------------------------------

def mode_name(spec: dict) -> str:
    mode = spec.get("Mode") or {}
    for key, name in (("Global", "global"), ("Replicated", "replicated"),
                      ("ReplicatedJob", "replicated job"), ("GlobalJob", "global job")):
        if mode.get(key) is not None:
            return name
    return ""


def replicas_column(svc: dict) -> str:
    spec = svc.get("Spec") or {}
    st = svc.get("ServiceStatus") or {}
    running, desired = st.get("RunningTasks", 0), st.get("DesiredTasks", 0)
    completed = st.get("CompletedTasks", 0)
    mode = spec.get("Mode") or {}
    if mode.get("ReplicatedJob") is not None:
        total = mode["ReplicatedJob"].get("TotalCompletions", 0)
        return f"{running}/{desired} ({completed}/{total} completed)"
    if mode.get("GlobalJob") is not None:
        return f"{running}/{desired} ({completed}/{desired + completed} completed)"
    max_per_node = ((spec.get("TaskTemplate") or {}).get("Placement") or {}).get("MaxReplicas", 0)
    if mode_name(spec) == "replicated" and max_per_node:
        return f"{running}/{desired} (max {max_per_node} per node)"
    return f"{running}/{desired}"


def ports_column(ports: list[dict] | None) -> str:
    """Ingress ports, consecutive ones folded into ranges: *:8080-8081->80-81/tcp."""
    if ports is None:
        return ""
    ports = sorted(ports, key=lambda p: (p.get("Protocol", ""), p.get("PublishedPort", 0)))
    out: list[str] = []
    cur: list[Any] | None = None  # [pstart, pend, tstart, tend, proto]

    def show(r: list[Any]) -> str:
        pub = f"{r[0]}-{r[1]}" if r[1] > r[0] else f"{r[0]}"
        tgt = f"{r[2]}-{r[3]}" if r[3] > r[2] else f"{r[2]}"
        return f"*:{pub}->{tgt}/{r[4]}"

    for p in ports:
        if p.get("PublishMode") != "ingress":
            continue
        pub, tgt, proto = p.get("PublishedPort", 0), p.get("TargetPort", 0), p.get("Protocol", "")
        # Go's uint32 differences: a smaller port wraps around to a big gap
        if cur is None or proto != cur[4] or not 0 <= pub - cur[1] <= 1 or \
                not 0 <= tgt - cur[3] <= 1 or (cur[3] != cur[2] and tgt <= cur[3]):
            if cur is not None and cur[0] > 0:
                out.append(show(cur))
            cur = [pub, pub, tgt, tgt, proto]
            continue
        cur[1], cur[3] = pub, tgt
    if cur is not None and cur[0] > 0:
        out.append(show(cur))
    return ", ".join(out)


def service_rows(services: list[dict]) -> list[dict[str, str]]:
    services = sorted(services, key=cmp_to_key(
        lambda a, b: natural_cmp((a.get("Spec") or {}).get("Name", ""),
                                 (b.get("Spec") or {}).get("Name", ""))))
    rows = []
    for s in services:
        spec = s.get("Spec") or {}
        image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "")
        rows.append({"ID": s.get("ID", "")[:12], "Name": spec.get("Name", ""),
                     "Mode": mode_name(spec), "Replicas": replicas_column(s),
                     "Image": familiar_image(image),
                     "Ports": ports_column((s.get("Endpoint") or {}).get("Ports"))})
    return rows


def print_services(services: list[dict], fmt: str | None, quiet: bool) -> None:
    from .output import print_rows

    fmt = fmt or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if quiet else SERVICE_TABLE
    elif fmt == "raw":
        fmt = "id: {{.ID}}" if quiet else SERVICE_RAW
    print_rows(fmt, go_rows("*service.serviceContext", service_rows(services)),
               SERVICE_HEADERS)


# --- tasks ------------------------------------------------------------------------------

class IDResolver:
    """Names for node and service IDs, asked once each (idresolver)."""

    def __init__(self, no_resolve: bool = False) -> None:
        self.no_resolve = no_resolve
        self.cache: dict[str, str] = {}

    def resolve(self, kind: str, id: str) -> str:
        from .client import APIError, path_quote

        if self.no_resolve:
            return id
        if id in self.cache:
            return self.cache[id]
        name = id
        try:
            if kind == "node":
                n = client().get_json(f"/nodes/{path_quote(id)}")
                name = ((n.get("Spec") or {}).get("Name") or
                        (n.get("Description") or {}).get("Hostname") or id)
            else:
                s = client().get_json(f"/services/{path_quote(id)}")
                name = (s.get("Spec") or {}).get("Name", "")
        except APIError:
            name = id
        self.cache[id] = name
        return name


def _pretty_state(s: str) -> str:
    return s[:1].upper() + s[1:]


def _task_cmp(a: dict, b: dict) -> int:
    if a["_name"] != b["_name"]:
        return natural_cmp(a["_name"], b["_name"])
    ta, tb = parse_time(a.get("CreatedAt")), parse_time(b.get("CreatedAt"))
    return -1 if tb < ta else (1 if ta < tb else 0)


def print_tasks(tasks: list[dict], resolver: IDResolver, trunc: bool, quiet: bool,
                fmt: str | None) -> None:
    """task.Print: tasks named <service>.<slot> (or .<node> for global ones),
    newest first within a name, older ones indented in tables."""
    from ..units import human_duration
    from .output import print_rows

    fmt = fmt or "table"
    if fmt == "table":
        fmt = "{{.ID}}" if quiet else TASK_TABLE
    elif fmt == "raw":
        fmt = "id: {{.ID}}" if quiet else TASK_RAW
    for t in tasks:
        svc = resolver.resolve("service", t.get("ServiceID", ""))
        t["_name"] = f"{svc}.{t['Slot']}" if t.get("Slot") else f"{svc}.{t.get('NodeID', '')}"
    tasks = sorted(tasks, key=cmp_to_key(_task_cmp))
    indent = " \\_ " if fmt.startswith("table") else ""
    rows, prev, now = [], None, time.time()
    for t in tasks:
        name = indent + t["_name"] if t["_name"] == prev else t["_name"]
        prev = t["_name"]
        node = resolver.resolve("node", t.get("NodeID", ""))
        status = t.get("Status") or {}
        image = ((t.get("Spec") or {}).get("ContainerSpec") or {}).get("Image", "")
        err = status.get("Err", "")
        if trunc and len(err) > 30:
            err = err[:29] + "…"
        ports = ((status.get("PortStatus") or {}).get("Ports")) or []
        since = human_duration(now - parse_time(status.get("Timestamp"))).lower()
        rows.append({
            "ID": t.get("ID", "")[:12] if trunc else t.get("ID", ""), "Name": name,
            "Image": familiar_image(image) if trunc else image, "Node": node,
            "DesiredState": _pretty_state(t.get("DesiredState", "")),
            "CurrentState": f"{_pretty_state(status.get('State', ''))} {since} ago",
            "Error": f'"{err}"' if err else "",
            "Ports": ",".join(f"*:{p.get('PublishedPort', 0)}->{p.get('TargetPort', 0)}/"
                              f"{p.get('Protocol', '')}" for p in ports)})
    print_rows(fmt, go_rows("*task.taskContext", rows), TASK_HEADERS)


# --- the progress of a service converging (service/progress) ----------------------------

STATES = {"new": 1, "allocated": 2, "pending": 3, "assigned": 4, "accepted": 5,
          "preparing": 6, "ready": 7, "starting": 8, "running": 9, "complete": 10,
          "shutdown": 11, "failed": 12, "rejected": 13}
LONGEST_STATE = max(len(s) for s, n in STATES.items() if n <= 10)


def _terminal(state: str) -> bool:
    return STATES.get(state, 0) > STATES["running"]


def _trunc_error(msg: str) -> str:
    msg = msg.replace("\n", " ")
    return msg[:74] + "…" if len(msg) > 75 else msg


def _bar(id: str, action: str, current: int = 0, total: int = 0) -> dict[str, Any]:
    detail: dict[str, Any] = {}
    if current or total:
        detail = {"current": current, "total": total, "hidecounts": True}
    return {"id": id, "status": action, "progressDetail": detail}


class _Replicated:
    def __init__(self) -> None:
        self.slots: dict[int, int] = {}
        self.initialized = self.done = False

    def update(self, svc: dict, tasks: list[dict], active: set[str], rollback: bool
               ) -> tuple[bool, list[dict]]:
        replicas = svc["Spec"]["Mode"]["Replicated"]["Replicas"]
        out: list[dict] = []
        if not self.initialized:
            out.append(_overall(0, replicas, rollback))
            if replicas <= 20:
                out += [_bar(f"{i}/{replicas}", " ") for i in range(1, replicas + 1)]
            self.initialized = True
        by_slot: dict[int, dict] = {}
        for t in tasks:
            ds, cs = t.get("DesiredState", ""), (t.get("Status") or {}).get("State", "")
            if not STATES.get(ds) or not STATES.get(cs):
                continue
            old = by_slot.get(t.get("Slot", 0))
            if old is not None:
                ods = STATES[old["DesiredState"]]
                if ods < STATES[ds] or ods == STATES[ds] and \
                        STATES[old["Status"]["State"]] <= STATES[cs]:
                    continue
            if t.get("NodeID") and t["NodeID"] not in active:
                continue
            by_slot[t.get("Slot", 0)] = t
        if self.done and any(t["Status"]["State"] != "running" for t in by_slot.values()):
            self.done = False
        running = 0
        for slot, t in by_slot.items():
            mapped = self.slots.setdefault(slot, len(self.slots) + 1)
            if not _terminal(t["DesiredState"]) and t["Status"]["State"] == "running":
                running += 1
            if self.done or replicas > 20 or mapped > replicas:
                continue
            out += _task_progress(f"{mapped}/{replicas}", t, rollback)
        if not self.done:
            out.append(_overall(running, replicas, rollback))
            self.done = running == replicas
        return running == replicas, out


class _Global:
    def __init__(self) -> None:
        self.initialized = self.done = False

    def update(self, svc: dict, tasks: list[dict], active: set[str], rollback: bool
               ) -> tuple[bool, list[dict]]:
        by_node: dict[str, dict] = {}
        for t in tasks:
            ds, cs = t.get("DesiredState", ""), (t.get("Status") or {}).get("State", "")
            if not STATES.get(ds) or not STATES.get(cs):
                continue
            old = by_node.get(t.get("NodeID", ""))
            if old is not None:
                ods = STATES[old["DesiredState"]]
                if ods < STATES[ds] or ods == STATES[ds] and \
                        STATES[old["Status"]["State"]] <= STATES[cs]:
                    continue
            by_node[t.get("NodeID", "")] = t
        n = len(by_node)
        out: list[dict] = []
        if not self.initialized:
            if n == 0:
                return False, [_bar("overall progress", "waiting for new tasks")]
            out.append(_overall(0, n, rollback))
            self.initialized = True
        if self.done and any(t["Status"]["State"] != "running" for t in by_node.values()):
            self.done = False
        running = 0
        for node, t in by_node.items():
            if node not in active:
                continue
            if not _terminal(t["DesiredState"]) and t["Status"]["State"] == "running":
                running += 1
            if not self.done and n <= 20:
                out += _task_progress(node[:12], t, rollback)
        if not self.done:
            out.append(_overall(running, n, rollback))
            self.done = running == n
        return running == n, out


class _ReplicatedJob:
    def __init__(self, svc: dict) -> None:
        job = svc["Spec"]["Mode"]["ReplicatedJob"]
        self.concurrent = job.get("MaxConcurrent", 1)
        self.total = job.get("TotalCompletions", 1)
        self.iteration = ((svc.get("JobStatus") or {}).get("JobIteration") or {}).get("Index", 0)
        self.initialized = False

    def _overall(self, active: int, done: int) -> list[dict]:
        want = min(self.total - done, self.concurrent)
        w, aw = len(str(self.total)), len(str(self.concurrent))
        return [_bar("job progress", f"{done:>{w}} out of {self.total} complete", done,
                     self.total),
                _bar("active tasks", f"{active:>{aw}} out of {want:>{aw}} tasks")]

    def update(self, svc: dict, tasks: list[dict], active_nodes: set[str], rollback: bool
               ) -> tuple[bool, list[dict]]:
        out: list[dict] = []
        if not self.initialized:
            out += self._overall(0, 0)
            if self.total <= 20:
                out += [_bar(f"{i}/{self.total}", " ") for i in range(1, self.total + 1)]
            self.initialized = True
        by_slot: dict[int, dict] = {}
        for t in tasks:
            if (t.get("JobIteration") or {}).get("Index", -1) != self.iteration:
                continue
            cs = (t.get("Status") or {}).get("State", "")
            if not STATES.get(t.get("DesiredState", "")) or not STATES.get(cs):
                continue
            old = by_slot.get(t.get("Slot", 0))
            if old is None or STATES[old["Status"]["State"]] > STATES[cs]:
                by_slot[t.get("Slot", 0)] = t
        active = complete = 0
        for i in range(len(by_slot)):
            t = by_slot.get(i)
            if t is None:
                continue
            cs = t["Status"]["State"]
            if self.total <= 20:
                err = t["Status"].get("Err", "")
                out.append(_bar(f"{t.get('Slot', 0) + 1}/{self.total}", _trunc_error(err))
                           if err else _bar(f"{t.get('Slot', 0) + 1}/{self.total}",
                                            f"{cs:<{LONGEST_STATE}}", STATES[cs], 10))
            active += STATES[cs] < STATES["complete"]
            complete += cs == "complete"
        out += self._overall(active, complete)
        return complete == self.total, out


class _GlobalJob:
    def __init__(self, svc: dict) -> None:
        self.iteration = ((svc.get("JobStatus") or {}).get("JobIteration") or {}).get("Index", 0)
        self.initialized = False
        self.nodes: set[str] = set()
        self.total = 0

    def update(self, svc: dict, tasks: list[dict], active_nodes: set[str], rollback: bool
               ) -> tuple[bool, list[dict]]:
        out: list[dict] = []
        mine = [t for t in tasks if (t.get("JobIteration") or {}).get("Index", -1)
                == self.iteration]
        if not self.initialized:
            if not tasks and active_nodes:
                return False, [_bar("job progress", "waiting for tasks")]
            self.nodes = {t.get("NodeID", "") for t in mine}
            self.total = len(self.nodes)
            out.append(self._overall(0))
            self.initialized = True
        by_node: dict[str, dict] = {}
        for t in mine:
            n = t.get("NodeID", "")
            if n not in self.nodes:
                continue
            old = by_node.get(n)
            if old is None or STATES.get(old["Status"]["State"], 0) > \
                    STATES.get(t["Status"]["State"], 0):
                by_node[n] = t
        complete = 0
        for n, t in by_node.items():
            cs = t["Status"]["State"]
            if self.total <= 20:
                err = t["Status"].get("Err", "")
                out.append(_bar(n, _trunc_error(err)) if err else
                           _bar(n, f"{cs:<{LONGEST_STATE}}", STATES.get(cs, 0), 10))
            complete += cs == "complete"
        out.append(self._overall(complete))
        return complete == self.total, out

    def _overall(self, complete: int) -> dict:
        w = len(str(self.total))
        return _bar("job progress", f"{complete:>{w}} out of {self.total} complete", complete,
                    self.total)


def _overall(n: int, total: int, rollback: bool) -> dict:
    if rollback:
        return _bar("overall progress", f"rolling back update: {n} out of {total} tasks")
    return _bar("overall progress", f"{n} out of {total} tasks")


def _task_progress(id: str, t: dict, rollback: bool) -> list[dict]:
    st = t["Status"]
    if st.get("Err"):
        return [_bar(id, _trunc_error(st["Err"]))]
    if _terminal(t["DesiredState"]) or _terminal(st["State"]):
        return []
    n = STATES[st["State"]]
    return [_bar(id, f"{st['State']:<{LONGEST_STATE}}",
                 STATES["running"] - n if rollback else n, 9)]


class ProgressError(Exception):
    pass


def service_progress(service_id: str) -> Iterator[dict]:
    """progress.ServiceProgress: JSON progress messages until the service has
    converged and stayed so for its update monitor period (5 s by default).
    Raises APIError, or ProgressError when an update or rollback paused."""
    from .client import path_quote

    c = client()
    filters = '{"_up-to-date":{"true":true},"service":{"%s":true}}' % service_id
    updater: Any = None
    converged, converged_at, monitor, rollback = False, 0.0, 5.0, False
    message: dict | None = None
    while True:
        svc = c.get_json(f"/services/{path_quote(service_id)}")
        spec = svc.get("Spec") or {}
        mon = (spec.get("UpdateConfig") or {}).get("Monitor")
        if mon:
            monitor = mon / 1e9
        if updater is None:
            mode = spec.get("Mode") or {}
            if (mode.get("Replicated") or {}).get("Replicas") is not None:
                updater = _Replicated()
            elif mode.get("Global") is not None:
                updater = _Global()
            elif mode.get("ReplicatedJob") is not None:
                updater = _ReplicatedJob(svc)
            elif mode.get("GlobalJob") is not None:
                updater = _GlobalJob(svc)
            else:
                raise ProgressError("unrecognized service mode")
        us = svc.get("UpdateStatus") or {}
        state = us.get("State")
        if state == "updating":
            rollback = False
        elif state == "completed":
            if not converged:
                return
        elif state == "paused":
            raise ProgressError(f"service update paused: {us.get('Message', '')}")
        elif state == "rollback_started":
            if not rollback and us.get("Message"):
                yield _bar("rollback", us["Message"])
            rollback = True
        elif state == "rollback_paused":
            raise ProgressError(f"service rollback paused: {us.get('Message', '')}")
        elif state == "rollback_completed":
            if not converged:
                message = {"id": "rollback", "status": us.get("Message", "")}
            rollback = True
        if converged and time.monotonic() - converged_at >= monitor:
            yield _bar("verify", "Service converged")
            if message is not None:
                yield message
            return
        tasks = c.get_json("/tasks", {"filters": filters})
        nodes = c.get_json("/nodes")
        active = {n["ID"] for n in nodes if (n.get("Status") or {}).get("State") != "down"}
        converged, msgs = updater.update(svc, tasks, active, rollback)
        yield from msgs
        if converged:
            if svc.get("JobStatus") is not None:
                yield {"status": "job complete"}
                return
            if not converged_at:
                converged_at = time.monotonic()
            wait = monitor - (time.monotonic() - converged_at)
            if wait >= 0:
                yield _bar("verify", f"Waiting {int(wait) + 1} seconds to verify that tasks "
                           "are stable...")
        else:
            if converged_at:
                yield _bar("verify", "Detected task failure")
            converged_at = 0.0
        time.sleep(0.2)


def wait_on_service(service_id: str, quiet: bool,
                    on_error: Callable[[str], None] | None = None) -> str | None:
    """Show (or, quiet, only wait for) a service converging; returns the
    error docker's CLI would report, None when it converged."""
    from .client import APIError, ConnectError
    from .progress import display

    try:
        if quiet:
            for _ in service_progress(service_id):
                pass
        else:
            display(service_progress(service_id), sys.stdout, sys.stdout.isatty())
    except KeyboardInterrupt:
        sys.stdout.write("Operation continuing in background.\n"
                         f"Use `docker service ps {service_id}` to check progress.\n")
    except APIError as e:
        return f"Error response from daemon: {e.message}"
    except (ProgressError, ConnectError) as e:
        return str(e)
    return None
