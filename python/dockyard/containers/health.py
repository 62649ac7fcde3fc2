"""Container health checks as dockerd runs them (daemon/health.go): the
HEALTHCHECK probe (`CMD` or `CMD-SHELL`) exec'd in the running container
every interval, each result kept in `State.Health` (status, failing streak,
the last five results), a `health_status: ...` event when the status
changes, and the exec events dockerd emits for each probe.

The state is plain functions on records: `reset` at each start and at a
daemon restart, `record` for a result. `HealthMonitor` runs the probes, one
asyncio task per running, unpaused container with a health check, through
the exec machinery (`execs.py`); nothing waits on the event loop. Only this
module writes `State.Health`, and only that key (`records.save` keeps the
row's), so a probe's result and the lifecycle's saves never undo each other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import signal
import sqlite3
import time
from datetime import datetime, timezone
from typing import Any

from ..errors import NotFound
from ..ids import generate_id
from ..imageconfig import parse_time
from ..units import format_go_duration
from .attach import EXIT, START, START_RESULT, ShimConnection
from .execs import Exec, ExecStartError, ExecStore, runtime_error
from .model import Container
from .process import send_signal
from .records import ContainerRecords

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
#: The `health` filter's value for a container without a health check.
NO_HEALTHCHECK = "none"
HEALTH_STATUSES = (STARTING, HEALTHY, UNHEALTHY, NO_HEALTHCHECK)

MAX_OUTPUT = 4096  # bytes of a probe's output kept (then "...")
MAX_LOG_ENTRIES = 5
DEFAULT_INTERVAL = 30 * 10**9  # ns, also the wait before the first probe
DEFAULT_TIMEOUT = 30 * 10**9
DEFAULT_RETRIES = 3
DEFAULT_SHELL = ["/bin/sh", "-c"]  # CMD-SHELL without a Config.Shell (Linux)
# How long a killed probe may take to go before its monitor moves on.
KILL_GRACE = 10.0

log = logging.getLogger("dockyard.health")
_MONITORED = ("json_extract(state, '$.Running') = 1 "
              "AND coalesce(json_extract(state, '$.Paused'), 0) = 0")


# --- state ---------------------------------------------------------------------------

def probe_command(config: dict[str, Any]) -> list[str] | None:
    """The probe's argv, or None when no probe runs: no Test (or an empty
    one), NONE, or a type dockerd ignores (it logs a warning)."""
    test = list((config.get("Healthcheck") or {}).get("Test") or [])
    if not test:
        return None
    if test[0] == "CMD":
        return test[1:]
    if test[0] == "CMD-SHELL":
        return list(config.get("Shell") or DEFAULT_SHELL) + test[1:]
    return None


def health_status(state: dict[str, Any]) -> str:
    """The status the `health` filter matches: "none" before the first start
    of a container with a health check, as for one without."""
    h = state.get("Health")
    if h is None:
        return NO_HEALTHCHECK
    return h.get("Status") or UNHEALTHY


def _rfc3339_nano(ns: int) -> str:
    """Go's time.Time JSON form (RFC 3339, nanoseconds, trailing zeros cut), in UTC:
    dockerd writes its local time here, which is UTC where daemons usually run."""
    secs, frac = divmod(ns, 10**9)
    base = datetime.fromtimestamp(secs, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return base + (f".{digits}" if digits else "") + "Z"


def _write(db: Any, cid: str, path_value: str, arg: str, where: str = "") -> bool:
    """Set one path of the row's State (`path_value`: "'$.x', ?" with `arg`);
    False when `where` left the row alone."""
    with db.transaction() as conn:
        cur = conn.execute(f"UPDATE containers SET state=json_set(state, {path_value}) "
                           f"WHERE id=?{where}", (arg, cid))
        return cur.rowcount > 0


def reset(svc: ContainerRecords, c: Container) -> None:
    """A start, or a daemon restart finding the container running, begins
    again from "starting" with no failures; the log is kept (initHealthMonitor)."""
    if probe_command(c.config) is None:
        return
    old = c.state.get("Health") or {}
    h = {"Status": STARTING, "FailingStreak": 0, "Log": list(old.get("Log") or [])}
    _write(svc.db, c.id, "'$.Health', json(?)", json.dumps(h))
    c.state["Health"] = h


def monitor_stopped(svc: ContainerRecords, cid: str) -> None:
    """dockerd marks the health "unhealthy" when its monitor stops (an exit,
    a pause), unless the container runs unpaused again by now."""
    _write(svc.db, cid, "'$.Health.Status', ?", UNHEALTHY,
           f" AND json_type(state, '$.Health') = 'object' AND NOT ({_MONITORED})")


def record(h: dict[str, Any], result: dict[str, Any], start_ns: int,
           healthcheck: dict[str, Any], started_at: str) -> None:
    """Add one probe's result to `h` (handleProbeResult): a success makes it
    healthy; a failure counts toward `Retries`, except while it is still
    starting within the start period."""
    h["Log"] = (list(h.get("Log") or []) + [result])[-MAX_LOG_ENTRIES:]
    status = h.get("Status") or UNHEALTHY
    if result["ExitCode"] == 0:
        h["FailingStreak"] = 0
        h["Status"] = HEALTHY
        return
    if status == STARTING:
        period = int(healthcheck.get("StartPeriod") or 0)
        if start_ns - int(parse_time(started_at) * 1e9) < period:
            return
    h["FailingStreak"] = int(h.get("FailingStreak") or 0) + 1
    retries = int(healthcheck.get("Retries") or 0)
    if h["FailingStreak"] >= (retries if retries > 0 else DEFAULT_RETRIES):
        h["Status"] = UNHEALTHY
    else:
        h["Status"] = status


# --- probes --------------------------------------------------------------------------

class _Output:
    """The probe's stdout and stderr as they come, up to MAX_OUTPUT bytes."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.truncated = False

    def write(self, data: bytes) -> None:
        keep = MAX_OUTPUT - len(self.buf)
        if keep > 0:
            self.buf += data[:keep]
        if len(data) > keep:
            self.truncated = True

    def text(self) -> str:
        return self.buf.decode("utf-8", "replace") + ("..." if self.truncated else "")


class HealthMonitor:
    """The daemon's probes: `update` starts or stops a container's monitor to
    match its state (updateHealthMonitor); `forget` drops it on removal."""

    def __init__(self, svc: ContainerRecords, execs: ExecStore) -> None:
        self.svc = svc
        self.execs = execs
        self.tasks: dict[str, asyncio.Task] = {}
        self.running: dict[str, Exec] = {}  # probes in flight, by container
        self.killed: set[str] = set()  # probes (exec IDs) to kill once spawned
        # Each probe's run, held until it ends even when its monitor has gone
        # (a killed probe still cleans up after itself).
        self.runs: set[asyncio.Future] = set()

    async def update(self, ref: str, c: Container | None = None) -> None:
        """Start or stop the container's monitor as its state asks; `c`, if
        the caller has just read the record, saves reading it again."""
        if c is None:
            try:
                c = await asyncio.to_thread(self.svc.get, ref)
            except NotFound:
                self.forget(ref)
                return
        want = (c.state.get("Running") and not c.state.get("Paused")
                and not c.state.get("Prepared") and probe_command(c.config) is not None)
        task = self.tasks.get(c.id)
        if want:
            if task is None or task.done():
                self.tasks[c.id] = asyncio.get_running_loop().create_task(
                    self._monitor(c.id))
            return
        if task is not None:
            self.forget(c.id)
            await asyncio.to_thread(monitor_stopped, self.svc, c.id)

    def forget(self, cid: str) -> None:
        task = self.tasks.pop(cid, None)
        if task is not None:
            task.cancel()

    def close(self) -> None:
        """At daemon exit: stop every monitor and kill the probes in flight."""
        for cid in list(self.tasks):
            self.forget(cid)
        for e in list(self.running.values()):
            self._kill(e)

    async def _monitor(self, cid: str) -> None:
        me = asyncio.current_task()
        try:
            while await self._next(cid):
                pass
        except NotFound:
            return
        except sqlite3.ProgrammingError:
            return  # the engine closed under us (daemon exit)
        finally:
            if self.tasks.get(cid) is me:
                del self.tasks[cid]

    async def _next(self, cid: str) -> bool:
        """Wait an interval and run the probe once; False when monitoring ends."""
        c = await asyncio.to_thread(self.svc.get, cid)
        hc = c.config.get("Healthcheck") or {}
        await asyncio.sleep(int(hc.get("Interval") or DEFAULT_INTERVAL) / 1e9)
        c = await asyncio.to_thread(self.svc.get, cid)
        cmd = probe_command(c.config)
        if not c.state.get("Running") or c.state.get("Paused") or cmd is None:
            # An exit or a pause `update` did not see (it raced this monitor's
            # start): settle it the same way.
            await asyncio.to_thread(monitor_stopped, self.svc, cid)
            return False
        start_ns = time.time_ns()
        try:
            result = await self._probe(c, cmd, int(hc.get("Timeout") or DEFAULT_TIMEOUT),
                                       start_ns)
        except (OSError, ValueError) as err:  # the probe's own trouble: the next one may do
            log.warning("health check for container %s: %s", cid, err)
            return True
        h = dict(c.state.get("Health") or {"Status": STARTING, "FailingStreak": 0, "Log": []})
        old = h.get("Status") or UNHEALTHY
        record(h, result, start_ns, hc, c.state.get("StartedAt") or "")
        # Dropped if it stopped or paused meanwhile: its record says so.
        wrote = await asyncio.to_thread(_write, self.svc.db, cid, "'$.Health', json(?)",
                                        json.dumps(h), f" AND {_MONITORED}")
        if wrote and h["Status"] != old:
            self.svc.emit(c, f"health_status: {h['Status']}")
        return True

    async def _probe(self, c: Container, cmd: list[str], timeout_ns: int,
                     start_ns: int) -> dict[str, Any]:
        """One run of the probe: its result as State.Health.Log shows it. A
        probe still running at the timeout is killed."""
        eid = generate_id()
        e = Exec(id=eid, container_id=c.id, cmd=cmd, env=[], user="", working_dir="",
                 tty=False, privileged=False, attach_stdin=False, attach_stdout=True,
                 attach_stderr=True, detach_keys="",
                 state_dir=self.svc.state_dir(c.id) / f"exec-{eid}")
        shown = f"{cmd[0] if cmd else ''} {' '.join(cmd[1:])}"  # dockerd's "entrypoint args"
        self.svc.emit(c, f"exec_create: {shown}", execID=eid)
        self.svc.emit(c, f"exec_start: {shown}", execID=eid)
        out = _Output()
        run = asyncio.ensure_future(self._run(c, e, out))
        self.runs.add(run)
        run.add_done_callback(self._settled)
        self.running[c.id] = e
        try:
            code = await asyncio.wait_for(asyncio.shield(run), timeout_ns / 1e9)
        except asyncio.TimeoutError:
            end = time.time_ns()
            self._kill(e)
            try:  # the next probe waits for this one to go, as in dockerd
                await asyncio.wait_for(asyncio.shield(run), KILL_GRACE)
            except (asyncio.TimeoutError, ExecStartError):
                pass
            return {"Start": _rfc3339_nano(start_ns), "End": _rfc3339_nano(end),
                    "ExitCode": -1,
                    "Output": f"Health check exceeded timeout ({format_go_duration(timeout_ns)})"}
        except ExecStartError as err:
            code, text = -1, str(err)
        except asyncio.CancelledError:
            if not run.done():
                self._kill(e)
            raise
        else:
            text = out.text()
        finally:
            if self.running.get(c.id) is e:
                del self.running[c.id]
        return {"Start": _rfc3339_nano(start_ns), "End": _rfc3339_nano(time.time_ns()),
                "ExitCode": code, "Output": text}

    async def _run(self, c: Container, e: Exec, out: _Output) -> int:
        """Spawn the exec, run it to its end with its output in `out`, and clean
        up after it. Returns the exit code; raises ExecStartError."""
        try:
            code = await self._exec(c, e, out)
        except ExecStartError:
            raise
        except Exception as err:  # noqa: BLE001 - the probe fails with the reason
            raise ExecStartError(str(err)) from err
        finally:
            self.killed.discard(e.id)
            await asyncio.to_thread(shutil.rmtree, e.state_dir, True)
        self.svc.emit(c, "exec_die", execID=e.id, exitCode=str(code))
        return code

    async def _exec(self, c: Container, e: Exec, out: _Output) -> int:
        await asyncio.to_thread(self.execs.spawn, e)
        if e.id in self.killed:  # timed out or stopped while it was spawned
            self._kill(e)
        conn = await ShimConnection.open(self.execs.attach_socket(e), 6)
        code = None
        try:
            await conn.send(START)
            while True:
                kind, payload = await conn.recv()
                if kind in (1, 2):
                    out.write(payload)
                elif kind == START_RESULT:
                    res = json.loads(payload or b"{}")
                    if res.get("error"):
                        raise runtime_error(res["error"])
                elif kind == EXIT:
                    info = json.loads(payload or b"{}")
                    if info.get("error"):
                        raise runtime_error(info["error"])
                    code = int(info.get("exit_code", 255))
                    break
                elif kind == -1:  # the shim is gone without a word
                    break
        finally:
            conn.close()
        if code is None:
            info = await asyncio.to_thread(self.execs.exit_info, e)
            if info is None:
                raise ExecStartError(f"healthcheck for container {c.id} has no exit code")
            if info.get("error"):
                raise runtime_error(info["error"])
            code = int(info.get("exit_code", 255))
        return code

    def _settled(self, run: asyncio.Future) -> None:
        self.runs.discard(run)
        if not run.cancelled():
            run.exception()  # retrieved: a monitor that went away doesn't read it

    def _kill(self, e: Exec) -> None:
        self.killed.add(e.id)
        if e.pid:
            send_signal(e.pid, signal.SIGKILL)
        elif e.shim_pid:
            send_signal(e.shim_pid, signal.SIGKILL)
