"""The evidence diagnose gathers and the verdicts it names: plain values, and the small
helpers every verdict module shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.diag.dns import MxReport, ReverseReport
from bot.diag.dnsbl import Listing
from bot.diag.evidence import QueueEvidence
from bot.diag.host import ResolvConfs, SmtpProbe
from bot.diag.relays import Provider, RefusalTally, Relayhost
from bot.diag.senderauth import SenderAuth
from bot.text import duration

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
    reverse: tuple[ReverseReport, ...] = ()  # the ptr check of each sending address
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


def flush_button(ev: Evidence, **filters: str) -> str:
    words = " ".join(f"{k}={v}" for k, v in filters.items())
    return f"flush {ev.host} {words}".strip()


def class_fact(queue: QueueEvidence, name: str) -> Fact:
    return fact(
        "queue_class",
        cls=name,
        count=queue.by_class.get(name, 0),
        domains=queue.class_domain_counts.get(name, 0),
        sample=queue.samples.get(name, ""),
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
