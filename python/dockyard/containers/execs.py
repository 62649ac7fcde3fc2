"""Exec instances (`docker exec`): records kept in the daemon's memory, as
dockerd keeps them, and the runtime spec of an exec'd process.

An exec runs under its own `dockyard-shim exec` in the running container's
namespaces and cgroup; its state dir is `<exec-root>/containers/<cid>/exec-<id>/`
(removed with the container's state dir). The spec starts from the one the
container's shim was started with (`spec.json` in the container's state dir)
with the exec's args, env, cwd, user and terminal.
"""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _core
from ..errors import Conflict, InvalidParameter, NotFound
from ..ids import generate_id
from . import spec as specs
from .attach import ShimConnection
from .process import pid_alive
from .reconcile import Reconciler

# dockerd 20.10 reports every failed exec start with this code (the CLI exits with it).
EXEC_FAILED_CODE = 126


class ExecNotFound(NotFound):
    pass


class ExecStartError(Exception):
    """The exec'd process could not be started: `message` is what dockerd
    writes into the stream, `exit_code` the exec's ExitCode."""

    def __init__(self, message: str, exit_code: int = EXEC_FAILED_CODE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def runtime_error(msg: str) -> ExecStartError:
    return ExecStartError(f"OCI runtime exec failed: exec failed: unable to start container "
                          f"process: {msg}: unknown")


@dataclass
class Exec:
    id: str
    container_id: str
    cmd: list[str]
    env: list[str]
    user: str
    working_dir: str
    tty: bool
    privileged: bool
    attach_stdin: bool
    attach_stdout: bool
    attach_stderr: bool
    detach_keys: str
    link_env: list[str] = field(default_factory=list)  # its container's links, at create
    running: bool = False
    started: bool = False  # start was called (an exec starts once)
    exit_code: int | None = None
    pid: int = 0
    shim_pid: int = 0
    state_dir: Path = field(default_factory=Path)

    def inspect(self) -> dict[str, Any]:
        pc: dict[str, Any] = {"tty": self.tty, "entrypoint": self.cmd[0] if self.cmd else "",
                              "arguments": self.cmd[1:], "privileged": self.privileged}
        if self.user:
            pc["user"] = self.user
        return {"ID": self.id, "Running": self.running, "ExitCode": self.exit_code,
                "ProcessConfig": pc, "OpenStdin": self.attach_stdin,
                "OpenStderr": self.attach_stderr, "OpenStdout": self.attach_stdout,
                "CanRemove": False, "ContainerID": self.container_id,
                "DetachKeys": self.detach_keys, "Pid": self.pid}


def _set_env(env: list[str], entry: str) -> list[str]:
    k = entry.split("=", 1)[0]
    return [e for e in env if e.split("=", 1)[0] != k] + [entry]


class ExecStore:
    def __init__(self, svc: Reconciler) -> None:
        self.svc = svc
        self.execs: dict[str, Exec] = {}
        self._lock = threading.Lock()

    # --- records ----------------------------------------------------------------
    def create(self, ref: str, body: dict[str, Any]) -> Exec:
        c = self.svc.get(ref)
        c = self.svc.reconcile(c.id) or c
        if not c.state.get("Running") or c.state.get("Prepared"):
            raise Conflict(f"Container {c.id} is not running")
        if c.state.get("Paused"):
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if c.state.get("Restarting"):
            raise Conflict(f"Container {c.id} is restarting, wait until the container is "
                           "running")
        cmd = body.get("Cmd")
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidParameter("No exec command specified")
        env = body.get("Env") or []
        if not isinstance(env, list) or not all(isinstance(x, str) for x in env):
            raise InvalidParameter("Env must be a list of strings")
        keys = body.get("DetachKeys") or ""
        # dockerd builds the links' variables now: a stopped target fails the create
        links = [e for _, _, env in self.svc.linked(c) for e in env]
        eid = generate_id()
        e = Exec(id=eid, container_id=c.id, cmd=[str(a) for a in cmd], env=list(env),
                 user=str(body.get("User") or ""), working_dir=str(body.get("WorkingDir") or ""),
                 tty=bool(body.get("Tty")), privileged=bool(body.get("Privileged")),
                 attach_stdin=bool(body.get("AttachStdin")),
                 attach_stdout=bool(body.get("AttachStdout")),
                 attach_stderr=bool(body.get("AttachStderr")), detach_keys=str(keys),
                 link_env=links, state_dir=self.svc.state_dir(c.id) / f"exec-{eid}")
        with self._lock:
            self.execs[eid] = e
            finished = {v.container_id for v in self.execs.values() if not v.running}
        for cid in finished - {c.id}:  # drop the records of removed containers
            try:
                self.svc.get(cid)
            except NotFound:
                self.forget_container(cid)
        return e

    def get(self, eid: str) -> Exec:
        with self._lock:
            e = self.execs.get(eid)
        if e is None:
            raise ExecNotFound(f"No such exec instance: {eid}")
        try:
            self.svc.get(e.container_id)
        except NotFound:
            # dockerd drops a container's execs with the container
            self.forget_container(e.container_id)
            raise ExecNotFound(f"No such exec instance: {eid}") from None
        self.reconcile(e)
        return e

    def reconcile(self, e: Exec) -> None:
        """A running exec whose shim has finished gets its exit code."""
        if not e.running:
            return
        info = self.exit_info(e)
        if info is None and pid_alive(e.shim_pid):
            return
        self.finish(e, info or {"exit_code": 255})

    def exit_info(self, e: Exec) -> dict[str, Any] | None:
        try:
            return json.loads((e.state_dir / "exit.json").read_text())
        except (OSError, ValueError):
            return None

    def finish(self, e: Exec, info: dict[str, Any]) -> None:
        if not e.running and e.exit_code is not None:
            return
        e.running = False
        e.exit_code = int(info.get("exit_code", 255))
        if info.get("error"):
            e.exit_code = EXEC_FAILED_CODE

    def failed(self, e: Exec, code: int = EXEC_FAILED_CODE) -> None:
        e.running = False
        e.pid = 0
        e.exit_code = code

    def begin(self, eid: str) -> Exec:
        """Claim exec `eid` for a start (once); the container must be running."""
        e = self.get(eid)
        with self._lock:
            if e.exit_code is not None:
                raise Conflict(f"Error: Exec command {e.id} has already run")
            if e.running or e.started:
                raise Conflict(f"Error: Exec command {e.id} is already running")
            c = self.svc.get(e.container_id)
            if not c.state.get("Running") or c.state.get("Prepared"):
                raise Conflict(f"Container {c.id} is not running")
            if c.state.get("Paused"):
                raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
            e.started = True
        return e

    # --- runtime ------------------------------------------------------------------
    def build_spec(self, e: Exec) -> str:
        c = self.svc.get(e.container_id)
        try:
            base = json.loads((self.svc.state_dir(c.id) / "spec.json").read_text())
        except (OSError, ValueError) as err:
            raise runtime_error(f"container spec unreadable: {err}") from None
        cenv = list(c.config.get("Env") or [])
        ckeys = {x.split("=", 1)[0] for x in cenv}
        ekeys = {x.split("=", 1)[0] for x in e.env}
        # The container's process env minus what depends on its tty and user
        # and its links' variables as they were at its start: they are the
        # links' of now.
        env = [x for x in base.get("env") or []
               if x.split("=", 1)[0] in ckeys or x.split("=", 1)[0] in ("PATH", "HOSTNAME")]
        env += [x for x in e.link_env if x.split("=", 1)[0] not in ckeys]
        if e.tty and "TERM" not in ckeys:
            env = _set_env(env, "TERM=xterm")
        for x in e.env:
            env = _set_env(env, x)
        user = e.user or c.config.get("User") or ""
        rootfs = self.svc.driver.get(c.id)
        try:
            try:
                uid, gid, extra, home = specs.resolve_user(rootfs, user)
                gids = specs.supplementary_gids(rootfs, gid, extra, c.hostconfig.get("GroupAdd"))
            except InvalidParameter as err:
                raise ExecStartError(str(err)) from None  # dockerd: no runtime prefix
        finally:
            try:
                self.svc.driver.put(c.id)
            except Exception:  # noqa: BLE001 - the container still holds its mount
                pass
        if "HOME" not in ckeys and "HOME" not in ekeys:
            env = _set_env(env, f"HOME={home}")
        base["args"] = list(e.cmd)
        base["env"] = env
        base["cwd"] = e.working_dir or c.config.get("WorkingDir") or base.get("cwd") or "/"
        base["terminal"] = e.tty
        base.pop("console_size", None)
        base["user"] = {"uid": uid, "gid": gid, "additional_gids": gids, "umask": None}
        if e.privileged:
            caps = specs.all_grantable()
            base["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                                    "inheritable": [], "ambient": []}
        return json.dumps(base)

    def spawn(self, e: Exec) -> dict[str, Any]:
        """Start the exec's shim, parked before execve until a start frame on its
        attach socket. Raises ExecStartError."""
        c = self.svc.get(e.container_id)
        pid = self.svc.running_pid(c)
        if not pid:
            raise ExecStartError(f"Container {c.id} is not running", 1)
        spec_json = self.build_spec(e)
        try:
            e.state_dir.mkdir(mode=0o700, exist_ok=True)  # not a removed container's
            res = _core.spawn_shim(e.id, str(e.state_dir), spec_json, tty=e.tty,
                                   open_stdin=e.attach_stdin, wait_start=True, exec_pid=pid)
        except _core.ContainerStartError as err:
            raise runtime_error(str(err)) from None
        e.pid = int(res.get("pid") or 0)
        e.shim_pid = int(res.get("shim_pid") or 0)
        e.running = True
        return res

    def attach_socket(self, e: Exec) -> str:
        return str(e.state_dir / "attach.sock")

    def forget_container(self, cid: str) -> None:
        with self._lock:
            for k in [k for k, v in self.execs.items() if v.container_id == cid]:
                del self.execs[k]


async def spawn_and_connect(st: ExecStore, e: Exec, mask: int) -> ShimConnection:
    """The exec's shim, parked before execve, and a connection to it with the
    streams of `mask` (1 stdin, 2 stdout, 4 stderr); the caller sends the
    start. Raises ExecStartError, the exec then marked failed."""
    try:
        await asyncio.to_thread(st.spawn, e)
    except ExecStartError:
        st.failed(e)
        raise
    except Exception as err:  # noqa: BLE001
        st.failed(e)
        raise ExecStartError(str(err)) from err
    try:
        return await ShimConnection.open(st.attach_socket(e), mask)
    except OSError as err:
        await asyncio.to_thread(st.reconcile, e)
        if e.running:
            st.failed(e)
        raise ExecStartError(f"exec attach failed: {err}") from err
