"""DNS from the bot's side (dnspython, async): MX and addresses, reverse DNS, SPF, DMARC, DNSBLs.

Every lookup returns an ``Answer`` (records or a status: nxdomain, nodata, servfail,
timeout, error) instead of raising, so a check can report exactly what DNS said. The
resolver is the one in ``[diagnose] nameservers`` (the lab's dnsmasq in tests), or the
system's when none is configured; ``lifetime`` bounds each lookup.

SPF is evaluated by pyspf (RFC 7208, including macros, ``exists``, ``ptr``, CIDR lengths
on ``a``/``mx`` and the lookup limits) in a worker thread, over a blocking dnspython resolver
with the same settings: the RFC 7208 test suite runs against it in the tests. DNSBL answers
are read by return code (``dnsbl``): a refusal such as Spamhaus's 127.255.255.x is not a listing.
"""

from __future__ import annotations

import asyncio
import ipaddress
import threading
from dataclasses import dataclass, replace

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.resolver
import dns.reversename
import spf

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


# What a DNSBL's answer means, by return code. 127.255.255.0/24 holds errors about the query
# itself, "which should NOT be interpreted as any sort of reputation" (Spamhaus,
# https://www.spamhaus.org/news/article/788/ and https://www.spamhaus.com/resource-center/
# help-for-spamhaus-projects-legacy-blocklist-users); the rest of 127.0.0.0/8 is a listing;
# anything else is not a DNSBL answer (a resolver that rewrites NXDOMAIN to a web server,
# for example) and is ignored. Mail-in-a-Box's status checks read zen.spamhaus.org this way.
REFUSALS = {
    "127.255.255.252": "typo",  # the zone name is not one the list serves
    "127.255.255.254": "public_resolver",  # the query came through a public/open resolver
    "127.255.255.255": "volume",  # too many queries from this resolver
}
SPAMHAUS_LISTS = {
    "127.0.0.2": "SBL",
    "127.0.0.3": "SBL CSS",
    "127.0.0.4": "XBL",
    "127.0.0.5": "XBL",
    "127.0.0.6": "XBL",
    "127.0.0.7": "XBL",
    "127.0.0.9": "SBL DROP",
    "127.0.0.10": "PBL",
    "127.0.0.11": "PBL",
}
_LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
_REFUSED = ipaddress.ip_network("127.255.255.0/24")
_DBL = ipaddress.ip_network("127.0.1.0/24")


@dataclass(frozen=True)
class Listing:
    zone: str
    status: str  # listed, clean, refused (the list will not answer this resolver), or a DNS status
    codes: tuple[str, ...] = ()  # the return codes that count (listing or refusal)
    reason: str = ""  # the TXT record of a listing
    lists: tuple[str, ...] = ()  # Spamhaus: which of its lists (SBL, XBL, PBL, ...)
    refusal: str = ""  # refused: typo, public_resolver, volume, or refused
    ignored: tuple[str, ...] = ()  # answers outside 127.0.0.0/8: not DNSBL answers


def read_codes(zone: str, codes: tuple[str, ...]) -> Listing:
    """A DNSBL's A records for one address, read by return code (no TXT yet)."""
    listed, refused, ignored = [], [], []
    for code in sorted(codes, key=_sort_key):
        try:
            address = ipaddress.ip_address(code)
        except ValueError:
            ignored.append(code)
            continue
        if address in _REFUSED:
            refused.append(code)
        elif address in _LOOPBACK:
            listed.append(code)
        else:
            ignored.append(code)
    if listed:
        return Listing(
            zone, "listed", tuple(listed), lists=_lists(zone, listed), ignored=tuple(ignored)
        )
    if refused:
        why = REFUSALS.get(refused[0], "refused")
        return Listing(zone, "refused", tuple(refused), refusal=why, ignored=tuple(ignored))
    return Listing(zone, "clean", ignored=tuple(ignored))


def _sort_key(code: str) -> tuple[int, str]:
    try:
        return int(ipaddress.ip_address(code)), code
    except ValueError:
        return -1, code


def _lists(zone: str, codes: list[str]) -> tuple[str, ...]:
    if not zone.endswith(("spamhaus.org", "spamhaus.net")):
        return ()
    names = []
    for code in codes:
        name = SPAMHAUS_LISTS.get(code) or ("DBL" if ipaddress.ip_address(code) in _DBL else "")
        if name and name not in names:
            names.append(name)
    return tuple(names)


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
    listing = read_codes(zone, answer.records)
    if listing.status != "listed":
        return listing
    txt = await lookup.query(name, "TXT")
    return replace(listing, reason=" ".join(txt.records)[:300])


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
    record = _record(spf_answer, "v=spf1")
    result = "none" if record is None else "neutral"
    if spf_answer.status in ("servfail", "timeout", "error"):
        result = "temperror"
    elif record is not None and address is not None:
        result = (await spf_check(lookup, address, f"postmaster@{domain}", domain)).result
    dmarc = _record(dmarc_answer, "v=DMARC1")
    policy = _tag(dmarc, "p") if dmarc else None
    return SenderAuth(domain, record, result, dmarc, policy)


def _record(answer: Answer, prefix: str) -> str | None:
    found = [r for r in answer.records if r.lower().startswith(prefix.lower())]
    return found[0] if len(found) == 1 else None


def _tag(record: str, name: str) -> str | None:
    for part in record.split(";"):
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == name:
            return value.strip().lower()
    return None


def _spf_lookup(
    name: str, qtype: str, strict: object = True, timeout: float = 20.0
) -> list[tuple[tuple[str, str], object]]:
    """pyspf's DNS driver (``spf.DNSLookup``), over the resolver of the calling thread's
    evaluation: answers as pyspf's own dnspython driver gives them, errors as ``TempError``."""
    resolver: dns.resolver.Resolver = _spf_local.resolver
    try:
        answer = resolver.resolve(
            name,
            qtype,
            search=False,
            raise_on_no_answer=False,
            lifetime=min(float(timeout), resolver.lifetime),
        )
    except dns.resolver.NXDOMAIN:
        return []
    except (dns.name.EmptyLabel, dns.name.LabelTooLong, dns.name.NameTooLong):
        return []  # a name DNS cannot carry (from a macro): nothing to find
    except dns.resolver.NoNameservers as exc:
        if _cname_loop(exc):
            return []  # a CNAME loop: an error in the data, not a temporary one (RFC 7208 5.5)
        raise spf.TempError(f"DNS {exc}") from exc
    except dns.exception.DNSException as exc:  # timeout, ...
        raise spf.TempError(f"DNS {exc}") from exc
    key = (name, qtype)
    return [(key, _spf_value(qtype, rdata)) for rdata in answer]


def _cname_loop(exc: dns.resolver.NoNameservers) -> bool:
    errors = exc.kwargs.get("errors") or []
    return bool(errors) and all(isinstance(e[3], dns.message.ChainTooLong) for e in errors)


def _spf_value(qtype: str, rdata: object) -> object:
    if qtype in ("A", "AAAA"):
        return rdata.address  # type: ignore[attr-defined]
    if qtype == "MX":
        return (rdata.preference, rdata.exchange.to_text(True))  # type: ignore[attr-defined]
    if qtype == "PTR":
        return rdata.target.to_text(True)  # type: ignore[attr-defined]
    return rdata.strings  # type: ignore[attr-defined]  # TXT, SPF


_spf_local = threading.local()
spf.DNSLookup = _spf_lookup  # pyspf's documented seam for its DNS driver


@dataclass(frozen=True)
class SpfResult:
    result: str  # pass, fail, softfail, neutral, none, permerror, temperror
    explanation: str


def spf_check_sync(
    resolver: dns.resolver.Resolver, address: str, sender: str, helo: str, querytime: float
) -> SpfResult:
    """RFC 7208 ``check_host`` for ``address`` sending as ``sender`` (empty: the null sender,
    checked as ``postmaster@helo``), by pyspf over ``resolver``. Blocking."""
    _spf_local.resolver = resolver
    try:
        query = spf.query(i=address, s=sender, h=helo, querytime=querytime)
        query.set_default_explanation("DEFAULT")
        result, _code, explanation = query.check()
    finally:
        del _spf_local.resolver
    result = {"unknown": "permerror", "error": "temperror"}.get(result, result)
    return SpfResult(str(result), str(explanation or ""))


async def spf_check(lookup: Lookup, address: str, sender: str, helo: str) -> SpfResult:
    """``spf_check_sync`` in a worker thread, over ``lookup``'s resolver settings."""
    return await asyncio.to_thread(
        spf_check_sync, lookup.sync_resolver(), address, sender, helo, lookup.resolver.lifetime
    )
