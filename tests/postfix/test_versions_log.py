"""Every Postfix from 2.0 to 3.11: mail log status lines, from fixtures derived from each
version's sources (``tests/data/versions/``; each file's ``#`` header names the source file and
version it follows, and says what a reader must find in it), and the shapes collectors give
them (syslog, RFC 3339, journal, container logs, docker compose).
"""

from __future__ import annotations

from datetime import datetime

import pytest

from bot.postfix.maillog import (
    Delivery,
    LineReader,
    LogAnalyser,
    LogClock,
    TlsFeature,
    is_status_line,
    parse_line,
    tls_features,
)
from helpers.mta_samples import VERSIONS_NOW as NOW
from helpers.mta_samples import versions_fixture as fixture


def deliveries(name: str, offset: int = 0) -> tuple[list[Delivery], LineReader]:
    reader = LineReader(LogClock(NOW, offset))
    found = reader.feed(fixture(name).encode()) + reader.close()
    return found, reader


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- mail log lines, version by version ---------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "count"),
    [
        ("maillog-2.0.log", 7),
        ("maillog-2.2.log", 6),
        ("maillog-2.3.log", 6),
        ("maillog-3.5.log", 6),
        ("maillog-3.11.log", 24),
        ("maillog-shapes.log", 9),
    ],
)
def test_every_status_line_of_each_version_is_read(name: str, count: int) -> None:
    found, reader = deliveries(name)
    assert len(found) == count
    assert (reader.malformed, reader.examples) == (0, [])
    status_lines = [line for line in fixture(name).splitlines() if is_status_line(line)]
    assert len(status_lines) == count


def test_postfix_2_0_lines() -> None:
    found, _ = deliveries("maillog-2.0.log")
    assert [(d.status, d.recipient, d.relay, d.delays, d.dsn) for d in found] == [
        ("sent", "ann@example.net", "mx.example.net[192.0.2.10]", None, ""),
        ("sent", "bob@mx.example.org", "local", None, ""),
        ("deferred", "carl@example.com", "none", None, ""),
        ("bounced", "dana@example.com", "mx.example.com[203.0.113.5]", None, ""),
        ("deferred", "eve@example.com", "mx.example.com[203.0.113.5]", None, ""),
        ("deferred", "", "", None, ""),  # "QUEUE_ID: status=deferred (bounce failed)"
        ("expired", "", "", None, ""),
    ]
    assert found[0].reason == "250 Ok: queued as 9A1B2C3D"
    assert found[1].reason == ""  # 2.0 logs "status=sent" without text for local delivery
    assert found[4].reason.startswith("SOFT BOUNCE - host mx.example.com")
    assert (found[5].queue_id, found[5].reason) == ("5C2A41B53", "bounce failed")
    assert found[6].reason == "returned to sender"
    assert found[0].when == at("2026-11-28T11:05:02+00:00")


def test_postfix_2_2_soft_bounce_and_address_probes() -> None:
    found, _ = deliveries("maillog-2.2.log")
    assert [d.status for d in found] == [
        "SOFTBOUNCE", "sent", "deferred", "deliverable", "undeliverable",
        "undeliverable-but-not-cached",
    ]  # fmt: skip
    assert found[0].reason.endswith("(in reply to RCPT TO command)")
    assert found[5].reason == "connect to mx.example.org[198.51.100.7]: Connection refused"


def test_postfix_2_3_fields() -> None:
    found, _ = deliveries("maillog-2.3.log")
    first, second, *_, lmtp, expired = found
    assert (first.delays, first.dsn, first.tls) == ((0.02, 0.01, 0.21, 0.29), "2.0.0", "")
    assert (second.recipient, second.delays) == ("eve@example.com", (0.01, 0.0, 30.0, 0.0))
    assert [d.status for d in found] == [
        "sent", "deferred", "bounced", "SOFTBOUNCE", "sent", "expired",
    ]  # fmt: skip
    assert lmtp.relay == "mail.example.com[private/dovecot-lmtp]"
    assert lmtp.program == "postfix/lmtp"
    assert (expired.queue_id, expired.recipient) == ("7A1B2C3D4E", "")


def test_postfix_3_5_force_expired_and_long_queue_ids() -> None:
    found, _ = deliveries("maillog-3.5.log")
    assert [(d.queue_id, d.status) for d in found] == [
        ("4Y2FQ3Lkb1z9Kq", "force-expired"),
        ("4Y2FQ3Lkb2z9Kr", "expired"),
        ("4Y2FQ3Lkb3z9Ks", "sent"),
        ("4Y2FQ3Lkb4z9Kt", "undeliverable-but-not-cached"),
        ("4Y2FQ3Lkb5z9Kv", "deliverable"),
        ("4Y2FQ3Lkb6z9Kw", "deferred"),
    ]
    assert found[2].recipient == '"<!here>"@example.net'
    assert found[5].delays == (1802.0, 0.01, 0.0, 0.0)


# Every tls= value in maillog-3.11.log, in order, with its features as pol_stats_format wrote
# them: (name, final, violated, undecided) per feature.
TLS_VARIANTS = [
    ("none", [("none", "none", False, False)]),
    ("may", [("may", "may", False, False)]),
    ("may?", [("may", "may", False, True)]),
    ("may:none", [("may", "none", False, False)]),
    ("dane", [("dane", "dane", False, False)]),
    ("dane:halfdane", [("dane", "halfdane", False, False)]),
    ("dane:encrypt", [("dane", "encrypt", False, False)]),
    ("dane?", [("dane", "dane", False, True)]),
    ("!dane-only", [("dane-only", "dane-only", True, False)]),
    ("!encrypt", [("encrypt", "encrypt", True, False)]),
    ("!verify", [("verify", "verify", True, False)]),
    ("secure", [("secure", "secure", False, False)]),
    ("fingerprint", [("fingerprint", "fingerprint", False, False)]),
    ("unknown?", [("unknown", "unknown", False, True)]),
    ("verify/requiretls", [("verify", "verify", False, False),
                           ("requiretls", "requiretls", False, False)]),
    ("encrypt?/!requiretls:nocertmatch", [("encrypt", "encrypt", False, True),
                                          ("requiretls", "nocertmatch", True, False)]),
    ("encrypt/requiretls:nocertmatch", [("encrypt", "encrypt", False, False),
                                        ("requiretls", "nocertmatch", False, False)]),
    ("may?/!requiretls:nostarttls", [("may", "may", False, True),
                                     ("requiretls", "nostarttls", True, False)]),
    ("none?/!requiretls:noencryption", [("none", "none", False, True),
                                        ("requiretls", "noencryption", True, False)]),
    ("verify/!requiretls:none", [("verify", "verify", False, False),
                                 ("requiretls", "none", True, False)]),
    ("may/requiretls:none", [("may", "may", False, False),
                             ("requiretls", "none", False, False)]),
    ("verify?/requiretls?", [("verify", "verify", False, True),
                             ("requiretls", "requiretls", False, True)]),
    ("", []),  # lmtp to a local socket: no TLS, no tls= field
    ("may", [("may", "may", False, False)]),  # with conn_use= before delay=
]  # fmt: skip


def test_postfix_3_11_every_tls_variant() -> None:
    found, _ = deliveries("maillog-3.11.log")
    assert [d.tls for d in found] == [value for value, _ in TLS_VARIANTS]
    for d, (value, features) in zip(found, TLS_VARIANTS, strict=True):
        if value:
            assert tls_features(d.tls) == tuple(TlsFeature(*f) for f in features), value
    # tls= sits between delays= and dsn=: both are still read around it.
    assert {d.dsn for d in found} >= {"2.0.0", "4.4.1", "4.7.5", "5.7.10", "5.7.30"}
    assert all(d.delays is not None for d in found)
    assert [d.status for d in found].count("bounced") == 4


def test_collector_shapes_all_give_the_same_time() -> None:
    found, _ = deliveries("maillog-shapes.log")
    assert [d.recipient[0] for d in found] == list("abcdefghi")
    for second, d in enumerate(found, start=1):
        assert d.when == pytest.approx(at(f"2026-11-28T11:50:0{second}+00:00"), abs=1)
        assert (d.queue_id, d.status, d.program) == ("1F2E3D4C5B6", "deferred", "postfix/smtp")


def test_a_syslog_stamp_without_zone_is_the_hosts_time() -> None:
    found, _ = deliveries("maillog-shapes.log", offset=3600)
    # Lines with a zone (RFC 3339, journal, docker) keep their time; the others move an hour.
    moved = [d.recipient[0] for d in found if d.when < at("2026-11-28T11:00:00+00:00")]
    assert moved == list("adfg")


def test_unknown_fields_are_tolerated_and_malformed_known_ones_are_not() -> None:
    line = fixture("maillog-3.11.log").splitlines()[1]
    future = line.replace(", tls=may, ", ", tls=may, pqc=mlkem768, ", 1)
    before = line.replace(", delay=", ", hops=3, delay=", 1)
    for text in (future, before):
        d = parse_line(text, LogClock(NOW))
        assert d is not None
        assert (d.tls, d.dsn, d.delays) == ("may", "2.0.0", (0.01, 0.0, 0.2, 0.19))
    for bad in ("delays=0.01/0/0.2", "dsn=2.0", "tls=<may>", "delay=soon"):
        field = bad.split("=")[0]
        damaged = line.replace(
            f", {field}=" + line.split(f", {field}=")[1].split(",")[0], f", {bad}", 1
        )
        assert parse_line(damaged, LogClock(NOW)) is None, bad
        assert is_status_line(damaged)


def test_a_log_mixing_3_7_and_3_11_is_read_and_unreadable_lines_are_counted() -> None:
    found, reader = deliveries("maillog-mixed-3.7-3.11.log")
    analyser = LogAnalyser(0)
    for d in found:
        analyser.add(d)
    a = analyser.build()
    assert dict(a.statuses) == {
        "sent": 3, "deferred": 4, "bounced": 1, "expired": 0, "quarantined": 1,
    }  # fmt: skip
    assert a.tls == [("dane?", 1), ("may", 1)]
    assert reader.malformed == 3
    assert [e[:12] for e in reader.examples] == ["<22>1 2026-1", "Nov 28 11:12", "postfix/smtp"]
    assert '"<!channel>"@evil.test' in reader.examples[1]
