"""The network service: Docker's networks and each container's endpoints on them.

Records live in the engine's database: `networks` (the Docker-shaped network
without its containers) and `endpoints` (a container's settings on one network,
with the address it holds while running; a unique index per network makes a
double allocation impossible). A running container's network namespace is a
file under `<exec-root>/netns/` (its SandboxKey); the kernel side (bridges,
veths, addresses, routes) is `_core`'s netlink code, the packet rules are
`firewall.py`'s one nftables table, rebuilt from these records.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import _core
from ..errors import Conflict, DockyardError, InvalidParameter, NotFound
from ..events import EventLog
from ..filters import labels_match
from ..ids import generate_id
from ..imageconfig import now_rfc3339
from ..store.db import Database
from . import etcfiles, firewall
from .dns import EmbeddedDNS
from .ipam import DEFAULT_POOLS, Pool, Subnet, choose_subnet, host_routes, mac_for, parse_addr
from .ports import Binding, PortReservations, bindings

log = logging.getLogger("dockyard.network")

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS networks (
        id      TEXT PRIMARY KEY,
        name    TEXT NOT NULL UNIQUE,
        data    TEXT NOT NULL           -- the network as the API shows it, minus Containers
    )""",
    """CREATE TABLE IF NOT EXISTS endpoints (
        container_id TEXT NOT NULL,
        network_id   TEXT NOT NULL REFERENCES networks(id),
        seq          INTEGER NOT NULL,  -- connection order: eth0, eth1, ...
        config       TEXT NOT NULL,     -- EndpointSettings as given (IPAMConfig, Aliases, ...)
        endpoint_id  TEXT,              -- set while the container runs
        ipv4         TEXT,
        ipv6         TEXT,
        mac          TEXT,
        PRIMARY KEY (container_id, network_id)
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS endpoints_ipv4 ON endpoints(network_id, ipv4)",
    "CREATE UNIQUE INDEX IF NOT EXISTS endpoints_ipv6 ON endpoints(network_id, ipv6)",
    # a running container's network namespace and the host ports it publishes
    """CREATE TABLE IF NOT EXISTS sandboxes (
        container_id TEXT PRIMARY KEY,
        netns        TEXT NOT NULL,
        ports        TEXT NOT NULL,     -- [[proto, ctr_port, host_ip, host_port], ...]
        upstream     TEXT               -- the embedded DNS server's upstream resolvers
    )""",
]

BUILTIN = ("bridge", "host", "none")
OPT = "com.docker.network."
FILTERS = {"dangling", "driver", "id", "label", "name", "scope", "type"}


@dataclass
class NetworkOptions:
    """The daemon's networking options (dockerd's names)."""

    bridge: str = "dockyard0"            # -b/--bridge; "none": no default bridge
    bip: str | None = None               # --bip: the default bridge's gateway/prefix
    fixed_cidr: str | None = None        # --fixed-cidr: its containers' addresses
    pools: tuple[Pool, ...] = DEFAULT_POOLS
    icc: bool = True
    ip: str = "0.0.0.0"                  # --ip: default host address of published ports
    ip_forward: bool = True
    ip_masq: bool = True
    iptables: bool = True
    mtu: int = 1500
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opts: list[str] = field(default_factory=list)


def _bool_opt(opts: dict[str, str], key: str, default: bool) -> bool:
    v = opts.get(key)
    return default if v is None else str(v).lower() in ("1", "true", "yes")


class NetworkService:
    def __init__(self, db: Database, events: EventLog, exec_root: Path,
                 options: NetworkOptions | None = None) -> None:
        self.db = db
        self.events = events
        self.opts = options or NetworkOptions()
        self.netns_dir = Path(exec_root) / "netns"
        self.netns_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.ports = PortReservations()
        self._lock = threading.RLock()
        self._dns: EmbeddedDNS | None = None
        self._bridges_seen: set[str] = set()  # bridges set up by this process
        # what the packet rules were last brought to (None: unknown, render all)
        self._fw_bridges: list[firewall.BridgeRules] | None = None
        self._fw_ports: set[firewall.PortRule] | None = None
        # A container's name by ID (the engine sets it: the DNS server answers by name).
        self.container_name: Callable[[str], str] = lambda cid: ""
        with db.transaction() as c:
            for stmt in SCHEMA:
                c.execute(stmt)
        self._builtins()

    # --- records ------------------------------------------------------------
    def _rows(self) -> list[dict[str, Any]]:
        return [json.loads(r["data"]) for r in
                self.db.query("SELECT data FROM networks ORDER BY name")]

    def _put(self, c: Any, net: dict[str, Any]) -> None:
        c.execute("INSERT OR REPLACE INTO networks(id, name, data) VALUES (?, ?, ?)",
                  (net["Id"], net["Name"], json.dumps(net)))

    def _builtins(self) -> None:
        have = {n["Name"]: n for n in self._rows()}
        with self.db.transaction() as c:
            for name, driver in (("host", "host"), ("none", "null")):
                if name not in have:
                    self._put(c, self._record(name, driver, {"Driver": "default", "Options": None,
                                                             "Config": []}, {}, {}))
            if self.opts.bridge == "none":
                if "bridge" in have:
                    c.execute("DELETE FROM endpoints WHERE network_id=?", (have["bridge"]["Id"],))
                    c.execute("DELETE FROM networks WHERE id=?", (have["bridge"]["Id"],))
                return
            old = have.get("bridge")
            cfg = self._default_bridge_ipam(old)
            opts = {
                OPT + "bridge.default_bridge": "true",
                OPT + "bridge.enable_icc": str(self.opts.icc).lower(),
                OPT + "bridge.enable_ip_masquerade": str(self.opts.ip_masq).lower(),
                OPT + "bridge.host_binding_ipv4": self.opts.ip,
                OPT + "bridge.name": self.opts.bridge,
                OPT + "driver.mtu": str(self.opts.mtu),
            }
            net = self._record("bridge", "bridge", {"Driver": "default", "Options": None,
                                                    "Config": [cfg]}, opts, {})
            if old:
                net["Id"], net["Created"] = old["Id"], old["Created"]
            self._put(c, net)

    def _default_bridge_ipam(self, old: dict[str, Any] | None) -> dict[str, str]:
        if self.opts.bip:
            iface = ipaddress.ip_interface(self.opts.bip)
            cfg = {"Subnet": str(iface.network), "Gateway": str(iface.ip)}
        elif old and old["IPAM"]["Config"]:
            cfg = {"Subnet": old["IPAM"]["Config"][0]["Subnet"]}
        else:
            taken = host_routes() + [ipaddress.ip_network(s["Subnet"]) for n in self._rows()
                                     for s in n["IPAM"]["Config"]]
            cfg = {"Subnet": str(choose_subnet(self.opts.pools, taken))}
        if self.opts.fixed_cidr:
            cfg["IPRange"] = self.opts.fixed_cidr
        return cfg

    def _record(self, name: str, driver: str, ipam: dict[str, Any], options: dict[str, str],
                labels: dict[str, str], internal: bool = False, attachable: bool = False,
                ipv6: bool = False) -> dict[str, Any]:
        return {"Name": name, "Id": generate_id(), "Created": now_rfc3339(), "Scope": "local",
                "Driver": driver, "EnableIPv6": ipv6, "IPAM": ipam, "Internal": internal,
                "Attachable": attachable, "Ingress": False, "ConfigFrom": {"Network": ""},
                "ConfigOnly": False, "Options": options, "Labels": labels}

    def get(self, ref: str) -> dict[str, Any]:
        """dockerd's lookup: full ID, then name, then a unique ID prefix."""
        nets = self._rows()
        for n in nets:
            if n["Id"] == ref:
                return n
        for n in nets:
            if n["Name"] == ref:
                return n
        hits = [n for n in nets if ref and n["Id"].startswith(ref)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise InvalidParameter(f"network {ref} is ambiguous ({len(hits)} matches found "
                                   "based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    @staticmethod
    def bridge_name(net: dict[str, Any]) -> str:
        return (net.get("Options") or {}).get(OPT + "bridge.name") or f"dy-{net['Id'][:12]}"

    def _subnets(self, net: dict[str, Any]) -> list[Subnet]:
        return [Subnet.from_config(s) for s in net["IPAM"]["Config"] or []]

    # --- API: networks ------------------------------------------------------
    def create(self, body: dict[str, Any]) -> dict[str, str]:
        _check_create(body)
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidParameter("network name must be a non-empty string")
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise _Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        ipam_in = body.get("IPAM") or {}
        if (ipam_in.get("Driver") or "default") != "default":
            raise NotFound(f'plugin "{ipam_in["Driver"]}" not found')
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
        ipv6 = bool(body.get("EnableIPv6"))
        if name in BUILTIN:
            raise _Forbidden(f"operation is not permitted on predefined {name} network ")
        with self._lock:
            if any(n["Name"] == name for n in self._rows()):
                raise Conflict(f"network with name {name} already exists")
            configs = [self._check_ipam(dict(c)) for c in ipam_in.get("Config") or []]
            others = [s.subnet for n in self._rows() for s in self._subnets(n)]
            for cfg in configs:
                sub = ipaddress.ip_network(cfg["Subnet"], strict=False)
                if any(sub.overlaps(o) for o in others if o.version == sub.version):
                    raise _Forbidden("Pool overlaps with other one on this address space")
                others.append(sub)
            if not any(ipaddress.ip_network(c["Subnet"]).version == 4 for c in configs):
                pick = choose_subnet(self.opts.pools, host_routes() + others)
                auto = {"Subnet": str(pick)}
                ipam = {"Driver": "default", "Options": ipam_in.get("Options"),
                        "Config": [auto] + configs}
            else:
                # Options stay as sent: {} from the docker CLI, null from docker-py
                ipam = {"Driver": "default", "Options": ipam_in.get("Options"),
                        "Config": configs}
            if ipv6 and not any(ipaddress.ip_network(c["Subnet"]).version == 6
                                for c in ipam["Config"]):
                raise InvalidParameter("could not find an available, non-overlapping IPv6 "
                                       "address pool: give one with --subnet")
            br = options.get(OPT + "bridge.name")
            if br and (len(br) > 15 or "/" in br or br in self._bridge_names()):
                raise InvalidParameter(f"invalid or duplicate bridge name {br}")
            net = self._record(name, "bridge", ipam, options, labels,
                               internal=bool(body.get("Internal")),
                               attachable=bool(body.get("Attachable")), ipv6=ipv6)
            with self.db.transaction() as c:
                self._put(c, net)
        self.events.emit("network", "create", net["Id"], {"name": name, "type": "bridge"})
        return {"Id": net["Id"], "Warning": ""}

    def _bridge_names(self) -> set[str]:
        return {self.bridge_name(n) for n in self._rows() if n["Driver"] == "bridge"}

    @staticmethod
    def _check_ipam(cfg: dict[str, Any]) -> dict[str, Any]:
        raw = str(cfg.get("Subnet") or "")
        try:
            sub = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            raise InvalidParameter(f"Invalid subnet {raw} : invalid CIDR address: {raw}") \
                from None
        out: dict[str, Any] = {"Subnet": raw}
        if cfg.get("IPRange"):
            try:
                rng = ipaddress.ip_network(cfg["IPRange"], strict=False)
            except ValueError:
                raise InvalidParameter(f"invalid CIDR address: {cfg['IPRange']}") from None
            if rng.version != sub.version or not rng.subnet_of(sub):  # type: ignore[arg-type]
                raise InvalidParameter(f"Invalid range {cfg['IPRange']}: it does not belong "
                                       f"to subnet {raw}")
            out["IPRange"] = cfg["IPRange"]
        if cfg.get("Gateway"):
            try:
                gw = ipaddress.ip_address(cfg["Gateway"])
            except ValueError:
                raise InvalidParameter(f"invalid gateway address {cfg['Gateway']} in Ipam "
                                       "configuration") from None
            if gw not in sub:
                raise InvalidParameter(f"failed to allocate gateway ({cfg['Gateway']}): "
                                       "Requested address is out of range")
            out["Gateway"] = cfg["Gateway"]
        aux = cfg.get("AuxiliaryAddresses") or {}
        for k, v in aux.items():
            try:
                a = ipaddress.ip_address(v)
            except ValueError:
                raise InvalidParameter(f"invalid auxiliary address {k}={v}") from None
            if a not in sub:
                raise InvalidParameter(f"invalid auxiliary address {k}={v}: it does not "
                                       f"belong to subnet {raw}")
        if aux:
            out["AuxiliaryAddresses"] = dict(aux)
        return out

    def _endpoint_rows(self, network_id: str | None = None,
                       container_id: str | None = None) -> list[Any]:
        sql, args = "SELECT * FROM endpoints WHERE 1=1", []
        if network_id:
            sql += " AND network_id=?"
            args.append(network_id)
        if container_id:
            sql += " AND container_id=?"
            args.append(container_id)
        return self.db.query(sql + " ORDER BY container_id, seq", tuple(args))

    def inspect(self, ref: str, names: Callable[[str], str]) -> dict[str, Any]:
        net = self.get(ref)
        out = dict(net)
        out["Containers"] = {}
        for r in self._endpoint_rows(net["Id"]):
            if not r["endpoint_id"]:
                continue
            plen = next((s.prefixlen for s in self._subnets(net) if s.subnet.version == 4), 0)
            plen6 = next((s.prefixlen for s in self._subnets(net) if s.subnet.version == 6), 0)
            out["Containers"][r["container_id"]] = {
                "Name": names(r["container_id"]), "EndpointID": r["endpoint_id"],
                "MacAddress": r["mac"] or "",
                "IPv4Address": f"{r['ipv4']}/{plen}" if r["ipv4"] else "",
                "IPv6Address": f"{r['ipv6']}/{plen6}" if r["ipv6"] else ""}
        return out

    def list(self, filters: dict[str, list[str]]) -> list[dict[str, Any]]:
        used = {r["network_id"] for r in self.db.query("SELECT network_id FROM endpoints")}
        out = []
        for n in self._rows():
            if not self._matches(n, filters, used):
                continue
            out.append(dict(n, Containers={}))
        return out

    @staticmethod
    def _matches(n: dict[str, Any], f: dict[str, list[str]], used: set[str]) -> bool:
        if "driver" in f and n["Driver"] not in f["driver"]:
            return False
        if "id" in f and not any(n["Id"].startswith(v) for v in f["id"]):
            return False
        if "name" in f and not any(v in n["Name"] for v in f["name"]):
            return False
        if "scope" in f and n["Scope"] not in f["scope"]:
            return False
        if "label" in f and not labels_match(n.get("Labels") or {}, f["label"]):
            return False
        if "type" in f:
            for t in f["type"]:
                if t not in ("custom", "builtin"):
                    raise InvalidParameter(f"invalid filter: 'type'='{t}'")
            kind = "builtin" if n["Name"] in BUILTIN else "custom"
            if kind not in f["type"]:
                return False
        if "dangling" in f:
            v = f["dangling"][0].lower()
            if v not in ("true", "false", "1", "0"):
                raise InvalidParameter(f"Invalid filter: 'dangling'='{f['dangling'][0]}'")
            dangling = n["Name"] not in BUILTIN and n["Id"] not in used
            if dangling != (v in ("true", "1")):
                return False
        return True

    def remove(self, ref: str) -> None:
        with self._lock:
            net = self.get(ref)
            if net["Name"] in BUILTIN:
                raise _Forbidden(f"{net['Name']} is a pre-defined network and cannot be removed")
            if self._endpoint_rows(net["Id"]):
                raise _Forbidden(f"error while removing network: network {net['Name']} id "
                                 f"{net['Id']} has active endpoints")
            with self.db.transaction() as c:
                c.execute("DELETE FROM networks WHERE id=?", (net["Id"],))
            br = self.bridge_name(net)
            self._bridges_seen.discard(br)
            if self.opts.iptables:
                self._apply_firewall()
                firewall.drop_forward_compat(br)
            _core.link_delete(br)
        self.events.emit("network", "destroy", net["Id"], {"name": net["Name"], "type": "bridge"})

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
                          networking: dict[str, Any] | None) -> list[str]:
        """Check the network settings of a new container and keep its endpoint
        configs; returns dockerd's warnings."""
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
        with self.db.transaction() as c:
            c.execute("INSERT OR REPLACE INTO endpoints(container_id, network_id, seq, config) "
                      "VALUES (?, ?, 0, ?)", (cid, net["Id"], json.dumps(cfg)))
        return warnings

    def container_removed(self, cid: str) -> None:
        self.teardown(cid)
        with self.db.transaction() as c:
            c.execute("DELETE FROM endpoints WHERE container_id=?", (cid,))

    def sandbox_key(self, cid: str) -> str | None:
        r = self.db.one("SELECT netns FROM sandboxes WHERE container_id=?", (cid,))
        return r["netns"] if r else None

    def setup(self, cid: str, name: str, config: dict[str, Any], hostconfig: dict[str, Any],
              container_dir: Path) -> str | None:
        """Before a container starts: its namespace, endpoints, ports and /etc
        files. Returns the namespace file to join, "host", or None for a new
        namespace with loopback only (`--network none`)."""
        mode = self.mode(hostconfig)
        hostname = config.get("Hostname") or cid[:12]
        extra = [etcfiles.parse_add_host(h) for h in hostconfig.get("ExtraHosts") or []]
        if mode == "host":
            etcfiles.write(container_dir / "hosts", _read("/etc/hosts") or etcfiles.HOSTS_HEAD)
            etcfiles.write(container_dir / "resolv.conf", etcfiles.host_resolv())
            etcfiles.write(container_dir / "hostname", hostname + "\n")
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
            _core.netns_create(netns)
            try:
                with self.db.transaction() as c:
                    c.execute("INSERT OR REPLACE INTO sandboxes(container_id, netns, ports) "
                              "VALUES (?, ?, '[]')", (cid, netns))
                for r in sorted(rows, key=lambda r: r["seq"]):
                    net = self._by_id(r["network_id"])
                    ip4, _ = self._plug(cid, net, r, netns, f"eth{r['seq']}",
                                        config.get("MacAddress") if not own else None)
                    self.events.emit("network", "connect", net["Id"],
                                     {"container": cid, "name": net["Name"], "type": "bridge"})
                    user_net = user_net or net["Name"] != "bridge"
                    if ip4 and not own:
                        own.append((ip4, hostname))
                        gateway = self._gateway(net)
                published = self._publish(cid, name, hostconfig, config)
                with self.db.transaction() as c:
                    c.execute("UPDATE sandboxes SET ports=? WHERE container_id=?",
                              (json.dumps([[b.proto, b.ctr_port, b.host_ip, b.host_port]
                                           for b in published]), cid))
                if self.opts.iptables and (rows or published):
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
            with self.db.transaction() as c:
                c.execute("UPDATE sandboxes SET upstream=? WHERE container_id=?",
                          (json.dumps(upstream), cid))
            try:
                self.dns.attach(cid, netns, upstream)
            except BaseException:
                self.teardown(cid)
                raise
        return netns

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
        text, upstream = etcfiles.resolv(
            etcfiles.host_resolv(), list(hostconfig.get("Dns") or self.opts.dns),
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
        _core.bridge_ensure(br, addrs, mtu, mac)
        if self.opts.iptables:
            firewall.forward_policy_compat(br)
        if self.opts.ip_forward:
            firewall.sysctl("net.ipv4.ip_forward", "1")
            if net.get("EnableIPv6"):
                firewall.sysctl("net.ipv6.conf.all.forwarding", "1")
        self._bridges_seen.add(br)
        return br

    def _plug(self, cid: str, net: dict[str, Any], row: Any, netns: str,
              ifname: str, mac: str | None = None) -> tuple[str | None, str | None]:
        """Connect the namespace to one network; `mac`: the container's
        `--mac-address` (API < 1.44 keeps it in Config)."""
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
        with self.db.transaction() as c:
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
        _core.endpoint_add(netns, br, host_if, ifname, mac, addrs,
                           gws if ifname == "eth0" else [],
                           int((net.get("Options") or {}).get(OPT + "driver.mtu")
                               or self.opts.mtu))
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
        return self.ports.reserve(cid, name.lstrip("/"), ep, wanted)

    def connect(self, ref: str, cid: str, cname: str, cfg: dict[str, Any],
                hostconfig: dict[str, Any], running: bool) -> None:
        """`docker network connect`, to a stopped container or a running one."""
        cfg = check_endpoint(cfg)
        with self._lock:
            net = self.get(ref)
            mode = self.mode(hostconfig)
            if net["Name"] in ("host", "none") or mode == "host":
                raise _Forbidden("container cannot be disconnected from host network or "
                                 "connected to host network")
            if mode == "none" or mode.startswith("container:"):
                raise _Forbidden("container sharing network namespace with another container "
                                 "or host cannot be connected to any other network"
                                 if mode != "none" else "container cannot be connected to "
                                 "multiple networks with one of the networks in private "
                                 "(none) mode")
            rows = self._endpoint_rows(container_id=cid)
            if any(r["network_id"] == net["Id"] for r in rows):
                raise _Forbidden(f"endpoint with name {cname.lstrip('/')} already exists in "
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
                raise _Forbidden("container cannot be disconnected from host network or "
                                 "connected to host network")
            rows = self._endpoint_rows(net["Id"], cid)
            if not rows:
                raise _Forbidden(f"container {cid} is not connected to network {net['Name']}")
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
            self.ports.release(cid)
            if self._dns:
                self._dns.detach(cid)
            r = self.db.one("SELECT netns, ports FROM sandboxes WHERE container_id=?", (cid,))
            had_rules = bool(r) and (r["ports"] != "[]" or bool(self.db.one(
                "SELECT 1 FROM endpoints WHERE container_id=? AND endpoint_id IS NOT NULL",
                (cid,))))
            for e in self.db.query("SELECT network_id FROM endpoints WHERE container_id=? AND "
                                   "endpoint_id IS NOT NULL", (cid,)):
                name = self.db.one("SELECT name FROM networks WHERE id=?", (e["network_id"],))
                self.events.emit("network", "disconnect", e["network_id"],
                                 {"container": cid, "name": name["name"] if name else "",
                                  "type": "bridge"})
            with self.db.transaction() as c:
                c.execute("UPDATE endpoints SET endpoint_id=NULL, ipv4=NULL, ipv6=NULL, mac=NULL "
                          "WHERE container_id=?", (cid,))
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
            for proto, cport, hip, hport in json.loads(sb["ports"]):
                rs.ports.append(firewall.PortRule(proto, hip, hport, ep["ipv4"], cport, br))
        ports = set(rs.ports)
        if self._fw_bridges == rs.bridges and self._fw_ports is not None and \
                firewall.backend() == "nftables":
            firewall.update_ports(ports - self._fw_ports, self._fw_ports - ports)
        else:
            firewall.apply(rs)
        self._fw_bridges, self._fw_ports = list(rs.bridges), ports

    # --- what inspect and ps show ------------------------------------------
    def settings(self, cid: str, hostconfig: dict[str, Any], running: bool) -> dict[str, Any]:
        """`NetworkSettings` in dockerd's shape."""
        mode = self.mode(hostconfig)
        sb = self.db.one("SELECT netns, ports FROM sandboxes WHERE container_id=?", (cid,))
        ns: dict[str, Any] = {
            "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "",
            "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
            "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
            "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "", "Networks": {}}
        if mode.startswith("container:"):
            return ns
        if sb and running:
            ns["SandboxKey"] = sb["netns"]
            ns["SandboxID"] = cid  # one sandbox per container, named after it
            ports: dict[str, Any] = {}
            for key in (hostconfig.get("PortBindings") or {}):
                a, _, proto = key.partition("/")
                ports.setdefault(f"{a.split('-')[0]}/{proto or 'tcp'}", None)
            for proto, cport, hip, hport in json.loads(sb["ports"]):
                lst = ports.get(f"{cport}/{proto}") or []
                lst.append({"HostIp": hip or "0.0.0.0", "HostPort": str(hport)})
                ports[f"{cport}/{proto}"] = lst
            ns["Ports"] = ports
        if mode in ("host", "none") and not self._endpoint_rows(container_id=cid):
            nid = next((n["Id"] for n in self._rows() if n["Name"] == mode), "")
            ns["Networks"][mode] = _endpoint_view({}, nid if running else "", None, None)
            return ns
        for r in self._endpoint_rows(container_id=cid):
            try:
                net = self._by_id(r["network_id"])
            except NotFound:
                continue
            cfg = json.loads(r["config"] or "{}")
            active = bool(r["endpoint_id"]) and running
            subs = self._subnets(net)
            v4 = next((s for s in subs if s.subnet.version == 4), None)
            v6 = next((s for s in subs if s.subnet.version == 6), None)
            ep = _endpoint_view(cfg, net["Id"] if active or net["Name"] != "bridge" else "",
                                r if active else None, (v4, v6))
            if net["Name"] != "bridge":
                aliases = list(cfg.get("Aliases") or [])
                # a running endpoint answers to its short ID too (dockerd < 25)
                ep["Aliases"] = aliases + [cid[:12]] if active else (aliases or None)
            ns["Networks"][net["Name"]] = ep
            if net["Name"] == "bridge" and active:
                for k in ("EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway",
                          "GlobalIPv6Address", "GlobalIPv6PrefixLen", "MacAddress"):
                    ns[k] = ep[k]
        return ns

    def port_list(self, cid: str) -> list[dict[str, Any]]:
        """`Ports` of `GET /containers/json`."""
        sb = self.db.one("SELECT ports FROM sandboxes WHERE container_id=?", (cid,))
        if not sb:
            return []
        return [{"IP": hip or "0.0.0.0", "PrivatePort": cport, "PublicPort": hport,
                 "Type": proto} for proto, cport, hip, hport in json.loads(sb["ports"])]

    def network_names(self, cid: str) -> dict[str, Any]:
        return {self._by_id(r["network_id"])["Name"]: r for r in
                self._endpoint_rows(container_id=cid)}

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
                except DockyardError as e:
                    log.warning("container %s: %s", cid[:12], e)
            for n in self._rows():
                if n["Driver"] == "bridge" and self.db.one(
                        "SELECT 1 FROM endpoints WHERE network_id=? AND endpoint_id IS NOT NULL",
                        (n["Id"],)):
                    self._ensure_bridge(n)
            if self.opts.iptables:
                self._apply_firewall()
            # namespace files nobody owns (a crash between create and record)
            known = {r["container_id"] for r in self.db.query("SELECT container_id FROM sandboxes")}
            for f in self.netns_dir.iterdir():
                if f.name not in known:
                    _core.netns_remove(str(f))

    def close(self) -> None:
        self.ports.release_all()
        if self._dns:
            self._dns.close()


def _check_create(body: dict[str, Any]) -> None:
    """The body's JSON types, as dockerd's decoder refuses them (400)."""
    def want(v: Any, types: tuple[type, ...], what: str) -> None:
        if v is not None and (not isinstance(v, types) or
                              (isinstance(v, bool) and bool not in types)):
            raise InvalidParameter(f"json: cannot unmarshal into Go value of type {what}")
    for k in ("Name", "Driver"):
        want(body.get(k), (str,), "string")
    for k in ("CheckDuplicate", "Internal", "Attachable", "Ingress", "EnableIPv6"):
        want(body.get(k), (bool,), "bool")
    for k in ("Options", "Labels"):
        want(body.get(k), (dict,), "map[string]string")
    ipam = body.get("IPAM")
    want(ipam, (dict,), "network.IPAM")
    if ipam:
        want(ipam.get("Driver"), (str,), "string")
        want(ipam.get("Options"), (dict,), "map[string]string")
        want(ipam.get("Config"), (list,), "[]network.IPAMConfig")
        for c in ipam.get("Config") or []:
            want(c, (dict,), "network.IPAMConfig")
            for k in ("Subnet", "IPRange", "Gateway"):
                want(c.get(k), (str,), "string")
            want(c.get("AuxiliaryAddresses"), (dict,), "map[string]string")


def check_endpoint(cfg: Any) -> dict[str, Any]:
    """An EndpointSettings object's JSON types (400 otherwise)."""
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise InvalidParameter("json: cannot unmarshal into Go value of type "
                               "network.EndpointSettings")
    ipam = cfg.get("IPAMConfig")
    if ipam is not None and (not isinstance(ipam, dict) or not all(
            isinstance(v, (str, list)) or v is None for v in ipam.values())):
        raise InvalidParameter("json: cannot unmarshal into Go value of type "
                               "network.EndpointIPAMConfig")
    for k in ("Aliases", "Links"):
        v = cfg.get(k)
        if v is not None and (not isinstance(v, list) or not all(isinstance(x, str) for x in v)):
            raise InvalidParameter("json: cannot unmarshal into Go value of type []string")
    if cfg.get("MacAddress") is not None and not isinstance(cfg["MacAddress"], str):
        raise InvalidParameter("json: cannot unmarshal into Go value of type string")
    return cfg


class _Forbidden(DockyardError):
    status = 403


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _endpoint_view(cfg: dict[str, Any], network_id: str, row: Any,
                   subs: tuple[Subnet | None, Subnet | None] | None) -> dict[str, Any]:
    v4, v6 = subs or (None, None)
    return {
        "IPAMConfig": cfg.get("IPAMConfig") or None, "Links": cfg.get("Links") or None,
        "Aliases": cfg.get("Aliases") or None, "NetworkID": network_id,
        "EndpointID": (row["endpoint_id"] if row else "") or "",
        "Gateway": str(v4.gateway) if row and row["ipv4"] and v4 else "",
        "IPAddress": (row["ipv4"] if row else "") or "",
        "IPPrefixLen": v4.prefixlen if row and row["ipv4"] and v4 else 0,
        "IPv6Gateway": str(v6.gateway) if row and row["ipv6"] and v6 else "",
        "GlobalIPv6Address": (row["ipv6"] if row else "") or "",
        "GlobalIPv6PrefixLen": v6.prefixlen if row and row["ipv6"] and v6 else 0,
        "MacAddress": (row["mac"] if row else "") or cfg.get("MacAddress") or "",
        "DriverOpts": cfg.get("DriverOpts"),
    }
