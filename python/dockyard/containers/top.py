"""`docker top`: `ps` run on the host, its output narrowed to the processes
in the container's cgroup."""

from __future__ import annotations

import subprocess
from typing import Any

from ..errors import Conflict, DockyardError
from .cgroups import cgroup_pids
from .records import ContainerRecords


def top(svc: ContainerRecords, ref: str, ps_args: str | None) -> dict[str, Any]:
    c = svc.get(ref)
    if not c.state.get("Running") or c.state.get("Prepared"):
        raise Conflict(f"Container {c.id} is not running")
    if c.state.get("Restarting"):
        raise Conflict(f"Container {c.id} is restarting, wait until the container is running")
    ps_args = ps_args or "-ef"
    args = [a for a in ps_args.split(" ") if a != ""]
    pids = cgroup_pids(svc, c.id)
    r = None
    if pids:
        r = subprocess.run(["ps", *args, "-q", ",".join(str(p) for p in pids)],
                           capture_output=True)
    if r is None or r.returncode != 0:
        # some options (f) cannot be combined with -q: filter the whole list
        r = subprocess.run(["ps", *args], capture_output=True)
        if r.returncode != 0:
            raise DockyardError(f"Error running ps: {r.stderr.decode(errors='replace')}"
                                f"{r.stdout.decode(errors='replace')}: exit status "
                                f"{r.returncode}")
    return parse_ps(r.stdout.decode(errors="replace"), set(pids))


def parse_ps(out: str, pids: set[int]) -> dict[str, Any]:
    lines = out.split("\n")
    titles = lines[0].split()
    try:
        pid_index = titles.index("PID")
    except ValueError:
        raise DockyardError("Couldn't find PID field in ps output") from None
    procs: list[list[str]] = []
    n = len(titles)
    for line in lines[1:]:
        if not line:
            continue
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        try:
            p = int(fields[pid_index])
        except ValueError:
            raise DockyardError(f"Unexpected pid '{fields[pid_index]}'") from None
        if p in pids:
            procs.append(fields[:n - 1] + [" ".join(fields[n - 1:])])
    return {"Titles": titles, "Processes": procs}
