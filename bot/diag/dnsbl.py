"""DNSBL lookups of the sending address, read by return code."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace

import dns.reversename

from bot.diag.dns import Lookup

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
