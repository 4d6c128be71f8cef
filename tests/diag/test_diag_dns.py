"""DNS checks against a DNS server on loopback: DNSBL answers read by return code, and SPF
results of the kinds the old evaluator got wrong (the full RFC 7208 suite: test_spf_suite.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot import render
from bot.diag.collect import Diagnosis
from bot.diag.config import DiagnoseSection
from bot.diag.dns import Lookup
from bot.diag.dnsbl import Listing, dnsbl
from bot.diag.model import Evidence
from bot.diag.senderauth import sender_auth
from bot.diag.verdicts import decide
from helpers.dnsserver import dns_server

ZONE = {
    # Spamhaus ZEN, as it answers a resolver it serves
    "2.0.0.127.zen.spamhaus.org": [
        ("A", "127.0.0.2"),
        ("TXT", ("https://check.spamhaus.org/sbl/query/SBL2",)),
    ],
    "4.0.0.127.zen.spamhaus.org": [("A", "127.0.0.4"), ("A", "127.0.0.10")],
    "10.0.0.127.zen.spamhaus.org": [("A", "127.0.0.10")],
    # ... and a public resolver: the query is refused, nothing is known about the address
    "1.2.0.192.zen.spamhaus.org": [("A", "127.255.255.254")],
    "2.2.0.192.zen.spamhaus.org": [("A", "127.255.255.255")],
    "3.2.0.192.zin.spamhaus.org": [("A", "127.255.255.252")],
    # a resolver that rewrites NXDOMAIN to its own web server
    "5.2.0.192.bl.example.net": [("A", "198.51.100.80")],
    "6.2.0.192.bl.example.net": [("A", "127.0.0.2")],
    # SPF the old evaluator answered "fail" for
    "macro.example": [("TXT", ("v=spf1 exists:%{i}._spf.%{d} -all",))],
    "192.0.2.1._spf.macro.example": [("A", "127.0.0.2")],
    "cidr.example": [
        ("TXT", ("v=spf1 a/24 mx/24 -all",)),
        ("A", "192.0.2.250"),
        ("MX", "10 mx.cidr.example."),
    ],
    "mx.cidr.example": [("A", "198.51.100.1")],
}


@pytest.fixture(scope="module")
def lookup() -> Iterator[Lookup]:
    with dns_server(ZONE) as (_answerer, port):
        yield Lookup(DiagnoseSection(nameservers=["127.0.0.1"], nameserver_port=port), 3.0)


async def test_spamhaus_lists_are_named(lookup: Lookup) -> None:
    sbl = await dnsbl(lookup, "127.0.0.2", "zen.spamhaus.org")
    assert (sbl.status, sbl.codes, sbl.lists) == ("listed", ("127.0.0.2",), ("SBL",))
    assert sbl.reason == "https://check.spamhaus.org/sbl/query/SBL2"
    both = await dnsbl(lookup, "127.0.0.4", "zen.spamhaus.org")
    assert (both.status, both.lists) == ("listed", ("XBL", "PBL"))
    assert (await dnsbl(lookup, "127.0.0.10", "zen.spamhaus.org")).lists == ("PBL",)
    assert (await dnsbl(lookup, "127.0.0.9", "zen.spamhaus.org")).status == "clean"


@pytest.mark.parametrize(
    ("address", "zone", "refusal", "code"),
    [
        ("192.0.2.1", "zen.spamhaus.org", "public_resolver", "127.255.255.254"),
        ("192.0.2.2", "zen.spamhaus.org", "volume", "127.255.255.255"),
        ("192.0.2.3", "zin.spamhaus.org", "typo", "127.255.255.252"),
    ],
)
async def test_refusal_codes_are_not_listings(
    lookup: Lookup, address: str, zone: str, refusal: str, code: str
) -> None:
    found = await dnsbl(lookup, address, zone)
    assert (found.status, found.refusal, found.codes) == ("refused", refusal, (code,))
    assert found.reason == ""  # no TXT was asked for


async def test_answers_outside_loopback_are_ignored(lookup: Lookup) -> None:
    rewritten = await dnsbl(lookup, "192.0.2.5", "bl.example.net")
    assert (rewritten.status, rewritten.ignored) == ("clean", ("198.51.100.80",))
    listed = await dnsbl(lookup, "192.0.2.6", "bl.example.net")
    assert (listed.status, listed.lists) == ("listed", ())  # not Spamhaus: no list names


def _rendered(listings: tuple[tuple[str, Listing], ...]) -> tuple[list[str], str]:
    evidence = Evidence(host="mx1", domain=None, now=0.0, listings=listings)
    verdicts = decide(evidence)
    diagnosis = Diagnosis("mx1", None, evidence, verdicts, [], [], 20.0, 8.0, 1.0)
    return [v.kind for v in verdicts], render.render("diagnose", diagnosis).text


async def test_a_refusal_is_reported_as_not_checked(lookup: Lookup) -> None:
    refused = await dnsbl(lookup, "192.0.2.1", "zen.spamhaus.org")
    kinds, text = _rendered((("192.0.2.1", refused),))
    assert kinds == ["dnsbl_refused"]
    assert "Could not check: zen.spamhaus.org refuses queries from this resolver" in text
    assert "the query came through a public or open resolver" in text
    assert "This is not a listing" in text
    assert "[diagnose] nameservers" in text
    assert "is listed" not in text


async def test_pbl_only_gets_its_own_next_step(lookup: Lookup) -> None:
    pbl = await dnsbl(lookup, "127.0.0.10", "zen.spamhaus.org")
    sbl = await dnsbl(lookup, "127.0.0.2", "zen.spamhaus.org")
    kinds, text = _rendered((("127.0.0.10", pbl), ("127.0.0.2", sbl)))
    assert kinds == ["policy_listed", "blocklisted"]
    assert "Policy Block List (PBL)" in text
    assert "127.0.0.2 is listed in zen.spamhaus.org (127.0.0.2: SBL)" in text


@pytest.mark.parametrize(
    ("domain", "address", "result"),
    [
        ("macro.example", "192.0.2.1", "pass"),  # exists: with %{i} and %{d} macros
        ("macro.example", "192.0.2.9", "fail"),
        ("cidr.example", "192.0.2.7", "pass"),  # a/24
        ("cidr.example", "198.51.100.77", "pass"),  # mx/24
        ("cidr.example", "203.0.113.1", "fail"),
    ],
)
async def test_spf_with_macros_and_cidr(
    lookup: Lookup, domain: str, address: str, result: str
) -> None:
    found = await sender_auth(lookup, domain, address)
    assert found.spf_result == result, found
