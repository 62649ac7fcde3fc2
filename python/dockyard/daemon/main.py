"""Running the daemon: take the pidfile, open the engine, serve until SIGTERM
or SIGINT (SIGHUP reloads the configuration file), then close listeners,
unmount and release everything."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sys
from typing import Any

from aiohttp import web

from .. import idmap, rootless
from ..containers import logdrivers
from ..errors import InvalidParameter, StorageDriverError
from .config import ConfigError, DaemonConfig, reload, selinux_check
from .launch import enter_rootless
from .pidfile import PidFile
from .server import build_app, start_listeners

log = logging.getLogger("dockyard.daemon")

SHUTDOWN_TIMEOUT = 3.0

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
          "warning": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL}


def cgroup_driver(opts: dict[str, str]) -> str:
    """`--exec-opt native.cgroupdriver=cgroupfs|systemd`; systemd falls back to
    cgroupfs, with a warning, where systemd is not the init system."""
    want = opts.get("native.cgroupdriver", "cgroupfs")
    if want not in ("cgroupfs", "systemd"):
        raise SystemExit(f"native.cgroupdriver option {want} not supported")
    if want == "systemd":
        if not os.path.isdir("/run/systemd/system"):
            log.warning("native.cgroupdriver=systemd: systemd is not running here; using "
                        "cgroupfs")
            return "cgroupfs"
        log.warning("native.cgroupdriver=systemd: cgroups are managed directly (cgroupfs "
                    "layout under the systemd hierarchy) in this version")
    return "cgroupfs"


def setup_logging(cfg: DaemonConfig) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        format='time="%(asctime)s" level=%(levelname)s msg="%(message)s"',
    )
    apply_log_level(cfg)


def apply_log_level(cfg: DaemonConfig) -> None:
    """-D wins over --log-level; the access log is on in debug mode only."""
    level = logging.DEBUG if cfg.debug else LEVELS.get(cfg.log_level, logging.INFO)
    logging.getLogger().setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.INFO if cfg.debug else logging.WARNING)


class Notifier:
    """systemd's readiness protocol (Type=notify): READY=1 once the API answers,
    RELOADING=1 around a SIGHUP, STOPPING=1 at shutdown. NOTIFY_SOCKET is taken
    out of the environment so that shims and containers don't inherit it."""

    def __init__(self) -> None:
        path = os.environ.pop("NOTIFY_SOCKET", "")
        self.addr = "\0" + path[1:] if path.startswith("@") else path

    def __call__(self, state: str) -> None:
        if not self.addr:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
                s.sendto(state.encode(), self.addr)
        except OSError as e:
            log.warning("could not notify systemd (%s): %s", state, e)


def registry_options(cfg: DaemonConfig) -> Any:
    from ..distribution import RegistryOptions

    return RegistryOptions(insecure_registries=list(cfg.insecure_registries),
                           max_concurrent_downloads=cfg.max_concurrent_downloads,
                           max_concurrent_uploads=cfg.max_concurrent_uploads,
                           retries=cfg.max_download_attempts)


def network_options(cfg: DaemonConfig) -> Any:
    from ..network.ipam import DEFAULT_POOLS, Pool
    from ..network.service import NetworkOptions

    pools = tuple(Pool.parse(p) for p in cfg.default_address_pools) or DEFAULT_POOLS
    return NetworkOptions(bridge=cfg.bridge, bip=cfg.bip, fixed_cidr=cfg.fixed_cidr,
                          pools=pools, icc=cfg.icc, ip=cfg.ip, ip_forward=cfg.ip_forward,
                          ip_masq=cfg.ip_masq, iptables=cfg.iptables, mtu=cfg.mtu,
                          dns=list(cfg.dns), dns_search=list(cfg.dns_search),
                          dns_opts=list(cfg.dns_opts))


def reload_config(cfg: DaemonConfig, engine: Any, notify: Notifier) -> None:
    """SIGHUP: re-read the file and apply what can change while running; a bad
    file leaves the running configuration as it was."""
    log.info("Got signal to reload configuration, reloading from: %s", cfg.config_file)
    notify("RELOADING=1")
    try:
        changed = reload(cfg)
    except ConfigError as e:
        log.error("%s", e)
        return
    finally:
        notify("READY=1")
    apply_log_level(cfg)
    opts = engine.registry_options
    opts.insecure_registries = list(cfg.insecure_registries)
    opts.max_concurrent_downloads = cfg.max_concurrent_downloads
    opts.max_concurrent_uploads = cfg.max_concurrent_uploads
    opts.retries = cfg.max_download_attempts
    log.info("Reloaded configuration: %s", json.dumps(
        {k.replace("_", "-"): v for k, v in changed.items()}, separators=(",", ":")))


async def start_cri(cfg: DaemonConfig, engine: Any, app: Any) -> Any:
    """The CRI endpoint beside the Docker API, on the same engine and loop."""
    from ..cri.proto import ProtoMissing
    from ..network.cni import CNI

    try:
        from ..cri.server import CRIServer
    except ImportError as e:
        raise SystemExit(f"failed to start daemon: --cri needs grpcio ({e}): "
                         "pip install 'dockyard[cri]'") from None

    cni = CNI(cfg.cni_conf_dir, tuple(cfg.cni_bin_dirs),
              os.path.join(cfg.data_root, "cri", "cni-cache"))
    pods = engine.pods
    pods.network = cni
    try:
        server = CRIServer(cfg.cri, engine, pods, app["execs"], app["monitor"].watch,
                           cni.ready, cfg.cri_stream_addr)
    except ProtoMissing as e:
        raise SystemExit(f"failed to start daemon: --cri: {e}") from None
    try:
        await server.start()
    except OSError as e:  # the streaming server's address
        await server.stop()
        raise SystemExit(f"failed to start daemon: --cri-stream-addr {cfg.cri_stream_addr}: "
                         f"{e.strerror or e}") from None
    return server


async def serve(cfg: DaemonConfig) -> None:
    from ..engine import Engine
    from ..network.rootlessnet import UserNetError

    notify = Notifier()
    # A SIGHUP before the daemon is up must not kill it (its default action).
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, lambda: None)
    pid = PidFile(cfg.pidfile)
    pid.acquire()
    engine = None
    runner = None
    cri = None
    try:
        os.makedirs(cfg.exec_root, exist_ok=True)
        storage_driver = (os.environ.get("DOCKYARD_DRIVER") or os.environ.get("DOCKER_DRIVER")
                          or cfg.storage_driver)
        uid = rootless.rootless_uid()
        if uid is not None:
            rootless_startup(cfg, uid)
            refusal = rootless.check_recorded_map(cfg.data_root)
            if refusal:
                raise SystemExit(refusal)
            storage_driver = rootless_driver(cfg, storage_driver)
        if uid is not None:
            rootless.set_limits_mode(cfg.rootless_limits)
            cfg.cgroup_driver = "cgroupfs" if rootless.delegation().path else "none"
        else:
            cfg.cgroup_driver = cgroup_driver(cfg.exec_opts)
        if cfg.exec_driver == "runc":
            from ..containers.oci import runc_path

            if runc_path() is None:
                raise SystemExit("failed to start daemon: --exec-driver runc: the runc binary "
                                 "was not found (install runc or set DOCKYARD_RUNC)")
        try:
            logdrivers.validate_default(cfg.log_driver, cfg.log_opts)
        except InvalidParameter as e:
            raise SystemExit(f"failed to start daemon: {e}") from None
        remap = None
        if cfg.userns_remap:
            try:
                remap = idmap.setup(cfg.userns_remap)
                if remap is None:
                    log.warning("User namespaces: root cannot be remapped with itself; user "
                                "namespaces are OFF")
                else:
                    log.info("User namespaces: ID ranges will be mapped to subuid/subgid "
                             "ranges of: %s", remap.user)
                    cfg.userns_remap = remap.setting
                    cfg.data_root = idmap.remapped_root(cfg.data_root, remap.idmap)
            except idmap.RemapError as e:
                raise SystemExit(str(e)) from None
        try:
            engine = await asyncio.to_thread(
                Engine, cfg.data_root, storage_driver, cfg.storage_opts, cfg.exec_root,
                cfg.default_ulimits, registry_options(cfg), cfg.exec_driver,
                network_options(cfg), {"Type": cfg.log_driver, "Config": cfg.log_opts},
                remap.idmap if remap else None)
        except StorageDriverError as e:
            raise SystemExit(f"failed to start daemon: error initializing graphdriver: {e}")
        except UserNetError as e:
            raise SystemExit(f"failed to start daemon: {e}") from None
        log.info("storage driver: %s", engine.driver.name)
        log.info("exec driver: %s", cfg.exec_driver)
        app = build_app(engine, cfg)
        # Containers whose shims outlived the previous daemon are watched again.
        for cid in await asyncio.to_thread(engine.containers.recover):
            app["monitor"].watch(cid)
        # At shutdown, requests in flight get a few seconds; streams that never end
        # (events, logs -f, attach) are then cut, as dockerd cuts them.
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=SHUTDOWN_TIMEOUT,
                               access_log=logging.getLogger("aiohttp.access"))
        await runner.setup()
        await start_listeners(runner, cfg)
        if cfg.cri:
            cri = await start_cri(cfg, engine, app)
        log.info("Daemon has completed initialization")
        notify("READY=1")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, reload_config, cfg, engine, notify)
        await stop.wait()
        log.info("Processing signal, shutting down")
        notify("STOPPING=1")
    finally:
        if cri is not None:
            await cri.stop()
        if runner is not None:
            runner.app["monitor"].close()
            await runner.cleanup()
        for h in cfg.hosts:
            if h.startswith("unix://"):
                try:
                    os.unlink(h[len("unix://"):])
                except OSError:
                    pass
        if engine is not None:
            engine.close()
        pid.release()


def rootless_driver(cfg: DaemonConfig, asked: str | None) -> str:
    """overlay (mounted with userxattr) when it mounts in the user namespace,
    else vfs, said in the log; btrfs is refused (its subvolumes need
    user_subvol_rm_allowed: not handled yet)."""
    from ..graphdriver import canonical, supported

    if asked:
        if canonical(asked) not in ("overlay", "vfs"):
            raise SystemExit(f"failed to start daemon: rootless: storage driver {asked} is not "
                             "supported in rootless mode yet; use overlay or vfs")
        return asked
    vfs = os.path.join(cfg.data_root, "vfs", "dir")
    if os.path.isdir(vfs) and any(not n.startswith(".") for n in os.listdir(vfs)):
        log.info("rootless: storage driver vfs (its layers are in the data root already)")
        return "vfs"
    home = os.path.join(cfg.data_root, "overlay")
    ok, why = supported("overlay", home)
    if ok:
        log.info("rootless: storage driver overlay (mounted with userxattr)")
        return "overlay"
    log.warning("rootless: storage driver vfs (full copies of each layer): %s", why)
    return "vfs"


def rootless_startup(cfg: DaemonConfig, uid: int) -> None:
    """Log what rootless mode means on this host, once, at start."""
    rows = rootless.id_map()
    log.info("rootless mode for uid %d: uid map %s", uid,
             "; ".join(f"{a} {b} {n}" for a, b, n in rows))
    joined = os.environ.pop(rootless.JOINED_ENV, "")
    if joined:
        log.info("rootless: joined the user and mount namespaces of shim %s (containers of "
                 "the previous daemon still run)", joined)
    if rootless.single_id_map():
        log.warning("rootless: only uid %d is mapped (no subordinate range for it in /etc/subuid "
                    "and /etc/subgid, or no newuidmap/newgidmap): files of other owners are "
                    "squashed to root, a USER other than root or supplementary groups fail; "
                    "fix: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 <user> "
                    "and apt-get install uidmap (as root), then restart the daemon", uid)
    p = rootless.user_paths(uid)
    if p.fallback:
        log.warning("rootless: XDG_RUNTIME_DIR is not set or not a 0700 directory of yours: the "
                    "socket and runtime state are in %s", p.runtime_dir)
    problem = rootless.usernet_problem()
    log.info("rootless: bridges in the daemon's own network namespace; published ports "
             "forwarded in-process")
    if problem:
        log.warning("rootless: containers have no way out beyond this host (their networks, "
                    "published ports and --network host work): that needs %s", problem)
    d = rootless.delegation()
    if d.path:
        log.info("rootless: containers' cgroups under %s (controllers: %s)", d.path,
                 " ".join(sorted(d.controllers)) or "none")
    else:
        log.warning("rootless: no delegated cgroup (%s): resource limits are %s", d.missing,
                    "discarded with a warning" if cfg.rootless_limits == "warn" else "refused")


def run(cfg: DaemonConfig) -> int:
    setup_logging(cfg)
    if os.geteuid() != 0:
        return enter_rootless(cfg)
    try:
        selinux_check(cfg)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    try:
        asyncio.run(serve(cfg))
    except SystemExit as e:
        if e.code not in (None, 0):
            print(e.code if isinstance(e.code, str) else f"exit {e.code}", file=sys.stderr)
            return 1
    return 0
