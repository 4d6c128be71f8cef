"""What the queue says, gathered while ``read_host`` streams the listing into a summary.

``DiagBuilder`` is a ``SummaryBuilder`` that also notes, for deferred recipients: the
reason classes for the domain under diagnosis, which domains each class spans, which
sender domains the SPF/DKIM/DMARC refusals are about, how many refusals each diagnose
check confirms (``confirming_check``: ``ptr``, ``dnsbl``, ``sender_auth``), and relay
providers' refusals (``bot.diag.relays``). Everything is bounded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from bot.diag.relays import RefusalTally
from bot.postfix.reasons import ReasonClass, analyse, confirming_check
from bot.postfix.summary import SummaryBuilder

MAX_DOMAINS = 25  # domains remembered per class


@dataclass(frozen=True)
class QueueEvidence:
    deferred_recipients: int
    by_class: dict[str, int]  # deferred recipients per reason class
    class_domains: dict[str, tuple[str, ...]]  # up to MAX_DOMAINS domains per class
    class_domain_counts: dict[str, int]  # how many distinct domains per class (bounded)
    samples: dict[str, str]  # one normalised reason per class
    target: dict[str, int] = field(default_factory=dict)  # the diagnosed domain, per class
    target_samples: dict[str, str] = field(default_factory=dict)
    sender_auth_rejects: int = 0
    sender_auth_sample: str = ""
    sender_auth_senders: tuple[str, ...] = ()  # sender domains of those messages
    sender_domains: tuple[str, ...] = ()  # top sender domains of deferred mail (to target)
    by_check: dict[str, int] = field(default_factory=dict)  # refusals per confirming check
    check_samples: dict[str, str] = field(default_factory=dict)  # one normalised reason each
    relay_refusals: RefusalTally = field(default_factory=RefusalTally)  # relay providers'

    def in_target(self, *classes: str) -> int:
        return sum(self.target.get(c, 0) for c in classes)


def _domain(address: str) -> str:
    at = address.rfind("@")
    return address[at + 1 :].lower().rstrip(".") if at >= 0 else ""


class DiagBuilder(SummaryBuilder):
    def __init__(
        self, now: float, domain: str | None, relay_aliases: dict[str, str] | None = None
    ) -> None:
        super().__init__(now)
        self.domain = domain
        self._dx_aliases = relay_aliases or {}
        self._dx_relays = RefusalTally()
        self._dx_classes: Counter[str] = Counter()
        self._dx_domains: dict[str, set[str]] = {}
        self._dx_samples: dict[str, str] = {}
        self._dx_target: Counter[str] = Counter()
        self._dx_target_samples: dict[str, str] = {}
        self._dx_auth_rejects = 0
        self._dx_auth_sample = ""
        self._dx_auth_senders: Counter[str] = Counter()
        self._dx_senders: Counter[str] = Counter()
        self._dx_deferred = 0
        self._dx_checks: Counter[str] = Counter()
        self._dx_check_samples: dict[str, str] = {}

    def add_fields(
        self,
        queue_name: str,
        queue_id: str,
        arrival: int,
        size: int,
        sender: str,
        recipients: list[dict[str, str]],
        _forced_expire: bool = False,
    ) -> None:
        """Count like the summary (``add`` calls this too), then take notes."""
        super().add_fields(queue_name, queue_id, arrival, size, sender, recipients, _forced_expire)
        self._note(queue_name, sender, recipients)

    def _note(self, queue_name: str, sender_address: str, recipients: list[dict[str, str]]) -> None:
        if queue_name != "deferred":
            return
        sender = _domain(sender_address)
        for recipient in recipients:
            raw = recipient.get("delay_reason", "")
            self._dx_relays.add(raw, recipient["address"], self._dx_aliases)
            reason_class, reason = analyse(raw)
            name = reason_class.value
            domain = _domain(recipient["address"])
            self._dx_deferred += 1
            self._dx_classes[name] += 1
            self._dx_samples.setdefault(name, reason)
            domains = self._dx_domains.setdefault(name, set())
            if len(domains) < MAX_DOMAINS:
                domains.add(domain)
            wanted = self.domain is None or domain == self.domain
            wanted = wanted or domain.endswith(f".{self.domain}")
            if wanted and self.domain is not None:
                self._dx_target[name] += 1
                self._dx_target_samples.setdefault(name, reason)
            if wanted and sender and len(self._dx_senders) < 1000:
                self._dx_senders[sender] += 1
            if reason_class is ReasonClass.blocklisted:
                self._note_check(recipient.get("delay_reason", ""), reason, sender)

    def _note_check(self, raw: str, reason: str, sender: str) -> None:
        check = confirming_check(raw)
        if check is not None:
            self._dx_checks[check] += 1
            self._dx_check_samples.setdefault(check, reason)
        if check == "sender_auth":
            self._note_auth(reason, sender)

    def _note_auth(self, reason: str, sender: str) -> None:
        self._dx_auth_rejects += 1
        self._dx_auth_sample = self._dx_auth_sample or reason
        if sender and len(self._dx_auth_senders) < 1000:
            self._dx_auth_senders[sender] += 1

    def evidence(self) -> QueueEvidence:
        return QueueEvidence(
            deferred_recipients=self._dx_deferred,
            by_class=dict(self._dx_classes.most_common()),
            class_domains={k: tuple(sorted(v)) for k, v in self._dx_domains.items()},
            class_domain_counts={k: len(v) for k, v in self._dx_domains.items()},
            samples=dict(self._dx_samples),
            target=dict(self._dx_target),
            target_samples=dict(self._dx_target_samples),
            sender_auth_rejects=self._dx_auth_rejects,
            sender_auth_sample=self._dx_auth_sample,
            sender_auth_senders=tuple(d for d, _ in self._dx_auth_senders.most_common(3)),
            sender_domains=tuple(d for d, _ in self._dx_senders.most_common(3)),
            by_check=dict(self._dx_checks),
            check_samples=dict(self._dx_check_samples),
            relay_refusals=self._dx_relays,
        )
