"""Checks that run on the mail host: fixed command templates and pure parsers of their output.

Everything here uses what a stock Postfix host has and needs no root:

- ``posttls-finger`` (ships with Postfix): resolves a domain's MX with the host's resolver,
  or connects to ``[address]:port``; prints the banner, the EHLO reply, the STARTTLS
  outcome, the certificate's subject and (``-C``, on standard output) the certificate in
  PEM. It exits 0 even when the connection fails: the outcome is in its log lines, worded
  like Postfix's own delay reasons.
- ``postconf -x NAME...`` (values with ``$name`` expanded) and ``postconf -P`` (the
  per-service overrides in master.cf, such as SASL enabled on one transport only).
- ``head -c`` of ``/etc/resolv.conf`` and of the chroot copy Postfix's smtp(8) uses.
- ``stat`` of a SASL password map's database file: whether it exists and when it changed,
  never its content. It runs only for a file-based map (``hash:``, ``btree:``, ``lmdb:``,
  ``cdb:``, also behind ``proxy:``), never for an in-line one.

Every ``postconf`` value is redacted as it is parsed (``bot.postfix.redact``): a table spec
keeps its type and the path of a file-based map, never in-line content such as
``static:user:password``.

Arguments are validated before any command is built: a target is an IP address from the
bot's own DNS answers or a domain that passed IDNA validation; paths come from the host's
``postconf`` and must be plain absolute paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC

from cryptography import x509

from bot.postfix.redact import redact_parameter, split_list, unwrapped

SETTINGS = (
    "mail_version",
    "queue_directory",
    "myhostname",
    "inet_protocols",
    "relayhost",
    "default_transport",
    "relay_transport",
    "transport_maps",
    "smtp_bind_address",
    "smtp_sasl_auth_enable",
    "smtp_sasl_password_maps",
    "smtp_tls_security_level",
    "maximal_queue_lifetime",
    "bounce_queue_lifetime",
    "minimal_backoff_time",
    "maximal_backoff_time",
    "queue_run_delay",
    "default_destination_rate_delay",
    "smtp_destination_rate_delay",
    "default_destination_concurrency_limit",
    "smtp_destination_concurrency_limit",
    "default_destination_recipient_limit",
    "smtp_destination_recipient_limit",
    "smtp_connect_timeout",
    "smtp_helo_timeout",
)
_PATH = re.compile(r"(/[A-Za-z0-9._+-]+)+")
_LINE = re.compile(r"posttls-finger: (.*)")
_SETTING = re.compile(r"([a-z0-9_]+(?:/[a-z]+/[a-z0-9_]+)?) = ?(.*)")
_CONNECTED = re.compile(r"Connected to (\S+)")
_FAILED = re.compile(r"Failed to establish session to \S+ via \S+: (.*)")
_TLS = re.compile(r"(\w+) TLS connection established to \S+: (.*)")


def map_file(maps: str) -> str | None:
    """The database file of the first map in a (redacted) list if it is a ``hash:``,
    ``btree:``, ``lmdb:`` or ``cdb:`` file (also behind ``proxy:``), else None."""
    first = split_list(maps)[:1]
    kind, _, path = unwrapped(first[0]).partition(":") if first else ("", "", "")
    suffix = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb"}.get(kind)
    if suffix is None or not _PATH.fullmatch(path):
        return None
    return path + suffix


# --- parsers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SmtpProbe:
    """What ``posttls-finger`` saw. ``outcome``: ok, refused, timeout, greeting_timeout,
    rejected (a 4xx/5xx banner), lookup_failed (the host's DNS), or error."""

    outcome: str
    peer: str | None = None  # "mx.example.com[192.0.2.1]:25"
    banner: str | None = None
    ehlo: tuple[str, ...] = ()
    starttls: str = "not_offered"  # not_offered, ok, refused, failed, not_tried
    tls: str | None = None  # "TLSv1.3 with cipher ..."
    trust: str | None = None  # Trusted, Untrusted, Verified, Anonymous
    cert_subject: str | None = None
    cert_issuer: str | None = None
    cert_not_after: int | None = None  # epoch seconds
    error: str | None = None
    auth: tuple[str, ...] = field(default=())

    @property
    def answered(self) -> bool:
        """The server spoke SMTP (even if only to refuse)."""
        return self.banner is not None


def parse_probe(output: str) -> SmtpProbe:
    """``posttls-finger`` output: its log lines (on standard output when that is not a
    terminal, else standard error: pass both) and the ``-C`` certificate chain in PEM."""
    state: dict[str, object] = {"outcome": "error", "ehlo": []}
    stage = "greeting"
    for raw in output.splitlines():
        match = _LINE.fullmatch(raw.strip())
        if match is None or match.group(1).startswith("warning:"):
            continue
        stage = _probe_line(match.group(1), state, stage)
    state["ehlo"] = tuple(state["ehlo"])  # type: ignore[arg-type]
    state["auth"] = _auth(state["ehlo"])  # type: ignore[arg-type]
    if state["outcome"] == "error" and state.get("banner") and state["ehlo"]:
        state["outcome"] = "ok"
    _cert_dates(output, state)
    return SmtpProbe(**state)  # type: ignore[arg-type]


def _probe_line(line: str, state: dict[str, object], stage: str) -> str:
    if match := _CONNECTED.match(line):
        state["peer"] = match.group(1)
    elif line.startswith("< ") and stage == "greeting":
        return _greeting(line[2:], state)
    elif line.startswith("< ") and stage == "ehlo":
        ehlo: list[str] = state["ehlo"]  # type: ignore[assignment]
        ehlo.append(line[6:] if line[2:5] == "250" else line[2:])
        return "ehlo" if line[5:6] == "-" else "done"
    elif line.startswith("> EHLO") and stage == "wait_ehlo":
        return "ehlo"
    elif line.startswith("> STARTTLS"):
        state["starttls"] = "failed"
    elif line.startswith("< 220") and state.get("starttls") == "failed":
        state["starttls"] = "ok"
    elif line.startswith("STARTTLS rejected: "):
        state.update(starttls="refused", error=line)
    else:
        _outcome_line(line, state)
    return stage


def _greeting(reply: str, state: dict[str, object]) -> str:
    state["banner"] = f"{state['banner']} {reply[4:]}" if state.get("banner") else reply
    if reply[3:4] == "-":
        return "greeting"
    if not reply.startswith("2"):
        state["outcome"] = "rejected"
        return "done"
    return "wait_ehlo"


def _outcome_line(line: str, state: dict[str, object]) -> None:
    if match := _FAILED.match(line):
        reason = match.group(1)
        outcome = (
            "refused" if "refused" in reason else "timeout" if "timed out" in reason else "error"
        )
        state.update(outcome=outcome, error=reason)
    elif line.startswith("Destination address lookup failed: "):
        state.update(outcome="lookup_failed", error=line.split(": ", 1)[1])
    elif line.startswith("timeout while reading server greeting"):
        state.update(outcome="greeting_timeout", error=line)
    elif line.startswith("SMTP service not available: "):
        state.update(outcome="rejected", error=line)
    elif names := _cert_names(line):
        state.update(cert_subject=names[0], cert_issuer=names[1])
    elif match := _TLS.match(line):
        state.update(trust=match.group(1), tls=match.group(2))
    elif line.startswith("certificate verification failed"):
        state["error"] = line


def _cert_names(line: str) -> tuple[str, str] | None:
    """What ``subject_CN=([^,]*), issuer_CN=([^,]*)`` finds, in one pass: that search scans
    to the next comma from every ``subject_CN=``, and a server's certificate sets the text."""
    start = 0
    while (found := line.find("subject_CN=", start)) >= 0:
        comma = line.find(",", found)
        if comma < 0:
            return None
        if line.startswith(", issuer_CN=", comma):
            issuer = comma + len(", issuer_CN=")
            end = line.find(",", issuer)
            subject = line[found + len("subject_CN=") : comma]
            return subject, line[issuer:] if end < 0 else line[issuer:end]
        start = comma + 1  # every later subject_CN= before this comma fails the same way
    return None


def _auth(ehlo: tuple[str, ...]) -> tuple[str, ...]:
    for keyword in ehlo:
        words = keyword.split()
        if words and words[0].upper() in ("AUTH", "AUTH="):
            return tuple(words[1:])
    return ()


def _cert_dates(pem: str, state: dict[str, object]) -> None:
    start = pem.find("-----BEGIN CERTIFICATE-----")
    if start < 0:
        return
    try:
        cert = x509.load_pem_x509_certificate(pem[start:].encode())
    except ValueError:
        return
    state["cert_not_after"] = int(cert.not_valid_after_utc.astimezone(UTC).timestamp())
    state["cert_subject"] = cert.subject.rfc4514_string() or state.get("cert_subject")


def parse_settings(output: str) -> dict[str, str]:
    """``postconf -x`` / ``postconf -P`` output: ``name = value`` per line, each value
    redacted (``redact_parameter``): no secret gets past this point."""
    values: dict[str, str] = {}
    for line in output.splitlines():
        match = _SETTING.fullmatch(line.strip())
        if match is not None:
            name = match.group(1)
            values[name] = redact_parameter(name, match.group(2).strip())
    return values


@dataclass(frozen=True)
class ResolvConfs:
    system: tuple[str, ...]  # nameservers in /etc/resolv.conf
    chroot: tuple[str, ...] | None  # in Postfix's chroot copy; None: no such file

    @property
    def differ(self) -> bool:
        return self.chroot is not None and self.chroot != self.system


def parse_resolv_confs(output: str) -> ResolvConfs:
    """``head -c N /etc/resolv.conf QUEUE_DIRECTORY/etc/resolv.conf`` output."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        header = re.fullmatch(r"==> (.*) <==", line.strip())
        if header:
            current = files.setdefault(header.group(1), [])
            continue
        words = line.split()
        if current is not None and len(words) >= 2 and words[0] == "nameserver":
            current.append(words[1])
    system = tuple(files.get("/etc/resolv.conf", ()))
    chroot = next((tuple(v) for k, v in files.items() if k != "/etc/resolv.conf"), None)
    return ResolvConfs(system, chroot)


def parse_stat(output: str) -> tuple[int, int] | None:
    """``stat -c '%s %Y'``: (size, modification time), or None."""
    match = re.fullmatch(r"(\d+) (\d+)", output.strip())
    return (int(match.group(1)), int(match.group(2))) if match else None
