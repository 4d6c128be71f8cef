"""Relay providers: which one a ``relayhost`` (or a refusal's server) is, and what its
refusals mean. Pure functions, no I/O.

Providers recognised by their SMTP host names: SendGrid (``smtp.sendgrid.net``), Amazon SES
(``email-smtp.REGION.amazonaws.com`` and ``email-smtp-fips.REGION.amazonaws.com``), Mailgun
(``smtp.mailgun.org``, ``smtp.eu.mailgun.org``) and Postmark (``smtp.postmarkapp.com``,
``smtp-broadcasts.postmarkapp.com``). ``[diagnose] relay_providers`` names other hosts (a
CNAME of your own, a test relay): ``{"relay.example.net" = "sendgrid"}``, ``"ses:eu-west-1"``.

Refusals are matched on the providers' own texts (the origin of each is in
``tests/helpers/relay_refusals.py``). A text that only one provider uses identifies it on its
own; generic texts ("Relaying denied", a bare 535) count only when the server that said
them is a known provider. The kinds:

- ``sender_unverified``: the sender (From or envelope) is not a verified identity/domain.
- ``recipient_unverified``: the account is in a sandbox and the recipient is not verified
  or authorised (SES sandbox, Mailgun sandbox domains).
- ``quota``: the daily quota (SES) or credits (SendGrid) are used up.
- ``rate``: the maximum sending rate is exceeded (SES).
- ``credentials``: the login was refused: the wrong kind of credential (SES IAM keys
  instead of SMTP credentials, a SendGrid user other than ``apikey``, a Postmark Account
  token instead of a Server token), or a revoked one.
- ``auth_missing``: the relay wants a login and none was made (SASL is off).
- ``tls_missing``: the relay wants STARTTLS before AUTH.
- ``suspended``: the provider suspended sending for the account.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from bot.postfix.reasons import normalise

PROVIDERS = {
    "sendgrid": "SendGrid",
    "ses": "Amazon SES",
    "mailgun": "Mailgun",
    "postmark": "Postmark",
}
_REGION = r"[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}"
_HOSTS = (
    (re.compile(r"smtp\.sendgrid\.net"), "sendgrid"),
    (re.compile(rf"email-smtp(?P<fips>-fips)?\.(?P<region>{_REGION})\.amazonaws\.com"), "ses"),
    (re.compile(r"smtp(?:\.eu)?\.mailgun\.org"), "mailgun"),
    (re.compile(r"smtp(?:-broadcasts)?\.postmarkapp\.com"), "postmark"),
)
_ALIAS = re.compile(rf"(sendgrid|mailgun|postmark|ses(?::{_REGION})?)")
# relayhost: [host]:port, [host], host:port, host, [ipv6:addr]:port; a list takes the first.
_RELAYHOST = re.compile(r"(\[)?(?:ipv6:)?([A-Za-z0-9._:-]+?)(\])?(?::(\d{1,5}))?")
# The server a Postfix delay/bounce reason quotes.
_SERVER = re.compile(r"\b(?:host|server) ([A-Za-z0-9._-]+)\[[^\]]*\](?::\d+)? said: ")


@dataclass(frozen=True)
class Relayhost:
    host: str
    port: int | None  # None: not given (Postfix uses 25, the smtp service)
    bracketed: bool  # [host]: no MX lookup


@dataclass(frozen=True)
class Provider:
    key: str  # sendgrid, ses, mailgun, postmark
    host: str
    region: str = ""  # SES
    fips: bool = False

    @property
    def name(self) -> str:
        return PROVIDERS[self.key]


def parse_relayhost(value: str) -> Relayhost | None:
    """The first destination of a ``relayhost`` value, or None when it is empty or odd."""
    first = value.replace(",", " ").split()[:1]
    if not first:
        return None
    match = _RELAYHOST.fullmatch(first[0])
    if match is None or bool(match.group(1)) != bool(match.group(3)):
        return None
    port = int(match.group(4)) if match.group(4) else None
    if port is not None and not 0 < port < 65536:
        return None
    return Relayhost(match.group(2).lower().rstrip("."), port, bool(match.group(1)))


def valid_alias(spec: str) -> bool:
    return _ALIAS.fullmatch(spec) is not None


def recognise(host: str, aliases: Mapping[str, str] | None = None) -> Provider | None:
    """The provider whose SMTP host this is (a ``relay_providers`` alias first)."""
    host = host.lower().rstrip(".")
    spec = (aliases or {}).get(host)
    if spec is not None:
        key, _, region = spec.partition(":")
        return Provider(key, host, region)
    for pattern, key in _HOSTS:
        match = pattern.fullmatch(host)
        if match is not None:
            found = match.groupdict()
            return Provider(key, host, found.get("region") or "", bool(found.get("fips")))
    return None


def server_of(reason: str) -> str | None:
    """The host a Postfix reason quotes ("host X[addr] said:", "server X[addr] said:")."""
    match = _SERVER.search(reason)
    return match.group(1).lower() if match else None


@dataclass(frozen=True)
class Refusal:
    kind: str  # see the module docstring
    provider: str  # whose text matched: a provider key
    region: str = ""  # SES: the region its text names
    identities: tuple[str, ...] = ()  # SES: the identities that failed the check


# (provider, kind, pattern, needs the provider's server). Texts: tests/helpers/relay_refusals.py.
_TEXTS: tuple[tuple[str, str, re.Pattern[str], bool], ...] = tuple(
    (provider, kind, re.compile(text, re.IGNORECASE), needs_server)
    for provider, kind, text, needs_server in (
        (
            "ses",
            "unverified",
            r"Email address is not verified\. The following identities "
            r"failed the check in region (?P<region>[A-Z0-9-]+): (?P<identities>.*)",
            False,
        ),
        ("ses", "quota", r"Throttling failure: Daily message quota exceeded", False),
        ("ses", "rate", r"Throttling failure: Maximum sending rate exceeded", False),
        ("ses", "credentials", r"\b535 Authentication Credentials Invalid", False),
        ("ses", "suspended", r"Sending (?:suspended|paused) for this account", False),
        (
            "sendgrid",
            "sender_unverified",
            r"from address does not match a verified Sender Identity",
            False,
        ),
        (
            "sendgrid",
            "sender_unverified",
            r"You are not authorized to send from that email address",
            True,
        ),
        ("sendgrid", "credentials", r"Authentication failed: Bad username / password", False),
        (
            "sendgrid",
            "credentials",
            r"The provided authorization grant is invalid, expired, or revoked",
            False,
        ),
        ("sendgrid", "auth_missing", r"Unauthenticated senders not allowed", False),
        ("sendgrid", "quota", r"Authentication failed: Maximum credits exceeded", False),
        (
            "mailgun",
            "recipient_unverified",
            r"is not allowed to send: (?:Sandbox subdomains|"
            r"Free accounts) are for test purposes only",
            False,
        ),
        ("mailgun", "sender_unverified", r"\b5\.7\.1 Relaying denied", True),
        ("mailgun", "credentials", r"Mailgun is not loving your login or password", False),
        ("postmark", "sender_unverified", r"is not a Sender Signature on your account", False),
        ("postmark", "sender_unverified", r"Sender signature not defined", False),
        ("", "credentials", r"\b535[ -]", True),
        ("", "auth_missing", r"\b530[ -](?:5\.7\.0 )?Authentication required", True),
        ("", "tls_missing", r"Must issue a STARTTLS command first", True),
    )
)


def classify(
    reason: str, recipient: str = "", aliases: Mapping[str, str] | None = None
) -> tuple[Provider | None, Refusal] | None:
    """What a Postfix delay or bounce reason says about a relay provider, if anything.

    The provider is the one whose server the reason quotes (when known) or whose text it is."""
    server = server_of(reason)
    provider = recognise(server, aliases) if server else None
    for key, kind, pattern, needs_server in _TEXTS:
        if needs_server and provider is None:
            continue
        if key and provider is not None and provider.key != key:
            continue  # another provider's wording, said by a known provider's server
        match = pattern.search(reason)
        if match is None:
            continue
        owner = key or (provider.key if provider else "")
        return provider, _refusal(kind, owner, match, recipient)
    return None


def _refusal(kind: str, provider: str, match: re.Match[str], recipient: str) -> Refusal:
    if kind != "unverified":
        return Refusal(kind, provider)
    listed = match.group("identities").split(" (in reply to ")[0]
    identities = tuple(i.strip().rstrip(".") for i in listed.split(",") if i.strip(" ."))
    sandbox = recipient.lower() in {i.lower() for i in identities} and bool(recipient)
    kind = "recipient_unverified" if sandbox else "sender_unverified"
    return Refusal(kind, provider, match.group("region").lower(), identities[:5])


@dataclass
class RefusalTally:
    """Provider refusals seen in the queue or the log, per (provider, host, kind); bounded."""

    limit: int = 50
    counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    samples: dict[tuple[str, str, str], str] = field(default_factory=dict)
    regions: dict[tuple[str, str, str], str] = field(default_factory=dict)
    bounced: dict[tuple[str, str, str], int] = field(default_factory=dict)

    def add(
        self,
        reason: str,
        recipient: str,
        aliases: Mapping[str, str] | None,
        bounced: bool = False,
    ) -> None:
        found = classify(reason, recipient, aliases)
        if found is None:
            return
        provider, refusal = found
        key = (refusal.provider, provider.host if provider else "", refusal.kind)
        if key not in self.counts and len(self.counts) >= self.limit:
            return
        self.counts[key] = self.counts.get(key, 0) + 1
        if key not in self.samples:  # addresses and IPs folded, as every queue sample
            self.samples[key] = normalise(reason)[:500]
        if refusal.region or (provider and provider.region):
            self.regions.setdefault(key, refusal.region or (provider.region if provider else ""))
        if bounced:
            self.bounced[key] = self.bounced.get(key, 0) + 1

    def merged(self, other: RefusalTally) -> RefusalTally:
        out = RefusalTally(self.limit)
        for tally in (self, other):
            for key, n in tally.counts.items():
                out.counts[key] = out.counts.get(key, 0) + n
                out.samples.setdefault(key, tally.samples[key])
                if key in tally.regions:
                    out.regions.setdefault(key, tally.regions[key])
                if key in tally.bounced:
                    out.bounced[key] = out.bounced.get(key, 0) + tally.bounced[key]
        return out
