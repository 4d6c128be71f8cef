"""DNS from the bot's side (dnspython, async): MX and addresses, reverse DNS.

Every lookup returns an ``Answer`` (records or a status: nxdomain, nodata, servfail,
timeout, error) instead of raising, so a check can report exactly what DNS said. The
resolver is the one in ``[diagnose] nameservers`` (the lab's dnsmasq in tests), or the
system's when none is configured; ``lifetime`` bounds each lookup.

SPF and DMARC are in ``senderauth``, DNSBLs in ``dnsbl``, both over this module's ``Lookup``.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
import dns.reversename

from bot.diag.config import DiagnoseSection

MAX_MX = 4


@dataclass(frozen=True)
class Answer:
    status: str  # ok, nxdomain, nodata, servfail, timeout, error
    records: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class Lookup:
    """One resolver for a diagnosis."""

    def __init__(self, config: DiagnoseSection, lifetime: float) -> None:
        configure = not config.nameservers
        self.resolver = dns.asyncresolver.Resolver(configure=configure)
        if config.nameservers:
            self.resolver.nameservers = list(config.nameservers)
            self.resolver.port = config.nameserver_port
        self.resolver.lifetime = lifetime
        self.resolver.timeout = min(2.0, lifetime)
        self.resolver.cache = None
        self.config = config

    def sync_resolver(self) -> dns.resolver.Resolver:
        """A blocking resolver with the same settings (for pyspf, in a worker thread)."""
        resolver = dns.resolver.Resolver(configure=not self.config.nameservers)
        if self.config.nameservers:
            resolver.nameservers = list(self.config.nameservers)
            resolver.port = self.config.nameserver_port
        resolver.lifetime = self.resolver.lifetime
        resolver.timeout = self.resolver.timeout
        return resolver

    async def query(self, name: str, rdtype: str) -> Answer:
        try:
            answer = await self.resolver.resolve(name, rdtype, search=False)
        except dns.resolver.NXDOMAIN:
            return Answer("nxdomain")
        except dns.resolver.NoAnswer:
            return Answer("nodata")
        except dns.resolver.NoNameservers:
            return Answer("servfail")
        except dns.exception.Timeout:
            return Answer("timeout")
        except dns.exception.DNSException:
            return Answer("error")
        return Answer("ok", tuple(_text(rdata) for rdata in answer))


def _text(rdata: object) -> str:
    strings = getattr(rdata, "strings", None)
    if strings is not None:  # TXT: the character strings joined, as SPF/DMARC define
        return b"".join(strings).decode("utf-8", "replace")
    return str(rdata).rstrip(".")


@dataclass(frozen=True)
class MxHost:
    preference: int
    name: str
    addresses: tuple[str, ...]
    status: str  # of the address lookups: ok, or the first failure


@dataclass(frozen=True)
class MxReport:
    domain: str
    status: str  # ok, nxdomain, nodata (no MX: the domain's own address is used), ...
    hosts: tuple[MxHost, ...]
    implicit: bool = False  # no MX records: mail goes to the domain's A/AAAA

    @property
    def addresses(self) -> list[str]:
        return [a for host in self.hosts for a in host.addresses]


async def mx_report(lookup: Lookup, domain: str) -> MxReport:
    answer = await lookup.query(domain, "MX")
    if answer.status == "nodata":
        host = await _addresses(lookup, 0, domain)
        status = "ok" if host.addresses else host.status
        return MxReport(domain, status, (host,), implicit=True)
    if not answer.ok:
        return MxReport(domain, answer.status, ())
    pairs = sorted((int(p), n) for p, n in (r.split(None, 1) for r in answer.records))
    hosts = await asyncio.gather(*(_addresses(lookup, p, n) for p, n in pairs[:MAX_MX]))
    return MxReport(domain, "ok", tuple(hosts))


async def _addresses(lookup: Lookup, preference: int, name: str) -> MxHost:
    if name in ("", "."):  # null MX (RFC 7505): the domain accepts no mail
        return MxHost(preference, ".", (), "null_mx")
    v4, v6 = await asyncio.gather(lookup.query(name, "A"), lookup.query(name, "AAAA"))
    addresses = v4.records + v6.records
    failed = next((a.status for a in (v4, v6) if a.status not in ("ok", "nodata")), None)
    return MxHost(preference, name, addresses, "ok" if addresses else failed or "nodata")


@dataclass(frozen=True)
class ReverseReport:
    address: str
    names: tuple[str, ...]
    status: str
    confirmed: bool  # forward-confirmed: a PTR name resolves back to the address


async def reverse_report(lookup: Lookup, address: str) -> ReverseReport:
    answer = await lookup.query(dns.reversename.from_address(address).to_text(), "PTR")
    if not answer.ok:
        return ReverseReport(address, (), answer.status, False)
    rdtype = "AAAA" if ipaddress.ip_address(address).version == 6 else "A"
    forward = await asyncio.gather(*(lookup.query(name, rdtype) for name in answer.records[:3]))
    confirmed = any(address in f.records for f in forward)
    return ReverseReport(address, answer.records, "ok", confirmed)
