"""The network service: Docker's networks (records.py) and containers on them
(endpoints.py), plus what container inspect and list show of a container's
networks. The engine builds one and hands it to the container service."""

from __future__ import annotations

import json
from typing import Any

from ..errors import NotFound
from .endpoints import ContainerNetworks
from .ipam import Subnet
from .records import BUILTIN, FILTERS, NetworkOptions, check_endpoint

__all__ = ["BUILTIN", "FILTERS", "NetworkOptions", "NetworkService", "check_endpoint"]


class NetworkService(ContainerNetworks):
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
        if mode.startswith(("container:", "ns:")):  # ns: a pinned namespace (CRI)
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

    def default_bridge_address(self, cid: str) -> str | None:
        """The container's IPv4 address on the default bridge: "" while it is on
        it without one (not running), None when it is not on it (legacy links
        work there only)."""
        r = self.db.one("SELECT e.ipv4 FROM endpoints e JOIN networks n ON n.id = e.network_id "
                        "WHERE e.container_id=? AND n.name='bridge'", (cid,))
        return None if r is None else (r["ipv4"] or "")

    def port_list(self, cid: str) -> list[dict[str, Any]]:
        """`Ports` of `GET /containers/json`."""
        sb = self.db.one("SELECT ports FROM sandboxes WHERE container_id=?", (cid,))
        if not sb:
            return []
        return [{"IP": hip or "0.0.0.0", "PrivatePort": cport, "PublicPort": hport,
                 "Type": proto} for proto, cport, hip, hport in json.loads(sb["ports"])]

    def close(self) -> None:
        if self._forward:
            self._forward.close()
        self.ports.release_all()
        if self._dns:
            self._dns.close()
        if self.rootless:
            # running containers keep their namespaces (and this one) alive
            running = self.db.one("SELECT 1 FROM sandboxes") is not None
            self.rootless.close(keep_netns=running)



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

