"""A small authoritative DNS server on loopback (UDP and TCP, one port), for tests.

Its zone is a dict: lower-case name -> records, each ``(type, value)`` with the value as
DNS presentation text (``("A", "192.0.2.1")``, ``("MX", "10 mx.example.com.")``) or, for
TXT/SPF, a tuple of character strings. ``"TIMEOUT"`` in place of a record (or as a
record's value) makes the server answer SERVFAIL for that name (that type): the resolver
sees a temporary DNS failure at once instead of waiting for its timeout. A CNAME is
answered with its target's records of the asked type when the zone has them, like an
authoritative server for both names. Unknown names are NXDOMAIN.

It runs in threads of its own, so blocking (pyspf) and asyncio (dnspython) clients both work.
"""

from __future__ import annotations

import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

Record = tuple[str, object] | str
Zone = dict[str, list[Record]]
TTL = 60


def _quote(value: object) -> str:
    strings = (value,) if isinstance(value, str) else tuple(value)  # type: ignore[call-overload]
    out = []
    for s in strings:
        raw = s.encode("utf-8") if isinstance(s, str) else bytes(s)
        escaped = "".join(
            chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:03d}" for b in raw
        )
        out.append(f'"{escaped}"')
    return " ".join(out)


def _presentation(kind: str, value: object) -> str:
    if kind in ("TXT", "SPF"):
        return _quote(value)
    if kind == "MX" and isinstance(value, list | tuple):
        return f"{value[0]} {_absolute(str(value[1]))}"
    if kind in ("MX", "PTR", "CNAME", "NS"):
        words = str(value).split()
        return " ".join([*words[:-1], _absolute(words[-1])]) if words else "."
    return str(value)


def _absolute(name: str) -> str:
    return name if name.endswith(".") else f"{name}."


class Answerer:
    def __init__(self, zone: Zone) -> None:
        self.zone = zone

    def respond(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if not query.question:
            response.set_rcode(dns.rcode.FORMERR)
            return response.to_wire()
        question = query.question[0]
        rcode = self._answer(response, question.name, question.rdtype, 0)
        response.set_rcode(rcode)
        return response.to_wire(max_size=65535)

    def _answer(
        self, response: dns.message.Message, name: dns.name.Name, rdtype: int, depth: int
    ) -> int:
        key = b".".join(name.labels).decode("utf-8", "replace").lower().rstrip(".")
        records = self.zone.get(key)
        if records is None:
            return dns.rcode.NXDOMAIN
        wanted = dns.rdatatype.to_text(rdtype)
        found: list[str] = []
        cname = None
        for record in records:
            if record == "TIMEOUT":
                if not found:
                    return dns.rcode.SERVFAIL
                break
            kind, value = record  # type: ignore[misc]
            if value == "TIMEOUT":
                if kind == wanted:
                    return dns.rcode.SERVFAIL
                continue
            if kind == wanted:
                found.append(_presentation(kind, value))
            elif kind == "CNAME" and cname is None:
                cname = str(value)
        if found:
            self._add(response, name, rdtype, found)
        elif cname is not None and depth < 8:
            self._add(response, name, dns.rdatatype.CNAME, [_absolute(cname)])
            target = dns.name.from_text(cname)
            rcode = self._answer(response, target, rdtype, depth + 1)
            return rcode if rcode == dns.rcode.SERVFAIL else dns.rcode.NOERROR
        return dns.rcode.NOERROR

    @staticmethod
    def _add(
        response: dns.message.Message, name: dns.name.Name, rdtype: int, texts: list[str]
    ) -> None:
        rrset = dns.rrset.RRset(name, dns.rdataclass.IN, rdtype)
        for text in texts:
            try:
                rrset.add(dns.rdata.from_text(dns.rdataclass.IN, rdtype, text), TTL)
            except Exception:
                continue  # the suite's deliberately malformed data that DNS cannot carry
        if rrset:
            response.answer.append(rrset)


class _Udp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        data, sock = self.request
        reply = self.server.answerer.respond(data)  # type: ignore[attr-defined]
        if reply is not None:
            if len(reply) > 512:  # classic UDP limit: truncated, the client retries on TCP
                query = dns.message.from_wire(data)
                truncated = dns.message.make_response(query)
                truncated.flags |= dns.flags.TC
                reply = truncated.to_wire()
            sock.sendto(reply, self.client_address)


class _Tcp(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(5)
        while True:
            head = sock.recv(2)
            if len(head) < 2:
                return
            size = int.from_bytes(head, "big")
            data = b""
            while len(data) < size:
                chunk = sock.recv(size - len(data))
                if not chunk:
                    return
                data += chunk
            reply = self.server.answerer.respond(data)  # type: ignore[attr-defined]
            if reply is None:
                return
            sock.sendall(len(reply).to_bytes(2, "big") + reply)


class _UdpServer(socketserver.ThreadingUDPServer):
    daemon_threads = True


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def dns_server(zone: Zone) -> Iterator[tuple[Answerer, int]]:
    """Serve ``zone`` on 127.0.0.1; yields the answerer (swap its ``zone``) and the port."""
    answerer = Answerer(zone)
    tcp = _TcpServer(("127.0.0.1", 0), _Tcp)
    port = tcp.server_address[1]
    udp = _UdpServer(("127.0.0.1", port), _Udp)
    servers: list[socketserver.BaseServer] = [tcp, udp]
    threads = []
    for server in servers:
        server.answerer = answerer  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.daemon = True
        thread.start()
        threads.append(thread)
    try:
        yield answerer, port
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
        for thread in threads:
            thread.join(5)
