"""Verdicts from refusal classes: each names the diagnose check that confirms its cause.

The queue evidence is built by the real DiagBuilder from real reasons (see
tests/data/reasons-corpus.jsonl for their origins); check results are the values the checks
return. The verdicts are rendered through the real templates.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from bot.diag.collect import Diagnosis
from bot.diag.dns import ReverseReport
from bot.diag.dnsbl import Listing
from bot.diag.evidence import DiagBuilder, QueueEvidence
from bot.diag.runner import CheckResult
from bot.diag.verdicts import Evidence, Verdict, decide
from bot.postfix.reasons import ReasonClass
from bot.render import render

NOW = time.time()
GMX_PTR = (
    "host mx00.emig.gmx.net[212.227.15.9] refused to talk to me: 554-gmx.net (mxgmx017) Nemesis "
    "ESMTP Service not available 554-No SMTP service 554-Bad DNS PTR resource record. 554 For "
    "explanation visit http://postmaster.gmx.com/en/error-messages?ip=94.23.55.190&c=rdns"
)
YAHOO = (
    "host mta6.am0.yahoodns.net[67.195.204.72] said: 421 4.7.0 [TSS04] Messages from 192.0.2.192 "
    "temporarily deferred due to unexpected volume or user complaints - 4.16.55.1; see "
    "https://postmaster.verizonmedia.com/error-codes (in reply to MAIL FROM command)"
)
LMTP = "connect to mail.example.org[/var/run/dovecot/lmtp]: No such file or directory"
NO_ROUTE = "connect to mx.example.com[2001:db8::25]:25: Network is unreachable"


def queue(*reasons: str) -> QueueEvidence:
    builder = DiagBuilder(NOW, None)
    for n, reason in enumerate(reasons):
        recipients = [{"address": f"user{n}@dest{n}.test", "delay_reason": reason}]
        builder.add_fields("deferred", f"A{n:09X}", int(NOW) - 600, 1000, "a@shop.test", recipients)
    return builder.evidence()


def verdicts(ev: Evidence) -> dict[str, Verdict]:
    return {v.kind: v for v in decide(ev)}


def rendered(ev: Evidence) -> str:
    checks = [
        CheckResult("ptr", "192.0.2.10", "ok", 0.1),
        CheckResult("dnsbl", "192.0.2.10 in x", "ok", 0.1),
    ]
    diagnosis = Diagnosis("mx1", None, ev, decide(ev), checks, [], 20.0, 5.0, 1.0)
    return render("diagnose", diagnosis).text


def test_the_queue_counts_refusals_by_the_check_that_confirms_them() -> None:
    found = queue(GMX_PTR, GMX_PTR, YAHOO, LMTP)
    assert found.by_check == {"ptr": 2, "dnsbl": 1}
    assert "Bad DNS PTR resource record" in found.check_samples["ptr"]
    assert found.by_class[ReasonClass.local_config.value] == 1


def test_reverse_dns_refusals_name_the_ptr_check_and_what_it_found() -> None:
    reports = (
        ReverseReport("192.0.2.10", (), "nxdomain", False),
        ReverseReport("192.0.2.11", ("mail.shop.test.",), "ok", False),
    )
    ev = Evidence("mx1", None, NOW, queue=queue(GMX_PTR), reverse=reports)
    verdict = verdicts(ev)["reverse_dns"]
    assert [f.key for f in verdict.facts] == ["ptr_refusals", "ptr_missing", "ptr_unconfirmed"]
    assert verdict.button == "flush mx1 reason=blocklisted"
    text = rendered(ev)
    assert "Remote sites refuse this host for its reverse DNS" in text
    assert "reverse DNS (ptr) check of 192.0.2.10, 192.0.2.11" in text
    assert "192.0.2.10 has no PTR record (nxdomain)" in text
    assert "does not resolve back to it" in text
    # a forward-confirmed name is said to be good, and the verdict stays (older refusals)
    good = (ReverseReport("192.0.2.10", ("mail.shop.test.",), "ok", True),)
    ok = verdicts(Evidence("mx1", None, NOW, queue=queue(GMX_PTR), reverse=good))["reverse_dns"]
    assert [f.key for f in ok.facts] == ["ptr_refusals", "ptr_ok"]


def test_reputation_refusals_name_the_dnsbl_check() -> None:
    clean = (("192.0.2.10", Listing("zen.spamhaus.org", "clean")),)
    ev = Evidence("mx1", None, NOW, queue=queue(YAHOO), listings=clean)
    verdict = verdicts(ev)["reputation"]
    facts = {f.key: f.values for f in verdict.facts}
    assert facts["dnsbl_refusals"]["count"] == 1
    assert facts["dnsbl_checked"] == {"address": "192.0.2.10", "zones": "zen.spamhaus.org (clean)"}
    text = rendered(ev)
    assert "Remote sites refuse this host for its reputation" in text
    assert "Check: diagnose's DNSBL check of the sending address" in text
    assert "no list answered" not in text
    assert "[TSS04]" in text
    # listed: the blocklisted verdict names the zone, and reputation does not repeat it
    listed = (("192.0.2.10", Listing("zen.spamhaus.org", "listed", ("127.0.0.2",), "SBL")),)
    both = verdicts(Evidence("mx1", None, NOW, queue=queue(YAHOO), listings=listed))
    assert "blocklisted" in both
    assert "reputation" not in both
    assert [f.key for f in both["blocklisted"].facts] == ["listed", "dnsbl_refusals"]
    # a list that refuses to answer (Spamhaus to a public resolver) rules nothing out
    refused = (("192.0.2.10", Listing("zen.spamhaus.org", "refused", ("127.255.255.254",))),)
    unsure = verdicts(Evidence("mx1", None, NOW, queue=queue(YAHOO), listings=refused))
    assert [f.key for f in unsure["reputation"].facts][-1] == "dnsbl_unanswered"


def test_sender_authentication_refusals_are_the_ones_sender_auth_confirms() -> None:
    gmail = (
        "host gmail-smtp-in.l.google.com[142.250.1.26] said: 421-4.7.27 Your email has been rate "
        "limited because SPF authentication didn't pass for this message."
    )
    microsoft = (
        "host outlook-com.olc.protection.outlook.com[52.101.68.1] said: 550 5.7.515 Access "
        "denied, sending domain [shop.test] does not meet the required authentication level."
    )
    found = queue(gmail, microsoft, GMX_PTR)
    assert found.sender_auth_rejects == 2
    assert found.by_check == {"sender_auth": 2, "ptr": 1}
    assert found.sender_auth_senders == ("shop.test",)
    assert "sender_auth" in verdicts(Evidence("mx1", None, NOW, queue=found))


def test_local_fault_and_no_route() -> None:
    ev = Evidence("mx1", None, NOW, queue=queue(LMTP, NO_ROUTE), settings={"inet_protocols": "all"})
    found = verdicts(ev)
    assert found["local_fault"].button == "flush mx1 reason=local_config"
    assert found["no_route"].button == "flush mx1 reason=network_unreachable"
    assert {f.key: f.values for f in found["no_route"].facts}["inet_protocols"] == {"value": "all"}
    text = rendered(ev)
    assert "cannot hand mail to one of this host's own transports" in text
    assert "set inet_protocols = ipv4" in text
    assert "in class local_config" in text


def test_every_check_a_class_names_is_one_diagnose_runs() -> None:
    source = (Path(__file__).parents[2] / "bot" / "diag" / "collect.py").read_text()
    kinds = set(re.findall(r'start\(\s*"(\w+)"', source))
    named = {check for cls in ReasonClass for check in cls.checks}
    assert named
    assert named <= kinds, named - kinds
