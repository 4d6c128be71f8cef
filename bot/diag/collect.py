"""Gather the evidence for one host (and optionally one domain) and decide the verdicts.

Checks start at once where they can and as soon as what they need is known (the MX
addresses before the SMTP probes, ``postconf`` before the relay and blocklist checks).
Every check runs under the ``CheckRunner``: ``check_timeout`` each, ``budget`` for the whole.
"""

from __future__ import annotations

import asyncio
import ipaddress
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

from bot.diag import dns, dnsbl, relays, senderauth
from bot.diag import host as remote
from bot.diag.config import DiagnoseSection
from bot.diag.evidence import DiagBuilder, QueueEvidence
from bot.diag.lint import Finding, lint
from bot.diag.model import Evidence, Probe, Relay, Verdict
from bot.diag.relaylog import bounced_refusals
from bot.diag.runner import Check, CheckResult, CheckRunner
from bot.diag.verdicts import decide
from bot.inventory import Host
from bot.postfix import tools
from bot.postfix.reader import read_host
from bot.postfix.redact import redact_text
from bot.remote.audited import Remote
from bot.remote.command import RemoteCommand
from bot.remote.ssh import REMOTE_TIMEOUT_EXIT

T = TypeVar("T")
MAX_QUEUE_DNS = 3
MAX_SENDERS = 2


@dataclass(frozen=True)
class Diagnosis:
    host: str
    domain: str | None
    evidence: Evidence
    verdicts: list[Verdict]
    checks: list[CheckResult]
    findings: list[Finding]
    budget: float
    check_timeout: float
    elapsed: float

    @property
    def timed_out(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status in ("timeout", "over_budget")]


@dataclass
class _Found:
    probes: list[Check[Probe]] = field(default_factory=list)
    canaries: list[Check[Probe]] = field(default_factory=list)
    submission: list[Check[Probe]] = field(default_factory=list)
    queue_dns: list[Check[dns.MxReport]] = field(default_factory=list)
    listings: list[tuple[str, Check[dnsbl.Listing]]] = field(default_factory=list)
    reverse: list[Check[dns.ReverseReport]] = field(default_factory=list)
    senders: list[Check[senderauth.SenderAuth]] = field(default_factory=list)
    relay_log: Check[relays.RefusalTally] | None = None


class Diagnoser:
    def __init__(self, gateway: Remote, host: Host, config: DiagnoseSection, now: float) -> None:
        self.gateway = gateway.quiet()
        self.host = host
        self.config = config
        self.now = now
        self.lookup = dns.Lookup(config, lifetime=config.check_timeout * 0.8)
        self.found = _Found()
        step = config.check_timeout
        self.ptf = {"connect": max(1, int(step * 0.4)), "command": max(1, int(step * 0.25))}

    async def run(self, domain: str | None) -> Diagnosis:
        started = asyncio.get_running_loop().time()
        self.runner = r = CheckRunner(self.config.check_timeout, self.config.budget)
        settings = r.start("postconf", self.host.name, self._settings)
        services = r.start("postconf_services", self.host.name, self._services)
        queue = r.start(
            "queue", self.host.name, lambda: self._queue(domain), timeout=self.config.budget
        )
        mx = host_lookup = None
        if domain is not None:
            mx = r.start("mx", domain, lambda: self._mx(domain, self.found.probes))
            host_lookup = r.start("host_mx", domain, lambda: self._probe_domain(domain))
        for canary in self.config.probe_domains:
            if canary != domain:
                r.start("mx", canary, partial(self._mx, canary, self.found.canaries, limit=1))
        resolv = r.start("resolv", self.host.name, lambda: self._resolv(settings), after=[settings])
        relay = r.start(
            "relay",
            self.host.name,
            lambda: self._relay(settings, services),
            after=[settings, services],
        )
        r.start("sending_ips", self.host.name, lambda: self._sending(settings), after=[settings])
        r.start("queue_dns", self.host.name, lambda: self._queue_dns(queue, domain), after=[queue])
        checks = await r.finish()
        evidence = self._evidence(domain, settings, queue, mx, host_lookup, resolv, relay)
        elapsed = asyncio.get_running_loop().time() - started
        return Diagnosis(
            self.host.name,
            domain,
            evidence,
            decide(evidence),
            checks,
            lint(evidence.settings, evidence.resolv),
            self.config.budget,
            self.config.check_timeout,
            elapsed,
        )

    async def _run(self, command: RemoteCommand) -> str:
        result = await self.gateway.run(self.host, command, check=False)
        if result.exit_status == REMOTE_TIMEOUT_EXIT:
            raise TimeoutError
        if result.exit_status not in (0, 1) or (result.exit_status and not result.stdout):
            error = redact_text(result.stderr.strip())[-200:]  # postconf warnings quote values
            raise ValueError(error or f"exit status {result.exit_status}")
        return result.stdout + result.stderr

    async def _settings(self) -> dict[str, str]:
        return remote.parse_settings(await self._run(tools.postconf_expanded(*remote.SETTINGS)))

    async def _services(self) -> dict[str, str]:
        return remote.parse_settings(await self._run(tools.postconf_services()))

    async def _queue(self, domain: str | None) -> QueueEvidence:
        builder = DiagBuilder(self.now, domain, self.config.relay_providers)
        await read_host(self.gateway, self.host, self.now, builder=builder)
        return builder.evidence()

    async def _mx(self, domain: str, into: list[Check[Probe]], limit: int = 4) -> dns.MxReport:
        report = await dns.mx_report(self.lookup, domain)
        for mx_host in report.hosts:
            for address in mx_host.addresses[:limit]:
                into.append(self._start_probe(mx_host.name, address, 25))
        return report

    def _start_probe(self, name: str, address: str, port: int) -> Check[Probe]:
        async def work() -> Probe:
            output = await self._run(tools.probe(address, port, **self.ptf))
            found = Probe(address, port, name, remote.parse_probe(output))
            if port == 25 and found.result.outcome == "timeout":
                self.found.submission.append(self._start_probe(name, address, 587))
            return found

        return self.runner.start("probe", f"{name} [{address}]:{port}", work)

    async def _probe_domain(self, domain: str) -> remote.SmtpProbe:
        return remote.parse_probe(await self._run(tools.probe(domain, None, **self.ptf)))

    async def _resolv(self, settings: Check[dict[str, str]]) -> remote.ResolvConfs:
        directory = (settings.value or {}).get("queue_directory", "/var/spool/postfix")
        return remote.parse_resolv_confs(await self._run(tools.resolv_confs(directory)))

    async def _relay(
        self, settings: Check[dict[str, str]], services: Check[dict[str, str]]
    ) -> Relay:
        main, overrides = settings.value or {}, services.value or {}
        sasl, password_map = sasl_settings(main, overrides)
        relayhost = main.get("relayhost", "")
        target = relays.parse_relayhost(relayhost)
        provider = relays.recognise(target.host, self.config.relay_providers) if target else None
        if target is not None:
            await self._probe_relayhost(target)
        if provider is not None:  # its permanent refusals bounced: only the log has them
            self.found.relay_log = self.runner.start(
                "relay_log",
                self.host.name,
                lambda: bounced_refusals(
                    self.gateway, self.host, self.now, self.config.relay_providers
                ),
            )
        path = remote.map_file(password_map)
        return Relay(relayhost, sasl, password_map, path, await self._stat(path), target, provider)

    async def _stat(self, path: str | None) -> tuple[int, int] | None:
        if path is None:  # no map, or not a database file (an in-line map is never stat'ed)
            return None
        result = await self.gateway.run(self.host, tools.stat_file(path), check=False)
        return remote.parse_stat(result.stdout) if result.exit_status == 0 else None

    async def _probe_relayhost(self, target: relays.Relayhost) -> None:
        name, port = target.host, target.port or 25
        addresses = [name] if _is_ip(name) else []
        if not addresses:
            report = await dns.mx_report(self.lookup, name)
            addresses = report.addresses[:2]
        for address in addresses:
            self.found.submission.append(self._start_probe(name, address, port))

    async def _sending(self, settings: Check[dict[str, str]]) -> list[str]:
        addresses = self._sending_addresses(settings.value or {})
        if not addresses:
            answer = await self.lookup.query(self.host.address, "A")
            addresses = list(answer.records[:2])
        for address in addresses:
            self.found.reverse.append(
                self.runner.start("ptr", address, partial(dns.reverse_report, self.lookup, address))
            )
            for zone in self.config.dnsbl_zones:
                check = self.runner.start(
                    "dnsbl",
                    f"{address} in {zone}",
                    partial(dnsbl.dnsbl, self.lookup, address, zone),
                )
                self.found.listings.append((address, check))
        return addresses

    def _sending_addresses(self, settings: dict[str, str]) -> list[str]:
        configured = self.config.sending_ips.get(self.host.name)
        if configured:
            return list(configured)
        bind = settings.get("smtp_bind_address", "")
        if _is_ip(bind) and not ipaddress.ip_address(bind).is_unspecified:
            return [bind]
        return [self.host.address] if _is_ip(self.host.address) else []

    async def _queue_dns(self, queue: Check[QueueEvidence], domain: str | None) -> int:
        evidence = queue.value
        if evidence is None:
            return 0
        failing = [
            d for c in ("dns_tempfail", "host_not_found") for d in evidence.class_domains.get(c, ())
        ]
        for name in failing[:MAX_QUEUE_DNS]:
            self.found.queue_dns.append(
                self.runner.start("mx", name, partial(dns.mx_report, self.lookup, name))
            )
        senders = evidence.sender_auth_senders or (evidence.sender_domains if domain else ())
        ips = self._sending_addresses({})
        for sender in senders[:MAX_SENDERS]:
            self.found.senders.append(
                self.runner.start(
                    "sender_auth",
                    sender,
                    partial(senderauth.sender_auth, self.lookup, sender, ips[0] if ips else None),
                )
            )
        return len(failing)

    def _evidence(
        self,
        domain: str | None,
        settings: Check[dict[str, str]],
        queue: Check[QueueEvidence],
        mx: Check[dns.MxReport] | None,
        host_lookup: Check[remote.SmtpProbe] | None,
        resolv: Check[remote.ResolvConfs],
        relay: Check[Relay],
    ) -> Evidence:
        found = self.found
        return Evidence(
            host=self.host.name,
            domain=domain,
            now=self.now,
            queue=queue.value,
            mx=mx.value if mx else None,
            host_lookup=host_lookup.value if host_lookup else None,
            probes=_values(found.probes),
            canaries=_values(found.canaries),
            submission=_values(found.submission),
            queue_dns=_values(found.queue_dns),
            resolv=resolv.value,
            relay=relay.value,
            settings=settings.value or {},
            listings=tuple((a, c.value) for a, c in found.listings if c.value is not None),
            senders=_values(found.senders),
            reverse=_values(found.reverse),
            relay_log=found.relay_log.value if found.relay_log else None,
        )


def sasl_settings(main: dict[str, str], overrides: dict[str, str]) -> tuple[tuple[str, ...], str]:
    """Where SASL login is on ("main.cf", "relay/unix", ...) and the first password map
    setting (main.cf first, then master.cf overrides), from parsed (redacted) settings."""
    sasl = ["main.cf"] if main.get("smtp_sasl_auth_enable") == "yes" else []
    sasl += [
        k.rsplit("/", 1)[0]
        for k, v in overrides.items()
        if k.endswith("/smtp_sasl_auth_enable") and v == "yes"
    ]
    maps = [main.get("smtp_sasl_password_maps", "")]
    maps += [v for k, v in overrides.items() if k.endswith("/smtp_sasl_password_maps")]
    return tuple(sasl), next((m for m in maps if m), "")


def _values(checks: list[Check[T]]) -> tuple[T, ...]:
    return tuple(v for v in (c.value for c in checks) if v is not None)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
