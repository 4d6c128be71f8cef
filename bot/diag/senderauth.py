"""Sender authentication from the bot's side: SPF (RFC 7208) and DMARC of a sender domain.

SPF is evaluated by pyspf (macros, ``exists``, ``ptr``, CIDR lengths on ``a``/``mx``, the
lookup limits) in a worker thread, over a blocking dnspython resolver with the ``Lookup``'s
settings. The RFC 7208 test suite runs against ``spf_check`` in the tests
(tests/diag/test_spf_suite.py).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.resolver
import spf

from bot.diag.dns import Answer, Lookup


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
