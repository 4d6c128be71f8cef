"""From evidence to verdicts, the way an experienced postmaster reasons. Pure functions.

Each verdict names its evidence (``Fact``s: a wording key and its values; the words are in
``templates/diagnose_wording.j2``), its next step (worded there too, by ``kind``) and, where
an action fits, a button whose value is the command to run.

- ``port25_blocked``: port 25 of at least two different MX addresses times out while a
  submission port (587/465) answers: the path out on port 25 is filtered. Flushing only
  burns retries.
- ``resolver_broken``: Postfix's own lookups fail (DNS classes in the queue) for domains
  the bot resolves, or ``posttls-finger`` on the host fails where the bot resolves and it
  uses the same resolver as Postfix.
- ``relay_auth``: the queue holds SASL/authentication refusals from the relay.
- Relay providers (``relay_verdicts``): a SendGrid, Amazon SES, Mailgun or Postmark refusal
  (``PROVIDER_KIND``, e.g. ``ses_sender_unverified``, or ``relay_auth_missing``), with the
  provider's own next step; ``PROVIDER_setup`` when relayhost names a provider in a way
  that fails or leaks (port 25, no brackets, no STARTTLS, SASL off for smtp).
- ``greylisting``: recipients deferred with a greylisting reply: wait, do not flush.
- ``site_down``: the diagnosed domain's MX addresses refuse, time out or turn us away while
  other destinations answer.
- ``blocklisted``: the host's sending address is listed in a DNSBL zone (with its TXT);
  ``policy_listed`` when the only listing is Spamhaus's PBL (an address range that should
  not send mail directly).
- ``dnsbl_refused``: a DNSBL answered with a refusal code (Spamhaus 127.255.255.x: a public
  resolver, too many queries, an unknown zone name): the address could not be checked there.
- ``sender_auth``: soft (4xx) refusals that cite SPF/DKIM/DMARC, with the sender domains'
  SPF result for the sending address and their DMARC policy.
- ``reverse_dns``: remote sites refuse the host for its reverse DNS (``confirming_check``
  ``ptr``), with what the ``ptr`` check found for each sending address: no PTR, a PTR whose
  name does not resolve back (not forward-confirmed), or a good one (then the refusals are
  older than the fix, or the mail leaves from another address).
- ``reputation``: remote sites refuse the host for its reputation (``dnsbl``: Yahoo's
  ``[TSS04]``, T-Online's ``(BL)``, Gmail's "unsolicited mail", Microsoft's IP reputation)
  while the ``dnsbl`` check finds the address on none of the configured lists: the
  provider's own data decides, and its postmaster page is the way out. With a listing, the
  ``blocklisted`` verdict says so instead.
- ``local_fault``: deferrals in ``local_config``: the host cannot hand mail to one of its
  own transports (master.cf, a local socket, a delivery command).
- ``no_route``: deferrals in ``network_unreachable``: the host has no route to the
  destination (often IPv6 without an IPv6 route), with ``inet_protocols``.
"""

from __future__ import annotations

from bot.diag.dns import MxReport
from bot.diag.dns_verdicts import blocklisted, dnsbl_refused, sender_auth
from bot.diag.evidence import QueueEvidence
from bot.diag.model import (
    Evidence,
    Fact,
    Verdict,
    class_fact,
    fact,
    flush_button,
    sasl_facts,
)
from bot.diag.relay_verdicts import relay_refusals, relay_setup

DOWN = ("refused", "timeout", "greeting_timeout", "rejected")
DNS_CLASSES = ("dns_tempfail", "host_not_found")
SITE_CLASSES = ("connection_refused", "connection_timeout", "rate_limited")


def decide(ev: Evidence) -> list[Verdict]:
    providers = relay_refusals(ev)
    deferred = sum(int(v.facts[0].values["deferred"]) for v in providers)
    auth = ev.queue.by_class.get("auth_failure", 0) if ev.queue else 0
    explained = auth <= deferred  # the providers' verdicts say more than relay_auth
    found = [
        port25_blocked(ev),
        resolver_broken(ev),
        *providers,
        None if explained else relay_auth(ev),
        relay_setup(ev),
        greylisting(ev),
        site_down(ev),
        *blocklisted(ev),
        *dnsbl_refused(ev),
        sender_auth(ev),
        reverse_dns(ev),
        reputation(ev),
        local_fault(ev),
        no_route(ev),
    ]
    return [v for v in found if v is not None]


def port25_blocked(ev: Evidence) -> Verdict | None:
    on25 = {p.address: p for p in (*ev.probes, *ev.canaries)}
    timed_out = [p for p in on25.values() if p.result.outcome == "timeout"]
    answered25 = [p for p in on25.values() if p.result.answered]
    other = [p for p in ev.submission if p.result.answered]
    if len(timed_out) < 2 or answered25 or not other:
        return None
    facts = [
        fact(
            "port25_timeouts",
            count=len(timed_out),
            total=len(on25),
            hosts=", ".join(f"{p.name} [{p.address}]" for p in timed_out[:5]),
        ),
        fact(
            "submission_answers",
            host=other[0].name,
            address=other[0].address,
            port=other[0].port,
            banner=other[0].result.banner or "",
        ),
    ]
    if ev.queue and ev.queue.by_class.get("connection_timeout"):
        facts.append(class_fact(ev.queue, "connection_timeout"))
    return Verdict("port25_blocked", tuple(facts))


def resolver_broken(ev: Evidence) -> Verdict | None:
    facts: list[Fact] = []
    resolved = [mx for mx in ev.queue_dns if mx.status == "ok"]
    if ev.queue and resolved:
        for name in DNS_CLASSES:
            if ev.queue.by_class.get(name):
                facts.append(class_fact(ev.queue, name))
        facts += [fact("bot_resolves", domain=mx.domain, mx=_mx_text(mx)) for mx in resolved]
    same_resolver = ev.resolv is not None and not ev.resolv.differ
    lookup = ev.host_lookup
    mx = ev.mx if ev.mx is not None and ev.mx.status == "ok" else None
    if lookup and lookup.outcome == "lookup_failed" and mx is not None and same_resolver:
        facts.append(fact("host_lookup_failed", domain=mx.domain, error=lookup.error or ""))
        facts.append(fact("bot_resolves", domain=mx.domain, mx=_mx_text(mx)))
    if not facts:
        return None
    if ev.resolv is not None:
        facts.append(
            fact(
                "resolvers",
                system=" ".join(ev.resolv.system) or "-",
                chroot=" ".join(ev.resolv.chroot or ()) or "-",
            )
        )
    return Verdict("resolver_broken", tuple(facts), button=flush_button(ev, reason="dns_tempfail"))


def _mx_text(mx: MxReport) -> str:
    return ", ".join(f"{h.name} ({' '.join(h.addresses) or h.status})" for h in mx.hosts[:3])


def relay_auth(ev: Evidence) -> Verdict | None:
    queue = ev.queue
    if queue is None or not queue.by_class.get("auth_failure"):
        return None
    facts = [class_fact(queue, "auth_failure"), *sasl_facts(ev)]
    offering = [p for p in (*ev.submission, *ev.probes) if p.result.auth]
    if offering:
        p = offering[0]
        facts.append(
            fact("relay_offers_auth", host=p.name, port=p.port, mechanisms=" ".join(p.result.auth))
        )
    relay = ev.relay
    return Verdict(
        "relay_auth",
        tuple(facts),
        {"map": relay.password_map if relay else ""},
        button=flush_button(ev, reason="auth_failure"),
    )


def greylisting(ev: Evidence) -> Verdict | None:
    queue = ev.queue
    if queue is None:
        return None
    count = queue.target.get("greylisted", 0) if ev.domain else queue.by_class.get("greylisted", 0)
    if not count:
        return None
    sample = (queue.target_samples if ev.domain else queue.samples).get("greylisted", "")
    facts = [fact("greylisted", count=count, sample=sample)]
    facts += [
        fact("mx_answers", host=p.name, address=p.address, banner=p.result.banner or "")
        for p in ev.probes
        if p.result.answered
    ][:2]
    backoff = ev.settings.get("minimal_backoff_time", "")
    return Verdict("greylisting", tuple(facts), {"backoff": backoff or "300s"})


def site_down(ev: Evidence) -> Verdict | None:
    if not ev.domain or not ev.probes:
        return None
    if any(p.result.outcome not in DOWN for p in ev.probes):
        return None
    others = [p for p in ev.canaries if p.result.answered]
    if ev.canaries and not others:
        return None  # nothing answers: a local problem, not this one site
    facts = [
        fact(
            "mx_down",
            host=p.name,
            address=p.address,
            port=p.port,
            outcome=p.result.outcome,
            error=p.result.error or p.result.banner or "",
        )
        for p in ev.probes[:4]
    ]
    queue = ev.queue
    for name in SITE_CLASSES if queue else ():
        if queue is not None and queue.target.get(name):
            sample = queue.target_samples.get(name, "")
            facts.append(fact("target_class", cls=name, count=queue.target[name], sample=sample))
    if others:
        facts.append(fact("others_answer", count=len(others), total=len(ev.canaries)))
    lifetime = ev.settings.get("maximal_queue_lifetime", "5d")
    return Verdict(
        "site_down",
        tuple(facts),
        {"domain": ev.domain, "lifetime": lifetime},
        button=flush_button(ev, domain=ev.domain),
    )


def _refusals(queue: QueueEvidence, check: str) -> Fact:
    return fact(
        f"{check}_refusals",
        count=queue.by_check.get(check, 0),
        sample=queue.check_samples.get(check, ""),
    )


def reverse_dns(ev: Evidence) -> Verdict | None:
    queue = ev.queue
    if queue is None or not queue.by_check.get("ptr"):
        return None
    facts = [_refusals(queue, "ptr")]
    for report in ev.reverse:
        names = " ".join(report.names)
        if report.status != "ok":
            facts.append(fact("ptr_missing", address=report.address, status=report.status))
        elif not report.confirmed:
            facts.append(fact("ptr_unconfirmed", address=report.address, names=names))
        else:
            facts.append(fact("ptr_ok", address=report.address, names=names))
    addresses = ", ".join(r.address for r in ev.reverse) or "the sending address"
    return Verdict(
        "reverse_dns",
        tuple(facts),
        {"addresses": addresses},
        button=flush_button(ev, reason="blocklisted"),
    )


def reputation(ev: Evidence) -> Verdict | None:
    queue = ev.queue
    if queue is None or not queue.by_check.get("dnsbl"):
        return None
    if any(listing.status == "listed" for _, listing in ev.listings):
        return None  # the blocklisted verdict names the listing
    facts = [_refusals(queue, "dnsbl")]
    checked: dict[str, list[str]] = {}
    for address, listing in ev.listings:
        checked.setdefault(address, []).append(f"{listing.zone} ({listing.status})")
    facts += [
        fact("dnsbl_checked", address=address, zones=", ".join(zones))
        for address, zones in checked.items()
    ]
    if not any(listing.status == "clean" for _, listing in ev.listings):
        facts.append(fact("dnsbl_unanswered"))  # refused, failed or not run: no "not listed"
    return Verdict("reputation", tuple(facts), button=flush_button(ev, reason="blocklisted"))


def local_fault(ev: Evidence) -> Verdict | None:
    queue = ev.queue
    if queue is None or not queue.by_class.get("local_config"):
        return None
    return Verdict(
        "local_fault",
        (class_fact(queue, "local_config"),),
        button=flush_button(ev, reason="local_config"),
    )


def no_route(ev: Evidence) -> Verdict | None:
    queue = ev.queue
    if queue is None or not queue.by_class.get("network_unreachable"):
        return None
    facts = [class_fact(queue, "network_unreachable")]
    protocols = ev.settings.get("inet_protocols")
    if protocols:
        facts.append(fact("inet_protocols", value=protocols))
    return Verdict("no_route", tuple(facts), button=flush_button(ev, reason="network_unreachable"))
