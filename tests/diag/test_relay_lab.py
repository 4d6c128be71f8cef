"""Relay-provider verdicts against the lab's fake relays (tests/lab/README.md, "Relay
providers"): real Postfix relays real messages through them with SASL, and diagnose reads
what they answered from the queue (deferred) and from the mail log (bounced).

relayhost is set to the relay for each test (main.cf is restored afterwards; Postfix is not
reloaded: the mail goes through transport_maps). Messages a test injects are deleted again.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import replace

import pytest

from bot import render
from bot.diag.collect import Diagnoser, Diagnosis
from bot.diag.model import Verdict
from bot.inventory import Inventory
from bot.remote.audited import Remote
from bot.remote.ssh import SSHExecutor
from helpers.diaglab import delete, inject, lab_config, postfix_settings, wait_deferred

pytestmark = pytest.mark.lab

ALIASES = {
    "smtp.sendgrid.test": "sendgrid",
    "user.sendgrid.test": "sendgrid",
    "email-smtp.eu-west-1.ses.test": "ses:eu-west-1",
    "email-smtp.us-east-1.ses.test": "ses:us-east-1",
    "smtp.mailgun.test": "mailgun",
    "smtp.postmarkapp.test": "postmark",
    "token.postmarkapp.test": "postmark",
    "credits.sendgrid.test": "sendgrid",
    "login.mailgun.test": "mailgun",
    "email-smtp.us-west-2.ses.test": "ses:us-west-2",
}


@pytest.fixture
async def executor(lab: object) -> AsyncIterator[SSHExecutor]:
    async with SSHExecutor() as ex:
        yield ex


def queue_ids() -> set[str]:
    out = subprocess.run(["/usr/sbin/postqueue", "-j"], capture_output=True, text=True).stdout
    return {json.loads(line)["queue_id"] for line in out.splitlines()}


def wait_bounced(queue_id: str, timeout: float = 30) -> str:
    """Wait until the relay's refusal bounced the message; return the logged reason."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if queue_id not in queue_ids():
            with open("/var/log/postfix.log", encoding="utf-8", errors="replace") as log:
                for line in log:
                    if f" {queue_id}: " in line and "status=bounced" in line:
                        return line.split("status=bounced ", 1)[1]
        time.sleep(0.3)
    raise AssertionError(f"{queue_id} did not bounce within {timeout} s")


@contextmanager
def sent(*pairs: tuple[str, str]) -> Iterator[list[str]]:
    ids = [inject(sender, recipient) for sender, recipient in pairs]
    try:
        yield ids
    finally:
        for queue_id in ids:
            delete(queue_id)


async def diagnose(executor: SSHExecutor, relayhost: str) -> Diagnosis:
    config = lab_config(relay_providers=ALIASES)
    with postfix_settings(("-e", f"relayhost={relayhost}")):
        diagnoser = Diagnoser(
            Remote.reader(executor), Inventory(config).get("lab"), config.diagnose, time.time()
        )
        return await diagnoser.run(None)


def verdict(diagnosis: Diagnosis, kind: str) -> Verdict:
    found = {v.kind: v for v in diagnosis.verdicts}
    assert kind in found, [v.kind for v in diagnosis.verdicts]
    return found[kind]


def next_step(diagnosis: Diagnosis, kind: str | Verdict) -> str:
    """The step diagnose gives for the verdict ``kind`` (or this verdict), as the operator
    reads it."""
    found = verdict(diagnosis, kind) if isinstance(kind, str) else kind
    text = render.render("diagnose", replace(diagnosis, verdicts=[found])).text
    return next(line for line in text.splitlines() if line.startswith("  Next: "))


def refused(found: Verdict) -> dict[str, object]:
    assert found.facts[0].key == "relay_refused"
    return found.facts[0].values


async def test_ses_sandbox_unverified_quota_and_rate(executor: SSHExecutor) -> None:
    with sent(
        ("quota@invoices.test", "orders@ses.relay.test"),
        ("rate@invoices.test", "orders@ses.relay.test"),
        ("unverified@invoices.test", "orders@ses.relay.test"),
        ("sandbox@invoices.test", "tester@ses.relay.test"),
    ) as (quota, rate, unverified, sandbox):
        assert "Daily message quota exceeded" in wait_deferred(quota)
        assert "Maximum sending rate exceeded" in wait_deferred(rate)
        assert "Email address is not verified" in wait_bounced(unverified)
        assert "tester@ses.relay.test" in wait_bounced(sandbox)
        result = await diagnose(executor, "[email-smtp.eu-west-1.ses.test]:587")
    for kind in ("ses_quota", "ses_rate"):
        found = refused(verdict(result, kind))
        assert found["host"] == "email-smtp.eu-west-1.ses.test"
        assert int(found["deferred"]) >= 1  # type: ignore[call-overload]
    for kind in ("ses_sender_unverified", "ses_recipient_unverified"):
        found = refused(verdict(result, kind))
        assert int(found["bounced"]) >= 1, found  # type: ignore[call-overload]
    assert verdict(result, "ses_sender_unverified").values["region"] == "eu-west-1"
    assert "verification is per region" in next_step(result, "ses_sender_unverified")
    assert "Request production access" in next_step(result, "ses_recipient_unverified")
    log = next(c for c in result.checks if c.kind == "relay_log")
    assert log.status == "ok", log


async def test_ses_refuses_iam_keys(executor: SSHExecutor) -> None:
    with sent(("billing@invoices.test", "orders@ses-iam.relay.test")) as (queue_id,):
        assert "535 Authentication Credentials Invalid" in wait_deferred(queue_id)
        result = await diagnose(executor, "[email-smtp.us-east-1.ses.test]:587")
    found = verdict(result, "ses_credentials")
    assert found.values["region"] == "us-east-1"
    assert found.values["map"] == "hash:/etc/postfix/mailqbot-lab/sasl_passwd"
    assert found.button == "flush lab reason=auth_failure"
    assert {f.key for f in found.facts} >= {"relay_refused", "sasl", "password_map"}
    step = next_step(result, "ses_credentials")
    assert "SES SMTP credentials are not your AWS access keys" in step
    assert "work only in the region they were made for" in step
    assert "for us-east-1" in step


async def test_sendgrid_sender_identity(executor: SSHExecutor) -> None:
    with sent(("unverified@invoices.test", "orders@sendgrid.relay.test")) as (queue_id,):
        assert "verified Sender Identity" in wait_bounced(queue_id)
        result = await diagnose(executor, "[smtp.sendgrid.test]:587")
    found = refused(verdict(result, "sendgrid_sender_unverified"))
    assert found["host"] == "smtp.sendgrid.test"
    assert int(found["bounced"]) >= 1  # type: ignore[call-overload]


async def test_sendgrid_wants_the_apikey_user(executor: SSHExecutor) -> None:
    with sent(("billing@invoices.test", "orders@sendgrid-user.relay.test")) as (queue_id,):
        assert "535 Authentication failed: Bad username / password" in wait_deferred(queue_id)
        result = await diagnose(executor, "[user.sendgrid.test]:587")
    found = verdict(result, "sendgrid_credentials")
    assert refused(found)["host"] == "user.sendgrid.test"
    assert found.button == "flush lab reason=auth_failure"
    step = next_step(result, "sendgrid_credentials")
    assert "SendGrid's user name is the word apikey" in step
    assert "[user.sendgrid.test]:587 apikey:API_KEY" in step


async def test_mailgun_sandbox_and_unverified_domain(executor: SSHExecutor) -> None:
    with sent(
        ("sandbox@invoices.test", "orders@mailgun.relay.test"),
        ("unverified@invoices.test", "orders@mailgun.relay.test"),
    ) as (sandbox, unverified):
        assert "Sandbox subdomains are for test purposes only" in wait_deferred(sandbox)
        assert "Relaying denied" in wait_bounced(unverified)
        result = await diagnose(executor, "[smtp.mailgun.test]:587")
    assert int(refused(verdict(result, "mailgun_recipient_unverified"))["deferred"]) >= 1  # type: ignore[call-overload]
    assert int(refused(verdict(result, "mailgun_sender_unverified"))["bounced"]) >= 1  # type: ignore[call-overload]
    assert "Verify the sending domain in Mailgun" in next_step(result, "mailgun_sender_unverified")
    assert "Authorized Recipients" in next_step(result, "mailgun_recipient_unverified")


async def test_postmark_wants_the_server_token(executor: SSHExecutor) -> None:
    with sent(("billing@invoices.test", "orders@postmark.relay.test")) as (queue_id,):
        assert "535 5.7.8 Authentication credentials invalid" in wait_deferred(queue_id)
        result = await diagnose(executor, "[smtp.postmarkapp.test]:587")
    found = verdict(result, "postmark_credentials")
    assert refused(found)["host"] == "smtp.postmarkapp.test"
    assert "Server API token as both user name and password" in next_step(
        result, "postmark_credentials"
    )


async def test_postmark_sender_signature(executor: SSHExecutor) -> None:
    with sent(("unverified@invoices.test", "orders@postmark-token.relay.test")) as (queue_id,):
        assert "is not a Sender Signature on your account" in wait_bounced(queue_id)
        result = await diagnose(executor, "[token.postmarkapp.test]:587")
    found = refused(verdict(result, "postmark_sender_unverified"))
    assert found["host"] == "token.postmarkapp.test"
    assert int(found["bounced"]) >= 1  # type: ignore[call-overload]


async def test_a_provider_relayhost_set_up_badly(executor: SSHExecutor) -> None:
    result = await diagnose(executor, "smtp.sendgrid.test")  # no brackets, port 25
    found = verdict(result, "sendgrid_setup")
    facts = {f.key: f.values for f in found.facts}
    assert facts["relay_provider"] == {
        "relayhost": "smtp.sendgrid.test",
        "provider": "SendGrid",
        "region": "-",
    }
    assert facts["relay_port"] == {"port": 25}
    assert facts["relay_mx_lookup"] == {"host": "smtp.sendgrid.test"}
    assert facts["relay_no_starttls"] == {"host": "smtp.sendgrid.test", "port": 25}
    assert facts["relay_no_sasl"] == {"where": "relay/unix"}
    assert facts["relay_tls_level"] == {"level": "(empty)"}
    step = next_step(result, "sendgrid_setup")
    assert "on port 587 with STARTTLS" in step
    assert "relayhost = [smtp.sendgrid.test]:587" in step
    assert "smtp_tls_security_level = encrypt" in step
    # the same relay named the way the provider asks, as the lab's transport does it
    good = await diagnose(executor, "[smtp.sendgrid.test]:587")
    assert {"relay_port", "relay_mx_lookup"}.isdisjoint(
        {f.key for v in good.verdicts if v.kind == "sendgrid_setup" for f in v.facts}
    )


async def test_a_dnsbl_that_refuses_the_resolver(executor: SSHExecutor) -> None:
    config = lab_config(dnsbl_zones=["refusing.test", "bl.test"])
    diagnoser = Diagnoser(
        Remote.reader(executor), Inventory(config).get("lab"), config.diagnose, time.time()
    )
    result = await diagnoser.run(None)
    kinds = [v.kind for v in result.verdicts]
    assert "dnsbl_refused" in kinds
    assert [v.values["zone"] for v in result.verdicts if v.kind == "blocklisted"] == ["bl.test"]
    found = verdict(result, "dnsbl_refused")
    assert found.facts[0].key == "dnsbl_refused_public_resolver"
    assert found.facts[0].values["codes"] == "127.255.255.254"


async def test_ses_paused_sending_for_the_account(executor: SSHExecutor) -> None:
    with sent(("suspended@invoices.test", "orders@ses.relay.test")) as (queue_id,):
        assert "554 Message rejected: Sending paused for this account" in wait_bounced(queue_id)
        result = await diagnose(executor, "[email-smtp.eu-west-1.ses.test]:587")
    found = verdict(result, "ses_suspended")
    assert refused(found)["host"] == "email-smtp.eu-west-1.ses.test"
    assert int(refused(found)["bounced"]) >= 1  # type: ignore[call-overload]
    assert found.button is None  # nothing to flush: AWS has to lift the pause
    assert "nothing on this host fixes it" in next_step(result, "ses_suspended")


async def test_sendgrid_credits_used_up(executor: SSHExecutor) -> None:
    with sent(("billing@invoices.test", "orders@sendgrid-credits.relay.test")) as (queue_id,):
        reason = wait_deferred(queue_id)
        assert "451 Authentication failed: Maximum credits exceeded" in reason
        result = await diagnose(executor, "[credits.sendgrid.test]:587")
    found = verdict(result, "sendgrid_quota")
    assert refused(found)["host"] == "credits.sendgrid.test"
    assert int(refused(found)["deferred"]) >= 1  # type: ignore[call-overload]
    assert found.button is None  # the login is right: new credentials would not help
    assert "sending credits are used up" in next_step(result, "sendgrid_quota")


async def test_mailgun_wants_a_domain_smtp_login(executor: SSHExecutor) -> None:
    with sent(("billing@invoices.test", "orders@mailgun-login.relay.test")) as (queue_id,):
        reason = wait_deferred(queue_id)
        assert "535 5.7.0 Mailgun is not loving your login or password" in reason
        result = await diagnose(executor, "[login.mailgun.test]:587")
    found = verdict(result, "mailgun_credentials")
    assert refused(found)["host"] == "login.mailgun.test"
    assert found.button == "flush lab reason=auth_failure"
    assert {f.key for f in found.facts} >= {"relay_refused", "sasl", "password_map"}
    step = next_step(result, "mailgun_credentials")
    assert "postmaster@DOMAIN" in step
    assert "not the API key" in step
    assert "for [login.mailgun.test]:587" in step


async def test_a_relay_that_wants_a_login_postfix_does_not_make(executor: SSHExecutor) -> None:
    # The smtp transport sends these (SASL is on for the relay transport only).
    with sent(
        ("billing@invoices.test", "orders@ses-nologin.relay.test"),
        ("billing@invoices.test", "orders@sendgrid-nologin.relay.test"),
    ) as (ses, sendgrid):
        assert "530 Authentication required" in wait_bounced(ses)
        assert "550 Unauthenticated senders not allowed" in wait_bounced(sendgrid)
        result = await diagnose(executor, "[email-smtp.eu-west-1.ses.test]:587")
    found = {v.values["host"]: v for v in result.verdicts if v.kind == "relay_auth_missing"}
    assert set(found) >= {"email-smtp.eu-west-1.ses.test", "smtp.sendgrid.test"}, found
    assert found["smtp.sendgrid.test"].values["provider"] == "SendGrid"
    ses_verdict = found["email-smtp.eu-west-1.ses.test"]
    assert ses_verdict.values["provider"] == "Amazon SES"
    assert int(refused(ses_verdict)["bounced"]) >= 1  # type: ignore[call-overload]
    step = next_step(result, ses_verdict)
    assert "SASL is off on the transport that sends to email-smtp.eu-west-1.ses.test" in step
    assert "smtp_sasl_auth_enable = yes" in step
    text = render.render("diagnose", replace(result, verdicts=[ses_verdict])).text
    assert "Amazon SES requires a login and Postfix made none" in text


async def test_a_relay_that_wants_starttls_before_the_login(executor: SSHExecutor) -> None:
    with sent(("billing@invoices.test", "orders@ses-notls.relay.test")) as (queue_id,):
        assert "530 Must issue a STARTTLS command first" in wait_deferred(queue_id)
        result = await diagnose(executor, "[email-smtp.us-west-2.ses.test]:587")
    found = verdict(result, "relay_tls_missing")
    assert refused(found)["host"] == "email-smtp.us-west-2.ses.test"
    assert found.values["provider"] == "Amazon SES"
    assert "Set smtp_tls_security_level = encrypt" in next_step(result, "relay_tls_missing")
    # The relayhost check shows why: the relay offers STARTTLS, Postfix's level does not ask.
    setup = {f.key: f.values for f in verdict(result, "ses_setup").facts}
    assert setup["relay_tls_level"] == {"level": "(empty)"}
    assert "relay_no_starttls" not in setup
    probe = next(p for p in result.evidence.submission if p.name.endswith("us-west-2.ses.test"))
    assert (probe.port, probe.result.starttls) == (587, "ok"), probe


@pytest.mark.parametrize(
    ("relayhost", "kind", "expected", "words"),
    [
        (
            "email-smtp.eu-west-1.ses.test",
            "ses_setup",
            {
                "relay_port": {"port": 25},
                "relay_mx_lookup": {"host": "email-smtp.eu-west-1.ses.test"},
            },
            "relayhost = [email-smtp.eu-west-1.ses.test]:587 (the endpoint of the region where "
            "your identities are verified: eu-west-1)",
        ),
        (
            "smtp.mailgun.test:25",
            "mailgun_setup",
            {
                "relay_port": {"port": 25},
                "relay_no_starttls": {"host": "smtp.mailgun.test", "port": 25},
            },
            "the verified sending domain's SMTP login (postmaster@DOMAIN)",
        ),
        (
            "[smtp.postmarkapp.test]:465",
            "postmark_setup",
            {"relay_port_465": {"port": 465}},
            "the Server API token as both user name and password",
        ),
    ],
)
async def test_each_provider_relayhost_set_up_badly(
    executor: SSHExecutor, relayhost: str, kind: str, expected: dict[str, object], words: str
) -> None:
    result = await diagnose(executor, relayhost)
    found = verdict(result, kind)
    facts = {f.key: f.values for f in found.facts}
    assert facts["relay_provider"]["relayhost"] == relayhost
    for key, values in expected.items():
        assert facts[key] == values, facts
    assert facts["relay_no_sasl"] == {"where": "relay/unix"}
    assert "on port 587 with STARTTLS" in next_step(result, kind)
    assert words in next_step(result, kind)
    if kind == "postmark_setup":  # nothing listens on 465 there: the probe says so
        assert facts["relay_unreachable"]["port"] == 465
