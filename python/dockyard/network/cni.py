"""CNI: pod networking through the standard plugin binaries (the Container
Network Interface, spec 1.0.0, and the 0.3.x/0.4.0 lists still in use).

The network is the first config in the conf dir by file name (`*.conflist`, or
a single-plugin `*.conf`/`*.json` wrapped as a list, as libcni does), the way
containerd and CRI-O pick it. Its plugins are executables found in the bin
dirs; each is run with the command and the attachment in `CNI_*` variables
and its netconf on stdin: ADD in list order, each getting the previous one's
result as `prevResult`; DEL in reverse. Plugins act on the network namespace
of the process that runs them (bridges, iptables rules), so the caller runs
this in the node's namespace. The final result is cached per network,
container and interface in libcni's format (but under our own cache dir), so
DEL after a daemon restart gets the same config, arguments and `prevResult`.

Everything here blocks (plugins take tens of milliseconds): call it from a
worker thread. The runtime must not run two operations on one attachment at
once (the spec's rule); different containers may run in parallel.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

from ..errors import DockyardError, InvalidParameter

DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_BIN_DIRS = ("/opt/cni/bin", "/usr/lib/cni")
CONF_EXTENSIONS = (".conf", ".conflist", ".json")
DEFAULT_TIMEOUT = 60.0  # per plugin run
CACHE_KIND = "cniCacheV1"
#: a plugin's config up to this size is written into its stdin pipe before it
#: starts (a pipe's default capacity: the write cannot block)
STDIN_PREFILL = 65536

_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")  # container IDs and network names


class CNIError(DockyardError):
    """A plugin failed, or there is no usable network config. `code`, `msg`
    and `details` are the plugin's JSON error when it printed one."""

    def __init__(self, message: str, *, code: int = 0, msg: str = "", details: str = "",
                 plugin: str = "", command: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.code, self.msg, self.details = code, msg or message, details
        self.plugin, self.command, self.stderr = plugin, command, stderr


@dataclass(frozen=True)
class PodRef:
    """The pod an attachment belongs to, for the plugins' `K8S_POD_*` args."""

    name: str
    namespace: str
    uid: str = ""


@dataclass(frozen=True)
class NetworkConfigList:
    name: str
    cni_version: str
    plugins: tuple[dict[str, Any], ...]
    disable_check: bool = False
    source: str = ""          # the file it came from
    raw: bytes = b""          # the list as JSON (what the cache keeps)

    @classmethod
    def parse(cls, data: bytes, source: str = "") -> "NetworkConfigList":
        """A conflist (`plugins`), or a single plugin config wrapped as one."""
        try:
            doc = json.loads(data)
        except ValueError as e:
            raise CNIError(f"error parsing configuration: {e}") from None
        if not isinstance(doc, dict):
            raise CNIError("error parsing configuration: not a JSON object")
        if "plugins" not in doc and not source.endswith(".conflist"):
            if not isinstance(doc.get("type"), str) or not doc["type"]:
                raise CNIError("error parsing configuration: missing 'type'")
            doc = {"name": doc.get("name", ""), "cniVersion": doc.get("cniVersion", ""),
                   "plugins": [doc]}
            data = json.dumps(doc).encode()
        name, version = doc.get("name"), doc.get("cniVersion", "")
        if not isinstance(name, str) or not _ID_RE.match(name):
            raise CNIError(f"error parsing configuration list: invalid name {name!r}")
        if not isinstance(version, str):
            raise CNIError("error parsing configuration list: invalid cniVersion type")
        _version_tuple(version)
        plugins = doc.get("plugins")
        if not isinstance(plugins, list) or not plugins:
            raise CNIError("error parsing configuration list: no plugins in list")
        for i, p in enumerate(plugins):
            kind = p.get("type") if isinstance(p, dict) else None
            if not isinstance(kind, str) or not kind:
                raise CNIError(f"failed to parse plugin config {i}: missing 'type'")
            if "/" in kind or kind.startswith("."):
                raise CNIError(f"failed to parse plugin config {i}: invalid type {kind!r}")
        check = doc.get("disableCheck", False)
        if isinstance(check, str):
            check = check.lower() == "true"
        return cls(name, version, tuple(plugins), bool(check), source, bytes(data))


@dataclass(frozen=True)
class Attachment:
    """A container on a network: the chain's final result and the addresses
    of the container's interface in it (IPv4 first)."""

    network: str
    container_id: str
    ifname: str
    result: dict[str, Any] = field(default_factory=dict)
    ips: tuple[str, ...] = ()

    @property
    def ip(self) -> str:
        """The pod IP: the interface's first IPv4 address, else its first IPv6."""
        return self.ips[0] if self.ips else ""


def load_config(conf_dir: str = DEFAULT_CONF_DIR) -> NetworkConfigList:
    """The first valid network config of `conf_dir` by file name; CNIError if none."""
    try:
        names = sorted(n for n in os.listdir(conf_dir)
                       if os.path.splitext(n)[1] in CONF_EXTENSIONS
                       and not os.path.isdir(os.path.join(conf_dir, n)))
    except FileNotFoundError:
        names = []
    except OSError as e:
        raise CNIError(f"cannot read network config in {conf_dir}: {e.strerror}") from None
    errors = []
    for n in names:
        path = os.path.join(conf_dir, n)
        try:
            with open(path, "rb") as f:
                return NetworkConfigList.parse(f.read(), path)
        except OSError as e:
            errors.append(f"{path}: {e.strerror}")
        except CNIError as e:
            errors.append(f"{path}: {e}")
    if errors:
        raise CNIError(f"no valid network config found in {conf_dir}: " + "; ".join(errors))
    raise CNIError(f"no network config found in {conf_dir}")


def port_mappings_arg(mappings: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The `portMappings` capability arg: only mappings with a host port, the
    protocol lower-case (as containerd passes them). Keys as CNI spells them
    (`hostPort`, `containerPort`, `protocol`, `hostIP`) or as CRI's protobuf
    fields (`host_port`, `container_port`, `host_ip`)."""
    out = []
    for m in mappings:
        host_port = int(m.get("hostPort", m.get("host_port")) or 0)
        if host_port <= 0:
            continue
        out.append({"hostPort": host_port,
                    "containerPort": int(m.get("containerPort", m.get("container_port")) or 0),
                    "protocol": str(m.get("protocol") or "tcp").lower(),
                    "hostIP": str(m.get("hostIP", m.get("host_ip")) or "")})
    return out


def plugin_config(plugin: Mapping[str, Any], net: NetworkConfigList,
                  prev_result: Mapping[str, Any] | None,
                  capability_args: Mapping[str, Any]) -> dict[str, Any]:
    """One plugin's stdin: its config with the list's `name` and `cniVersion`,
    `prevResult`, and a `runtimeConfig` holding only the capability args the
    plugin declares in `capabilities` (libcni's buildOneConfig)."""
    conf = dict(plugin)
    conf["name"], conf["cniVersion"] = net.name, net.cni_version
    if prev_result is not None:
        conf["prevResult"] = prev_result
    caps = plugin.get("capabilities")
    runtime = {k: v for k, v in capability_args.items()
               if isinstance(caps, dict) and caps.get(k) is True and v is not None}
    if runtime:
        conf["runtimeConfig"] = runtime
    return conf


def result_ips(result: Mapping[str, Any], ifname: str) -> tuple[str, ...]:
    """The addresses a result gives the container's interface `ifname`, IPv4
    first; IPs with no interface index count as that interface's."""
    cidrs: list[str] = []
    if "ips" in result:  # 0.3.0 and later
        ifaces = result.get("interfaces") or []
        for ip in result.get("ips") or []:
            idx = ip.get("interface")
            if isinstance(idx, int) and 0 <= idx < len(ifaces):
                iface = ifaces[idx]
                if iface.get("name") != ifname or not iface.get("sandbox"):
                    continue
            cidrs.append(str(ip.get("address", "")))
    else:  # 0.1.0/0.2.0: ip4/ip6
        cidrs = [str(result[k]["ip"]) for k in ("ip4", "ip6")
                 if isinstance(result.get(k), dict) and result[k].get("ip")]
    addrs = []
    for c in cidrs:
        try:
            addrs.append(ipaddress.ip_interface(c).ip)
        except ValueError:
            continue
    addrs.sort(key=lambda a: a.version)  # stable: keeps the plugin's order per family
    return tuple(str(a) for a in addrs)


class CNI:
    """The invoker: `ready()` for the runtime's NetworkReady condition, then
    `add`/`check`/`delete` one container interface on the configured network."""

    def __init__(self, conf_dir: str = DEFAULT_CONF_DIR,
                 bin_dirs: Sequence[str] = DEFAULT_BIN_DIRS,
                 cache_dir: str = "/var/lib/dockyard/cri/cni-cache",
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.conf_dir = conf_dir
        self.bin_dirs = tuple(bin_dirs)
        self.cache_dir = cache_dir
        self.timeout = timeout

    # -- config ------------------------------------------------------------

    def network(self) -> NetworkConfigList:
        """The network config in use now (the conf dir is read on each call, so
        a config dropped in later is picked up, as containerd's watcher does)."""
        return load_config(self.conf_dir)

    def ready(self) -> tuple[bool, str]:
        """(True, "") when a config is found and all its plugins exist; else
        False and the reason, for CRI `Status`'s NetworkReady condition."""
        try:
            net = self.network()
            for p in net.plugins:
                self.find_plugin(p["type"])
                ipam = p.get("ipam")
                if isinstance(ipam, dict) and isinstance(ipam.get("type"), str):
                    self.find_plugin(ipam["type"])
        except CNIError as e:
            return False, str(e)
        return True, ""

    def find_plugin(self, kind: str) -> str:
        if "/" in kind or kind.startswith("."):
            raise CNIError(f"invalid plugin type {kind!r}")
        for d in self.bin_dirs:
            path = os.path.join(d, kind)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
        raise CNIError(f'failed to find plugin "{kind}" in path [{" ".join(self.bin_dirs)}]',
                       plugin=kind)

    # -- operations ----------------------------------------------------------

    def add(self, container_id: str, netns: str, ifname: str = "eth0", *,
            pod: PodRef | None = None,
            port_mappings: Iterable[Mapping[str, Any]] = (),
            bandwidth: Mapping[str, Any] | None = None,
            dns: Mapping[str, Any] | None = None,
            ip_ranges: Sequence[Any] | None = None,
            cgroup_path: str | None = None,
            meanwhile: Callable[[], None] | None = None) -> Attachment:
        """ADD the container's namespace `netns` to the network as `ifname`
        (begin_add() and its run() in one)."""
        return self.begin_add(container_id, netns, ifname, pod=pod, port_mappings=port_mappings,
                              bandwidth=bandwidth, dns=dns, ip_ranges=ip_ranges,
                              cgroup_path=cgroup_path).run(meanwhile)

    def begin_add(self, container_id: str, netns: str, ifname: str = "eth0", *,
                  pod: PodRef | None = None,
                  port_mappings: Iterable[Mapping[str, Any]] = (),
                  bandwidth: Mapping[str, Any] | None = None,
                  dns: Mapping[str, Any] | None = None,
                  ip_ranges: Sequence[Any] | None = None,
                  cgroup_path: str | None = None) -> "PendingAdd":
        """An ADD whose first plugin is started now but acts only when
        run() hands it its config: its runtime loads (a Go plugin's few
        milliseconds) while the caller makes what must exist first (the
        namespace at `netns`, its own record of the attachment). Then
        run() or abort()."""
        _check_attachment(container_id, ifname)
        if not netns:
            raise InvalidParameter("a network namespace is required")
        net = self.network()
        caps: dict[str, Any] = {"portMappings": port_mappings_arg(port_mappings)}
        for key, value in (("bandwidth", bandwidth), ("dns", dns), ("ipRanges", ip_ranges),
                           ("cgroupPath", cgroup_path)):
            if value:
                caps[key] = value
        return PendingAdd(self, net, container_id, netns, ifname, _cni_args(container_id, pod),
                          caps)

    def delete(self, container_id: str, netns: str | None, ifname: str = "eth0", *,
               pod: PodRef | None = None) -> None:
        """DEL the attachment, in reverse order, with the cached result as
        `prevResult` and the cached config and arguments when there are any
        (else the current config). Idempotent: a missing namespace (plugins
        get an empty CNI_NETNS), cache or attachment is no error."""
        _check_attachment(container_id, ifname)
        ns = netns if netns and _is_netns(netns) else ""
        cached = self._cached(container_id, ifname)
        if not cached:
            try:
                net = self.network()
            except CNIError:
                return  # no config and nothing cached: nothing was added
            cached = [(net, _cni_args(container_id, pod), {}, None)]
        for net, args, caps, result in cached:
            prev = result if _version_tuple(net.cni_version) >= (0, 4, 0) else None
            chain = _Chain(self, list(reversed(net.plugins)), "DEL", container_id, ns, ifname,
                           args)
            try:
                for plugin in chain:
                    try:
                        chain.run(plugin_config(plugin, net, prev, caps))
                    except CNIError as e:
                        raise _wrap(e, plugin, net, "delete") from None
            finally:
                chain.close()
            self._remove_cache(net.name, container_id, ifname)

    def check(self, container_id: str, netns: str, ifname: str = "eth0") -> None:
        """CHECK the attachment against its cached result (CNI 0.4.0 and later;
        a list with `disableCheck` passes)."""
        _check_attachment(container_id, ifname)
        cached = [c for c in self._cached(container_id, ifname) if c[3] is not None]
        if not cached:
            raise CNIError(f"no cached result for container {container_id} interface {ifname}")
        net, args, caps, result = cached[0]
        if _version_tuple(net.cni_version) < (0, 4, 0):
            raise CNIError(f'configuration version "{net.cni_version}" does not support '
                           "the CHECK command")
        if net.disable_check:
            return
        for plugin in net.plugins:
            try:
                path = self.find_plugin(plugin["type"])
                self._exec(path, "CHECK", plugin_config(plugin, net, result, caps),
                           container_id, netns, ifname, args)
            except CNIError as e:
                raise _wrap(e, plugin, net, "check") from None

    def attachment(self, container_id: str, ifname: str = "eth0") -> Attachment | None:
        """The cached result of the container's last ADD (None if none), e.g.
        for the pod IP after a daemon restart."""
        for net, _args, _caps, result in self._cached(container_id, ifname):
            if result is not None:
                return Attachment(net.name, container_id, ifname, result,
                                  result_ips(result, ifname))
        return None

    # -- plugin execution ------------------------------------------------------

    def _exec(self, path: str, command: str, conf: Mapping[str, Any], container_id: str,
              netns: str, ifname: str, args: Sequence[Sequence[str]]) -> dict[str, Any] | None:
        """Run one plugin; its parsed stdout (None if empty), or CNIError."""
        proc = _Proc(self, path, command, container_id, netns, ifname, args)
        try:
            proc.feed(conf)
            return proc.wait()
        finally:
            proc.close()

    def _rollback(self, net: NetworkConfigList, ran: Sequence[Mapping[str, Any]], done: int,
                  result: Mapping[str, Any] | None, container_id: str, netns: str, ifname: str,
                  args: Sequence[Sequence[str]], caps: Mapping[str, Any]) -> str:
        """DEL the plugins an ADD ran, last first: the `done` whose ADD succeeded
        (their errors returned, joined) and the one that failed, as a best
        effort for whatever part of its work it left."""
        prev = result if _version_tuple(net.cni_version) >= (0, 4, 0) else None
        errors = []
        for i in reversed(range(len(ran))):
            plugin = ran[i]
            try:
                self._exec(self.find_plugin(plugin["type"]), "DEL",
                           plugin_config(plugin, net, prev, caps), container_id, netns, ifname,
                           args)
            except CNIError as e:
                if i < done:
                    errors.append(f"{plugin['type']}: {e}")
        return "; ".join(errors)

    # -- result cache (libcni's layout and format) ---------------------------

    def _cache_path(self, network: str, container_id: str, ifname: str) -> str:
        return os.path.join(self.cache_dir, "results", f"{network}-{container_id}-{ifname}")

    def _write_cache(self, net: NetworkConfigList, container_id: str, ifname: str, netns: str,
                     args: Sequence[Sequence[str]], caps: Mapping[str, Any],
                     result: Mapping[str, Any] | None) -> None:
        doc: dict[str, Any] = {
            "kind": CACHE_KIND, "containerId": container_id,
            "config": base64.b64encode(net.raw).decode(), "ifName": ifname,
            "networkName": net.name, "netns": netns, "cniArgs": [list(a) for a in args],
            "capabilityArgs": dict(caps)}
        if result is not None:
            doc["result"] = result
        path = self._cache_path(net.name, container_id, ifname)
        try:
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            tmp = f"{path}.tmp"
            # Atomic, not synced (libcni doesn't sync it either): it serves a
            # DEL after a daemon crash, and a power cut takes the namespace,
            # the interfaces and the plugins' own unsynced IPAM files anyway.
            with open(tmp, "wb", opener=lambda p, fl: os.open(p, fl, 0o600)) as f:
                f.write(json.dumps(doc).encode())
            os.replace(tmp, path)
        except OSError as e:
            raise CNIError(f'failed to set network "{net.name}" cached result: '
                           f"{e.strerror}") from None

    def _remove_cache(self, network: str, container_id: str, ifname: str) -> None:
        try:
            os.unlink(self._cache_path(network, container_id, ifname))
        except FileNotFoundError:
            pass

    def _cached(self, container_id: str, ifname: str) -> list[
            tuple[NetworkConfigList, list[list[str]], dict[str, Any], dict[str, Any] | None]]:
        """The cached attachments of (container, ifname), on whichever network
        (the conf dir may have changed since): config, args, caps, result."""
        folder = os.path.join(self.cache_dir, "results")
        suffix = f"-{container_id}-{ifname}"
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(suffix))
        except FileNotFoundError:
            return []
        out = []
        for n in names:
            try:
                with open(os.path.join(folder, n), "rb") as f:
                    doc = json.load(f)
                if (doc.get("kind") != CACHE_KIND or doc.get("containerId") != container_id
                        or doc.get("ifName") != ifname):
                    continue
                net = NetworkConfigList.parse(base64.b64decode(doc["config"]), n)
            except (OSError, ValueError, KeyError, TypeError, CNIError):
                continue  # unreadable: as if absent (libcni ignores it too)
            result = doc.get("result")
            out.append((net, [list(a) for a in doc.get("cniArgs") or []],
                        dict(doc.get("capabilityArgs") or {}),
                        result if isinstance(result, dict) else None))
        return out


class _Proc:
    """One plugin run, started ahead of its config: the process (its own
    session, so that a kill takes its children too) loads while the caller
    does other work, and acts only once feed() has given it its netconf."""

    def __init__(self, cni: CNI, path: str, command: str, container_id: str, netns: str,
                 ifname: str, args: Sequence[Sequence[str]]) -> None:
        self.kind, self.command, self.timeout = os.path.basename(path), command, cni.timeout
        env = dict(os.environ)
        env.update(CNI_COMMAND=command, CNI_CONTAINERID=container_id, CNI_NETNS=netns,
                   CNI_ARGS=";".join(f"{k}={v}" for k, v in args), CNI_IFNAME=ifname,
                   CNI_PATH=":".join(cni.bin_dirs))
        try:
            self.proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, env=env, cwd="/",
                                         start_new_session=True)
        except OSError as e:
            raise CNIError(f"exec {path}: {e.strerror}", plugin=self.kind,
                           command=command) from None
        self.data: bytes | None = None
        self.version = ""

    def feed(self, conf: Mapping[str, Any]) -> None:
        self.version = str(conf.get("cniVersion", ""))
        data = json.dumps(conf).encode()
        if len(data) > STDIN_PREFILL:
            self.data = data  # wait() writes it as the plugin reads
            return
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            # An empty pipe holds this much without a reader: no blocking.
            stdin.write(data)
            stdin.close()
        except BrokenPipeError:
            pass  # it died before reading: wait() tells how
        self.proc.stdin = None  # communicate() must not flush it

    def wait(self) -> dict[str, Any] | None:
        """Its parsed stdout (None if empty), or CNIError."""
        proc, kind, command = self.proc, self.kind, self.command
        try:
            stdout, stderr = proc.communicate(self.data, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise CNIError(f"netplugin timed out after {self.timeout:g}s", plugin=kind,
                           command=command) from None
        err_text = stderr.decode(errors="replace").strip()[-2000:]
        if proc.returncode != 0:
            raise _plugin_error(stdout, err_text, proc.returncode, kind, command)
        if not stdout.strip():
            return None
        try:
            out = json.loads(stdout)
        except ValueError as e:
            raise CNIError(f"netplugin printed invalid JSON: {e}", plugin=kind,
                           command=command, stderr=err_text) from None
        if not isinstance(out, dict):
            raise CNIError("netplugin printed a result that is not a JSON object",
                           plugin=kind, command=command, stderr=err_text)
        if not out.get("cniVersion"):
            out["cniVersion"] = self.version
        return out

    def close(self) -> None:
        """Kill it (with its children) unless it has ended; reap it."""
        proc = self.proc
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass


class _Chain:
    """Plugins run one after the other, as the spec has it, but each is
    started while the one before it runs, so that its loading (most of a
    small Go plugin's run) overlaps: iterate, and run() each in turn."""

    def __init__(self, cni: CNI, plugins: Sequence[Mapping[str, Any]], command: str,
                 container_id: str, netns: str, ifname: str,
                 args: Sequence[Sequence[str]]) -> None:
        self.cni, self.plugins, self.command = cni, plugins, command
        self.target = (container_id, netns, ifname, args)
        self.fed = 0  # how many were given their config (may have acted)
        self.next: _Proc | CNIError | None = self._start(0)

    def _start(self, i: int) -> _Proc | CNIError | None:
        """Plugin i's process; a failure to find or exec it is raised when its turn comes."""
        if i >= len(self.plugins):
            return None
        try:
            return _Proc(self.cni, self.cni.find_plugin(self.plugins[i]["type"]), self.command,
                         *self.target)
        except CNIError as e:
            return e

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        return iter(self.plugins)

    def run(self, conf: Mapping[str, Any],
            meanwhile: Callable[[], None] | None = None) -> dict[str, Any] | None:
        """The next plugin with `conf`; `meanwhile()` runs while it does, and
        what it raises comes after the plugin was waited for."""
        proc, self.next = self.next, None
        if isinstance(proc, CNIError):
            raise proc
        assert proc is not None
        try:
            proc.feed(conf)
            self.fed += 1
            self.next = self._start(self.fed)
            failed: BaseException | None = None
            if meanwhile is not None:
                try:
                    meanwhile()
                except BaseException as e:  # raised once the plugin is done
                    failed = e
            try:
                out = proc.wait()
            except CNIError as e:
                if failed is None:
                    raise
                raise failed from e
            if failed is not None:
                raise failed
            return out
        finally:
            proc.close()

    def close(self) -> None:
        """Kill a plugin started ahead that will not run."""
        if isinstance(self.next, _Proc):
            self.next.close()
        self.next = None


class PendingAdd:
    """An ADD under way (CNI.begin_add): its first plugin started, nothing done."""

    def __init__(self, cni: CNI, net: NetworkConfigList, container_id: str, netns: str,
                 ifname: str, args: Sequence[Sequence[str]], caps: Mapping[str, Any]) -> None:
        self.cni, self.net, self.caps = cni, net, caps
        self.target = (container_id, netns, ifname, args)
        self.chain = _Chain(cni, net.plugins, "ADD", container_id, netns, ifname, args)

    def run(self, meanwhile: Callable[[], None] | None = None) -> Attachment:
        """Run the chain. On a failure, what it made so far is deleted again
        (reverse order) and CNIError carries the failing plugin's error; if
        that cleanup fails too, the caller's later delete() retries it.

        `meanwhile()` is called once the first plugin runs, so that the
        caller's other work overlaps the chain's execs (no thread needed);
        it is not called if the chain fails before that. What it raises
        goes through run(), after the running plugin was waited for (and the
        chain rolled back)."""
        cni, net, caps, chain = self.cni, self.net, self.caps, self.chain
        container_id, netns, ifname, args = self.target
        result: dict[str, Any] | None = None
        cached: dict[str, Any] | None = None  # the result in the cache
        done = 0
        try:
            # Written before any plugin acts, so a DEL after a crash mid-ADD
            # still gets the config and arguments this ADD used.
            cni._write_cache(net, container_id, ifname, netns, args, caps, None)

            def cache_ahead() -> None:
                nonlocal cached
                cni._write_cache(net, container_id, ifname, netns, args, caps, result)
                cached = result

            for i, plugin in enumerate(chain):
                if i and i == len(net.plugins) - 1:
                    # The last plugin (portmap, as a rule) passes its
                    # prevResult on: the cache gets that while it runs.
                    meanwhile = cache_ahead
                try:
                    out = chain.run(plugin_config(plugin, net, result, caps), meanwhile)
                    meanwhile = None
                    if out is None:
                        raise CNIError("netplugin printed no result", plugin=plugin["type"],
                                       command="ADD")
                except CNIError as e:
                    raise _wrap(e, plugin, net, "add") from None
                result = _as_version(out, net.cni_version)
                done += 1
            assert result is not None
            if result != cached:
                cni._write_cache(net, container_id, ifname, netns, args, caps, result)
        except BaseException as e:
            chain.close()
            cleanup = cni._rollback(net, net.plugins[:chain.fed], done, result, container_id,
                                    netns, ifname, args, caps)
            if cleanup:  # the pending cache stays: delete() retries with this config
                if cached is not None:  # no result: the ADD failed
                    try:
                        cni._write_cache(net, container_id, ifname, netns, args, caps, None)
                    except CNIError:
                        pass
                if isinstance(e, CNIError):
                    e.args = (f"{e}; cleanup failed: {cleanup}",)
            else:
                cni._remove_cache(net.name, container_id, ifname)
            raise
        return Attachment(net.name, container_id, ifname, result, result_ips(result, ifname))

    def abort(self) -> None:
        """Not to be run after all: the started plugin is killed before it acted."""
        self.chain.close()


def _check_attachment(container_id: str, ifname: str) -> None:
    if not _ID_RE.match(container_id):
        raise InvalidParameter(f"invalid container ID {container_id!r}")
    if (not ifname or len(ifname) > 15 or ifname in (".", "..")
            or any(c in ifname for c in "/:") or any(c.isspace() for c in ifname)):
        raise InvalidParameter(f"invalid interface name {ifname!r}")


def _cni_args(container_id: str, pod: PodRef | None) -> list[list[str]]:
    """CNI_ARGS as containerd passes them."""
    args = [["IgnoreUnknown", "1"]]
    if pod is not None:
        args += [["K8S_POD_NAMESPACE", pod.namespace], ["K8S_POD_NAME", pod.name],
                 ["K8S_POD_INFRA_CONTAINER_ID", container_id], ["K8S_POD_UID", pod.uid]]
    return args


def _is_netns(path: str) -> bool:
    """Whether `path` is a network namespace (nsfs has one device for all)."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def _version_tuple(version: str) -> tuple[int, ...]:
    if not version:
        return (0, 1, 0)  # what plugins assume without one
    try:
        parts = tuple(int(p) for p in version.split("."))
    except ValueError:
        parts = ()
    if len(parts) != 3:
        raise CNIError(f"invalid cniVersion {version!r}")
    return parts


def _as_version(result: dict[str, Any], version: str) -> dict[str, Any]:
    """A 0.3.0+ result in the list's version (plugins print the config's, so
    this only fixes a stray one): 1.0.0 dropped the IPs' `version` field."""
    have = result.get("cniVersion", "")
    if have == version or "ips" not in result:
        return result
    try:
        target = _version_tuple(version)
        if _version_tuple(have) < (0, 3, 0) or target < (0, 3, 0):
            return result
    except CNIError:
        return result
    out = dict(result, cniVersion=version)
    ips = []
    for ip in result.get("ips") or []:
        ip = dict(ip)
        if target >= (1, 0, 0):
            ip.pop("version", None)
        elif "version" not in ip:
            try:
                ip["version"] = str(ipaddress.ip_interface(ip.get("address", "")).version)
            except ValueError:
                pass
        ips.append(ip)
    out["ips"] = ips
    return out


def _describe(plugin: Mapping[str, Any], net: NetworkConfigList) -> str:
    return f'type="{plugin.get("type")}" name="{net.name}"'


def _wrap(e: CNIError, plugin: Mapping[str, Any], net: NetworkConfigList,
          action: str) -> CNIError:
    """libcni's form: `plugin type="bridge" name="k8s" failed (add): <error>`."""
    return CNIError(f"plugin {_describe(plugin, net)} failed ({action}): {e}", code=e.code,
                    msg=e.msg, details=e.details, plugin=str(plugin.get("type", "")),
                    command=e.command or action.upper(), stderr=e.stderr)


def _plugin_error(stdout: bytes, stderr: str, status: int, kind: str,
                  command: str) -> CNIError:
    """A failed run's error: the plugin's JSON error on stdout if it printed
    one (`msg; details`), else its stderr."""
    code, msg, details = 0, "", ""
    if stdout.strip():
        try:
            doc = json.loads(stdout)
            code = int(doc.get("code") or 0)
            msg, details = str(doc.get("msg") or ""), str(doc.get("details") or "")
        except (ValueError, TypeError, AttributeError):
            msg = (f"netplugin failed but error parsing its diagnostic message "
                   f"{stdout.decode(errors='replace')[:500]!r}")
    if not msg:
        msg = (f"netplugin failed: {stderr!r}" if stderr
               else f"netplugin failed with no error message: exit status {status}")
    text = f"{msg}; {details}" if details else msg
    return CNIError(text, code=code, msg=msg, details=details, plugin=kind, command=command,
                    stderr=stderr)
