"""Relay providers from relayhost, and their refusals classified (real texts: relay_refusals.py)."""

from __future__ import annotations

import pytest

from bot.diag.relays import (
    Provider,
    RefusalTally,
    Relayhost,
    classify,
    parse_relayhost,
    recognise,
    valid_alias,
)
from helpers.relay_refusals import CASES, HOSTS, NOT_PROVIDER


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("[smtp.sendgrid.net]:587", Relayhost("smtp.sendgrid.net", 587, True)),
        ("smtp.sendgrid.net:2525", Relayhost("smtp.sendgrid.net", 2525, False)),
        ("smtp.mailgun.org", Relayhost("smtp.mailgun.org", None, False)),
        (
            "[Email-SMTP.eu-west-1.amazonaws.com.]",
            Relayhost("email-smtp.eu-west-1.amazonaws.com", None, True),
        ),
        (
            "[smtp.postmarkapp.com]:587, [smtp2.example.net]:587",
            Relayhost("smtp.postmarkapp.com", 587, True),
        ),
        ("[192.0.2.7]:587", Relayhost("192.0.2.7", 587, True)),
        ("[ipv6:2001:db8::1]:587", Relayhost("2001:db8::1", 587, True)),
        ("", None),
        ("[smtp.sendgrid.net:587", None),
        ("smtp.sendgrid.net:99999", None),
    ],
)
def test_relayhost_forms(value: str, expected: Relayhost | None) -> None:
    assert parse_relayhost(value) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("smtp.sendgrid.net", Provider("sendgrid", "smtp.sendgrid.net")),
        (
            "email-smtp.us-east-1.amazonaws.com",
            Provider("ses", "email-smtp.us-east-1.amazonaws.com", "us-east-1"),
        ),
        (
            "email-smtp.ap-southeast-2.amazonaws.com",
            Provider("ses", "email-smtp.ap-southeast-2.amazonaws.com", "ap-southeast-2"),
        ),
        (
            "email-smtp.il-central-1.amazonaws.com",
            Provider("ses", "email-smtp.il-central-1.amazonaws.com", "il-central-1"),
        ),
        (
            "email-smtp-fips.us-east-1.amazonaws.com",
            Provider("ses", "email-smtp-fips.us-east-1.amazonaws.com", "us-east-1", True),
        ),
        (
            "email-smtp.us-gov-west-1.amazonaws.com",
            Provider("ses", "email-smtp.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ),
        (
            "email-smtp-fips.us-gov-west-1.amazonaws.com",
            Provider("ses", "email-smtp-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1", True),
        ),
        ("smtp.mailgun.org", Provider("mailgun", "smtp.mailgun.org")),
        ("smtp.eu.mailgun.org", Provider("mailgun", "smtp.eu.mailgun.org")),
        ("smtp.postmarkapp.com", Provider("postmark", "smtp.postmarkapp.com")),
        (
            "smtp-broadcasts.postmarkapp.com",
            Provider("postmark", "smtp-broadcasts.postmarkapp.com"),
        ),
        ("SMTP.SendGrid.net.", Provider("sendgrid", "smtp.sendgrid.net")),
        ("smtp.sendgrid.net.evil.example", None),
        ("email-smtp.amazonaws.com", None),
        ("mx.example.net", None),
    ],
)
def test_providers_by_host_name(host: str, expected: Provider | None) -> None:
    assert recognise(host) == expected


def test_aliases_name_other_hosts() -> None:
    aliases = {"smtp.sendgrid.test": "sendgrid", "email-smtp.eu-west-1.ses.test": "ses:eu-west-1"}
    assert recognise("smtp.sendgrid.test", aliases) == Provider("sendgrid", "smtp.sendgrid.test")
    found = recognise("email-smtp.eu-west-1.ses.test", aliases)
    assert found is not None
    assert (found.name, found.region) == ("Amazon SES", "eu-west-1")
    assert [valid_alias(a) for a in ("ses:us-gov-west-1", "sendgrid", "smtp", "ses:moon")] == [
        True,
        True,
        False,
        False,
    ]


def _reason(provider: str, reply: str) -> str:
    host = HOSTS[provider]
    if reply.startswith(("535", "451 Authentication")):
        return f"SASL authentication failed; server {host}[192.0.2.25] said: {reply}"
    return f"host {host}[192.0.2.25] said: {reply} (in reply to end of DATA command)"


@pytest.mark.parametrize(
    ("provider", "kind", "reply", "origin"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_real_refusals(provider: str, kind: str, reply: str, origin: str) -> None:
    found = classify(_reason(provider, reply), "someone@example.org")
    assert found is not None, origin
    server, refusal = found
    assert server is not None
    assert (server.key, refusal.provider, refusal.kind) == (provider, provider, kind), origin


def test_distinctive_texts_need_no_known_server() -> None:
    reply = CASES[0][2]  # SES "Email address is not verified"
    found = classify(f"host relay.internal.example[10.0.0.5] said: {reply}")
    assert found is not None
    assert found[0] is None
    assert (found[1].provider, found[1].kind, found[1].region) == (
        "ses",
        "sender_unverified",
        "us-east-1",
    )


def test_ses_sandbox_names_the_recipient() -> None:
    reason = _reason(
        "ses",
        "554 Message rejected: Email address is not verified. The following identities failed "
        "the check in region EU-WEST-1: orders@customer.example",
    )
    found = classify(reason, "Orders@customer.example")
    assert found is not None
    refusal = found[1]
    assert (refusal.kind, refusal.region, refusal.identities) == (
        "recipient_unverified",
        "eu-west-1",
        ("orders@customer.example",),
    )


@pytest.mark.parametrize("reason", NOT_PROVIDER)
def test_ordinary_servers_are_not_providers(reason: str) -> None:
    assert classify(reason) is None


def test_tally_is_bounded_and_merges() -> None:
    queue, log = RefusalTally(limit=2), RefusalTally()
    for provider, _kind, reply, _origin in CASES:
        queue.add(_reason(provider, reply), "x@example.org", None)
    assert len(queue.counts) == 2
    log.add(_reason("ses", CASES[1][2]), "x@example.org", None, bounced=True)
    merged = queue.merged(log)
    key = ("ses", "email-smtp.us-east-1.amazonaws.com", "quota")
    assert merged.bounced[key] == 1
    assert merged.regions[key] == "us-east-1"
