"""The embedded DNS server at 127.0.0.11 for containers on user networks
(dockerd's `resolver.go`): containers find each other by name, short ID and
network alias; other names go to the host's resolvers (or `--dns`).

As with dockerd, the server's sockets live inside each container's network
namespace, bound to 127.0.0.11 on a random port, and two nat rules there
send port 53 to them: a container may still run its own DNS server on :53.
One thread with its own event loop serves every container, so a slow
upstream never blocks the daemon or the engine's callers. The daemon can
restart under running containers: `attach` is simply done again for them.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import subprocess
import threading
from typing import Callable

from .. import _core
from . import firewall, nft

log = logging.getLogger("dockyard.network")

ADDRESS = "127.0.0.11"
TTL = 600
UPSTREAM_TIMEOUT = 3.0

#: (container ID, name asked, 4 or 6) -> addresses of that family, [] if unknown
Lookup = Callable[[str, str, int], list[str]]
#: (container ID, address) -> the name for a reverse lookup, or None
Reverse = Callable[[str, str], "str | None"]


class EmbeddedDNS:
    def __init__(self, lookup: Lookup, reverse: Reverse) -> None:
        self.lookup = lookup
        self.reverse = reverse
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._served: dict[str, tuple[list[str], list[object]]] = {}
        self._lock = threading.Lock()

    # --- the serving thread ---------------------------------------------------
    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                self._loop, self._thread = loop_thread("dockyard-dns")
            return self._loop

    def _call(self, coro: object) -> object:
        loop = self._ensure_loop()
        return asyncio.run_coroutine_threadsafe(coro, loop).result(10)  # type: ignore[arg-type]

    # --- containers ------------------------------------------------------------
    def attach(self, cid: str, netns: str, upstream: list[str]) -> None:
        """Serve the container whose namespace is at `netns`."""
        self.detach(cid)
        udp = socket.socket(fileno=_core.netns_socket(netns, socket.AF_INET, socket.SOCK_DGRAM))
        tcp = socket.socket(fileno=_core.netns_socket(netns, socket.AF_INET, socket.SOCK_STREAM))
        try:
            udp.bind((ADDRESS, 0))
            tcp.bind((ADDRESS, 0))
            tcp.listen(64)
            udp.setblocking(False)
            tcp.setblocking(False)
            _redirect(netns, udp.getsockname()[1], tcp.getsockname()[1])
            servers = self._call(self._serve(cid, udp, tcp, upstream))
        except BaseException:
            udp.close()
            tcp.close()
            raise
        with self._lock:
            self._served[cid] = (upstream, servers)  # type: ignore[assignment]

    def detach(self, cid: str) -> None:
        with self._lock:
            entry = self._served.pop(cid, None)
        if entry and self._loop:
            self._call(self._stop(entry[1]))

    def close(self) -> None:
        for cid in list(self._served):
            self.detach(cid)
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread:
                self._thread.join(5)
            self._loop.close()
            self._loop = None

    async def _serve(self, cid: str, udp: socket.socket, tcp: socket.socket,
                     upstream: list[str]) -> list[object]:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UDP(self, cid, upstream), sock=udp)

        async def on_tcp(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while True:
                    n = struct.unpack("!H", await r.readexactly(2))[0]
                    answer = await self.answer(cid, await r.readexactly(n), upstream, tcp=True)
                    if answer:
                        w.write(struct.pack("!H", len(answer)) + answer)
                        await w.drain()
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                w.close()

        server = await asyncio.start_server(on_tcp, sock=tcp)
        return [transport, server]

    @staticmethod
    async def _stop(things: list[object]) -> None:
        for t in things:
            t.close()  # type: ignore[attr-defined]

    # --- answers -----------------------------------------------------------------
    async def answer(self, cid: str, wire: bytes, upstream: list[str],
                     tcp: bool = False) -> bytes | None:
        import dns.flags
        import dns.message
        import dns.rcode
        import dns.rdatatype
        import dns.reversename
        import dns.rrset

        try:
            q = dns.message.from_wire(wire)
        except Exception:  # noqa: BLE001 - not DNS: no answer, as dockerd
            return None
        if not q.question:
            return None
        question = q.question[0]
        name = question.name.to_text(omit_final_dot=True).lower()
        rtype = question.rdtype
        resp = dns.message.make_response(q)
        resp.flags |= dns.flags.RA
        if rtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            fam = 4 if rtype == dns.rdatatype.A else 6
            addrs = await asyncio.to_thread(self.lookup, cid, name, fam)
            other = await asyncio.to_thread(self.lookup, cid, name, 10 - fam) \
                if not addrs else []
            if addrs or other:
                if addrs:
                    resp.answer.append(dns.rrset.from_text_list(
                        question.name, TTL, "IN", dns.rdatatype.to_text(rtype), addrs))
                return resp.to_wire()
        elif rtype == dns.rdatatype.PTR:
            try:
                addr = dns.reversename.to_address(question.name)
            except Exception:  # noqa: BLE001
                addr = None
            host = await asyncio.to_thread(self.reverse, cid, addr) if addr else None
            if host:
                resp.answer.append(dns.rrset.from_text_list(question.name, TTL, "IN", "PTR",
                                                            [host + "."]))
                return resp.to_wire()
        return await self.forward(wire, q, upstream, tcp)

    async def forward(self, wire: bytes, q: object, upstream: list[str], tcp: bool) -> bytes:
        import dns.message
        import dns.rcode

        for server in upstream[:3]:
            try:
                if tcp:
                    return await asyncio.wait_for(_tcp_query(server, wire), UPSTREAM_TIMEOUT)
                return await asyncio.wait_for(_udp_query(server, wire), UPSTREAM_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                log.debug("[resolver] upstream %s failed: %s", server, e)
        resp = dns.message.make_response(q)  # type: ignore[arg-type]
        resp.set_rcode(dns.rcode.SERVFAIL)
        return resp.to_wire()


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, server: EmbeddedDNS, cid: str, upstream: list[str]) -> None:
        self.server, self.cid, self.upstream = server, cid, upstream
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        async def reply() -> None:
            out = await self.server.answer(self.cid, data, self.upstream)
            if out and self.transport and not self.transport.is_closing():
                self.transport.sendto(out, addr)

        asyncio.ensure_future(reply())


async def _udp_query(server: str, wire: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    fut: asyncio.Future[bytes] = loop.create_future()

    class P(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            if not fut.done():
                fut.set_result(data)

        def error_received(self, exc: Exception) -> None:
            if not fut.done():
                fut.set_exception(exc)

    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    transport, _ = await loop.create_datagram_endpoint(P, remote_addr=(server, 53), family=fam)
    try:
        transport.sendto(wire)
        return await fut
    finally:
        transport.close()


async def _tcp_query(server: str, wire: bytes) -> bytes:
    r, w = await asyncio.open_connection(server, 53)
    try:
        w.write(struct.pack("!H", len(wire)) + wire)
        await w.drain()
        n = struct.unpack("!H", await r.readexactly(2))[0]
        return await r.readexactly(n)
    finally:
        w.close()


def _redirect(netns: str, udp_port: int, tcp_port: int) -> None:
    """Inside the container's namespace: :53 on 127.0.0.11 goes to our ports."""
    script = (
        "table ip dockyard-dns\ndelete table ip dockyard-dns\n"
        "table ip dockyard-dns {\n"
        "  chain output {\n    type nat hook output priority -100; policy accept;\n"
        f"    ip daddr {ADDRESS} udp dport 53 dnat to {ADDRESS}:{udp_port}\n"
        f"    ip daddr {ADDRESS} tcp dport 53 dnat to {ADDRESS}:{tcp_port}\n  }}\n}}\n")
    if firewall.backend() == "nftables":
        nft.run(script, netns)
        return
    rules = "".join(f"-A OUTPUT -d {ADDRESS}/32 -p {proto} -m {proto} --dport 53 -j DNAT "
                    f"--to-destination {ADDRESS}:{port}\n"
                    for proto, port in (("udp", udp_port), ("tcp", tcp_port)))
    r = subprocess.run(["nsenter", f"--net={netns}", "iptables-restore", "-w"],
                       input=f"*nat\n{rules}COMMIT\n", capture_output=True, text=True)
    if r.returncode != 0:
        raise OSError(f"embedded DNS rules: {r.stderr.strip()}")


def loop_thread(name: str) -> tuple[asyncio.AbstractEventLoop, threading.Thread]:
    """A new event loop running on a daemon thread of its own, once it runs."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    ready.wait()
    return loop, thread
