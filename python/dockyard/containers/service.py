"""The container lifecycle over the execution driver (one `dockyard-shim` per
container) and the storage driver (init + read-write layers on the image):
create, start (or prepare, for attach before start), kill, stop, remove,
rename, and the restart after an exit that the policy asks for.

Everything here blocks and is safe to call from worker threads; the daemon
adds the asynchronous parts (exit monitors, attach streams) around it. The
records are `records.py`'s, kept in line with the shims by `reconcile.py`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import signal as signals
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _core
from ..errors import Conflict, DockyardError, InvalidParameter, NetworkSetupError, NotFound
from ..events import EventLog
from ..graphdriver import create_container_layers, remove_container_layers
from ..graphdriver.initlayer import init_id
from ..graphdriver.base import sync_filesystems
from ..idmap import IDMap
from ..ids import generate_id
from ..imageconfig import now_rfc3339, parse_time
from ..network import etcfiles
from ..network.service import NetworkService
from ..rootless import discard_limits
from ..volumes.service import VolumeService
from ..store.images import Image
from ..store.local import LocalStore
from ..sysinfo import swap_limit_supported
from . import attach, health, logdrivers, mountpoints, namespaces, oci
from . import spec as specs
from .config import (check_userns, merge_image_config, valid_name, validate_config,
                     validate_healthcheck, validate_hostconfig)
from .links import parse_link
from .model import ZERO_TIME, Container, new_state, random_name
from .pause import thaw_if_paused
from .process import StartError, send_signal, signal_number
from .update import verify_create
from .reconcile import Reconciler

log = logging.getLogger(__name__)

NOT_MODIFIED = "not-modified"
#: dockerd's restart backoff: the first delay, doubled at each restart up to the last.
RESTART_FIRST_DELAY = 0.1
RESTART_MAX_DELAY = 60.0
#: The highest signal number Linux has (SIGRTMAX).
SIGRTMAX = 64
HOST_LINKS = ("conflicting options: host type networking can't be used with links. This "
              "would result in undefined behavior")
#: `--exec-driver` values: the built-in runtime, or runc from an OCI bundle.
EXEC_DRIVERS = ("native", "runc")

__all__ = ["EXEC_DRIVERS", "NOT_MODIFIED", "ContainerService", "StartError"]


@dataclass
class CgroupAhead:
    """A container's spec devices and cgroup (`spec.devices_and_cgroup`),
    the cgroup being made meanwhile (`_core.make_cgroup`)."""
    devices: list[dict[str, Any]]
    cgroup: dict[str, Any] | None
    making: _core.Job | None

    @property
    def path(self) -> str:
        return self.cgroup["path"] if self.cgroup else ""


class ContainerService(Reconciler):
    def __init__(self, store: LocalStore, events: EventLog, root: str | os.PathLike,
                 exec_root: str | os.PathLike, cgroup_parent: str = "dockyard",
                 default_ulimits: list[dict[str, Any]] | None = None,
                 exec_driver: str = "native", network: NetworkService | None = None,
                 volumes: VolumeService | None = None,
                 log_config: dict[str, Any] | None = None,
                 idmap: IDMap | None = None) -> None:
        if exec_driver not in EXEC_DRIVERS:
            raise InvalidParameter(f"unknown exec driver {exec_driver!r}: use native or runc")
        if exec_driver == "runc":
            oci.require_runc()
        self.exec_driver = exec_driver
        super().__init__(store, events, Path(root), exec_root, cgroup_parent, network, volumes)
        self.default_ulimits = default_ulimits or []
        #: --userns-remap: containers run in a user namespace with these maps
        #: (unless --userns=host), their files owned by its root on the host.
        self.idmap = idmap
        if idmap is not None:
            os.chown(self.dir, -1, idmap.root[1])
        #: The daemon's --log-driver/--log-opt, filled into each new container.
        self.log_config = log_config or logdrivers.DEFAULT
        # The restart policy's current delay per container (dockerd's restart manager).
        self._restart_delays: dict[str, float] = {}
        self._repair_layers()

    # --- create ---------------------------------------------------------------
    def create(self, config: dict[str, Any], hostconfig: dict[str, Any] | None = None,
               name: str | None = None, networking: dict[str, Any] | None = None,
               prepare: Callable[[Path], None] | None = None,
               record: Callable[[sqlite3.Connection, Container], None] | None = None,
               durable: bool = True, reserved: str | None = None,
               image: Image | None = None) -> Container:
        """A new container; `c.warnings` holds dockerd's warnings for the client.
        A caller's own additions (the CRI's): `prepare(dir)` puts the /etc
        files into the container's directory instead of the defaults (its
        pod's), `record(conn, c)` adds rows to the transaction recording it
        (one commit), `durable=False` leaves that commit unsynced (for
        what a power cut makes moot anyway: a pod container), and `reserved`
        is an ID whose layers `reserve_container_layers` made ahead; `image`
        the image `config["Image"]` names, when the caller looked it up already."""
        hostconfig = dict(hostconfig or {})
        image_name = config.get("Image") or ""
        if not image_name:
            raise InvalidParameter("config cannot be empty in order to create a container")
        validate_healthcheck(config.get("Healthcheck"))
        img = image or self.store.images.resolve(image_name)
        if name is not None and name != "":
            if not valid_name(name):
                raise InvalidParameter(f"Invalid container name ({name}), only "
                                       "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            name = "/" + name.lstrip("/")
        cfg = merge_image_config(config, img.config.get("config") or {})
        if not (cfg.get("Cmd") or cfg.get("Entrypoint")):
            raise InvalidParameter("No command specified")
        validate_config(cfg)
        validate_hostconfig(hostconfig)
        # rootless-limits: warn: what can't be applied goes, with dockerd's warnings
        res_warnings = discard_limits(hostconfig)
        res_warnings += verify_create(hostconfig, self.driver.name)
        namespaces.check_create(hostconfig, cfg, self.get)
        if self.idmap is not None:
            check_userns(hostconfig)
        hostconfig["LogConfig"] = logdrivers.resolve(hostconfig.get("LogConfig"),
                                                     self.log_config)
        mem = int(hostconfig.get("Memory") or 0)
        if mem > 0 and not int(hostconfig.get("MemorySwap") or 0):
            # dockerd: as much swap as memory, where swap can be limited at all.
            hostconfig["MemorySwap"] = 2 * mem if swap_limit_supported() else -1
        # The driver that runs it is recorded, so a daemon started later with
        # another --exec-driver still manages it.
        hostconfig["Runtime"] = self._choose_runtime(hostconfig.get("Runtime"))
        if reserved is not None and not (self.driver.exists(reserved)
                                         and self.driver.exists(init_id(reserved))):
            reserved = None  # gone meanwhile (a `system check --repair`): made anew
        cid = reserved or generate_id()
        generated = not name
        if not name:
            for i in range(10):
                name = "/" + random_name(i)
                if self.db.one("SELECT 1 FROM containers WHERE name=?", (name,)) is None:
                    break
        assert name
        self._name_free(name)
        top = self.store.layers.get(img.top_layer).cache_id if img.top_layer else None
        create_container_layers(self.driver, cid, top, reserved=reserved is not None)
        cdir = self.container_dir(cid)
        try:
            cdir.mkdir(mode=0o710)
            if prepare is not None:
                prepare(cdir)
            else:
                self._write_etc_files(cid, cfg, hostconfig)
            if self.idmap is not None:
                os.chown(cdir, -1, self.idmap.root[1])
            c = Container(cid, name, img.id, now_rfc3339(), cfg, hostconfig, new_state())
            # what the network keeps of it goes in the same commit (one sync)
            keep: list[Callable[[sqlite3.Connection], Any]] = []
            warnings = self._check_network(c, networking, keep)
            self._register_mounts(c)
            self._register_links(c)
            if self.driver.sync_container_layers:
                # Its layers and files reach the disk before the row that names
                # them; overlay's few empty directories are made again instead
                # if a power cut takes them (`_repair_layers`): a syncfs costs
                # 1-5 ms on a busy disk.
                sync_filesystems(self.driver.home, cdir)
            for attempt in range(1, 11):
                try:
                    with self.db.transaction(durable) as conn:
                        conn.execute("INSERT INTO containers VALUES (?,?,?,?,?,?,?,?)", c.row())
                        for k in keep:
                            k(conn)
                        if record is not None:
                            record(conn, c)
                    break
                except sqlite3.IntegrityError:
                    # Another create took the name meanwhile: a generated
                    # name is drawn again, a given one is dockerd's conflict.
                    if not generated or attempt == 10:
                        self._name_free(c.name)  # dockerd's conflict, if that was it
                        raise
                    c.name = "/" + random_name(attempt)
            c.warnings = res_warnings + (warnings or [])  # type: ignore[attr-defined]
            self.emit(c, "create")
        except BaseException:
            self.links.drop_parent(cid)
            if self.network:
                self.network.container_removed(cid)
            if self.volumes:
                self.volumes.drop_refs(cid, remove_anonymous=True)
            remove_container_layers(self.driver, cid)
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        return c

    def _write_etc_files(self, cid: str, cfg: dict[str, Any], hostconfig: dict[str, Any]
                         ) -> None:
        cdir = self.container_dir(cid)
        if self.network is not None:
            self.network.write_etc_files(cid, cfg, hostconfig, cdir)
            return
        # the Python API without networking: the start writes none
        hostname = cfg.get("Hostname") or cid[:12]
        etcfiles.write(cdir / "hostname", hostname + "\n")
        etcfiles.write(cdir / "hosts", etcfiles.hosts([], [(hostname, "127.0.1.1")]))
        etcfiles.write(cdir / "resolv.conf", etcfiles.host_resolv())

    def _repair_layers(self) -> None:
        """At start: container layers no row names (a crash between a
        removal's record and its files, or in a create) go. A container whose
        row a power cut kept but whose layers (not synced at create, on
        overlay) or directory it took gets them again, empty, as create made
        them; what it wrote into them was not synced either."""
        rows = self.db.query("SELECT id, image_id, config, hostconfig FROM containers")
        known = {r["id"] for r in rows}
        for lid in self.driver.read_write_ids():
            if not lid.endswith("-init") and lid not in known:
                remove_container_layers(self.driver, lid)
        if self.driver.sync_container_layers:
            return
        intact = self.driver.layer_intact
        for r in rows:
            cid = r["id"]
            cdir = self.container_dir(cid)
            if intact(cid, True) and intact(init_id(cid), None) and cdir.is_dir():
                continue
            log.warning("container %s: its layers or directory were lost (a power cut after "
                        "its create?): made again, empty", cid[:12])
            remove_container_layers(self.driver, cid)
            try:
                img = self.store.images.get(r["image_id"])
                top = self.store.layers.get(img.top_layer).cache_id if img.top_layer else None
            except NotFound:
                log.warning("container %s: its image %s is gone", cid[:12], r["image_id"])
                continue
            create_container_layers(self.driver, cid, top)
            cdir.mkdir(mode=0o710, exist_ok=True)
            if self.idmap is not None:
                os.chown(cdir, -1, self.idmap.root[1])
            self._write_etc_files(cid, json.loads(r["config"]), json.loads(r["hostconfig"]))

    def _name_free(self, name: str) -> None:
        other = self.db.one("SELECT id FROM containers WHERE name=?", (name,))
        if other is not None:
            raise Conflict(f'Conflict. The container name "{name}" is already in use by '
                           f'container "{other["id"]}". You have to remove (or rename) that '
                           "container to be able to reuse that name.")

    def _register_mounts(self, c: Container) -> None:
        """Volumes, binds and --mount resolved at create (volumes created, new
        empty ones filled from the image); kept in the state for each start."""
        if self.volumes is None:
            if c.hostconfig.get("Mounts") or c.hostconfig.get("VolumesFrom"):
                raise InvalidParameter("volumes are not available in this engine")
            return
        records = mountpoints.register(c, self.volumes, self.get)
        if not records:
            return
        c.state["MountPoints"] = records
        if not any(d["type"] == "volume" for d in records):
            return  # binds and tmpfs: nothing to copy up (no layer lookups)
        lowers = getattr(self.driver, "lower_dirs", None)
        layer_dirs = lowers(c.id) if lowers else [self.driver.diff_path(c.id)]
        if mountpoints.needs_copy_up(records, self.volumes, layer_dirs):
            rootfs = self.driver.get(c.id)
            try:
                mountpoints.copy_up(records, rootfs, self.volumes)
            finally:
                self.driver.put(c.id)

    def _register_links(self, c: Container) -> None:
        """HostConfig.Links into the link index, checked as dockerd's registerLinks
        (a user-defined network takes them as endpoint aliases instead)."""
        specs = c.hostconfig.get("Links") or []
        mode = c.hostconfig.get("NetworkMode") or "default"
        if not specs or mode not in ("default", "bridge", "none"):
            return
        for spec in specs:
            name, alias = parse_link(spec)
            if not name:
                raise InvalidParameter('could not get container for : invalid name or ID '
                                       'supplied: ""')
            try:
                child = self.get(name)
            except NotFound as e:
                raise InvalidParameter(f"could not get container for {name}: {e}") from None
            while (child.hostconfig.get("NetworkMode") or "").startswith("container:"):
                other = child.hostconfig["NetworkMode"].split(":", 1)[1]
                try:
                    child = self.get(other)
                except NotFound as e:
                    raise InvalidParameter(f"Could not get container for {other}: {e}") \
                        from None
            if child.hostconfig.get("NetworkMode") == "host":
                raise InvalidParameter(HOST_LINKS)
            if alias:  # an empty one names the parent itself: dockerd skips it
                self.links.add(c.id, alias, child.id, child.name)

    def remove_link(self, name: str) -> None:
        """`docker rm --link /<parent>/<alias>`: the link goes, not the container
        (a running parent loses its /etc/hosts line)."""
        self.get(name)  # dockerd resolves the name first: 404 for no such link
        if "/" not in name.strip("/"):
            raise DockyardError("Conflict, cannot remove the default link name of the "
                                "container")
        link = self.link_named(name)
        if link is None:
            raise NotFound(f"No such container: {name}")
        with self.lock(link.parent_id):
            self.links.remove(link.parent_id, link.alias)
            parent = self.get(link.parent_id)
            if parent.state.get("Running"):
                etcfiles.remove_host(self.container_dir(parent.id) / "hosts",
                                     link.alias.rsplit("/", 1)[-1])

    def _update_link_parents(self, c: Container) -> None:
        """A link target started: its running parents' /etc/hosts get its new
        address (libnetwork's parent update)."""
        ip = self.network.default_bridge_address(c.id) if self.network else None
        if not ip:
            return
        for link in self.links.parents(c.id):
            try:
                parent = self.get(link.parent_id)
            except NotFound:
                continue
            if parent.state.get("Running"):
                etcfiles.update_host(self.container_dir(parent.id) / "hosts", ip,
                                     link.alias.rsplit("/", 1)[-1])

    def _check_network(self, c: Container, networking: dict[str, Any] | None,
                       keep: list[Callable[[sqlite3.Connection], Any]]) -> list[str]:
        mode = c.hostconfig.get("NetworkMode") or "default"
        if c.hostconfig.get("Links"):
            if mode == "host":
                raise InvalidParameter(HOST_LINKS)
            if mode.startswith("container:"):
                raise InvalidParameter("conflicting options: container type network can't be "
                                       "used with links. This would result in undefined "
                                       "behavior")
        if mode.startswith("container:"):
            if c.config.get("Hostname") and c.config["Hostname"] != c.id[:12]:
                raise InvalidParameter("conflicting options: hostname and the network mode")
        if namespaces.ns_path(mode) is not None:
            # A pinned namespace (a CRI pod's): the network is the pinner's
            # business; /etc/hosts and resolv.conf are the container's own.
            if c.hostconfig.get("PortBindings") or c.hostconfig.get("PublishAllPorts"):
                raise InvalidParameter("conflicting options: port publishing and the ns "
                                       "type network mode")
            return []
        if self.network is None:
            if mode not in ("default", "none") and not mode.startswith("container:") \
                    and mode != "host":
                raise InvalidParameter(f"network {mode} not found")
            return []
        return self.network.container_created(c.id, c.hostconfig, networking, keep)

    def _network_namespace(self, c: Container, links: list[tuple[str, str, list[str]]]
                           ) -> str | None:
        """Set up the container's network before it starts: the namespace file
        to join, "host", or None for a fresh namespace with loopback only."""
        mode = c.hostconfig.get("NetworkMode") or "default"
        cdir = self.container_dir(c.id)
        if mode.startswith("container:"):
            other = self.get(mode.split(":", 1)[1])
            if not other.state.get("Running"):
                raise Conflict(f"cannot join network of a non running container: {other.id}")
            for f in ("hosts", "resolv.conf", "hostname"):
                src = self.container_dir(other.id) / f
                if src.exists():
                    shutil.copyfile(src, cdir / f)
            key = self.network.sandbox_key(other.id) if self.network else None
            return key or f"/proc/{int(other.state.get('Pid') or 0)}/ns/net"
        if (path := namespaces.ns_path(mode)) is not None:
            namespaces.check_namespace_file(path, "net", "network")
            return path
        if self.network is None:
            if mode == "host":
                return "host"
            return None
        return self.network.setup(c.id, c.name, c.config, c.hostconfig, cdir,
                                  [(names, ip) for names, ip, _ in links], ahead=True)

    def _choose_runtime(self, asked: str | None) -> str:
        runtime = asked or self.exec_driver
        if runtime not in EXEC_DRIVERS:
            raise InvalidParameter(f"Unknown runtime specified {runtime}")
        if runtime == "runc":
            oci.require_runc()
        return runtime

    # --- start ----------------------------------------------------------------
    def spawn(self, c: Container, wait_start: bool) -> dict[str, Any]:
        """Start the container's shim; with `wait_start` the process waits for a
        start frame on the attach socket (attach-before-start, as `docker run`)."""
        try:
            log_opts = logdrivers.shim_options(c.hostconfig.get("LogConfig") or {},
                                               self.container_dir(c.id), self._log_info(c))
        except logdrivers.LogInitError as e:
            c.state.update(ExitCode=128, Error=str(e), Running=False, Pid=0)
            self.save(c)
            raise
        ahead = self._cgroup_ahead(c)
        shim: _core.ShimStart | None = None
        try:
            sdir = self.state_dir(c.id)
            shutil.rmtree(sdir, ignore_errors=True)
            sdir.mkdir(parents=True, mode=0o700)
            # Native: an idle shim readies the attach socket and the log meanwhile.
            if self.runtime(c) != "runc":
                shim = _core.begin_shim(c.id, str(sdir), tty=c.tty,
                                        open_stdin=bool(c.config.get("OpenStdin")),
                                        wait_start=wait_start, **log_opts)
            return self._spawn(c, wait_start, log_opts, ahead, shim)
        except BaseException:
            if shim is not None:
                shim.abort()
            if ahead is not None and ahead.making is not None:
                ahead.making.wait()
                _core.remove_cgroup(ahead.path)  # the shim's, if it ran, is gone already
            raise

    def _cgroup_ahead(self, c: Container) -> CgroupAhead | None:
        """The container's devices and cgroup, the cgroup made on a thread of
        its own while the start mounts the rootfs and builds the spec (a
        millisecond of directories and device rules on a cgroup v1 host).
        None where the shim makes it: runc, or an error it reports."""
        if self.runtime(c) == "runc":
            return None
        try:
            devs, cg = specs.devices_and_cgroup(c, self.cgroup_path(c))
        except DockyardError:
            return None  # raised again where it always was, by specs.build
        making = _core.make_cgroup(cg["path"], json.dumps(cg["resources"])) if cg else None
        return CgroupAhead(devs, cg, making)

    def _spawn(self, c: Container, wait_start: bool, log_opts: dict[str, Any],
               ahead: CgroupAhead | None, shim: _core.ShimStart | None) -> dict[str, Any]:
        try:
            links = self.linked(c)
            shared = namespaces.resolve(c, self.get, self.container_dir)
            # first: its namespace and veths are made while the rootfs is
            # mounted and the spec built (`ready` below)
            netns = self._network_namespace(c, links)
            if self.idmap is not None:
                self._own_etc_files(c.id)
            rootfs = self._mount(c)
        except DockyardError as e:
            # dockerd records why the start failed (e.g. a port already allocated)
            self._unmount(c.id)
            if self.network:
                self.network.teardown(c.id)
            c.state.update(ExitCode=128, Error=str(e), Running=False, Pid=0)
            self.save(c)
            raise
        except BaseException:
            self._unmount(c.id)
            if self.network:
                self.network.teardown(c.id)
            raise
        acquired: list[str] = []
        try:
            if self.volumes:
                mountpoints.finish_interrupted(c.state.get("MountPoints") or [], rootfs,
                                               self.volumes)
            extra = mountpoints.runtime_mounts(c.state.get("MountPoints") or [],
                                               self.volumes, acquired) if self.volumes else []
            if (c.hostconfig.get("IpcMode") or "") == "shareable":
                namespaces.mount_shareable_shm(c, self.container_dir(c.id))
            if ahead is not None and ahead.making is not None and ahead.making.wait():
                ahead.cgroup["made"] = True  # type: ignore[index]
            spec_json = specs.build(c, rootfs, self.container_dir(c.id), self.cgroup_path(c),
                                    self.default_ulimits, netns, extra,
                                    [e for _, _, env in links for e in env], self.idmap,
                                    shared, ahead and (ahead.devices, ahead.cgroup))
            if self.network:
                self.network.ready(c.id)
            if shim is not None:
                res = shim.run(spec_json)
            else:
                res = oci.spawn_shim(c.id, str(self.state_dir(c.id)), spec_json, tty=c.tty,
                                     open_stdin=bool(c.config.get("OpenStdin")),
                                     wait_start=wait_start, runc_root=self.runc_root, **log_opts)
        except (_core.ContainerStartError, namespaces.RuntimeRefused) as e:
            self._unmount(c.id)
            if self.network:
                self.network.teardown(c.id)
            self.release_volumes(c)
            if isinstance(e, namespaces.RuntimeRefused):
                # runc's own checks (sysctls): dockerd reports them as runc's
                # failure, a 500 (not the 400 of a command that can't run)
                try:
                    self._start_failed(c, f"runc create failed: {e}", 128)
                except StartError as refused:
                    refused.status = 500
                    raise
            self._start_failed(c, str(e), getattr(e, "exit_code", 128))
        except BaseException as e:
            self._unmount(c.id)
            if self.network:
                self.network.teardown(c.id)
            self.release_volumes(c)
            if isinstance(e, (StartError, NetworkSetupError)):
                # refused by the spec (a device, a seccomp profile) or the
                # kernel (a veth): dockerd records why
                c.state.update(ExitCode=128, Error=str(e), Running=False, Pid=0)
                self.save(c)
            raise
        return res

    def _own_etc_files(self, cid: str) -> None:
        """--userns-remap: the container's /etc/hosts, hostname and resolv.conf
        (just written by the network setup) belong to its root, as dockerd's."""
        assert self.idmap is not None
        cdir = self.container_dir(cid)
        for f in ("hostname", "hosts", "resolv.conf"):
            try:
                os.chown(cdir / f, *self.idmap.root)
            except FileNotFoundError:
                pass

    def _log_info(self, c: Container) -> dict[str, Any]:
        """What a log driver's tag and attributes are made from (dockerd's logger.Info)."""
        path, args = c.config.get("Entrypoint") or [], c.config.get("Cmd") or []
        cmd = list(path) + list(args)
        return {"id": c.id, "name": c.name, "image": c.config.get("Image") or "",
                "image_id": c.image_id, "command": " ".join(cmd),
                "labels": c.config.get("Labels") or {}, "env": c.config.get("Env") or []}

    def log_source(self, c: Container) -> tuple[Path, str]:
        """The file `docker logs` reads and its format; ReadNotSupported (501)
        for drivers that keep nothing here."""
        return logdrivers.readable(c.hostconfig.get("LogConfig") or {}, c.id,
                                   self.container_dir(c.id))

    def _start_failed(self, c: Container, msg: str, code: int) -> None:
        if msg.startswith("failed to initialize logging driver: "):
            # dockerd: the logger fails before the task exists (500, exit 128).
            c.state.update(ExitCode=128, Error=msg, Running=False, Pid=0)
            self.save(c)
            raise logdrivers.LogInitError(msg.removeprefix(logdrivers.LogInitError.PREFIX))
        if msg.startswith(("exec: ", "chdir to cwd")):
            # runc 1.1's words for a failure in the container's init
            msg = f"runc create failed: unable to start container process: {msg}"
        c.state.update(ExitCode=code, Error=msg, Running=False, Pid=0)
        self.save(c)
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
            self._update_link_parents(c)
            self.emit(c, "start")
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
            self.save(c, durable=False)
        return c

    def _release_prepared(self, c: Container, release: Any = None) -> dict[str, Any]:
        out = release(c) if release is not None else None
        if out is None:
            try:
                out = attach.request(str(self.state_dir(c.id) / "attach.sock"), attach.START,
                                     attach.START_RESULT)
            except OSError:
                out = {"error": "the container's supervisor went away", "exit_code": 128}
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
        self.save(c, durable=False)
        health.reset(self, c)

    def recover(self) -> list[str]:
        running = super().recover()
        for cid in running:
            c = self.get(cid)
            if not c.state.get("Paused"):  # a paused one keeps its health until unpaused
                health.reset(self, c)
        return running

    def begin_restart(self, cid: str) -> float | None:
        """After an exit: the delay before the policy's restart, the container
        left restarting meanwhile; None if the policy doesn't restart it. The
        delay doubles from 100 ms at each restart up to a minute, and falls back
        to 100 ms after a run of 10 s or more (dockerd's backoff)."""
        with self.lock(cid):
            try:
                c = self.get(cid)
            except NotFound:
                return None
            if not c.state.get("Restarting"):
                # Someone else recorded the exit first (a listing's backstop).
                if c.state.get("Running") or not self.should_restart(c):
                    return None
                self._mark_restarting(c)
                self.save(c)
            ran = parse_time(c.state.get("FinishedAt", "")) - parse_time(
                c.state.get("StartedAt", ""))
            prev = 0.0 if ran >= 10 else self._restart_delays.get(cid, 0.0)
            delay = min(prev * 2, RESTART_MAX_DELAY) if prev else RESTART_FIRST_DELAY
            self._restart_delays[cid] = delay
            return delay

    def restart_after_exit(self, cid: str) -> bool:
        """The policy's restart, unless a stop, kill or removal came first."""
        with self.lock(cid):
            try:
                c = self.get(cid)
            except NotFound:
                return False
            if not c.state.get("Restarting"):
                return False
            started = now_rfc3339()
            try:
                res = self.spawn(c, wait_start=False)
            except Exception as e:  # noqa: BLE001 - whatever failed, it is not running
                c = self.get(cid)
                c.state.update(Status="exited", Running=False, Restarting=False,
                               Error=c.state.get("Error") or str(e))
                self.save(c)
                return False
            self._mark_running(c, res, started)
            self.emit(c, "start")
        return True

    def _cancel_restart(self, c: Container) -> bool:
        """A stop, kill or forced removal between an exit and its restart: the
        container stays exited. False if it was not restarting (any more)."""
        with self.lock(c.id):
            cur = self.get(c.id)
            if not cur.state.get("Restarting"):
                return False
            cur.state.update(Status="exited", Running=False, Restarting=False,
                             StoppedByUser=True)
            self.save(cur)
            self._restart_delays.pop(c.id, None)
        return True

    # --- stop / kill ------------------------------------------------------------
    def _thaw(self, c: Container) -> None:
        """A frozen process can't act on a signal: thaw a paused container first."""
        if c.state.get("Paused"):
            thaw_if_paused(self, c.id)

    def kill(self, ref: str, sig: str | int | None = None) -> None:
        c = self.get(ref)
        num = signal_number(sig)
        if num == 0:
            raise InvalidParameter(f"Invalid signal: {sig}")
        if not 0 < num <= SIGRTMAX:
            raise InvalidParameter(f"Cannot kill container: {ref}: The linux daemon does not "
                                   f"support signal {num}")
        if c.state.get("Restarting"):
            if self._cancel_restart(c):
                return  # no process to signal: it just won't be restarted
            c = self.get(c.id)  # restarted meanwhile: signal the new process
        if c.state.get("Paused"):
            self._thaw(c)
            c = self.get(c.id)
        if not c.state.get("Running"):
            raise Conflict(f"Cannot kill container: {ref}: Container {c.id} is not running")
        if num in (signals.SIGKILL, signals.SIGTERM, signals.SIGINT):
            c.state["StoppedByUser"] = True
            self.save(c)
        send_signal(int(c.state.get("Pid") or 0), num)
        self.emit(c, "kill", signal=str(num))
        if num == signals.SIGKILL:
            # As dockerd: a KILL returns once the container is dead and recorded
            # (inspect right after shows it exited, 137); other signals at once.
            shim = int(c.state.get("ShimPid") or 0)
            if shim:
                _core.wait_pid(shim, 30.0)
            self.reconcile(c.id)

    def reopen_log(self, ref: str) -> None:
        """Have the container's shim close its log file and open the one now
        at its path, a new one if it was renamed away: kubelet's
        ReopenContainerLog after it rotated the file. Only the cri driver
        can (logdrivers.ReopenNotSupported, 501, for the others); Conflict
        (409) when the container isn't running (containerd refuses then too);
        DockyardError (500) when the shim can't open the file or is gone."""
        c = self.get(ref)
        typ = (c.hostconfig.get("LogConfig") or {}).get("Type") or "json-file"
        if typ != "cri":
            raise logdrivers.ReopenNotSupported(typ)
        if not (c.state.get("Running") or c.state.get("Prepared")):
            raise Conflict(f"Container {c.id} is not running")
        try:
            res = attach.request(str(self.state_dir(c.id) / "attach.sock"),
                                 attach.REOPEN_LOG, attach.REOPEN_RESULT)
        except OSError as e:
            raise DockyardError(f"failed to reopen the log of container {c.id}: {e}") from None
        if res.get("error"):
            raise DockyardError(f"failed to reopen the log of container {c.id}: "
                                f"{res['error']}")

    def stop(self, ref: str, timeout: int | None = None) -> str | None:
        c = self.get(ref)
        if not c.state.get("Running"):
            return NOT_MODIFIED
        if c.state.get("Restarting") and self._cancel_restart(c):
            self.emit(c, "stop")
            return None
        self._thaw(c)
        c = self.get(c.id)
        if not c.state.get("Running"):  # it exited meanwhile
            return NOT_MODIFIED
        c.state["StoppedByUser"] = True
        self.save(c)
        if timeout is None:
            timeout = c.config.get("StopTimeout")
            timeout = 10 if timeout is None else int(timeout)
        sig = signal_number(c.config.get("StopSignal") or "SIGTERM")
        pid = int(c.state.get("Pid") or 0)
        shim = int(c.state.get("ShimPid") or 0)
        send_signal(pid, sig)
        exited = _core.wait_pid(shim, None if timeout < 0 else float(timeout)) if shim else True
        if not exited:
            send_signal(pid, signals.SIGKILL)
            _core.wait_pid(shim, 30.0)
        self.reconcile(c.id)
        self.emit(c, "stop")
        return None

    # --- remove -------------------------------------------------------------------
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.state.get("Running") and not c.state.get("Prepared"):
            if not force:
                raise Conflict(f"You cannot remove a {c.state.get('Status') or 'running'} "
                               f"container {c.id}. "
                               + ("Unpause and then stop" if c.state.get("Paused") else "Stop")
                               + " the container before attempting removal or force remove")
            self.kill(c.id, signals.SIGKILL)
            shim = int(c.state.get("ShimPid") or 0)
            if shim:
                _core.wait_pid(shim, 30.0)
        elif c.state.get("Prepared"):
            for pid in (int(c.state.get("Pid") or 0), int(c.state.get("ShimPid") or 0)):
                send_signal(pid, signals.SIGKILL)
            if c.state.get("ShimPid"):
                _core.wait_pid(int(c.state["ShimPid"]), 30.0)
        with self.lock(c.id):
            try:
                c = self.get(c.id)
            except NotFound:  # an AutoRemove container the kill's exit removed
                return
            c.state.pop("Prepared", None)
            self._remove_files(c, remove_volumes=volumes)
            self._restart_delays.pop(c.id, None)
        self.db.reclaim()  # a record made from a huge body leaves no space behind

    def rename(self, ref: str, new: str) -> None:
        c = self.get(ref)
        if not valid_name(new):
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
        self.save(c)
        self.emit(c, "rename", oldName=old)

    def close(self) -> None:
        """At daemon exit: let the shims kept ready go, and drop the parent
        cgroup if no container is left in it."""
        _core.drop_idle_shims(str(self.state_root.parent))
        if self.rootless_cgroup:
            return  # the delegated cgroup is not ours to remove
        try:
            dirs = _core.cgroup_dirs(self.cgroup_parent)
        except Exception:  # noqa: BLE001
            return
        for d in dirs:
            try:
                os.rmdir(d)
            except OSError:
                pass

