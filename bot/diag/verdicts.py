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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.diag.dns import Listing, MxReport, SenderAuth
from bot.diag.evidence import QueueEvidence
from bot.diag.host import ResolvConfs, SmtpProbe
from bot.diag.relays import Provider, RefusalTally, Relayhost
from bot.text import duration

DOWN = ("refused", "timeout", "greeting_timeout", "rejected")
DNS_CLASSES = ("dns_tempfail", "host_not_found")
SITE_CLASSES = ("connection_refused", "connection_timeout", "rate_limited")
Value = str | int


@dataclass(frozen=True)
class Probe:
    address: str
    port: int
    name: str  # the MX (or relay) host name it belongs to
    result: SmtpProbe


@dataclass(frozen=True)
class Relay:
    relayhost: str
    sasl: tuple[str, ...]  # where SASL is on: "main.cf", "relay/unix", ...
    password_map: str  # the map spec, redacted (bot.postfix.redact); "" if none
    map_path: str | None  # its database file; None: not a file map (in-line, or other type)
    map_file: tuple[int, int] | None  # (size, mtime) of that file; None: missing
    target: Relayhost | None = None  # relayhost's first destination, parsed
    provider: Provider | None = None  # the relay provider it is (bot.diag.relays)


@dataclass(frozen=True)
class Evidence:
    host: str
    domain: str | None
    now: float
    queue: QueueEvidence | None = None
    mx: MxReport | None = None
    host_lookup: SmtpProbe | None = None
    probes: tuple[Probe, ...] = ()  # port 25 of the domain's MX addresses
    canaries: tuple[Probe, ...] = ()  # port 25 of the probe domains' MX addresses
    submission: tuple[Probe, ...] = ()  # 587/465 (relay, or hosts that timed out on 25)
    queue_dns: tuple[MxReport, ...] = ()  # the bot's view of domains Postfix failed to resolve
    resolv: ResolvConfs | None = None
    relay: Relay | None = None
    settings: dict[str, str] = field(default_factory=dict)
    listings: tuple[tuple[str, Listing], ...] = ()  # (sending address, listing)
    senders: tuple[SenderAuth, ...] = ()
    relay_log: RefusalTally | None = None  # relay providers' refusals that bounced (mail log)


@dataclass(frozen=True)
class Fact:
    key: str
    values: dict[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    kind: str
    facts: tuple[Fact, ...]
    values: dict[str, Value] = field(default_factory=dict)  # for the next-step wording
    button: str | None = None  # the command a button runs


def fact(key: str, **values: Value) -> Fact:
    return Fact(key, values)


def decide(ev: Evidence) -> list[Verdict]:
    from bot.diag.relay_verdicts import relay_refusals, relay_setup  # they build on this module

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
    ]
    return [v for v in found if v is not None]


def _flush(ev: Evidence, **filters: str) -> str:
    words = " ".join(f"{k}={v}" for k, v in filters.items())
    return f"flush {ev.host} {words}".strip()


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
        facts.append(_class_fact(ev.queue, "connection_timeout"))
    return Verdict("port25_blocked", tuple(facts))


def _class_fact(queue: QueueEvidence, name: str) -> Fact:
    return fact(
        "queue_class",
        cls=name,
        count=queue.by_class.get(name, 0),
        domains=queue.class_domain_counts.get(name, 0),
        sample=queue.samples.get(name, ""),
    )


def resolver_broken(ev: Evidence) -> Verdict | None:
    facts: list[Fact] = []
    resolved = [mx for mx in ev.queue_dns if mx.status == "ok"]
    if ev.queue and resolved:
        for name in DNS_CLASSES:
            if ev.queue.by_class.get(name):
                facts.append(_class_fact(ev.queue, name))
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
    return Verdict("resolver_broken", tuple(facts), button=_flush(ev, reason="dns_tempfail"))


def _mx_text(mx: MxReport) -> str:
    return ", ".join(f"{h.name} ({' '.join(h.addresses) or h.status})" for h in mx.hosts[:3])


def relay_auth(ev: Evidence) -> Verdict | None:
    queue = ev.queue
    if queue is None or not queue.by_class.get("auth_failure"):
        return None
    facts = [_class_fact(queue, "auth_failure"), *sasl_facts(ev)]
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
        button=_flush(ev, reason="auth_failure"),
    )


def sasl_facts(ev: Evidence) -> list[Fact]:
    """Where SASL is on, and the password map's state."""
    relay = ev.relay
    if relay is None:
        return []
    facts = [
        fact(
            "sasl",
            where=", ".join(relay.sasl) or "nowhere",
            relayhost=relay.relayhost or "(none: transport_maps decide)",
        )
    ]
    if relay.password_map and relay.map_file is not None:
        age = duration(ev.now - relay.map_file[1])
        facts.append(fact("password_map", map=relay.password_map, age=age))
    elif relay.password_map and relay.map_path is not None:
        facts.append(fact("password_map_missing", map=relay.password_map))
    elif relay.password_map:
        facts.append(fact("password_map_unchecked", map=relay.password_map))
    return facts


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
        button=_flush(ev, domain=ev.domain),
    )


def blocklisted(ev: Evidence) -> list[Verdict]:
    found = []
    for address, listing in ev.listings:
        if listing.status != "listed":
            continue
        lists = " ".join(listing.lists)
        facts = [
            fact(
                "listed",
                address=address,
                zone=listing.zone,
                codes=" ".join(listing.codes) + (f": {lists}" if lists else ""),
                reason=listing.reason or "(no TXT)",
            )
        ]
        if ev.queue and ev.queue.by_class.get("blocklisted"):
            facts.append(_class_fact(ev.queue, "blocklisted"))
        kind = "policy_listed" if listing.lists and set(listing.lists) == {"PBL"} else "blocklisted"
        found.append(Verdict(kind, tuple(facts), {"zone": listing.zone, "address": address}))
    return found


def dnsbl_refused(ev: Evidence) -> list[Verdict]:
    """A list that refused the bot's queries (127.255.255.x): not a listing, and not checked."""
    zones: dict[str, list[Fact]] = {}
    for address, listing in ev.listings:
        if listing.status == "refused":
            zones.setdefault(listing.zone, []).append(
                fact(
                    f"dnsbl_refused_{listing.refusal}",
                    zone=listing.zone,
                    address=address,
                    codes=" ".join(listing.codes),
                )
            )
    return [
        Verdict(
            "dnsbl_refused", tuple(facts), {"zone": zone, "address": facts[0].values["address"]}
        )
        for zone, facts in zones.items()
    ]


def sender_auth(ev: Evidence) -> Verdict | None:
    queue = ev.queue
    if queue is None or not queue.sender_auth_rejects:
        return None
    facts = [fact("auth_rejects", count=queue.sender_auth_rejects, sample=queue.sender_auth_sample)]
    for sender in ev.senders:
        facts.append(
            fact(
                "spf",
                domain=sender.domain,
                record=sender.spf or "(none)",
                result=sender.spf_result,
                dmarc=sender.dmarc_policy or "(none)",
            )
        )
    button = _flush(ev, domain=ev.domain) if ev.domain else _flush(ev, reason="blocklisted")
    senders = ", ".join(s.domain for s in ev.senders) or ", ".join(queue.sender_auth_senders)
    return Verdict(
        "sender_auth", tuple(facts), {"senders": senders or "the sender domains"}, button=button
    )
