"""Relay-provider verdicts from evidence, rendered (the lab runs them against fake relays:
test_relay_lab.py). Every refusal in relay_refusals.py yields a verdict with its own wording."""

from __future__ import annotations

import pytest

from bot import render
from bot.diag.collect import Diagnosis
from bot.diag.evidence import DiagBuilder
from bot.diag.host import SmtpProbe
from bot.diag.model import Evidence, Probe, Relay
from bot.diag.relays import RefusalTally, parse_relayhost, recognise
from bot.diag.verdicts import decide
from helpers.relay_refusals import CASES, HOSTS

NOW = 1_800_000_000.0
MAP = "hash:/etc/postfix/sasl_passwd"


def relay(relayhost: str, sasl: tuple[str, ...] = ("main.cf",)) -> Relay:
    target = parse_relayhost(relayhost)
    provider = recognise(target.host) if target else None
    return Relay(relayhost, sasl, MAP, MAP + ".db", (40, int(NOW) - 7200), target, provider)


def queue_with(reasons: list[tuple[str, str]]) -> DiagBuilder:
    builder = DiagBuilder(NOW, None)
    for number, (recipient, reason) in enumerate(reasons):
        builder.add_fields(
            "deferred",
            f"4Q{number:08d}",
            int(NOW) - 600,
            1000,
            "news@shop.example",
            [{"address": recipient, "delay_reason": reason}],
        )
    return builder


def rendered(evidence: Evidence) -> tuple[list[str], str]:
    verdicts = decide(evidence)
    diagnosis = Diagnosis("mx1", None, evidence, verdicts, [], [], 20.0, 8.0, 1.0)
    return [v.kind for v in verdicts], render.render("diagnose", diagnosis).text


def said(provider: str, reply: str) -> str:
    if reply.startswith(("535", "451 Authentication")):
        return f"SASL authentication failed; server {HOSTS[provider]}[192.0.2.25] said: {reply}"
    return f"host {HOSTS[provider]}[192.0.2.25] said: {reply} (in reply to end of DATA command)"


@pytest.mark.parametrize(
    ("provider", "kind", "reply", "origin"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_each_refusal_has_its_verdict(provider: str, kind: str, reply: str, origin: str) -> None:
    queue = queue_with([("orders@customer.example", said(provider, reply))]).evidence()
    evidence = Evidence(
        "mx1",
        None,
        NOW,
        queue=queue,
        relay=relay(f"[{HOSTS[provider]}]:587"),
        settings={"smtp_tls_security_level": "encrypt"},
    )
    kinds, text = rendered(evidence)
    expected = f"relay_{kind}" if kind in ("auth_missing", "tls_missing") else f"{provider}_{kind}"
    assert kinds[0] == expected, (kinds, origin)
    assert "relay_auth" not in kinds  # the provider's verdict replaces the generic one
    assert f"{HOSTS[provider]}: 1 recipients (1 deferred in the queue, 0 bounced" in text
    assert "Next: " in text


def test_ses_credentials_name_the_region_and_the_map() -> None:
    reason = said("ses", "535 Authentication Credentials Invalid")
    queue = queue_with([("a@b.example", reason), ("c@d.example", reason)]).evidence()
    evidence = Evidence(
        "mx1", None, NOW, queue=queue, relay=relay("[email-smtp.us-east-1.amazonaws.com]:587")
    )
    kinds, text = rendered(evidence)
    assert kinds == ["ses_credentials"]
    assert "Amazon SES refuses the login: not SES SMTP credentials for us-east-1" in text
    assert "IAM access key" in text
    assert f"put them into {MAP} for [email-smtp.us-east-1.amazonaws.com]:587" in text
    assert "Password map hash:/etc/postfix/sasl_passwd exists (changed 2h ago)" in text
    assert "Run: /mailq flush mx1 reason=auth_failure" in text


def test_bounced_refusals_from_the_log_and_a_region_mismatch() -> None:
    log = RefusalTally()
    log.add(
        said(
            "ses",
            "554 Message rejected: Email address is not verified. The following "
            "identities failed the check in region US-EAST-1: news@shop.example",
        ),
        "orders@customer.example",
        None,
        bounced=True,
    )
    evidence = Evidence(
        "mx1",
        None,
        NOW,
        queue=queue_with([]).evidence(),
        relay_log=log,
        relay=relay("[email-smtp.eu-west-1.amazonaws.com]:587"),
    )
    kinds, text = rendered(evidence)
    assert kinds == ["ses_sender_unverified"]
    assert "1 recipients (0 deferred in the queue, 1 bounced in the last hour)" in text
    assert "SES checked the identities in us-east-1; relayhost's endpoint is in eu-west-1" in text


def test_a_sendgrid_relayhost_set_up_badly() -> None:
    probe = SmtpProbe("ok", banner="220 SG ESMTP service ready", ehlo=("AUTH PLAIN LOGIN",))
    evidence = Evidence(
        "mx1",
        None,
        NOW,
        relay=relay("smtp.sendgrid.net", sasl=("relay/unix",)),
        submission=(Probe("192.0.2.25", 25, "smtp.sendgrid.net", probe),),
        settings={"smtp_tls_security_level": "may"},
    )
    kinds, text = rendered(evidence)
    assert kinds == ["sendgrid_setup"]
    for words in (
        "relayhost smtp.sendgrid.net is SendGrid",
        "relayhost uses port 25",
        "relayhost has no brackets",
        "smtp.sendgrid.net port 25 does not offer STARTTLS",
        "smtp_tls_security_level = may",
        "SASL login is enabled in: relay/unix",
        "relayhost = [smtp.sendgrid.net]:587",
        "[smtp.sendgrid.net]:587 apikey:API_KEY",
    ):
        assert words in text, words


def test_a_relayhost_set_up_well_gives_no_verdict() -> None:
    probe = SmtpProbe("ok", banner="220 x", ehlo=("STARTTLS", "AUTH PLAIN LOGIN"), starttls="ok")
    evidence = Evidence(
        "mx1",
        None,
        NOW,
        relay=relay("[smtp.postmarkapp.com]:587"),
        submission=(Probe("192.0.2.25", 587, "smtp.postmarkapp.com", probe),),
        settings={"smtp_tls_security_level": "encrypt"},
    )
    assert decide(evidence) == []
    unknown = Evidence(
        "mx1",
        None,
        NOW,
        relay=relay("smtp.example.net"),
        settings={"smtp_tls_security_level": "may"},
    )
    assert decide(unknown) == []  # not a provider: none of this applies


@pytest.mark.parametrize(
    ("relayhost", "kind", "words"),
    [
        (
            "email-smtp.eu-west-1.amazonaws.com:25",
            "ses_setup",
            "SES SMTP credentials made for that region",
        ),
        ("smtp.eu.mailgun.org", "mailgun_setup", "postmaster@DOMAIN"),
        (
            "[smtp.postmarkapp.com]:465",
            "postmark_setup",
            "Server API token as both user name and password",
        ),
        ("smtp.sendgrid.net:25", "sendgrid_setup", "apikey:API_KEY"),
    ],
)
def test_every_provider_has_its_settings(relayhost: str, kind: str, words: str) -> None:
    evidence = Evidence(
        "mx1", None, NOW, relay=relay(relayhost), settings={"smtp_tls_security_level": "encrypt"}
    )
    kinds, text = rendered(evidence)
    assert kinds == [kind]
    assert words in text
