"""Each verdict against a lab that reproduces its cause (real Postfix, SSH, dnsmasq, SMTP).

The lab's resolvers: Postfix uses dnsmasq on 127.0.0.1:53; the bot's diagnose uses the
"public view" on 127.0.0.1:5354, which differs only for hostdns.test. Messages a test
injects are deleted again, so the shared queue is left as it was found.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from bot.diag.collect import Diagnoser, Diagnosis
from bot.inventory import Config, Inventory
from bot.remote.audited import Remote
from bot.remote.ssh import SSHExecutor
from helpers.diaglab import delete, inject, lab_config, wait_deferred

pytestmark = pytest.mark.lab


@pytest.fixture
async def executor(lab: object) -> AsyncIterator[SSHExecutor]:
    async with SSHExecutor() as ex:
        yield ex


async def diagnose(
    executor: SSHExecutor, domain: str | None, config: Config | None = None, host: str = "lab"
) -> Diagnosis:
    config = config or lab_config()
    inventory = Inventory(config)
    diagnoser = Diagnoser(
        Remote.reader(executor), inventory.get(host), config.diagnose, time.time()
    )
    return await diagnoser.run(domain)


def kinds(diagnosis: Diagnosis) -> dict[str, object]:
    return {v.kind: v for v in diagnosis.verdicts}


def facts(diagnosis: Diagnosis, kind: str) -> dict[str, dict[str, object]]:
    verdict = next(v for v in diagnosis.verdicts if v.kind == kind)
    return {f.key: f.values for f in verdict.facts}


async def test_greylisting_says_wait(executor: SSHExecutor) -> None:
    result = await diagnose(executor, "greylist.test")
    assert "greylisting" in kinds(result)
    assert "site_down" not in kinds(result)
    assert "port25_blocked" not in kinds(result)
    found = facts(result, "greylisting")
    assert int(found["greylisted"]["count"]) > 0  # type: ignore[call-overload]
    assert "Greylisted" in str(found["greylisted"]["sample"])
    assert found["mx_answers"]["host"] == "mx.greylist.test"
    verdict = next(v for v in result.verdicts if v.kind == "greylisting")
    assert verdict.button is None  # no flush offered for greylisted mail
    assert all(c.status == "ok" for c in result.checks), result.checks


@pytest.mark.parametrize(
    ("domain", "outcome"), [("refused.test", "refused"), ("busy.test", "rejected")]
)
async def test_one_remote_site_down(executor: SSHExecutor, domain: str, outcome: str) -> None:
    result = await diagnose(executor, domain)
    found = facts(result, "site_down")
    assert found["mx_down"]["outcome"] == outcome
    assert found["others_answer"] == {"count": 3, "total": 3}
    verdict = next(v for v in result.verdicts if v.kind == "site_down")
    assert verdict.button == f"flush lab domain={domain}"
    assert "port25_blocked" not in kinds(result)


async def test_relay_credentials_rejected(executor: SSHExecutor) -> None:
    result = await diagnose(executor, "authfail.test")
    found = facts(result, "relay_auth")
    assert found["queue_class"]["cls"] == "auth_failure"
    assert "535" in str(found["queue_class"]["sample"])
    assert found["sasl"]["where"] == "relay/unix"
    assert found["password_map"]["map"] == "hash:/etc/postfix/mailqbot-lab/sasl_passwd"
    assert found["relay_offers_auth"]["mechanisms"] == "PLAIN LOGIN"
    verdict = next(v for v in result.verdicts if v.kind == "relay_auth")
    assert verdict.button == "flush lab reason=auth_failure"


async def test_blocklisted_names_zone_and_txt(executor: SSHExecutor) -> None:
    clean = await diagnose(executor, None)
    assert "blocklisted" not in kinds(clean)  # dnsbl.test lists 127.0.0.2, not the lab host
    listed = await diagnose(executor, None, lab_config(dnsbl_zones=["dnsbl.test", "bl.test"]))
    verdicts = [v for v in listed.verdicts if v.kind == "blocklisted"]
    assert [v.values["zone"] for v in verdicts] == ["bl.test"]
    fact = verdicts[0].facts[0].values
    assert fact["address"] == "127.0.0.1"
    assert fact["codes"] == "127.0.0.2"
    assert (
        fact["reason"]
        == "127.0.0.1 listed in bl.test: spam trap hits, delist at https://bl.test/remove"
    )
    natted = await diagnose(executor, None, lab_config(sending_ips={"lab": ["127.0.0.2"]}))
    assert [v.values["zone"] for v in natted.verdicts if v.kind == "blocklisted"] == ["dnsbl.test"]


async def test_port_25_blocked(executor: SSHExecutor) -> None:
    walled = ["walled-a.test", "walled-b.test", "walled-c.test"]
    result = await diagnose(executor, None, lab_config(probe_domains=walled))
    found = facts(result, "port25_blocked")
    assert found["port25_timeouts"]["count"] == 3
    assert found["submission_answers"]["port"] == 587
    assert "ESMTP lab submission" in str(found["submission_answers"]["banner"])
    # the open lab is not mistaken for a blocked one
    assert "port25_blocked" not in kinds(await diagnose(executor, None))


async def test_host_resolver_broken(executor: SSHExecutor) -> None:
    queue_id = inject("billing@invoices.test", "orders@hostdns.test")
    try:
        reason = wait_deferred(queue_id)
        assert "Host not found, try again" in reason
        result = await diagnose(executor, "hostdns.test")
    finally:
        delete(queue_id)
    found = facts(result, "resolver_broken")
    assert found["queue_class"]["cls"] == "dns_tempfail"
    assert found["bot_resolves"]["domain"] == "hostdns.test"  # the bot resolves what Postfix cannot
    assert found["resolvers"]["chroot"] == "127.0.0.1"
    # dnsfail.test fails for the bot too: that is the domain's DNS, not the host's resolver
    assert "resolver_broken" not in kinds(await diagnose(executor, "dnsfail.test"))


async def test_spf_dkim_soft_rejects(executor: SSHExecutor) -> None:
    queue_id = inject("news@shop.test", "info@policy.test")
    try:
        reason = wait_deferred(queue_id)
        assert "451 4.7.26" in reason
        result = await diagnose(executor, "policy.test")
    finally:
        delete(queue_id)
    found = facts(result, "sender_auth")
    assert int(found["auth_rejects"]["count"]) >= 1  # type: ignore[call-overload]
    assert found["spf"] == {
        "domain": "shop.test",
        "record": "v=spf1 ip4:192.0.2.10 ~all",
        "result": "softfail",
        "dmarc": "quarantine",
    }
    verdict = next(v for v in result.verdicts if v.kind == "sender_auth")
    assert verdict.button == "flush lab domain=policy.test"
