"""Keeping container records in line with their shims. The shim's files in
the state directory are the truth about a running container: `reconcile()`
reads them once the process has exited to record its status, unmount and
clean up (removing an AutoRemove container), so a restarted daemon finds its
containers as they are (`recover()`).

Also here: the layer mounts this process holds for running containers, and
the restart policy's decision (the restart itself is the lifecycle's).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from .. import _core
from ..errors import NotFound
from ..events import EventLog
from ..graphdriver import remove_container_layers
from ..graphdriver.base import later, rmtree
from ..imageconfig import now_rfc3339
from ..network.service import NetworkService
from ..volumes.service import VolumeService
from ..store.local import LocalStore
from . import oci
from .model import Container
from .namespaces import unmount_shm
from .process import pid_alive
from .records import ContainerRecords


class Reconciler(ContainerRecords):
    def __init__(self, store: LocalStore, events: EventLog, root: Path,
                 exec_root: str | os.PathLike, cgroup_parent: str,
                 network: NetworkService | None = None,
                 volumes: VolumeService | None = None) -> None:
        super().__init__(store, events, root, exec_root, cgroup_parent, network, volumes)
        # Containers whose layers this process has mounted (driver refcounts
        # are per process; a restarted daemon re-takes them in `recover`).
        self._mounted: set[str] = set()
        # Exit codes of the latest containers removed, for the waiters of a
        # removal (wait?condition=removed) that learn of it after the fact.
        self.last_exit_codes: dict[str, int] = {}

    # --- mounts ------------------------------------------------------------------
    def _mount(self, c: Container) -> str:
        path = self.driver.get(c.id)
        self._mounted.add(c.id)
        return path

    def _unmount(self, cid: str) -> None:
        unmount_shm(self.container_dir(cid))
        if cid in self._mounted:
            self._mounted.discard(cid)
            try:
                self.driver.put(cid)
            except Exception:  # noqa: BLE001 - already gone is fine
                pass

    def driver_cleanup_mount(self, cid: str) -> None:
        """A restarted daemon does not hold the mount's refcount: unmount by path."""
        try:
            if self.driver.refcount(cid) == 0:
                self.driver._unmount_all(cid)  # noqa: SLF001 - the driver's own cleanup
        except Exception:  # noqa: BLE001
            pass

    # --- exit -----------------------------------------------------------------
    def exit_info(self, cid: str) -> dict[str, Any] | None:
        try:
            return json.loads((self.state_dir(cid) / "exit.json").read_text())
        except (OSError, ValueError):
            return None

    def shim_alive(self, c: Container) -> bool:
        return pid_alive(int(c.state.get("ShimPid") or 0))

    def reconcile(self, cid: str, restart: bool = False) -> Container | None:
        """Bring the record in line with the shim: if the process has exited,
        record its status, unmount, and clean up. Returns the container (None
        if it was auto-removed). With `restart` (the daemon's exit monitor) a
        container its policy restarts is left restarting, as dockerd shows it
        between the exit and the restart: Running and Restarting, no Pid."""
        try:
            c = self.get(cid)
        except NotFound:
            return None
        with self.lock(cid):
            try:
                c = self.get(cid)
            except NotFound:  # auto-removed by a racing reconcile
                return None
            if not (c.state.get("Running") or c.state.get("Prepared")) \
                    or c.state.get("Restarting"):  # no process between restarts
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
            if restart and self.should_restart(c):
                self._mark_restarting(c)
            if not c.hostconfig.get("AutoRemove"):  # else its row goes below
                self.save(c, durable=False)
            self.emit(c, "die", exitCode=str(c.state["ExitCode"]))
            self._unmount(cid)
            self.driver_cleanup_mount(cid)
            if self.network:
                self.network.teardown(cid)
            self.release_volumes(c)
            if c.hostconfig.get("AutoRemove"):
                self._remove_files(c, remove_volumes=True, defer=True)
                c.removed = True  # type: ignore[attr-defined]
        return c

    @staticmethod
    def _mark_restarting(c: Container) -> None:
        c.state.update(Status="restarting", Running=True, Restarting=True, Paused=False, Pid=0)
        c.restart_count += 1

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

    def wait_exit(self, cid: str, timeout: float | None = None) -> Container | None:
        """Block until the container's process has exited (Python API)."""
        c = self.get(cid)
        shim = int(c.state.get("ShimPid") or 0)
        if c.state.get("Running") and shim:
            _core.wait_pid(shim, timeout)
        return self.reconcile(cid)

    # --- removal ------------------------------------------------------------------
    def release_volumes(self, c: Container) -> None:
        """The volumes a stopped container had mounted (option volumes unmount
        after their last user)."""
        if self.volumes is None:
            return
        for d in c.state.get("MountPoints") or []:
            if d["type"] == "volume":
                try:
                    self.volumes.release(d["source"])
                except NotFound:
                    pass

    def _remove_files(self, c: Container, remove_volumes: bool = False,
                      defer: bool = False) -> None:
        """Forget the container (its row, endpoints, volume references) and
        remove what it has on disk; with `defer` its layers and directory go
        on the background remover (an --rm exit: the waiters are answered
        first)."""
        with self._locks_guard:
            self.last_exit_codes[c.id] = int(c.state.get("ExitCode") or 0)
            while len(self.last_exit_codes) > 1000:
                del self.last_exit_codes[next(iter(self.last_exit_codes))]
        self._unmount(c.id)
        if self.network:
            self.network.teardown(c.id)
        if c.state.get("Running"):
            self.release_volumes(c)  # rm -f of a running container: no exit reconcile
        with self.db.transaction() as conn:
            if self.network:
                self.network.forget(conn, c.id)
            conn.execute("DELETE FROM containers WHERE id=?", (c.id,))
            # its links go; links to it stay, as with dockerd
            conn.execute("DELETE FROM links WHERE parent_id=?", (c.id,))
        if self.volumes:
            # rm -v and --rm take the container's anonymous volumes with it
            self.volumes.drop_refs(c.id, remove_anonymous=remove_volumes)
        self.emit(c, "destroy")
        # Its runtime state goes now (a removed container has no process,
        # state or cgroup); its layers and directory, with `defer`, after the
        # answer: a crash before leaves them to the next start's sweep.
        if self.runtime(c) == "runc":
            oci.delete(self.runc_root, c.id)
        rmtree(self.state_dir(c.id))
        try:
            _core.remove_cgroup(self.cgroup_path(c))
        except Exception:  # noqa: BLE001 - the shim removes it; this is a backstop
            pass
        if defer:
            later(lambda: self._remove_layers(c.id))
        else:
            self._remove_layers(c.id)

    def _remove_layers(self, cid: str) -> None:
        remove_container_layers(self.driver, cid)
        # Renamed away now, deleted by the background remover.
        rmtree(self.container_dir(cid))

    # --- recovery ---------------------------------------------------------------
    def recover(self) -> list[str]:
        """At daemon start: settle containers whose process ended while we were
        away; keep the running ones (their shims outlived us). Returns the IDs
        still running."""
        running = []
        for c in self.all():
            if c.state.get("Restarting"):  # its restart died with the last daemon
                c.state.update(Status="exited", Running=False, Restarting=False)
                self.save(c)
                continue
            if c.state.get("Running") or c.state.get("Prepared"):
                c2 = self.reconcile(c.id)
                if c2 is not None and c2.state.get("Running"):
                    self._mounted.add(c.id)
                    try:
                        self.driver.get(c.id)  # take the refcount for the live mount
                    except Exception:  # noqa: BLE001
                        pass
                    running.append(c.id)
        self._reap_strays(set(running))
        if self.network:
            self.network.restore(set(running))
        return running

    def check_runtime(self, repair: bool, grace: float) -> list[tuple[str, str, bool, bool]]:
        """What `system check` finds wrong with the containers' processes:
        (id, problem, repairable, repaired). A supervisor, a cgroup or a state
        directory must belong to a container recorded running (or, for state,
        to an existing container); `repair` reaps them as a restart does.
        What changed less than `grace` seconds ago may be a start or a create
        in progress and is left alone."""
        def young(path: str | Path) -> bool:
            try:
                return time.time() - os.stat(path).st_mtime < grace
            except OSError:
                return False

        known = {c.id: c for c in self.all()}
        running = {cid for cid, c in known.items()
                   if c.state.get("Running") or c.state.get("Prepared")}
        out: list[tuple[str, str, bool, bool]] = []
        strays: set[str] = set()
        for pid, cid in self._shims().items():
            if cid not in running and not young(self.state_dir(cid)):
                out.append((cid, f"a supervisor (pid {pid}) runs for a container not "
                            "recorded running", True, repair))
                strays.add(cid)
        try:
            dirs = _core.cgroup_dirs(self.cgroup_parent)
        except Exception:  # noqa: BLE001 - no parent cgroup: nothing below it
            dirs = []
        for d in dirs:
            try:
                names = os.listdir(d)
            except OSError:
                continue
            for name in names:
                # Only this daemon's: another daemon on the host may share the
                # parent cgroup, and its containers are none of ours.
                ours = name in known or (self.state_root / name).is_dir()
                if ours and name not in running and name not in strays and \
                        os.path.isdir(os.path.join(d, name)) and not young(os.path.join(d, name)):
                    out.append((name, f"cgroup {os.path.join(d, name)} of a container "
                                "that isn't running", True, repair))
                    strays.add(name)
        if self.state_root.is_dir():
            for e in self.state_root.iterdir():
                if not e.name.startswith(".") and e.name not in known and \
                        e.name not in strays and not young(e):
                    out.append((e.name, "state directory of a container that doesn't exist",
                                True, repair))
                    strays.add(e.name)
        if repair and strays:
            self._reap(strays, known)
        return out

    def _shims(self) -> dict[int, str]:
        """Live shims of this exec root (pid -> container ID): their argv names
        `--state-dir <exec-root>/containers/<id>[/exec-...]`."""
        prefix = str(self.state_root) + "/"
        out: dict[int, str] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if not argv or not argv[0].endswith(b"dockyard-shim") or b"--state-dir" not in argv:
                continue
            i = argv.index(b"--state-dir")
            d = argv[i + 1].decode(errors="replace") if i + 1 < len(argv) else ""
            if d.startswith(prefix):
                out[int(entry)] = d[len(prefix):].split("/", 1)[0]
        return out

    def _reap_strays(self, running: set[str]) -> None:
        """What a daemon killed mid-start (or mid-create) left behind: shims and
        container processes of containers not recorded as running (a start
        cut short leaves the record `created`; a create cut short, none at
        all). They are killed, their cgroups (thawed first) and mounts
        removed, and a record-less container's state directory with them;
        the records stay as they were, so `docker start` starts afresh."""
        shims = self._shims()
        strays = {cid for cid in shims.values() if cid not in running}
        known = {c.id: c for c in self.all()}
        for d in self.state_root.iterdir():
            if d.name in running or d.name.startswith("."):
                continue
            if d.name not in known:
                strays.add(d.name)
        # A start makes the cgroup while it prepares the rest, before any
        # shim runs (`ContainerService.spawn`): one cut short leaves it.
        strays |= {cid for cid, c in known.items()
                   if cid not in running and cid not in strays and self._cgroup_left(cid, c)}
        self._reap(strays, known, shims)

    def _cgroup_left(self, cid: str, c: Container) -> bool:
        try:
            return any(os.path.isdir(d) for d in _core.cgroup_dirs(self.cgroup_path_of(cid, c)))
        except Exception:  # noqa: BLE001 - no cgroup hierarchy: nothing left
            return False

    def _reap(self, strays: set[str], known: dict[str, Container],
              shims: dict[int, str] | None = None) -> None:
        """Kill the shims and processes of `strays`, remove their cgroups and
        mounts, and the state of those that have no record."""
        for pid, cid in (self._shims() if shims is None else shims).items():
            if cid in strays:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for cid in strays:
            c = known.get(cid)
            path = self.cgroup_path_of(cid, c)
            try:
                for d in _core.cgroup_dirs(path):
                    state = os.path.join(d, "freezer.state")
                    if os.path.exists(state):  # a frozen task can't die of SIGKILL
                        with open(state, "w") as f:
                            f.write("THAWED")
                    freeze = os.path.join(d, "cgroup.freeze")
                    if os.path.exists(freeze):
                        with open(freeze, "w") as f:
                            f.write("0")
                _core.remove_cgroup(path)
            except Exception:  # noqa: BLE001 - no cgroup left: nothing to kill
                pass
            self.driver_cleanup_mount(cid)
            if c is None:
                shutil.rmtree(self.state_dir(cid), ignore_errors=True)
            else:
                for name in ("pid", "shim.pid", "exit.json", "attach.sock"):
                    try:
                        (self.state_dir(cid) / name).unlink()
                    except OSError:
                        pass
