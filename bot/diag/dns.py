"""DNS from the bot's side (dnspython, async): MX and addresses, reverse DNS, SPF, DMARC, DNSBLs.

Every lookup returns an ``Answer`` (records or a status: nxdomain, nodata, servfail,
timeout, error) instead of raising, so a check can report exactly what DNS said. The
resolver is the one in ``[diagnose] nameservers`` (the lab's dnsmasq in tests), or the
system's when none is configured; ``lifetime`` bounds each lookup.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass
from typing import ClassVar

import dns.asyncresolver
import dns.exception
import dns.resolver
import dns.reversename

from bot.diag.config import DiagnoseSection

MAX_MX = 4
MAX_SPF_LOOKUPS = 10  # RFC 7208 4.6.4


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


@dataclass(frozen=True)
class Listing:
    zone: str
    status: str  # listed, clean, refused (the list will not answer this resolver), or a DNS status
    codes: tuple[str, ...] = ()
    reason: str = ""


async def dnsbl(lookup: Lookup, address: str, zone: str) -> Listing:
    reverse = dns.reversename.from_address(address).to_text().split(".in-addr.arpa")[0]
    if ipaddress.ip_address(address).version == 6:
        reverse = dns.reversename.from_address(address).to_text().split(".ip6.arpa")[0]
    name = f"{reverse}.{zone}"
    answer = await lookup.query(name, "A")
    if answer.status in ("nxdomain", "nodata"):
        return Listing(zone, "clean")
    if not answer.ok:
        return Listing(zone, answer.status)
    if all(code.startswith("127.255.255.") for code in answer.records):
        return Listing(zone, "refused", answer.records)
    txt = await lookup.query(name, "TXT")
    return Listing(zone, "listed", answer.records, " ".join(txt.records)[:300])


@dataclass(frozen=True)
class SenderAuth:
    domain: str
    spf: str | None  # the v=spf1 record
    spf_result: str  # pass, fail, softfail, neutral, none, permerror, temperror
    dmarc: str | None  # the v=DMARC1 record
    dmarc_policy: str | None


async def sender_auth(lookup: Lookup, domain: str, address: str | None) -> SenderAuth:
    spf_answer, dmarc_answer = await asyncio.gather(
        lookup.query(domain, "TXT"), lookup.query(f"_dmarc.{domain}", "TXT")
    )
    spf = _record(spf_answer, "v=spf1")
    result = "none" if spf is None else "neutral"
    if spf_answer.status in ("servfail", "timeout", "error"):
        result = "temperror"
    elif spf is not None and address is not None:
        result = await SpfCheck(lookup, address).evaluate(spf, domain)
    dmarc = _record(dmarc_answer, "v=DMARC1")
    policy = _tag(dmarc, "p") if dmarc else None
    return SenderAuth(domain, spf, result, dmarc, policy)


def _record(answer: Answer, prefix: str) -> str | None:
    found = [r for r in answer.records if r.lower().startswith(prefix.lower())]
    return found[0] if len(found) == 1 else None


def _tag(record: str, name: str) -> str | None:
    for part in record.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip().lower()
    return None


class SpfCheck:
    """A small SPF evaluator (RFC 7208): ip4, ip6, a, mx, include, redirect and all, with the
    ten-lookup limit. Macros, exists and ptr are not evaluated (they give ``neutral``)."""

    QUALIFIERS: ClassVar[dict[str, str]] = {
        "+": "pass",
        "-": "fail",
        "~": "softfail",
        "?": "neutral",
    }

    def __init__(self, lookup: Lookup, address: str) -> None:
        self.lookup = lookup
        self.address = ipaddress.ip_address(address)
        self.lookups = 0

    async def evaluate(self, record: str, domain: str) -> str:
        redirect = None
        for term in record.split()[1:]:
            if term.lower().startswith("redirect="):
                redirect = term.split("=", 1)[1]
                continue
            qualifier = self.QUALIFIERS.get(term[0], "pass")
            mechanism = term[1:] if term[0] in self.QUALIFIERS else term
            matched = await self._matches(mechanism, domain)
            if matched is None:
                return "permerror"
            if matched:
                return qualifier
        if redirect is not None:
            return await self._include(redirect, redirect=True)
        return "neutral"

    async def _matches(self, mechanism: str, domain: str) -> bool | None:
        name, _, value = mechanism.partition(":")
        name = name.split("/")[0].lower()
        value = value.split("/")[0] if name in ("a", "mx") else value
        if name == "all":
            return True
        if name in ("ip4", "ip6"):
            try:
                return self.address in ipaddress.ip_network(value, strict=False)
            except ValueError:
                return None
        if name == "include":
            return await self._include(value) == "pass"
        if name in ("a", "mx"):
            return await self._host_match(name, value or domain)
        return False

    async def _include(self, domain: str, redirect: bool = False) -> str:
        self.lookups += 1
        if self.lookups > MAX_SPF_LOOKUPS or not domain:
            return "permerror"
        record = _record(await self.lookup.query(domain, "TXT"), "v=spf1")
        if record is None:
            return "permerror" if not redirect else "none"
        return await self.evaluate(record, domain)

    async def _host_match(self, kind: str, domain: str) -> bool | None:
        self.lookups += 1
        if self.lookups > MAX_SPF_LOOKUPS or not domain:
            return None
        rdtype = "AAAA" if self.address.version == 6 else "A"
        names = [domain]
        if kind == "mx":
            names = [r.split()[-1] for r in (await self.lookup.query(domain, "MX")).records]
        answers = await asyncio.gather(*(self.lookup.query(n, rdtype) for n in names[:10]))
        return any(str(self.address) in a.records for a in answers)
