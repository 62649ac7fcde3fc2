"""`service logs`: a service's or a task's logs, each line prefixed with
its task (name.slot.id@node) unless --raw."""

from __future__ import annotations

import sys
from typing import Any

from ..common import client
from ..pflags import Command, Parsed
from .api import Failure

LOGS = Command("service logs", "logs [OPTIONS] SERVICE|TASK",
               "Fetch the logs of a service or task", [
                   (("--no-resolve",), "no_resolve", "b", "Do not map IDs to Names in output"),
                   (("--no-trunc",), "no_trunc", "b", "Do not truncate output"),
                   (("--raw",), "raw", "b", "Do not neatly format logs"),
                   (("--no-task-ids",), "no_task_ids", "b", "Do not include task IDs in output"),
                   (("-f", "--follow"), "follow", "b", "Follow log output"),
                   (("--since",), "since", "s", "Show logs since timestamp or relative"),
                   (("-t", "--timestamps"), "timestamps", "b", "Show timestamps"),
                   (("--details",), "details", "b", "Show extra details provided to logs"),
                   (("-n", "--tail"), "tail", "s",
                    "Number of lines to show from the end of the logs")], ("exact", 1))


def logs(p: Parsed) -> None:
    from ..client import APIError, path_quote
    from ..opts import time_param

    target = p.args[0]
    padding, task_target = 1, False
    try:
        svc = client().get_json(f"/services/{path_quote(target)}")
        tty = ((svc["Spec"]["TaskTemplate"].get("ContainerSpec") or {}).get("TTY", False))
        replicas = ((svc["Spec"].get("Mode") or {}).get("Replicated") or {}).get("Replicas")
        if replicas is not None:
            padding = len(str(replicas))
    except APIError as e:
        if e.status != 404:
            raise
        try:
            task = client().get_json(f"/tasks/{path_quote(target)}")
        except APIError as e2:
            if e2.status == 404:
                raise Failure(f"no such task or service: {target}") from None
            raise
        tty = ((task.get("Spec") or {}).get("ContainerSpec") or {}).get("TTY", False)
        padding = len(str(task.get("Slot", 0)))
        task_target = True
    if tty and not p["raw"]:
        raise Failure("tty service logs only supported with --raw")
    params = {"stdout": "1", "stderr": "1", "since": time_param(p["since"]),
              "timestamps": "1" if p["timestamps"] else None,
              "details": "1" if p["details"] or not p["raw"] else None,
              "follow": "1" if p["follow"] else None, "tail": p["tail"] or "all"}
    kind = "tasks" if task_target else "services"
    r = client().request("GET", f"/{kind}/{path_quote(target)}/logs", params)
    try:
        _copy_logs(r, tty, p, padding)
    finally:
        r.close()


def _copy_logs(r: Any, tty: bool, p: Parsed, padding: int) -> None:
    from ..streams import copy_output

    if tty or p["raw"]:
        copy_output(r.read_chunk, tty)
        return
    from ..swarmlist import IDResolver

    resolver = IDResolver(p["no_resolve"])
    cache: dict[tuple[str, str, str], str] = {}

    def prefix(node: str, service: str, task_id: str) -> str:
        key = (node, service, task_id)
        if key not in cache:
            from ..client import path_quote

            task = client().get_json(f"/tasks/{path_quote(task_id)}")
            name = f"{resolver.resolve('service', service)}.{task.get('Slot', 0)}"
            if not p["no_task_ids"]:
                name += "." + (task["ID"] if p["no_trunc"] else task["ID"][:12])
            pad = " " * max(padding - len(str(task.get("Slot", 0))), 0)
            cache[key] = f"{name}@{resolver.resolve('node', node)}{pad}"
        return cache[key]

    class Writer:
        def __init__(self, out: Any) -> None:
            self.out = out

        def write(self, buf: bytes) -> None:
            from urllib.parse import unquote_plus

            n = 3 if p["timestamps"] else 2
            parts = buf.split(b" ", n - 1)
            if len(parts) != n:
                raise Failure(f"invalid context in log message: {buf.decode(errors='replace')}")
            di = 1 if p["timestamps"] else 0
            details = {}
            for pair in parts[di].decode().split(","):
                if not pair:
                    continue
                k, _, v = pair.partition("=")
                details[unquote_plus(k)] = unquote_plus(v)
            node = details.pop("com.docker.swarm.node.id", "")
            service = details.pop("com.docker.swarm.service.id", "")
            task = details.pop("com.docker.swarm.task.id", "")
            out = parts[0] + b" " if p["timestamps"] else b""
            out += (prefix(node, service, task) + "    | ").encode()
            if p["details"]:
                out += ",".join(sorted(f"{k}={v}" for k, v in details.items())).encode() + b" "
            self.out.write(out + parts[di + 1])
            self.out.flush()

        def flush(self) -> None:
            self.out.flush()

    copy_output(r.read_chunk, False, Writer(sys.stdout.buffer), Writer(sys.stderr.buffer))
