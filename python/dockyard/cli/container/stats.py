"""Commands that show what a container's processes use: stats, top."""

from __future__ import annotations

import sys
from typing import Any, List, Optional

import typer

from ..client import APIError, path_quote
from ..common import call, client, fail
from ..formatter import bytes_size

STATS_HEADERS = {"Container": "CONTAINER ID", "ID": "CONTAINER ID", "Name": "NAME",
                 "CPUPerc": "CPU %", "MemUsage": "MEM USAGE / LIMIT", "MemPerc": "MEM %",
                 "NetIO": "NET I/O", "BlockIO": "BLOCK I/O", "PIDs": "PIDS"}


def _stats_row(name: str, s: dict[str, Any], no_trunc: bool) -> dict[str, str]:
    from ...units import human_size

    cpu = s.get("cpu_stats") or {}
    pre = s.get("precpu_stats") or {}
    cpu_delta = (cpu.get("cpu_usage") or {}).get("total_usage", 0) - \
        (pre.get("cpu_usage") or {}).get("total_usage", 0)
    sys_delta = cpu.get("system_cpu_usage", 0) - pre.get("system_cpu_usage", 0)
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage")
                                           or []) or 1
    cpu_pct = cpu_delta / sys_delta * online * 100.0 if sys_delta > 0 and cpu_delta > 0 else 0.0
    mem = s.get("memory_stats") or {}
    mstats = mem.get("stats") or {}
    usage = mem.get("usage", 0)
    if "total_inactive_file" in mstats and mstats["total_inactive_file"] < usage:
        usage -= mstats["total_inactive_file"]
    elif "inactive_file" in mstats and mstats["inactive_file"] < usage:
        usage -= mstats["inactive_file"]
    limit = mem.get("limit", 0)
    mem_pct = usage / limit * 100.0 if limit else 0.0
    rx = tx = 0
    for n in (s.get("networks") or {}).values():
        rx += n.get("rx_bytes", 0)
        tx += n.get("tx_bytes", 0)
    rd = wr = 0
    for e in ((s.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []):
        op = (e.get("op") or "").lower()
        if op == "read":
            rd += e.get("value", 0)
        elif op == "write":
            wr += e.get("value", 0)
    running = bool(s.get("read")) and not s.get("read", "").startswith("0001")
    pids = (s.get("pids_stats") or {}).get("current", 0)
    return {"Container": name, "ID": s.get("id", "") if no_trunc else s.get("id", "")[:12],
            "Name": (s.get("name") or "").lstrip("/") or "--",
            "CPUPerc": f"{cpu_pct:.2f}%", "MemUsage": f"{bytes_size(usage)} / {bytes_size(limit)}",
            "MemPerc": f"{mem_pct:.2f}%",
            "NetIO": f"{human_size(rx, 3)} / {human_size(tx, 3)}",
            "BlockIO": f"{human_size(rd, 3)} / {human_size(wr, 3)}",
            "PIDs": str(pids) if running or pids else "0"}


def stats(containers: Optional[List[str]] = typer.Argument(None, metavar="[CONTAINER...]"),
          all: bool = typer.Option(False, "-a", "--all"),
          format: Optional[str] = typer.Option(None, "--format"),
          no_stream: bool = typer.Option(False, "--no-stream"),
          no_trunc: bool = typer.Option(False, "--no-trunc")) -> None:
    """Display a live stream of container(s) resource usage statistics"""
    import time

    from ..output import print_rows

    c = client()
    names = list(containers or [])
    if not names:
        items = call(lambda: c.get_json("/containers/json", {"all": all or None}))
        names = [i["Id"] if no_trunc else i["Id"][:12] for i in items]
    fmt = format if format and format != "table" else (
        "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t"
        "{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}")
    while True:
        rows = []
        for n in names:
            try:
                s = c.get_json(f"/containers/{path_quote(n)}/stats", {"stream": 0})
            except APIError as e:
                fail(f"Error response from daemon: {e.message}")
            rows.append(_stats_row(n, s, no_trunc))
        if not no_stream:
            sys.stdout.write("\033[2J\033[H")
        print_rows(fmt, rows, STATS_HEADERS)
        sys.stdout.flush()
        if no_stream:
            return
        time.sleep(0.5)


def top(container: str = typer.Argument(...),
        ps_args: Optional[List[str]] = typer.Argument(None, metavar="[ps OPTIONS]")) -> None:
    """Display the running processes of a container"""
    from ..gotemplate import tabwrite

    params = {"ps_args": " ".join(ps_args)} if ps_args else None
    res = call(lambda: client().get_json(f"/containers/{path_quote(container)}/top", params))
    lines = ["\t".join(res.get("Titles") or []) + "\n"]
    for p in res.get("Processes") or []:
        lines.append("\t".join(p) + "\n")
    sys.stdout.write(tabwrite("".join(lines), 20, 1, 3))
