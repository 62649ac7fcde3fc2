"""Containers on networks: each running container's namespace (a file under
`<exec-root>/netns/`, its SandboxKey), its endpoints (veths made straight
inside it by `_core`'s netlink code), published ports, /etc files and the
embedded DNS server; the packet rules (`firewall.py`) rebuilt from the
records; connect/disconnect on running containers; restore after a restart."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .. import _core
from ..errors import DockyardError, InvalidParameter, NetworkSetupError, NotFound
from ..events import EventLog
from ..filters import labels_match
from ..ids import generate_id
from ..rootless import rootless_uid
from ..store.db import Database
from . import etcfiles, firewall, nft
from .dns import EmbeddedDNS
from .forward import PortForwarder
from .ipam import mac_for
from .ports import Binding, PortAllocated, PortReservations, bindings
from .records import (BUILTIN, OPT, Forbidden, NetworkOptions, NetworkRecords,
                      check_endpoint)
from .rootlessnet import SLIRP_DNS, RootlessNetns

log = logging.getLogger("dockyard.network")

def _bool_opt(opts: dict[str, str], key: str, default: bool) -> bool:
    v = opts.get(key)
    return default if v is None else str(v).lower() in ("1", "true", "yes")



class ContainerNetworks(NetworkRecords):
    def __init__(self, db: Database, events: EventLog, exec_root: Path,
                 options: NetworkOptions | None = None) -> None:
        super().__init__(db, events, options)
        self.netns_dir = Path(exec_root) / "netns"
        self.netns_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ports = PortReservations()
        self._lock = threading.RLock()
        self._dns: EmbeddedDNS | None = None
        self._bridges_seen: set[str] = set()  # bridges set up by this process
        # what the packet rules were last brought to (None: unknown, render all)
        self._fw_bridges: list[firewall.BridgeRules] | None = None
        self._fw_ports: set[firewall.PortRule] | None = None
        # Starts whose namespace and veths are being made meanwhile (`ready`).
        self._making: dict[str, _core.Job] = {}
        # A container's name by ID (the engine sets it: the DNS server answers by name).
        self.container_name: Callable[[str], str] = lambda cid: ""
        # Rootless: bridges live in the daemon's own network namespace, reached
        # through slirp4netns; published ports are forwarded into it.
        self.rootless: RootlessNetns | None = None
        self._forward: PortForwarder | None = None
        if rootless_uid() is not None:
            self.rootless = RootlessNetns(Path(exec_root))
            self.rootless.start()
            self._forward = PortForwarder(str(self.rootless.path))

    def _k(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Kernel work on the bridges' side: the host's namespace, or the
        rootless daemon's own."""
        return self.rootless.call(fn, *args) if self.rootless else fn(*args)

    def remove(self, ref: str) -> None:
        with self._lock:
            net = self.get(ref)
            if net["Name"] in BUILTIN:
                raise Forbidden(f"{net['Name']} is a pre-defined network and cannot be removed")
            if self._endpoint_rows(net["Id"]):
                raise Forbidden(f"error while removing network: network {net['Name']} id "
                                 f"{net['Id']} has active endpoints")
            br = self.bridge_name(net)
            with self.db.transaction() as c:
                c.execute("DELETE FROM networks WHERE id=?", (net["Id"],))
                c.execute("INSERT OR IGNORE INTO doomed_links(name) VALUES (?)", (br,))
            self._bridges_seen.discard(br)
            if self.opts.iptables:
                self._apply_firewall()
                if not self.rootless:
                    firewall.drop_forward_compat(br)
            self._delete_doomed(br)
        self.events.emit("network", "destroy", net["Id"], {"name": net["Name"], "type": "bridge"})

    def _delete_doomed(self, name: str) -> None:
        self._k(_core.link_delete, name)
        with self.db.transaction() as c:
            c.execute("DELETE FROM doomed_links WHERE name=?", (name,))

    def prune(self, filters: dict[str, list[str]]) -> list[str]:
        deleted = []
        used = {r["network_id"] for r in self.db.query("SELECT network_id FROM endpoints")}
        for n in self._rows():
            if n["Name"] in BUILTIN or n["Id"] in used:
                continue
            if "label" in filters and not labels_match(n.get("Labels") or {}, filters["label"]):
                continue
            if "label!" in filters and labels_match(n.get("Labels") or {}, filters["label!"]):
                continue
            try:
                self.remove(n["Id"])
                deleted.append(n["Name"])
            except DockyardError:
                continue
        return deleted

    # --- container endpoints ------------------------------------------------
    def mode(self, hostconfig: dict[str, Any]) -> str:
        m = hostconfig.get("NetworkMode") or "default"
        if m == "default":
            return "bridge" if self.opts.bridge != "none" else "none"
        return m

    def container_created(self, cid: str, hostconfig: dict[str, Any],
                          networking: dict[str, Any] | None,
                          record: list[Callable[[sqlite3.Connection], Any]] | None = None
                          ) -> list[str]:
        """Check the network settings of a new container and keep its endpoint
        configs (with `record`, in the transaction that records the container:
        what to run there is appended); returns dockerd's warnings."""
        mode = self.mode(hostconfig)
        if networking is not None and not isinstance(networking, dict):
            raise InvalidParameter("json: cannot unmarshal into Go value of type "
                                   "network.NetworkingConfig")
        eps = (networking or {}).get("EndpointsConfig") or {}
        if not isinstance(eps, dict):
            raise InvalidParameter("json: cannot unmarshal into Go value of type "
                                   "map[string]*network.EndpointSettings")
        warnings: list[str] = []
        if mode.startswith("container:"):
            if hostconfig.get("PortBindings") or hostconfig.get("PublishAllPorts"):
                raise InvalidParameter("conflicting options: port publishing and the container "
                                       "type network mode")
            return warnings
        if mode == "host" and (hostconfig.get("PortBindings") or hostconfig.get("PublishAllPorts")):
            warnings.append("Published ports are discarded when using host network mode")
        if len(eps) > 1:
            raise InvalidParameter("Container cannot be connected to network endpoints: "
                                   + ", ".join(eps))
        bindings(hostconfig.get("PortBindings"), None, False, "")  # dockerd checks at create
        for h in hostconfig.get("ExtraHosts") or []:
            try:
                etcfiles.parse_add_host(h)
            except ValueError:
                raise InvalidParameter(f"invalid IP address in add-host: {h!r}") from None
        if mode in ("host", "none"):
            return warnings
        try:
            net = self.get(mode)
        except NotFound:
            return warnings  # dockerd fails at start, not at create
        cfg = check_endpoint(next(iter(eps.values()), None))

        def keep(c: sqlite3.Connection) -> None:
            c.execute("INSERT OR REPLACE INTO endpoints(container_id, network_id, seq, config) "
                      "VALUES (?, ?, 0, ?)", (cid, net["Id"], json.dumps(cfg)))
        if record is not None:
            record.append(keep)
        else:
            with self.db.transaction() as c:
                keep(c)
        return warnings

    def container_removed(self, cid: str) -> None:
        self.teardown(cid)
        if self.db.one("SELECT 1 FROM endpoints WHERE container_id=?", (cid,)):
            with self.db.transaction() as c:
                self.forget(c, cid)

    @staticmethod
    def forget(c: sqlite3.Connection, cid: str) -> None:
        """A removed container's endpoints go, in the caller's transaction
        (after `teardown`)."""
        c.execute("DELETE FROM endpoints WHERE container_id=?", (cid,))

    def write_etc_files(self, cid: str, config: dict[str, Any], hostconfig: dict[str, Any],
                        container_dir: Path) -> None:
        """At create: /etc/hosts, resolv.conf and hostname as the start will
        write them, as far as they don't depend on it (no address yet), so
        that the start finds them done (`etcfiles.write` leaves a file that
        holds its text)."""
        mode = self.mode(hostconfig)
        hostname = config.get("Hostname") or cid[:12]
        if mode == "host":
            etcfiles.write(container_dir / "hosts", _read("/etc/hosts") or etcfiles.HOSTS_HEAD)
            etcfiles.write(container_dir / "resolv.conf", etcfiles.host_resolv())
        else:
            try:  # host-gateway's address is known at the start
                extra = [etcfiles.parse_add_host(h) for h in hostconfig.get("ExtraHosts") or []]
            except ValueError:
                extra = []
            etcfiles.write(container_dir / "hosts",
                           etcfiles.hosts([], [e for e in extra if e[1] != "host-gateway"]))
            user_net = mode not in ("none", "bridge") and not mode.startswith("container:")
            self._write_resolv(container_dir, hostconfig, embedded=user_net)
        etcfiles.write(container_dir / "hostname", hostname + "\n")

    def sandbox_key(self, cid: str) -> str | None:
        r = self.db.one("SELECT netns FROM sandboxes WHERE container_id=?", (cid,))
        return r["netns"] if r else None

    def setup(self, cid: str, name: str, config: dict[str, Any], hostconfig: dict[str, Any],
              container_dir: Path, links: list[tuple[str, str]] | None = None,
              ahead: bool = False) -> str | None:
        """Before a container starts: its namespace, endpoints, ports and /etc
        files. Returns the namespace file to join, "host", or None for a new
        namespace with loopback only (`--network none`). `links`: the /etc/hosts
        lines (names, address) of its legacy links, after --add-host's.
        `ahead`: the namespace and its veths (2-3 ms of kernel work) may still
        be in the making when this returns, while the caller mounts the
        rootfs and builds the spec; `ready(cid)` waits for them."""
        mode = self.mode(hostconfig)
        hostname = config.get("Hostname") or cid[:12]
        extra = [etcfiles.parse_add_host(h) for h in hostconfig.get("ExtraHosts") or []]
        extra += links or []
        if mode == "host":
            self.write_etc_files(cid, config, hostconfig, container_dir)
            return "host"
        if mode == "none":
            etcfiles.write(container_dir / "hosts", etcfiles.hosts([], extra))
            self._write_resolv(container_dir, hostconfig)
            etcfiles.write(container_dir / "hostname", hostname + "\n")
            return None
        if mode.startswith("container:"):
            raise InvalidParameter("container network mode is resolved by the container service")
        netns = str(self.netns_dir / cid)
        with self._lock:
            if self.sandbox_key(cid) or os.path.exists(netns):
                self.teardown(cid)  # a left-over from a crash
            own: list[tuple[str, str]] = []
            gateway = ""
            user_net = False
            net = self.get(mode)  # NotFound: dockerd's "network x not found" at start
            rows = self._endpoint_rows(container_id=cid)
            if not any(r["network_id"] == net["Id"] for r in rows):
                with self.db.transaction() as c:
                    c.execute("INSERT INTO endpoints(container_id, network_id, seq, config) "
                              "VALUES (?, ?, 0, '{}')", (cid, net["Id"]))
                rows = self._endpoint_rows(container_id=cid)
            bridges = len(self._bridges_seen)
            # The kernel's part on a thread of its own, once the addresses are
            # known (not through the rootless namespace's helper: in line there).
            later: list[tuple[Any, ...]] | None = [] if not self.rootless else None
            if later is None:
                _core.netns_create(netns)
            try:
                # What a start records (the namespace, addresses, ports) a
                # power cut makes moot: no disk sync for it (see `restore`).
                with self.db.transaction(durable=False) as c:
                    c.execute("INSERT OR REPLACE INTO sandboxes(container_id, netns, ports) "
                              "VALUES (?, ?, '[]')", (cid, netns))
                for r in sorted(rows, key=lambda r: r["seq"]):
                    net = self._by_id(r["network_id"])
                    ip4, _ = self._plug(cid, net, r, netns, f"eth{r['seq']}",
                                        config.get("MacAddress") if not own else None, later)
                    self.events.emit("network", "connect", net["Id"],
                                     {"container": cid, "name": net["Name"], "type": "bridge"})
                    user_net = user_net or net["Name"] != "bridge"
                    if ip4 and not own:
                        own.append((ip4, hostname))
                        gateway = self._gateway(net)
                if later is not None:
                    self._making[cid] = _core.sandbox_async(netns, later)
                published = self._publish(cid, name, hostconfig, config)
                if published:
                    with self.db.transaction(durable=False) as c:
                        c.execute("UPDATE sandboxes SET ports=? WHERE container_id=?",
                                  (json.dumps([[b.proto, b.ctr_port, b.host_ip, b.host_port]
                                               for b in published]), cid))
                self._serve_ports(cid, published)
                # The rules change with a bridge new to them or a published
                # port, not with each container.
                if self.opts.iptables and (published or len(self._bridges_seen) != bridges
                                           or self._fw_ports is None):
                    self._apply_firewall()
            except BaseException:
                self.teardown(cid)
                raise
        # host-gateway: the host's address on the container's first network
        extra = [(n, gateway if a == "host-gateway" else a) for n, a in extra]
        etcfiles.write(container_dir / "hosts", etcfiles.hosts(own, extra))
        upstream = self._write_resolv(container_dir, hostconfig, embedded=user_net)
        etcfiles.write(container_dir / "hostname", hostname + "\n")
        if user_net:
            with self.db.transaction(durable=False) as c:
                c.execute("UPDATE sandboxes SET upstream=? WHERE container_id=?",
                          (json.dumps(upstream), cid))
            try:
                self.ready(cid)  # its server's socket is made inside the namespace
                self.dns.attach(cid, netns, upstream)
            except BaseException:
                self.teardown(cid)
                raise
        if not ahead:
            try:
                self.ready(cid)
            except BaseException:
                self.teardown(cid)
                raise
        return netns

    def ready(self, cid: str) -> None:
        """Wait for the namespace and veths of `setup(..., ahead=True)`;
        NetworkSetupError with the kernel's words if they failed (the caller
        tears down)."""
        with self._lock:
            job = self._making.pop(cid, None)
        if job is not None:
            try:
                job.join()
            except (OSError, ValueError) as e:
                raise NetworkSetupError(f"failed to set up container networking: {e}") from e

    @property
    def dns(self) -> EmbeddedDNS:
        if self._dns is None:
            self._dns = EmbeddedDNS(self._dns_lookup, self._dns_reverse)
        return self._dns

    def _peers(self, cid: str) -> list[Any]:
        """The active endpoints that share a user network with `cid`'s."""
        return self.db.query(
            "SELECT e2.container_id, e2.ipv4, e2.ipv6, e2.config, n.name AS network "
            "FROM endpoints e1 JOIN endpoints e2 ON e1.network_id = e2.network_id "
            "JOIN networks n ON n.id = e1.network_id WHERE e1.container_id=? AND "
            "e1.endpoint_id IS NOT NULL AND e2.endpoint_id IS NOT NULL AND n.name != 'bridge'",
            (cid,))

    def _dns_lookup(self, cid: str, name: str, family: int) -> list[str]:
        # --link target:alias on a user network: the alias names the target for
        # the linking container only
        for r in self._endpoint_rows(container_id=cid):
            for link in json.loads(r["config"] or "{}").get("Links") or []:
                target, _, alias = link.partition(":")
                if name == (alias or target).lower() and name != target.lower():
                    name = target.lstrip("/").lower()
        out: list[str] = []
        for r in self._peers(cid):
            other = r["container_id"]
            names = {self.container_name(other).lstrip("/").lower(), other[:12]}
            names.update(a.lower() for a in json.loads(r["config"] or "{}").get("Aliases") or [])
            if name in names or name in {f"{n}.{r['network'].lower()}" for n in names}:
                ip = r["ipv4"] if family == 4 else r["ipv6"]
                if ip and ip not in out:
                    out.append(ip)
        return out

    def _dns_reverse(self, cid: str, addr: str) -> str | None:
        for r in self._peers(cid):
            if addr in (r["ipv4"], r["ipv6"]):
                return f"{self.container_name(r['container_id']).lstrip('/')}.{r['network']}"
        return None

    def _write_resolv(self, container_dir: Path, hostconfig: dict[str, Any],
                      embedded: bool = False) -> list[str]:
        host = etcfiles.host_resolv()
        if self.rootless and not embedded:
            # Docker rootless's: slirp4netns's DNS proxy, which asks the host's
            # resolvers (loopback ones too); the embedded server asks them itself
            host = re.sub(r"(?m)^\s*nameserver\s.*$", "", host) + f"nameserver {SLIRP_DNS}\n"
        text, upstream = etcfiles.resolv(
            host, list(hostconfig.get("Dns") or self.opts.dns),
            list(hostconfig.get("DnsSearch") or self.opts.dns_search),
            list(hostconfig.get("DnsOptions") or self.opts.dns_opts), embedded=embedded)
        etcfiles.write(container_dir / "resolv.conf", text)
        return upstream

    def _gateway(self, net: dict[str, Any]) -> str:
        return next((str(s.gateway) for s in self._subnets(net) if s.subnet.version == 4), "")

    def _by_id(self, nid: str) -> dict[str, Any]:
        r = self.db.one("SELECT data FROM networks WHERE id=?", (nid,))
        if not r:
            raise NotFound(f"network {nid} not found")
        return json.loads(r["data"])

    def _ensure_bridge(self, net: dict[str, Any]) -> str:
        """The network's bridge, up with its gateway addresses; set up once per
        daemon process (a restart checks each again)."""
        br = self.bridge_name(net)
        if br in self._bridges_seen:
            return br
        subs = self._subnets(net)
        addrs = [f"{s.gateway}/{s.prefixlen}" for s in subs]
        mtu = int((net.get("Options") or {}).get(OPT + "driver.mtu") or self.opts.mtu)
        first = subs[0].gateway if subs else None
        mac = mac_for(first) if isinstance(first, ipaddress.IPv4Address) else None
        self._k(_core.bridge_ensure, br, addrs, mtu, mac)
        if self.opts.iptables and not self.rootless:  # no other firewall in the rootless netns
            firewall.forward_policy_compat(br)
        if self.opts.ip_forward:
            self._k(firewall.sysctl, "net.ipv4.ip_forward", "1")
            if net.get("EnableIPv6"):
                self._k(firewall.sysctl, "net.ipv6.conf.all.forwarding", "1")
        self._bridges_seen.add(br)
        return br

    def _plug(self, cid: str, net: dict[str, Any], row: Any, netns: str,
              ifname: str, mac: str | None = None, later: list[tuple[Any, ...]] | None = None
              ) -> tuple[str | None, str | None]:
        """Connect the namespace to one network; `mac`: the container's
        `--mac-address` (API < 1.44 keeps it in Config). With `later` the
        veth's arguments go there (`_core.sandbox_async`) instead of to the
        kernel now."""
        cfg = json.loads(row["config"] or "{}")
        want = (cfg.get("IPAMConfig") or {})
        user_net = net["Name"] != "bridge"
        if (want.get("IPv4Address") or want.get("IPv6Address")) and not user_net:
            raise InvalidParameter("user specified IP address is supported on user defined "
                                   "networks only")
        if cfg.get("Aliases") and not user_net:
            raise InvalidParameter("network-scoped alias is supported only for containers in "
                                   "user defined networks")
        br = self._ensure_bridge(net)
        ip4 = ip6 = None
        addrs, gws = [], []
        with self.db.transaction(durable=False) as c:
            for s in self._subnets(net):
                if s.subnet.version == 6 and not net.get("EnableIPv6"):
                    continue
                used = {r[0] for r in c.execute(
                    f"SELECT ipv{s.subnet.version} FROM endpoints WHERE network_id=? AND "
                    f"ipv{s.subnet.version} IS NOT NULL", (net["Id"],))}
                key = "IPv4Address" if s.subnet.version == 4 else "IPv6Address"
                if s.subnet.version == 4 and ip4 or s.subnet.version == 6 and ip6:
                    continue
                if want.get(key) and ipaddress.ip_address(want[key]) not in s.subnet:
                    if len([x for x in self._subnets(net) if x.subnet.version == s.subnet.version]) == 1:
                        raise InvalidParameter(f"Invalid address {want[key]}: It does not belong "
                                               "to any of this network's subnets")
                    continue
                a = s.allocate(used, want.get(key))
                addrs.append(f"{a}/{s.prefixlen}")
                gws.append(str(s.gateway))
                if s.subnet.version == 4:
                    ip4 = str(a)
                else:
                    ip6 = str(a)
            mac = cfg.get("MacAddress") or mac or (
                mac_for(ipaddress.IPv4Address(ip4)) if ip4 else
                "02:42:" + os.urandom(4).hex(":"))
            c.execute("UPDATE endpoints SET endpoint_id=?, ipv4=?, ipv6=?, mac=? "
                      "WHERE container_id=? AND network_id=?",
                      (generate_id(), ip4, ip6, mac, cid, net["Id"]))
        host_if = "dyv" + os.urandom(4).hex()[:7]
        # the default route goes through the first network only, as with dockerd
        args = (br, host_if, ifname, mac, addrs, gws if ifname == "eth0" else [],
                int((net.get("Options") or {}).get(OPT + "driver.mtu") or self.opts.mtu))
        if later is not None:
            later.append(args)
        else:
            self._k(_core.endpoint_add, netns, *args)
        return ip4, ip6

    def _publish(self, cid: str, name: str, hostconfig: dict[str, Any],
                 config: dict[str, Any]) -> list[Binding]:
        wanted = bindings(hostconfig.get("PortBindings"), config.get("ExposedPorts"),
                          bool(hostconfig.get("PublishAllPorts")), "")
        if not wanted:
            return []
        r = self.db.one("SELECT endpoint_id, network_id FROM endpoints WHERE container_id=? "
                        "ORDER BY seq", (cid,))
        ep = r["endpoint_id"] if r else ""
        # the network's own host_binding_ipv4 option, else the daemon's --ip
        opts = (self._by_id(r["network_id"]).get("Options") or {}) if r else {}
        default_ip = opts.get(OPT + "bridge.host_binding_ipv4") or self.opts.ip
        default_ip = "" if default_ip == "0.0.0.0" else default_ip
        wanted = [Binding(b.proto, b.ctr_port, b.host_ip or default_ip, b.host_port)
                  for b in wanted]
        if self.rootless:
            _check_rootless_ports(name.lstrip("/"), ep, wanted)
        return self.ports.reserve(cid, name.lstrip("/"), ep, wanted)

    def _serve_ports(self, cid: str, published: list[Binding]) -> None:
        """Rootless: forward the reserved ports to the container's first
        IPv4 address (the one root's DNAT targets)."""
        if not self._forward or not published:
            return
        ep = self.db.one("SELECT ipv4 FROM endpoints WHERE container_id=? AND ipv4 IS NOT NULL "
                         "ORDER BY seq", (cid,))
        if ep:
            self._forward.serve(cid, list(zip(published, self.ports.sockets(cid))), ep["ipv4"])

    def connect(self, ref: str, cid: str, cname: str, cfg: dict[str, Any],
                hostconfig: dict[str, Any], running: bool) -> None:
        """`docker network connect`, to a stopped container or a running one."""
        cfg = check_endpoint(cfg)
        with self._lock:
            net = self.get(ref)
            mode = self.mode(hostconfig)
            if net["Name"] in ("host", "none") or mode == "host":
                raise Forbidden("container cannot be disconnected from host network or "
                                 "connected to host network")
            if mode == "none" or mode.startswith(("container:", "ns:")):
                raise Forbidden("container sharing network namespace with another container "
                                 "or host cannot be connected to any other network"
                                 if mode != "none" else "container cannot be connected to "
                                 "multiple networks with one of the networks in private "
                                 "(none) mode")
            rows = self._endpoint_rows(container_id=cid)
            if any(r["network_id"] == net["Id"] for r in rows):
                raise Forbidden(f"endpoint with name {cname.lstrip('/')} already exists in "
                                 f"network {net['Name']}")
            if net["Name"] == "bridge" and (cfg.get("Aliases") or
                                            (cfg.get("IPAMConfig") or {}).get("IPv4Address")):
                raise InvalidParameter("network-scoped alias is supported only for containers "
                                       "in user defined networks" if cfg.get("Aliases") else
                                       "user specified IP address is supported on user "
                                       "defined networks only")
            seq = max((r["seq"] for r in rows), default=-1) + 1
            with self.db.transaction() as c:
                c.execute("INSERT INTO endpoints(container_id, network_id, seq, config) "
                          "VALUES (?, ?, ?, ?)", (cid, net["Id"], seq, json.dumps(cfg)))
            sb = self.db.one("SELECT netns, upstream FROM sandboxes WHERE container_id=?", (cid,))
            if running and sb:
                row = self._endpoint_rows(net["Id"], cid)[0]
                try:
                    self._plug(cid, net, row, sb["netns"], f"eth{seq}")
                except BaseException:
                    with self.db.transaction() as c:
                        c.execute("DELETE FROM endpoints WHERE container_id=? AND network_id=?",
                                  (cid, net["Id"]))
                    raise
                if net["Name"] != "bridge" and sb["upstream"] is None:
                    # names of its new network resolve through the embedded server
                    # (resolv.conf stays as written at start, as with dockerd)
                    self.dns.attach(cid, sb["netns"], [])
                if self.opts.iptables:
                    self._apply_firewall()
        self.events.emit("network", "connect", net["Id"],
                         {"container": cid, "name": net["Name"], "type": "bridge"})

    def disconnect(self, ref: str, cid: str, force: bool, hostconfig: dict[str, Any]) -> None:
        with self._lock:
            net = self.get(ref)
            if net["Name"] == "host" or self.mode(hostconfig) == "host":
                raise Forbidden("container cannot be disconnected from host network or "
                                 "connected to host network")
            rows = self._endpoint_rows(net["Id"], cid)
            if not rows:
                raise Forbidden(f"container {cid} is not connected to network {net['Name']}")
            sb = self.db.one("SELECT netns FROM sandboxes WHERE container_id=?", (cid,))
            if sb and rows[0]["endpoint_id"]:
                _core.endpoint_remove(sb["netns"], f"eth{rows[0]['seq']}")
            with self.db.transaction() as c:
                c.execute("DELETE FROM endpoints WHERE container_id=? AND network_id=?",
                          (cid, net["Id"]))
            if sb and self.opts.iptables:
                self._apply_firewall()
        self.events.emit("network", "disconnect", net["Id"],
                         {"container": cid, "name": net["Name"], "type": "bridge"})

    def teardown(self, cid: str) -> None:
        """After a container stops (or instead of a half-done setup)."""
        with self._lock:
            job = self._making.pop(cid, None)
            if job is not None:
                job.wait()  # what it makes goes below, not after
            if self._forward:
                self._forward.stop(cid)
            self.ports.release(cid)
            if self._dns:
                self._dns.detach(cid)
            r = self.db.one("SELECT netns, ports FROM sandboxes WHERE container_id=?", (cid,))
            had_rules = bool(r) and r["ports"] != "[]"
            for e in self.db.query("SELECT network_id FROM endpoints WHERE container_id=? AND "
                                   "endpoint_id IS NOT NULL", (cid,)):
                name = self.db.one("SELECT name FROM networks WHERE id=?", (e["network_id"],))
                self.events.emit("network", "disconnect", e["network_id"],
                                 {"container": cid, "name": name["name"] if name else "",
                                  "type": "bridge"})
            # (a commit is a disk sync: none when there is nothing to forget)
            if r or self.db.one("SELECT 1 FROM endpoints WHERE container_id=? AND "
                                "endpoint_id IS NOT NULL", (cid,)):
                with self.db.transaction(durable=False) as c:
                    c.execute("UPDATE endpoints SET endpoint_id=NULL, ipv4=NULL, ipv6=NULL, "
                              "mac=NULL WHERE container_id=?", (cid,))
                    c.execute("DELETE FROM sandboxes WHERE container_id=?", (cid,))
            # the veths go with the namespace: the kernel frees them when its last user exits
            _core.netns_remove(str(self.netns_dir / cid))
            if had_rules and self.opts.iptables:
                self._apply_firewall()

    def _apply_firewall(self) -> None:
        """Bring the packet rules in line with the records: the whole table when
        the set of bridges changed (a bridge set up, a network removed), else
        only the published ports that came or went."""
        rs = firewall.Ruleset()
        for n in self._rows():
            if n["Driver"] != "bridge" or self.bridge_name(n) not in self._bridges_seen:
                continue
            subs = self._subnets(n)
            opts = n.get("Options") or {}
            rs.bridges.append(firewall.BridgeRules(
                self.bridge_name(n),
                tuple(str(s.subnet) for s in subs if s.subnet.version == 4),
                tuple(str(s.subnet) for s in subs if s.subnet.version == 6),
                internal=bool(n.get("Internal")),
                icc=_bool_opt(opts, OPT + "bridge.enable_icc", True),
                masquerade=_bool_opt(opts, OPT + "bridge.enable_ip_masquerade",
                                     self.opts.ip_masq)))
        for sb in self.db.query("SELECT container_id, ports FROM sandboxes"):
            ep = self.db.one("SELECT e.ipv4, e.network_id FROM endpoints e WHERE "
                             "e.container_id=? AND e.ipv4 IS NOT NULL ORDER BY e.seq",
                             (sb["container_id"],))
            if not ep:
                continue
            br = self.bridge_name(self._by_id(ep["network_id"]))
            if self.rootless:
                continue  # forwarded in-process, not DNATed
            for proto, cport, hip, hport in json.loads(sb["ports"]):
                rs.ports.append(firewall.PortRule(proto, hip, hport, ep["ipv4"], cport, br))
        ports = set(rs.ports)
        if self._fw_bridges == rs.bridges and self._fw_ports is not None and \
                firewall.backend() == "nftables":
            self._k(firewall.update_ports, ports - self._fw_ports, self._fw_ports - ports)
        else:
            self._k(firewall.apply, rs)
        self._fw_bridges, self._fw_ports = list(rs.bridges), ports

    # --- consistency ------------------------------------------------------
    def check(self, running: set[str], existing: set[str], repair: bool,
              grace: float) -> list[tuple[str, str, bool, bool]]:
        """What `system check` finds wrong in networking: (id, problem,
        repairable, repaired). A namespace, address, published port, bridge or
        host veth must belong to a running container or an existing network;
        `repair` tears down what belongs to nothing and re-applies the rules.
        A namespace younger than `grace` seconds may be a start in progress."""
        def young(path: Path) -> bool:
            try:
                return time.time() - os.stat(path).st_mtime < grace
            except OSError:
                return False

        out: list[tuple[str, str, bool, bool]] = []
        with self._lock:
            torn = set()
            for sb in self.db.query("SELECT container_id FROM sandboxes"):
                cid = sb["container_id"]
                if cid not in running and not young(self.netns_dir / cid):
                    out.append((cid, "network namespace of a container that isn't running",
                                True, repair))
                    torn.add(cid)
            for e in self.db.query("SELECT container_id, network_id, ipv4, ipv6 FROM endpoints "
                                   "WHERE endpoint_id IS NOT NULL"):
                cid = e["container_id"]
                if cid not in running and cid not in torn and not young(self.netns_dir / cid):
                    out.append((cid, f"address {e['ipv4'] or e['ipv6']} held for a container "
                                "that isn't running", True, repair))
                    torn.add(cid)
            gone = {e["container_id"] for e in self.db.query(
                "SELECT DISTINCT container_id FROM endpoints")} - existing
            for cid in sorted(gone):
                out.append((cid, "endpoint of a container that doesn't exist", True, repair))
            known = {r["container_id"] for r in self.db.query("SELECT container_id FROM sandboxes")}
            stray_ns = [f for f in self.netns_dir.iterdir()
                        if f.name not in known and not young(f)] if self.netns_dir.is_dir() else []
            for f in stray_ns:
                out.append((f.name, "namespace file that belongs to nothing", True, repair))
            # only bridges known to be ours: another daemon may share the host
            bridges = {self.bridge_name(n): n["Id"] for n in self._rows()
                       if n["Driver"] == "bridge"}
            links = set(self._k(_core.link_names, ""))
            stray_br = [r["name"] for r in self.db.query("SELECT name FROM doomed_links")
                        if r["name"] in links and r["name"] not in bridges]
            for b in stray_br:
                out.append((b, "bridge of no network", True, repair))
            masters: dict[str, list[str]] = {}
            for v in links:
                if v.startswith("dyv"):
                    info = self._k(_core.link_info, None, v)
                    if info and info["master"]:
                        masters.setdefault(info["master"], []).append(v)
            for br, nid in bridges.items():
                veths = masters.get(br, [])
                n = self.db.one("SELECT COUNT(*) AS n FROM endpoints WHERE network_id=? AND "
                                "endpoint_id IS NOT NULL", (nid,))["n"]
                if len(veths) > n:
                    # a namespace kept alive by something else holds them
                    out.append((br, f"{len(veths)} host veths on it for {n} endpoints: "
                                f"{', '.join(sorted(veths))}", False, False))
            fw = self._port_rules_drift() if self.opts.iptables else ""
            if fw:
                out.append(("inet dockyard", fw, True, repair))
            if repair:
                for cid in torn:
                    self.teardown(cid)
                with self.db.transaction() as c:
                    for cid in gone:
                        c.execute("DELETE FROM endpoints WHERE container_id=?", (cid,))
                for f in stray_ns:
                    _core.netns_remove(str(f))
                for b in stray_br:
                    self._delete_doomed(b)
                if fw:
                    self._fw_bridges = self._fw_ports = None  # render the whole table
                    self._apply_firewall()
        return out

    def _port_rules_drift(self) -> str:
        """How the live port maps differ from the published ports on record
        ("" when they agree, or when there is no table to read)."""
        want = set()
        for sb in self.db.query("SELECT container_id, ports FROM sandboxes"):
            for proto, _cport, hip, hport in json.loads(sb["ports"]):
                if ":" not in (hip or ""):
                    want.add((hip if hip not in ("", "0.0.0.0") else "", proto, int(hport)))
        if self.rootless:
            return ""  # no port maps: forwarded in-process
        have = set()
        for m in ("publish-any", "publish-addr"):
            text = nft.output(f"list map inet {firewall.TABLE} {m}")
            if text is None:
                return ""
            for k in re.findall(r"([0-9.]+ \. )?(tcp|udp|sctp) \. (\d+) :", text):
                have.add((k[0].split(" ")[0] if k[0] else "", k[1], int(k[2])))
        extra, missing = have - want, want - have
        parts = []
        if extra:
            parts.append(f"rules for ports nobody publishes: {sorted(extra)}")
        if missing:
            parts.append(f"published ports without their rules: {sorted(missing)}")
        return "; ".join(parts)

    # --- daemon start -------------------------------------------------------
    def restore(self, running: set[str]) -> None:
        """After a daemon (re)start: tear down what stopped meanwhile, hold the
        running containers' ports again, rebuild the rules once."""
        with self._lock:
            for sb in self.db.query("SELECT container_id, netns, ports, upstream FROM sandboxes"):
                cid = sb["container_id"]
                if cid not in running:
                    self.teardown(cid)
                    continue
                if sb["upstream"] is not None:
                    try:
                        self.dns.attach(cid, sb["netns"], json.loads(sb["upstream"]))
                    except OSError as e:
                        log.warning("container %s: embedded DNS: %s", cid[:12], e)
                held = [Binding(p, c, h, hp) for p, c, h, hp in json.loads(sb["ports"])]
                try:
                    self.ports.reserve(cid, cid[:12], "", held)
                    self._serve_ports(cid, held)
                except DockyardError as e:
                    log.warning("container %s: %s", cid[:12], e)
            for n in self._rows():
                if n["Driver"] == "bridge" and self.db.one(
                        "SELECT 1 FROM endpoints WHERE network_id=? AND endpoint_id IS NOT NULL",
                        (n["Id"],)):
                    self._ensure_bridge(n)
            if self.opts.iptables:
                self._apply_firewall()
            for r in self.db.query("SELECT name FROM doomed_links"):
                self._delete_doomed(r["name"])  # a crash between record and link
            # namespace files nobody owns (a crash between create and record)
            known = {r["container_id"] for r in self.db.query("SELECT container_id FROM sandboxes")}
            for f in self.netns_dir.iterdir():
                if f.name not in known:
                    _core.netns_remove(str(f))


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _unprivileged_port_start() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 1024


def _check_rootless_ports(name: str, endpoint: str, wanted: list[Binding]) -> None:
    """Rootless: SCTP can't be forwarded; a host port below
    ip_unprivileged_port_start can't be bound by the user: refused with Docker
    rootless's text (rootlesskit's port driver, worded as for podman: no
    CAP_NET_BIND_SERVICE hint, there is no rootlesskit binary)."""
    start = _unprivileged_port_start()
    for b in wanted:
        if b.proto == "sctp":
            raise InvalidParameter("rootless: publishing SCTP ports is not supported in "
                                   "rootless mode (the forwarder relays TCP and UDP)")
        if 0 < b.host_port < start:
            addr = f"{b.host_ip or '0.0.0.0'}:{b.host_port}"
            raise PortAllocated(
                f"driver failed programming external connectivity on endpoint {name} "
                f"({endpoint}): Error starting userland proxy: error while calling "
                f"PortManager.AddPort(): cannot expose privileged port {b.host_port}, you "
                f'might need to add "net.ipv4.ip_unprivileged_port_start=0" (currently '
                f"{start}) to /etc/sysctl.conf, or choose a larger port number (>= {start}): "
                f"listen {b.proto} {addr}: bind: permission denied")
