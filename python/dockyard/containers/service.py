"""Container lifecycle over the execution driver (one `dockyard-shim` per
container) and the storage driver (init + read-write layers on the image).

Everything here blocks and is safe to call from worker threads; the daemon
adds the asynchronous parts (exit monitors, attach streams) around it. The
shim's files in the state directory are the truth about a running container:
`reconcile()` reads them to update the record, so a restarted daemon finds
its containers as they are.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal as signals
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import _core
from ..errors import Conflict, DockyardError, InvalidParameter, NotFound
from ..graphdriver import create_container_layers, remove_container_layers
from ..graphdriver.base import rmtree
from ..ids import generate_id
from ..imageconfig import now_rfc3339
from . import oci
from . import spec as specs
from .model import ZERO_TIME, Container, new_state, random_name

if TYPE_CHECKING:
    from ..engine import Engine

NOT_MODIFIED = "not-modified"
#: `--exec-driver` values: the built-in runtime, or runc from an OCI bundle.
EXEC_DRIVERS = ("native", "runc")


class ContainerNotFound(NotFound):
    pass


class StartError(DockyardError):
    """The container's process could not be started (Docker answers 400/500 with
    the runtime's message; the CLI maps it to 126/127/125)."""

    status = 400

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def _signal(pid: int, sig: int) -> None:
    """Signal a container's process. A missing pid (0) must never become
    kill(0, ...), which would hit the daemon's own process group."""
    if pid <= 1:
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _signal_number(sig: str | int | None, default: int = signals.SIGKILL) -> int:
    if sig in (None, ""):
        return default
    s = str(sig).upper()
    if s.isdigit():
        return int(s)
    if not s.startswith("SIG"):
        s = "SIG" + s
    try:
        return int(getattr(signals, s))
    except AttributeError:
        raise InvalidParameter(f"Invalid signal: {sig}") from None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class ContainerService:
    def __init__(self, engine: "Engine", exec_root: str | os.PathLike,
                 cgroup_parent: str = "dockyard",
                 default_ulimits: list[dict[str, Any]] | None = None,
                 exec_driver: str = "native") -> None:
        if exec_driver not in EXEC_DRIVERS:
            raise InvalidParameter(f"unknown exec driver {exec_driver!r}: use native or runc")
        if exec_driver == "runc":
            oci.require_runc()
        self.exec_driver = exec_driver
        self.engine = engine
        self.db = engine.db
        self.driver = engine.driver
        self.dir = engine.root / "containers"
        self.dir.mkdir(exist_ok=True, mode=0o710)
        self.state_root = Path(exec_root) / "containers"
        self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        for d in (self.dir, self.state_root):  # removals a crash interrupted
            for p in d.glob(".removing-*"):
                rmtree(p)
        # runc's own state (`runc --root`) for containers of the runc driver.
        self.runc_root = Path(exec_root) / "runc"
        self.cgroup_parent = cgroup_parent
        self.default_ulimits = default_ulimits or []
        self._locks: dict[str, threading.RLock] = {}
        self._locks_guard = threading.Lock()
        # Containers whose layers this process has mounted (driver refcounts
        # are per process; a restarted daemon re-takes them in `recover`).
        self._mounted: set[str] = set()
        # Exit codes of the latest containers removed, for the waiters of a
        # removal (wait?condition=removed) that learn of it after the fact.
        self.last_exit_codes: dict[str, int] = {}

    # --- records -------------------------------------------------------------
    def _emit(self, c: Container, action: str, **extra: str) -> None:
        attrs = dict(c.config.get("Labels") or {})
        attrs.update(image=c.config.get("Image") or c.image_id, name=c.name.lstrip("/"))
        attrs.update(extra)
        self.engine.events.emit("container", action, c.id, attrs)

    def lock(self, cid: str) -> threading.RLock:
        with self._locks_guard:
            return self._locks.setdefault(cid, threading.RLock())

    def _save(self, c: Container) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE containers SET name=?, config=?, hostconfig=?, state=?, "
                         "restart_count=? WHERE id=?",
                         (c.name, json.dumps(c.config), json.dumps(c.hostconfig),
                          json.dumps(c.state), c.restart_count, c.id))

    def all(self) -> list[Container]:
        return [Container.from_row(r) for r in self.db.query("SELECT * FROM containers")]

    def get(self, ref: str) -> Container:
        """By full ID, name (with or without '/'), or unique ID prefix, as Docker."""
        r = self.db.one("SELECT * FROM containers WHERE id=?", (ref,))
        if r is None:
            name = ref if ref.startswith("/") else "/" + ref
            r = self.db.one("SELECT * FROM containers WHERE name=?", (name,))
        if r is None and ref and all(ch in "0123456789abcdef" for ch in ref):
            rows = self.db.query("SELECT * FROM containers WHERE id LIKE ?", (ref + "%",))
            if len(rows) > 1:
                raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
            r = rows[0] if rows else None
        if r is None:
            raise ContainerNotFound(f"No such container: {ref}")
        return Container.from_row(r)

    def container_dir(self, cid: str) -> Path:
        return self.dir / cid

    def state_dir(self, cid: str) -> Path:
        return self.state_root / cid

    def log_path(self, cid: str) -> Path:
        return self.dir / cid / f"{cid}-json.log"

    # --- create ---------------------------------------------------------------
    def create(self, config: dict[str, Any], hostconfig: dict[str, Any] | None = None,
               name: str | None = None) -> Container:
        hostconfig = dict(hostconfig or {})
        image_name = config.get("Image") or ""
        if not image_name:
            raise InvalidParameter("config cannot be empty in order to create a container")
        img = self.engine.images.resolve(image_name)
        if name is not None and name != "":
            if not _valid_name(name):
                raise InvalidParameter(f"Invalid container name ({name}), only "
                                       "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            name = "/" + name.lstrip("/")
        cfg = _merge_image_config(config, img.config.get("config") or {})
        if not (cfg.get("Cmd") or cfg.get("Entrypoint")):
            raise InvalidParameter("No command specified")
        _validate_hostconfig(hostconfig)
        mem = int(hostconfig.get("Memory") or 0)
        if mem > 0 and not int(hostconfig.get("MemorySwap") or 0):
            # dockerd: as much swap as memory, where swap can be limited at all.
            from ..sysinfo import swap_limit_supported

            hostconfig["MemorySwap"] = 2 * mem if swap_limit_supported() else -1
        # The driver that runs it is recorded, so a daemon started later with
        # another --exec-driver still manages it.
        hostconfig["Runtime"] = self._choose_runtime(hostconfig.get("Runtime"))
        cid = generate_id()
        if not name:
            for i in range(10):
                name = "/" + random_name(i)
                if self.db.one("SELECT 1 FROM containers WHERE name=?", (name,)) is None:
                    break
        assert name
        other = self.db.one("SELECT id FROM containers WHERE name=?", (name,))
        if other is not None:
            raise Conflict(f'Conflict. The container name "{name}" is already in use by '
                           f'container "{other["id"]}". You have to remove (or rename) that '
                           "container to be able to reuse that name.")
        top = self.engine.layers.get(img.top_layer).cache_id if img.top_layer else None
        create_container_layers(self.driver, cid, top)
        cdir = self.container_dir(cid)
        try:
            cdir.mkdir(mode=0o710)
            hostname = cfg.get("Hostname") or cid[:12]
            (cdir / "hostname").write_text(hostname + "\n")
            (cdir / "hosts").write_text(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                "ff02::2\tip6-allrouters\n" + f"127.0.1.1\t{hostname}\n")
            shutil.copyfile("/etc/resolv.conf", cdir / "resolv.conf") \
                if os.path.exists("/etc/resolv.conf") else (cdir / "resolv.conf").touch()
            c = Container(cid, name, img.id, now_rfc3339(), cfg, hostconfig, new_state())
            with self.db.transaction() as conn:
                conn.execute("INSERT INTO containers VALUES (?,?,?,?,?,?,?,?)", c.row())
            self._emit(c, "create")
        except BaseException:
            remove_container_layers(self.driver, cid)
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        return c

    def _choose_runtime(self, asked: str | None) -> str:
        runtime = asked or self.exec_driver
        if runtime not in EXEC_DRIVERS:
            raise InvalidParameter(f"Unknown runtime specified {runtime}")
        if runtime == "runc":
            oci.require_runc()
        return runtime

    def cgroup_path(self, c: Container) -> str:
        """`<parent>/<id>` in every hierarchy: the container's --cgroup-parent,
        else the daemon's (cgroupfs driver, as dockerd)."""
        parent = (c.hostconfig.get("CgroupParent") or self.cgroup_parent).strip("/")
        return f"{parent}/{c.id}" if parent else c.id

    @staticmethod
    def runtime(c: Container) -> str:
        """The exec driver of container `c` (records from before drivers: native)."""
        return "runc" if c.hostconfig.get("Runtime") == "runc" else "native"

    # --- start ----------------------------------------------------------------
    def _mount(self, c: Container) -> str:
        path = self.driver.get(c.id)
        self._mounted.add(c.id)
        return path

    def _unmount(self, cid: str) -> None:
        if cid in self._mounted:
            self._mounted.discard(cid)
            try:
                self.driver.put(cid)
            except Exception:  # noqa: BLE001 - already gone is fine
                pass

    def spawn(self, c: Container, wait_start: bool) -> dict[str, Any]:
        """Start the container's shim; with `wait_start` the process waits for a
        start frame on the attach socket (attach-before-start, as `docker run`)."""
        rootfs = self._mount(c)
        try:
            spec_json = specs.build(c, rootfs, self.container_dir(c.id), self.cgroup_path(c),
                                    self.default_ulimits)
            sdir = self.state_dir(c.id)
            shutil.rmtree(sdir, ignore_errors=True)
            sdir.mkdir(parents=True, mode=0o700)
            lc = (c.hostconfig.get("LogConfig") or {}).get("Config") or {}
            spawn_shim: Any = _core.spawn_shim
            if self.runtime(c) == "runc":
                spawn_shim = functools.partial(oci.spawn_shim, runc_root=self.runc_root)
            res = spawn_shim(
                c.id, str(sdir), spec_json, str(self.log_path(c.id)), tty=c.tty,
                open_stdin=bool(c.config.get("OpenStdin")),
                log_max_size=_size(lc.get("max-size")), log_max_file=int(lc.get("max-file", 1)),
                wait_start=wait_start)
        except _core.ContainerStartError as e:
            self._unmount(c.id)
            self._start_failed(c, str(e), getattr(e, "exit_code", 128))
        except BaseException:
            self._unmount(c.id)
            raise
        return res

    def _start_failed(self, c: Container, msg: str, code: int) -> None:
        c.state.update(ExitCode=code, Error=msg, Running=False, Pid=0)
        self._save(c)
        raise StartError(f"failed to create shim task: OCI runtime create failed: {msg}: "
                         "unknown", code)

    def start(self, ref: str, release: Any = None) -> str | None:
        """Start (or, if prepared by an attach, release) the container's process.
        Returns NOT_MODIFIED when it already runs. `release(c)` may send the
        start frame over an attach connection already open (so the attached
        client is registered before the first byte of output)."""
        c = self.get(ref)
        with self.lock(c.id):
            c = self.get(c.id)
            if c.state.get("Running") and not c.state.get("Prepared"):
                return NOT_MODIFIED
            if c.state.get("Paused"):
                raise Conflict("cannot start a paused container, try unpause instead")
            started = now_rfc3339()
            if c.state.get("Prepared"):
                res = self._release_prepared(c, release)
            else:
                res = self.spawn(c, wait_start=False)
            self._mark_running(c, res, started)
            self._emit(c, "start")
        return None

    def prepare(self, ref: str) -> Container:
        """Create the process but hold it before exec (for attach before start)."""
        c = self.get(ref)
        with self.lock(c.id):
            c = self.get(c.id)
            if c.state.get("Running") or c.state.get("Prepared"):
                return c
            res = self.spawn(c, wait_start=True)
            c.state.update(Prepared=True, ShimPid=res["shim_pid"], Pid=res["pid"])
            self._save(c)
        return c

    def _release_prepared(self, c: Container, release: Any = None) -> dict[str, Any]:
        import asyncio

        from .attach import ShimConnection

        async def go() -> dict[str, Any]:
            conn = await ShimConnection.open(str(self.state_dir(c.id) / "attach.sock"), 0)
            try:
                return await conn.start()
            finally:
                conn.close()

        out = release(c) if release is not None else None
        if out is None:
            out = asyncio.run(go())
        if out.get("error"):
            self._unmount(c.id)
            c.state.pop("Prepared", None)
            self._start_failed(c, out["error"], int(out.get("exit_code", 128)))
        return {"shim_pid": c.state.get("ShimPid", 0), "pid": c.state.get("Pid", 0)}

    def _mark_running(self, c: Container, res: dict[str, Any], started: str) -> None:
        c.state.pop("Prepared", None)
        c.state.update(Status="running", Running=True, Paused=False, Restarting=False,
                       OOMKilled=False, Dead=False, Pid=int(res.get("pid", 0)),
                       ShimPid=int(res.get("shim_pid", 0)), ExitCode=0, Error="",
                       StartedAt=started, FinishedAt=ZERO_TIME)
        c.state.pop("StoppedByUser", None)
        self._save(c)

    # --- exit -----------------------------------------------------------------
    def running_pid(self, c: Container) -> int:
        return int(c.state.get("Pid") or 0) if c.state.get("Running") else 0

    def exit_info(self, cid: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.state_dir(cid) / "exit.json").read_text())
        except (OSError, ValueError):
            return None

    def shim_alive(self, c: Container) -> bool:
        return _pid_alive(int(c.state.get("ShimPid") or 0))

    def reconcile(self, cid: str) -> Container | None:
        """Bring the record in line with the shim: if the process has exited,
        record its status, unmount, and clean up. Returns the container (None
        if it was auto-removed)."""
        try:
            c = self.get(cid)
        except NotFound:
            return None
        with self.lock(cid):
            try:
                c = self.get(cid)
            except NotFound:  # auto-removed by a racing reconcile
                return None
            if not (c.state.get("Running") or c.state.get("Prepared")):
                return c
            # Liveness first: the shim writes exit.json and then exits, so once
            # it is seen gone, a missing exit.json really is missing.
            alive = self.shim_alive(c)
            info = self.exit_info(cid)
            if info is None and alive:
                return c
            info = info or {"exit_code": 255, "error": "the container's supervisor died"}
            c.state.pop("Prepared", None)
            c.state.update(Status="exited", Running=False, Paused=False, Pid=0,
                           ExitCode=int(info.get("exit_code", 255)),
                           OOMKilled=bool(info.get("oom_killed")),
                           FinishedAt=info.get("finished_at") or now_rfc3339(),
                           Error=info.get("error") or "")
            self._save(c)
            self._emit(c, "die", exitCode=str(c.state["ExitCode"]))
            self._unmount(cid)
            self.driver_cleanup_mount(cid)
            if c.hostconfig.get("AutoRemove"):
                self._remove_files(c)
                c.removed = True  # type: ignore[attr-defined]
        return c

    def driver_cleanup_mount(self, cid: str) -> None:
        """A restarted daemon does not hold the mount's refcount: unmount by path."""
        try:
            if self.driver.refcount(cid) == 0:
                self.driver._unmount_all(cid)  # noqa: SLF001 - the driver's own cleanup
        except Exception:  # noqa: BLE001
            pass

    def should_restart(self, c: Container) -> bool:
        pol = c.hostconfig.get("RestartPolicy") or {}
        name = pol.get("Name") or "no"
        if c.state.get("StoppedByUser") or name == "no" or c.hostconfig.get("AutoRemove"):
            return False
        if name in ("always", "unless-stopped"):
            return True
        if name == "on-failure":
            mx = int(pol.get("MaximumRetryCount") or 0)
            return c.state.get("ExitCode", 0) != 0 and (mx == 0 or c.restart_count < mx)
        return False

    def restart_after_exit(self, cid: str) -> bool:
        c = self.get(cid)
        if not self.should_restart(c):
            return False
        c.restart_count += 1
        self._save(c)
        try:
            self.start(cid)
        except DockyardError:
            return False
        return True

    def wait_exit(self, cid: str, timeout: float | None = None) -> Container | None:
        """Block until the container's process has exited (Python API)."""
        c = self.get(cid)
        shim = int(c.state.get("ShimPid") or 0)
        if c.state.get("Running") and shim:
            _core.wait_pid(shim, timeout)
        return self.reconcile(cid)

    # --- stop / kill ------------------------------------------------------------
    def _thaw(self, c: Container) -> None:
        """A frozen process can't act on a signal: thaw a paused container first."""
        if c.state.get("Paused"):
            from .ops import thaw_if_paused

            thaw_if_paused(self, c.id)

    def kill(self, ref: str, sig: str | int | None = None) -> None:
        c = self.get(ref)
        num = _signal_number(sig)
        self._thaw(c)
        if not c.state.get("Running"):
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if num in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            c.state["StoppedByUser"] = True
            self._save(c)
        _signal(int(c.state.get("Pid") or 0), num)
        self._emit(c, "kill", signal=str(num))

    def stop(self, ref: str, timeout: int | None = None) -> str | None:
        c = self.get(ref)
        if not c.state.get("Running"):
            return NOT_MODIFIED
        self._thaw(c)
        c = self.get(c.id)
        if not c.state.get("Running"):  # it exited meanwhile
            return NOT_MODIFIED
        c.state["StoppedByUser"] = True
        self._save(c)
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            timeout = 10 if timeout is None else int(timeout)
        sig = _signal_number(c.config.get("StopSignal") or "SIGTERM")
        pid = int(c.state.get("Pid") or 0)
        shim = int(c.state.get("ShimPid") or 0)
        _signal(pid, sig)
        exited = _core.wait_pid(shim, None if timeout < 0 else float(timeout)) if shim else True
        if not exited:
            _signal(pid, signals.SIGKILL)
            _core.wait_pid(shim, 30.0)
        self.reconcile(c.id)
        self._emit(c, "stop")
        return None

    # --- remove -------------------------------------------------------------------
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.state.get("Running") and not c.state.get("Prepared"):
            if not force:
                raise Conflict(f"You cannot remove a running container {c.id}. Stop the "
                               "container before attempting removal or force remove")
            self.kill(c.id, signals.SIGKILL)
            shim = int(c.state.get("ShimPid") or 0)
            if shim:
                _core.wait_pid(shim, 30.0)
        elif c.state.get("Prepared"):
            for pid in (int(c.state.get("Pid") or 0), int(c.state.get("ShimPid") or 0)):
                _signal(pid, signals.SIGKILL)
            if c.state.get("ShimPid"):
                _core.wait_pid(int(c.state["ShimPid"]), 30.0)
        with self.lock(c.id):
            c = self.get(c.id)
            c.state.pop("Prepared", None)
            self._remove_files(c)

    def _remove_files(self, c: Container) -> None:
        with self._locks_guard:
            self.last_exit_codes[c.id] = int(c.state.get("ExitCode") or 0)
            while len(self.last_exit_codes) > 1000:
                del self.last_exit_codes[next(iter(self.last_exit_codes))]
        self._unmount(c.id)
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM containers WHERE id=?", (c.id,))
        remove_container_layers(self.driver, c.id)
        self._emit(c, "destroy")
        # Renamed away now, deleted by the background remover.
        rmtree(self.container_dir(c.id))
        if self.runtime(c) == "runc":
            oci.delete(self.runc_root, c.id)
        rmtree(self.state_dir(c.id))
        try:
            _core.remove_cgroup(self.cgroup_path(c))
        except Exception:  # noqa: BLE001 - the shim removes it; this is a backstop
            pass

    def rename(self, ref: str, new: str) -> None:
        c = self.get(ref)
        if not _valid_name(new):
            raise InvalidParameter(f"Invalid container name ({new}), only "
                                   "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        new = "/" + new.lstrip("/")
        if new == c.name:
            raise InvalidParameter("Renaming a container with the same name as its current "
                                   "name")
        other = self.db.one("SELECT id FROM containers WHERE name=?", (new,))
        if other is not None:
            raise Conflict(f'Conflict. The container name "{new}" is already in use by '
                           f'container "{other["id"]}". You have to remove (or rename) that '
                           "container to be able to reuse that name.")
        old = c.name
        c.name = new
        self._save(c)
        self._emit(c, "rename", oldName=old)

    # --- recovery ---------------------------------------------------------------
    def recover(self) -> list[str]:
        """At daemon start: settle containers whose process ended while we were
        away; keep the running ones (their shims outlived us). Returns the IDs
        still running."""
        running = []
        for c in self.all():
            if c.state.get("Running") or c.state.get("Prepared"):
                c2 = self.reconcile(c.id)
                if c2 is not None and c2.state.get("Running"):
                    self._mounted.add(c.id)
                    try:
                        self.driver.get(c.id)  # take the refcount for the live mount
                    except Exception:  # noqa: BLE001
                        pass
                    running.append(c.id)
        return running

    def close(self) -> None:
        """At daemon exit: let the shims kept ready go, and drop the parent
        cgroup if no container is left in it."""
        _core.drop_idle_shims(str(self.state_root.parent))
        try:
            dirs = _core.cgroup_dirs(self.cgroup_parent)
        except Exception:  # noqa: BLE001
            return
        for d in dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass

    def image_users(self) -> dict[str, list[tuple[str, bool]]]:
        out: dict[str, list[tuple[str, bool]]] = {}
        for c in self.all():
            out.setdefault(c.image_id, []).append((c.id, bool(c.state.get("Running"))))
        return out

    def status_text(self, c: Container) -> str:
        from ..units import human_duration
        from ..imageconfig import parse_time

        st = c.state
        if st.get("Running"):
            up = human_duration(time.time() - parse_time(st.get("StartedAt", "")))
            if st.get("Paused"):
                return f"Up {up} (Paused)"
            if st.get("Restarting"):
                return f"Restarting ({st.get('ExitCode', 0)}) {up} ago"
            return f"Up {up}"
        if st.get("FinishedAt", ZERO_TIME) == ZERO_TIME:
            return "Created"
        ago = human_duration(time.time() - parse_time(st.get("FinishedAt", "")))
        return f"Exited ({st.get('ExitCode', 0)}) {ago} ago"


def _valid_name(name: str) -> bool:
    import re

    return bool(re.fullmatch(r"/?[a-zA-Z0-9][a-zA-Z0-9_.-]+", name))


def _size(v: str | None) -> int:
    """`--log-opt max-size=10m` style sizes (docker's RAMInBytes, binary units)."""
    if not v:
        return 0
    s = str(v).strip().lower()
    mult = 1
    for suffix, m in (("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)):
        if s.endswith(suffix) or s.endswith(suffix + "b"):
            mult = m
            s = s.rstrip("b")[:-1]
            break
    return int(float(s) * mult)


def _merge_image_config(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """Docker's merge of the image's config under the user's (daemon/create.go)."""
    cfg = dict(user)
    if not cfg.get("User") and image.get("User"):
        cfg["User"] = image["User"]
    env = list(image.get("Env") or [])
    for e in user.get("Env") or []:
        k = e.split("=", 1)[0]
        env = [x for x in env if x.split("=", 1)[0] != k] + [e]
    cfg["Env"] = env
    labels = dict(image.get("Labels") or {})
    labels.update(user.get("Labels") or {})
    cfg["Labels"] = labels
    if not user.get("Entrypoint") and not user.get("Cmd"):
        cfg["Cmd"] = image.get("Cmd")
        cfg["Entrypoint"] = image.get("Entrypoint")
    elif not user.get("Entrypoint"):
        cfg["Entrypoint"] = image.get("Entrypoint")
    if not cfg.get("WorkingDir"):
        cfg["WorkingDir"] = image.get("WorkingDir") or ""
    if not cfg.get("StopSignal") and image.get("StopSignal"):
        cfg["StopSignal"] = image["StopSignal"]
    for k in ("ExposedPorts", "Volumes"):
        merged = dict(image.get(k) or {})
        merged.update(user.get(k) or {})
        cfg[k] = merged or None
    cfg.setdefault("Hostname", "")
    cfg.setdefault("Domainname", "")
    cfg.setdefault("Tty", False)
    cfg.setdefault("OpenStdin", False)
    cfg.setdefault("StdinOnce", False)
    cfg.setdefault("AttachStdin", False)
    cfg.setdefault("AttachStdout", False)
    cfg.setdefault("AttachStderr", False)
    cfg["Image"] = user.get("Image")
    return cfg


def _validate_hostconfig(hc: dict[str, Any]) -> None:
    mem = int(hc.get("Memory") or 0)
    if mem and mem < 6 * 1024 * 1024:
        raise InvalidParameter("Minimum memory limit allowed is 6MB")
    swap = int(hc.get("MemorySwap") or 0)
    if swap > 0 and mem and swap < mem:
        raise InvalidParameter("Minimum memoryswap limit should be larger than memory limit, "
                               "see usage")
    if swap > 0 and not mem:
        raise InvalidParameter("You should always set the Memory limit when using Memoryswap "
                               "limit, see usage")
    for u in hc.get("Ulimits") or []:
        specs.parse_ulimit(u)
    pol = (hc.get("RestartPolicy") or {}).get("Name") or "no"
    if pol not in ("no", "always", "unless-stopped", "on-failure", ""):
        raise InvalidParameter(f"invalid restart policy '{pol}'")
    if hc.get("AutoRemove") and pol not in ("no", ""):
        raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
    mode = hc.get("CgroupnsMode") or ""
    if mode not in ("", "host", "private"):
        raise InvalidParameter(f"invalid cgroup namespace mode: {mode}")
    parent = hc.get("CgroupParent") or ""
    if any(p in (".", "..") for p in parent.split("/")):
        raise InvalidParameter(f"invalid cgroup parent {parent!r}")
    if hc.get("NanoCpus") and (hc.get("CpuQuota") or hc.get("CpuPeriod")):
        raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period cannot both be set")
