"""The RFC 7208 test suite (openspf.org, from the pyspf project: tests/data/rfc7208/README.md)
through mailqbot's SPF evaluation, with each scenario's zone data served by a DNS server on
loopback that dnspython queries over UDP (and TCP for long answers).

As in the suite's own driver (pyspf's test/testspf.py): SPF-type records are also served as
TXT when a name has no TXT records, a result may be any of the listed ones, and the
explanation must match where the suite gives one (the default explanation is "DEFAULT").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from bot.diag.config import DiagnoseSection
from bot.diag.dns import Lookup
from bot.diag.senderauth import spf_check
from helpers.dnsserver import Answerer, Zone, dns_server

SUITE = Path(__file__).resolve().parents[1] / "data" / "rfc7208" / "rfc7208-tests.yml"


def _records(name: str, entries: list[object]) -> list[object]:
    out: list[object] = []
    generated: list[object] = []
    has_txt = False
    for entry in entries:
        if not isinstance(entry, dict):
            out.append(entry)  # TIMEOUT
            continue
        for kind, value in entry.items():
            if kind in ("TXT", "SPF") and isinstance(value, str):
                value = (value,)
            if kind == "TXT":
                has_txt = True
            elif kind == "SPF":
                generated.append(("TXT", value))
            if value != ("NONE",):
                out.append((kind, value))
    return out if has_txt else out + generated


def _scenarios() -> Iterator[tuple[str, Zone, dict[str, object]]]:
    with SUITE.open("rb") as f:
        for scenario in yaml.safe_load_all(f):
            zone = {
                name.lower(): _records(name, entries)
                for name, entries in scenario["zonedata"].items()
            }
            for test_id, test in scenario["tests"].items():
                yield test_id, zone, test  # type: ignore[misc]


CASES = list(_scenarios())


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[Answerer, int]]:
    with dns_server({}) as running:
        yield running


def test_the_suite_is_complete() -> None:
    assert len(CASES) == 203, len(CASES)  # every test of release 2014.04


@pytest.mark.parametrize(("test_id", "zone", "test"), CASES, ids=[c[0] for c in CASES])
async def test_rfc7208(
    server: tuple[Answerer, int], test_id: str, zone: Zone, test: dict[str, object]
) -> None:
    answerer, port = server
    answerer.zone = zone
    lookup = Lookup(DiagnoseSection(nameservers=["127.0.0.1"], nameserver_port=port), lifetime=5.0)
    found = await spf_check(lookup, str(test["host"]), str(test["mailfrom"]), str(test["helo"]))
    expected = test["result"]
    allowed = [expected] if isinstance(expected, str) else list(expected)  # type: ignore[call-overload]
    assert found.result in allowed, (test_id, test.get("description"), found)
    if "explanation" in test:
        assert found.explanation == test["explanation"], (test_id, found)
    if test.get("explanation") is not None:
        assert found.explanation == test["explanation"], (test_id, found)
