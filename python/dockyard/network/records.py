"""Networks as records: Docker's networks in the engine's database (`networks`,
the Docker-shaped network without its containers; `endpoints`, a container's
settings on one network with the address it holds while running, unique per
network), the built-in ones, and the network API's create/inspect/list with
dockerd's checks and messages. Nothing here touches the kernel."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from ..errors import Conflict, DockyardError, InvalidParameter, NotFound
from ..events import EventLog
from ..filters import labels_match
from ..ids import generate_id
from ..imageconfig import now_rfc3339
from ..store.db import Database
from .ipam import DEFAULT_POOLS, Pool, Subnet, choose_subnet, host_routes

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
    # bridges of removed networks until their link is gone (a crash in between
    # leaves the name here, so the next start or `system check` knows it is ours)
    "CREATE TABLE IF NOT EXISTS doomed_links (name TEXT PRIMARY KEY)",
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



class NetworkRecords:
    def __init__(self, db: Database, events: EventLog, options: NetworkOptions | None = None
                 ) -> None:
        self.db = db
        self.events = events
        self.opts = options or NetworkOptions()
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
        check_create(body)
        name = body.get("Name")
        if not isinstance(name, str) or not name:
            raise InvalidParameter("network name must be a non-empty string")
        driver = body.get("Driver") or "bridge"
        if driver in ("host", "null"):
            raise Forbidden(f'only one instance of "{driver}" network is allowed')
        if driver != "bridge":
            raise NotFound(f'plugin "{driver}" not found')
        ipam_in = body.get("IPAM") or {}
        if (ipam_in.get("Driver") or "default") != "default":
            raise NotFound(f'plugin "{ipam_in["Driver"]}" not found')
        options = {str(k): str(v) for k, v in (body.get("Options") or {}).items()}
        labels = {str(k): str(v) for k, v in (body.get("Labels") or {}).items()}
        ipv6 = bool(body.get("EnableIPv6"))
        if name in BUILTIN:
            raise Forbidden(f"operation is not permitted on predefined {name} network ")
        with self._lock:
            if any(n["Name"] == name for n in self._rows()):
                raise Conflict(f"network with name {name} already exists")
            configs = [self._check_ipam(dict(c)) for c in ipam_in.get("Config") or []]
            others = [s.subnet for n in self._rows() for s in self._subnets(n)]
            for cfg in configs:
                sub = ipaddress.ip_network(cfg["Subnet"], strict=False)
                if any(sub.overlaps(o) for o in others if o.version == sub.version):
                    raise Forbidden("Pool overlaps with other one on this address space")
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


def check_create(body: dict[str, Any]) -> None:
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



class Forbidden(DockyardError):
    status = 403


