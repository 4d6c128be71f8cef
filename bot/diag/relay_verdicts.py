"""Verdicts about relay providers (SendGrid, Amazon SES, Mailgun, Postmark). Pure functions.

- One verdict per (provider, refusal kind) found in the queue (deferred) or the mail log
  (bounced in the last hour): kind ``PROVIDER_KIND`` (``ses_sender_unverified``,
  ``sendgrid_credentials``, ...), or ``relay_auth_missing`` / ``relay_tls_missing`` where the
  step is the same for every provider. Its values carry the provider's name, host and (SES)
  region for the next step, worded per kind in ``templates/diagnose_wording.j2``.
- ``PROVIDER_setup``: relayhost names a provider, and the way it does fails or leaks: port
  25 (blocked or throttled at many hosting providers), no brackets (an MX lookup first), no
  STARTTLS offered, ``smtp_tls_security_level`` below encrypt, or SASL off for the smtp
  transport that relayhost mail takes.
"""

from __future__ import annotations

from bot.diag.model import Evidence, Fact, Value, Verdict, fact, sasl_facts
from bot.diag.relays import PROVIDERS, RefusalTally

GENERIC = ("auth_missing", "tls_missing")  # the same step whoever the provider is
LOGIN = ("credentials", "auth_missing")
TLS_LEVELS = ("encrypt", "secure", "verify", "dane", "dane-only", "fingerprint")


def _tally(ev: Evidence) -> RefusalTally:
    queue = ev.queue.relay_refusals if ev.queue else RefusalTally()
    return queue.merged(ev.relay_log) if ev.relay_log else queue


def relay_refusals(ev: Evidence) -> list[Verdict]:
    tally = _tally(ev)
    relay = ev.relay
    password_map = relay.password_map if relay else ""
    found = []
    for key, count in sorted(tally.counts.items(), key=lambda kv: -kv[1]):
        provider, host, kind = key
        bounced = tally.bounced.get(key, 0)
        region = tally.regions.get(key, "")
        facts: list[Fact] = [
            fact(
                "relay_refused",
                host=host or "(a relay)",
                count=count,
                deferred=count - bounced,
                bounced=bounced,
                sample=tally.samples[key],
            )
        ]
        endpoint = relay.provider.region if relay and relay.provider else ""
        if kind.endswith("unverified") and region and endpoint and region != endpoint:
            facts.append(fact("ses_region", checked=region, relay=endpoint))
        if kind in LOGIN:
            facts += sasl_facts(ev)
        name = f"relay_{kind}" if kind in GENERIC else f"{provider}_{kind}"
        values: dict[str, Value] = {
            "provider": PROVIDERS.get(provider, "The relay"),
            "host": host or "the relay",
            "region": region or "the endpoint's region",
            "map": password_map or "smtp_sasl_password_maps",
            "refusal": kind,
        }
        button = f"flush {ev.host} reason=auth_failure" if kind in LOGIN else None
        found.append(Verdict(name, tuple(facts), values, button=button))
    return found


def relay_setup(ev: Evidence) -> Verdict | None:
    relay = ev.relay
    if relay is None or relay.provider is None or relay.target is None:
        return None
    target, provider = relay.target, relay.provider
    port = target.port or 25
    facts: list[Fact] = []
    if port == 25:
        facts.append(fact("relay_port", port=port))
    elif port in (465, 2465):
        facts.append(fact("relay_port_465", port=port))
    if not target.bracketed:
        facts.append(fact("relay_mx_lookup", host=target.host))
    probe = next((p for p in ev.submission if p.name == target.host and p.port == port), None)
    if probe is not None and not probe.result.answered:
        error = probe.result.error or ""
        facts.append(fact("relay_unreachable", host=target.host, port=port, error=error))
    elif probe is not None and probe.result.starttls == "not_offered" and port not in (465, 2465):
        facts.append(fact("relay_no_starttls", host=target.host, port=port))
    level = ev.settings.get("smtp_tls_security_level")
    if level is not None and level not in TLS_LEVELS:
        facts.append(fact("relay_tls_level", level=level or "(empty)"))
    if not {"main.cf", "smtp/unix"} & set(relay.sasl):
        facts.append(fact("relay_no_sasl", where=", ".join(relay.sasl) or "nowhere"))
    if not facts:
        return None
    facts.insert(
        0,
        fact(
            "relay_provider",
            relayhost=relay.relayhost,
            provider=provider.name,
            region=provider.region or "-",
        ),
    )
    values: dict[str, Value] = {
        "host": target.host,
        "region": provider.region or "REGION",
        "map": relay.password_map or "smtp_sasl_password_maps",
    }
    return Verdict(f"{provider.key}_setup", tuple(facts), values)
