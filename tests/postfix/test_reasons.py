"""Delay-reason classes and normalisation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.postfix import reasons
from bot.postfix.postfix import PostqueueJsonParser
from bot.postfix.reasons import _RULES, MAX_REASON_LENGTH, ReasonClass, analyse, classify, normalise
from helpers.mta_samples import LAB_JSON, REASONS

# Real Postfix (and real remote server) wording, one or more per class.
EXAMPLES = [
    *[
        (reason.format(rcpt="bob@example.com"), ReasonClass(name))
        for name, reason in REASONS.items()
    ],
    (
        "conversation with mx.silent.test[127.0.0.5] timed out while receiving the initial server "
        "greeting",
        ReasonClass.connection_timeout,
    ),
    (
        "delivery temporarily suspended: connect to mx.timeout.test[127.0.0.4]:25: "
        "Connection timed out",
        ReasonClass.connection_timeout,
    ),
    (
        "connect to mx.example.com[2001:db8::1]:25: Connection refused",
        ReasonClass.connection_refused,
    ),
    (
        "Host or domain name not found. Name service error for name=spam.example type=MX: Host not "
        "found",
        ReasonClass.host_not_found,
    ),
    (
        "Host or domain name not found. Name service error for name=dnsfail.test type=A: Host not "
        "found, try again",
        ReasonClass.dns_tempfail,
    ),
    (
        "TLS is required, but host mx.example.com[192.0.2.1] refused to start TLS: "
        "454 4.7.0 TLS not available due to local problem",
        ReasonClass.tls_failure,
    ),
    ("Server certificate not verified", ReasonClass.tls_failure),
    (
        "host relay.example.com[192.0.2.1] said: 454 4.7.1 <bob@example.com>: Relay access denied "
        "(in reply to RCPT TO command)",
        ReasonClass.auth_failure,
    ),
    (
        "host mx.example.com[192.0.2.1] said: 451 4.7.1 Greylisting in action, please come back "
        "later (in reply to RCPT TO command)",
        ReasonClass.greylisted,
    ),
    (
        "host gmail-smtp-in.l.google.com[142.250.1.26] said: 421-4.7.28 Our system has detected an "
        "unusual rate of unsolicited mail originating from your IP address. - gsmtp",
        ReasonClass.blocklisted,
    ),
    (
        "host mta7.am0.yahoodns.net[67.195.204.72] said: 421 4.7.0 [TSS04] Messages from 192.0.2.1 "
        "temporarily deferred due to unexpected volume or user complaints",
        ReasonClass.blocklisted,
    ),
    (
        "host gmail-smtp-in.l.google.com[142.250.1.26] said: 421-4.7.28 Gmail has detected an "
        "unusual rate of mail originating from your IP address.",
        ReasonClass.rate_limited,
    ),
    ("mail transport unavailable", ReasonClass.local_config),
    (
        "connect to mail.example.com[/var/run/dovecot/lmtp]: No such file or directory",
        ReasonClass.local_config,
    ),
    (
        "Host or domain name not found. Name service error for name=example.de type=MX: "
        "Malformed or unexpected name server reply",
        ReasonClass.dns_tempfail,
    ),
    (
        "host gmail-smtp-in.l.google.com[2a00:1450:400c:c0b::1a] said: 421-4.7.26 This mail has "
        "been blocked because the sender is unauthenticated. Gmail requires all senders to "
        "authenticate with either SPF or DKIM.",
        ReasonClass.blocklisted,
    ),
    (
        "host mx.example.com[192.0.2.1] said: 450 4.7.1 Client host rejected: cannot find your "
        "hostname, [192.0.2.7]",
        ReasonClass.blocklisted,
    ),
    (
        "host mx.example.com[192.0.2.1] said: 452 4.2.2 The email account that you tried to reach "
        "is over quota",
        ReasonClass.mailbox_full,
    ),
    (
        "host mx.busy.test[127.0.0.6] refused to talk to me: 421 4.3.2 Service not available",
        ReasonClass.other,
    ),
    (
        "connect to mx.example.com[2001:db8::1]:25: Network is unreachable",
        ReasonClass.network_unreachable,
    ),
    ("", ReasonClass.other),
]


@pytest.mark.parametrize(("reason", "expected"), EXAMPLES)
def test_classify(reason: str, expected: ReasonClass) -> None:
    assert classify(reason) is expected


@pytest.mark.parametrize(
    "reason",
    [
        "connect to spam-trap.example.com[192.0.2.1]:25: Connection refused",
        "connect to tls.policy.example[192.0.2.1]:25: Connection refused",
        "connect to greylist.example.net[192.0.2.1]:25: Connection refused",
    ],
)
def test_host_names_do_not_decide_the_class(reason: str) -> None:
    assert classify(reason) is ReasonClass.connection_refused


def test_every_class_has_a_label() -> None:
    assert ReasonClass.auth_failure.label == "Relay / SASL authentication failure"
    assert all(cls.label for cls in ReasonClass)
    assert {cls for _, cls in EXAMPLES} == set(ReasonClass)


def test_suspended_prefix_groups_with_the_tried_ones() -> None:
    tried = "connect to mx.refused.test[127.0.0.3]:25: Connection refused"
    assert normalise("delivery temporarily suspended: " + tried) == normalise(tried)
    assert normalise(tried) == "connect to mx.refused.test[<ip>]:25: Connection refused"


def test_two_recipients_group_together() -> None:
    one = REASONS["greylisted"].format(rcpt="alice@grey.test")
    two = REASONS["greylisted"].format(rcpt="Bob.Smith+tag@grey.test")
    assert one != two
    assert normalise(one) == normalise(two)
    assert "<addr>" in normalise(one)
    assert "mx.grey.test" in normalise(one)  # the destination stays


def test_ip_addresses_are_folded() -> None:
    v4 = "connect to mx.example.com[192.0.2.1]:25: Connection timed out"
    v4b = "connect to mx.example.com[198.51.100.7]:25: Connection timed out"
    v6 = "connect to mx.example.com[2001:db8::25]:25: Connection timed out"
    assert normalise(v4) == normalise(v4b) == normalise(v6)
    assert normalise(v4) == "connect to mx.example.com[<ip>]:25: Connection timed out"


def test_session_ids_and_times_are_folded() -> None:
    a = (
        "host mx.example.com[192.0.2.1] said: 451 4.3.0 Temporary failure at "
        "2024-11-27T10:12:03Z, session 5b1f17b1804b1-43b4a0fbb0csi123456f8f.50 id 1234567"
    )
    b = (
        "host mx.example.com[192.0.2.9] said: 451 4.3.0 Temporary failure at "
        "2024-11-28T11:00:59Z, session 7c2e18c2915c2-54c5b1fcc1dtj234567g9g.51 id 7654321"
    )
    assert normalise(a) == normalise(b)
    assert "451 4.3.0" in normalise(a)


def test_whitespace_collapsed_and_length_bounded() -> None:
    assert normalise("  a \t  b\n c  ") == "a b c"
    long = "host mx.example.com[192.0.2.1] said: 450 4.7.1 " + "word " * 200
    assert len(normalise(long)) == MAX_REASON_LENGTH
    assert normalise(long).endswith("…")


def test_class_is_decided_on_the_full_text() -> None:
    long = "host mx.example.com[192.0.2.1] said: 450 " + "filler " * 60 + "Greylisted"
    assert classify(long) is ReasonClass.greylisted


@pytest.mark.parametrize(
    ("reason", "cache"),
    [
        ("connect to mx.cache.test[192.0.2.1]:25: Connection refused", reasons._analyse_short),
        ("host mx.cache.test[192.0.2.1] said: 550 " + "x" * 600, reasons._analyse_long),
    ],
)
def test_results_are_cached(reason: str, cache: Any) -> None:
    """Short and long reasons each have a bounded cache (long ones: a small one)."""
    analyse(reason)
    hits = cache.cache_info().hits
    analyse(reason)
    assert cache.cache_info().hits == hits + 1
    assert cache.cache_info().maxsize <= 16384


def test_hostile_reason_is_just_text() -> None:
    reason = "host x[192.0.2.1] said: 450 <!channel> \u200b <https://evil.test|click>"
    assert classify(reason) is ReasonClass.other
    assert "<!channel>" in normalise(reason)  # escaping is the renderer's job


def regex_only(text: str) -> ReasonClass:
    for cls, _check, _keywords, pattern in _RULES:
        if pattern.search(text):
            return cls
    return ReasonClass.other


CORPUS_WORDS = {
    w
    for line in (Path(__file__).parent.parent / "data" / "reasons-corpus.jsonl")
    .read_text(encoding="utf-8")
    .splitlines()
    for w in json.loads(line)["reason"].split()
}
words = st.sampled_from(
    sorted(
        {w for r, _ in EXAMPLES for w in r.lower().split()}
        | {"rate", "Grey-list", "4.2.2", "DNSBL", "5.7.25", "white", "list"}
        | CORPUS_WORDS
    )
)


@given(st.lists(words, max_size=25).map(" ".join) | st.text(max_size=80))
@settings(max_examples=3000)
def test_keyword_prefilter_never_changes_the_class(text: str) -> None:
    """The keywords only skip work: the answer is the one the patterns alone give."""
    for cls, _check, keywords, pattern in _RULES:
        if pattern.search(text):
            lowered = text.lower()
            assert any(k in lowered for k in keywords), (cls, text)


@given(st.text(max_size=300))
@settings(max_examples=500)
def test_any_text_is_handled(text: str) -> None:
    cls, normalised = analyse(text)
    assert isinstance(cls, ReasonClass)
    assert len(normalised) <= MAX_REASON_LENGTH


# What each lab destination (tests/lab, LAB.md) does, and the class its reason must get.
LAB_DESTINATIONS = {
    "busy.test": ReasonClass.rate_limited,
    "blackhole.test": ReasonClass.connection_timeout,
    "silent.test": ReasonClass.connection_timeout,
    "refused.test": ReasonClass.connection_refused,
    "dnsfail.test": ReasonClass.dns_tempfail,
    "greylist.test": ReasonClass.greylisted,
    "full.test": ReasonClass.mailbox_full,
    "dropdata.test": ReasonClass.other,
    "notls.test": ReasonClass.tls_failure,
    "authfail.test": ReasonClass.auth_failure,
}


@pytest.mark.skipif(not LAB_JSON.exists(), reason="no lab capture in tests/data yet")
def test_lab_reasons() -> None:
    parser = PostqueueJsonParser()
    queue = parser.feed(LAB_JSON.read_bytes()) + parser.close()
    groups: dict[str, set[str]] = {}
    for message in queue:
        for rcpt in message.recipients:
            destination = rcpt.address.rpartition("@")[2]
            assert classify(rcpt.delay_reason) is LAB_DESTINATIONS[destination], rcpt
            groups.setdefault(destination, set()).add(normalise(rcpt.delay_reason))
    # Suspended or not, whatever the recipient: one normalised reason per destination.
    assert all(len(reasons) == 1 for reasons in groups.values()), groups


@pytest.mark.parametrize(
    ("reason", "check"),
    [
        (
            "host mx00.emig.gmx.net[212.227.15.9] refused to talk to me: 554-gmx.net (mxgmx017) "
            "Nemesis ESMTP Service not available 554-No SMTP service 554-Bad DNS PTR resource "
            "record.",
            "ptr",
        ),
        (
            "host mx.example.com[192.0.2.1] said: 450 4.7.1 Client host rejected: cannot find your "
            "reverse hostname, [192.0.2.7]",
            "ptr",
        ),
        (
            "host mta6.am0.yahoodns.net[67.195.204.72] said: 421 4.7.0 [TSS04] Messages from "
            "192.0.2.192 temporarily deferred due to unexpected volume or user complaints",
            "dnsbl",
        ),
        (
            "host mx00.t-online.de[194.25.134.8] refused to talk to me: 554 IP=192.0.2.1 - A "
            "problem occurred. (Ask your postmaster for help or to contact tosa@rx.t-online.de to "
            "clarify.) (BL)",
            "dnsbl",
        ),
        (
            "host gmail-smtp-in.l.google.com[142.250.1.26] said: 550-5.7.1 Our system has "
            "detected an unusual rate of unsolicited mail originating from your IP address. To "
            "protect our users from spam, mail sent from your IP address has been blocked.",
            "dnsbl",
        ),
        (
            "host gmail-smtp-in.l.google.com[142.250.1.26] said: 421-4.7.26 This mail has been "
            "rate limited because it is unauthenticated.",
            "sender_auth",
        ),
        (
            "host mx.example.com[192.0.2.1] said: 450 4.7.1 <web01>: Helo command rejected: Host "
            "not found (in reply to RCPT TO command)",
            "ptr",
        ),
        ("host mx.example.com[192.0.2.1] said: 550 Denied by policy", None),
        (REASONS["greylisted"].format(rcpt="a@b.test"), None),
    ],
)
def test_refusals_name_the_check_that_confirms_them(reason: str, check: str | None) -> None:
    assert reasons.confirming_check(reason) == check
    if check is not None:
        assert classify(reason) is ReasonClass.blocklisted
        assert check in ReasonClass.blocklisted.checks


def test_new_classes_have_their_own_labels() -> None:
    assert ReasonClass.local_config.label == "Local configuration / transport fault"
    assert ReasonClass.network_unreachable.label == "Network unreachable / no route"
    assert ReasonClass.other.checks == ()
