"""Which queue messages a command acts on: the filter words of list, flush, hold and purge.

A filter is a list of ``key=value`` words (``QueueFilter.parse``). The same key given
again, or several values joined by commas, means *or*; different keys mean *and*; no words
at all select every message.

- ``domain=example.com``: a recipient's domain is that domain or a subdomain of it. The
  value is checked and compared as an IDNA hostname (``domain=münchen.example`` and its
  ``xn--`` form are the same); a leading ``@`` or trailing dot is ignored.
- ``sender=a@b.example`` (the address, any case), ``sender=@b.example`` (that domain or
  a subdomain), ``sender=<>`` (the null sender; Postfix shows it as ``MAILER-DAEMON``,
  which is accepted too).
- ``reason=greylisted``: a class name of ``bot.postfix.reasons.ReasonClass`` (``-`` may stand
  for ``_``); any other text matches reasons containing it, ignoring case
  (``reason="too many connections"``). A recipient with no recorded reason is ``other``
  in the deferred queue, as in the summary, and has no reason elsewhere.
- ``older=2d`` / ``newer=30m``: the age ``now - arrival_time`` (never below 0) is at least /
  below the duration: ``older=X`` and ``newer=X`` split the queue in two. Units ``s m h
  d w``, combinable (``1h30m``). Each may be given once.
- ``queue=deferred``: one of ``bot.postfix.models.QUEUE_NAMES``.
- ``id=9EF7716A00B``: one or several queue IDs (short or long form).

A word holds at most ``MAX_WORD_LENGTH`` (2,048) characters and a value at most
``MAX_VALUE_LENGTH`` (512): longer ones are refused before any other work.

``domain`` and ``reason`` are about recipients and must hold for the *same* recipient
(``domain=a.example reason=greylisted`` is mail greylisted by a.example, not mail to
a.example that something else greylisted); the other keys are about the message.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TypeVar

import idna

from bot.errors import UsageError
from bot.postfix.models import QUEUE_NAMES, QueueMessage, Recipient, is_queue_id
from bot.postfix.reasons import ReasonClass, classify
from bot.text import DURATION_FORMS, format_duration
from bot.text import duration as human_duration
from bot.text import parse_duration as text_duration

KEYS: tuple[str, ...] = ("domain", "sender", "reason", "older", "newer", "queue", "id")
EXAMPLES: dict[str, str] = {
    "domain": "domain=example.com",
    "sender": "sender=billing@shop.example",
    "reason": "reason=greylisted",
    "older": "older=2d",
    "newer": "newer=30m",
    "queue": "queue=deferred",
    "id": "id=9EF7716A00B",
}
NULL_SENDER = "<>"
NULL_SENDER_SHOWN = "MAILER-DAEMON"
MAX_VALUE_LENGTH = 512  # characters in one value (longer than any address or domain)
MAX_WORD_LENGTH = 2048  # characters in one word (about 150 queue IDs joined by commas)
MAX_DURATION = 3650 * 86400
_COMMA_KEYS = frozenset({"domain", "sender", "queue", "id"})
_ONCE_KEYS = frozenset({"older", "newer"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
T = TypeVar("T")
_HINTS = {
    "to": "domain",
    "rcpt": "domain",
    "recipient": "domain",
    "from": "sender",
    "age": "older",
    "status": "queue",
    "queue_id": "id",
    "class": "reason",
}


def _show(text: str) -> str:
    """User input echoed inside a code span: short, and unable to close the span."""
    text = text.replace("`", "'")
    return text if len(text) <= 80 else text[:79] + "…"


def _bad(word: str, problem: str, key: str | None = None) -> UsageError:
    example = EXAMPLES[key] if key else "domain=example.com older=2d"
    return UsageError(f"`{_show(word)}`: {problem}. Example: `{example}`.")


def ascii_domain(domain: str) -> str | None:
    """A domain in lower-case IDNA ASCII form, or None if it is not a valid hostname."""
    domain = domain.rstrip(".")
    if not domain or len(domain) > 253:
        return None
    return _ascii_domain(domain)


@lru_cache(maxsize=16384)
def _ascii_domain(domain: str) -> str | None:
    try:
        return idna.encode(domain, uts46=True).decode("ascii").lower()
    except (idna.IDNAError, UnicodeError, ValueError):
        return None


def _in_domain(domain: str, wanted: str) -> bool:
    return domain == wanted or domain.endswith("." + wanted)


def _match_domain(domain: str) -> str:
    """A domain from the queue in the form filters compare (ASCII needs no IDNA work)."""
    if domain.isascii():
        return domain.lower().rstrip(".")
    return ascii_domain(domain) or domain.lower()


def _address_domain(address: str) -> str | None:
    """The comparable domain of an address as Postfix prints it (None if it has none)."""
    _local, at, domain = address.rpartition("@")
    return _match_domain(domain) if at and domain else None


def _normal_address(address: str) -> str:
    local, _at, domain = address.rpartition("@")
    return f"{local.lower()}@{_match_domain(domain)}"


def parse_duration(text: str) -> int | None:
    """Seconds in ``30m``, ``2h``, ``1d12h``... (``bot.text``'s grammar), at most ten years."""
    seconds = text_duration(text)
    return seconds if seconds is not None and seconds <= MAX_DURATION else None


# -- values, one parser per key -------------------------------------------------------------


def _domain_value(word: str, value: str) -> str:
    ascii_form = ascii_domain(value.removeprefix("@"))
    if ascii_form is None:
        raise _bad(word, f"`{_show(value)}` is not a valid domain name", "domain")
    return ascii_form


def _sender_value(word: str, value: str) -> str:
    if value.lower() in (NULL_SENDER, NULL_SENDER_SHOWN.lower()):
        return NULL_SENDER
    local, at, domain = value.rpartition("@")
    ascii_form = ascii_domain(domain) if at else None
    if ascii_form is None or _CONTROL.search(value) or (local and local.strip() != local):
        raise UsageError(
            f"`{_show(word)}`: give an address, `@domain` or `<>` (the null sender). "
            "Examples: `sender=billing@shop.example`, `sender=@shop.example`, `sender=<>`."
        )
    return f"{local.lower()}@{ascii_form}" if local else f"@{ascii_form}"


def _queue_value(word: str, value: str) -> str:
    if value.lower() not in QUEUE_NAMES:
        raise _bad(word, f"no such queue; queues: {', '.join(QUEUE_NAMES)}", "queue")
    return value.lower()


def _id_value(word: str, value: str) -> str:
    if is_queue_id(value):
        return value
    hint = f" (did you mean `{value.upper()}`?)" if is_queue_id(value.upper()) else ""
    raise _bad(word, f"`{_show(value)}` is not a Postfix queue ID{hint}", "id")


def _duration_value(word: str, value: str, key: str) -> int:
    seconds = parse_duration(value)
    if seconds is None:
        raise _bad(word, f"give a duration above zero with a unit: {DURATION_FORMS}", key)
    return seconds


def _reason_value(value: str) -> ReasonClass | str:
    name = value.strip().lower().replace("-", "_")
    return ReasonClass(name) if name in ReasonClass.__members__ else value


# -- splitting words ------------------------------------------------------------------------


def _suggestion(word: str) -> str:
    """A ``key=value`` guess for a bare word, or an empty string."""
    lowered = word.lower().replace("-", "_")
    guesses: list[tuple[bool, str]] = [
        (lowered in ReasonClass.__members__, "reason"),
        (lowered in QUEUE_NAMES, "queue"),
        (is_queue_id(word), "id"),
        (parse_duration(word) is not None, "older"),
        ("@" in word or word == NULL_SENDER, "sender"),
        ("." in word and ascii_domain(word) is not None, "domain"),
    ]
    for hit, key in guesses:
        if hit:
            return f" Did you mean `{key}={_show(word)}`?"
    return ""


def _unknown_key(word: str, key: str) -> UsageError:
    close = _HINTS.get(key) or next(iter(difflib.get_close_matches(key, KEYS, 1)), None)
    hint = f" Did you mean `{close}=`?" if close else ""
    known = ", ".join(f"`{k}=`" for k in KEYS)
    return UsageError(f"`{_show(word)}`: unknown filter `{_show(key)}`.{hint} Filters: {known}.")


def split_word(word: str) -> tuple[str, str]:
    """``key=value`` -> ``(key in lower case, value)``, or a UsageError that says why not."""
    key, eq, value = word.partition("=")
    key = key.strip().lower()
    if not eq:
        raise UsageError(
            f"`{_show(word)}` is not a filter: filters are `key=value` words.{_suggestion(word)}"
            " Example: `domain=example.com older=2d`."
        )
    if key not in KEYS:
        raise _unknown_key(word, key)
    if not value.strip():
        raise _bad(word, f"`{key}=` needs a value", key)
    return key, value


def _values(words: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """``key -> [(word, value), ...]``, comma-separated values split where allowed."""
    found: dict[str, list[tuple[str, str]]] = {}
    for word in words:
        if len(word) > MAX_WORD_LENGTH:
            raise UsageError(
                f"`{_show(word)}`: a filter word is longer than {MAX_WORD_LENGTH:,} characters: "
                "split it into several words. Example: `id=A,B id=C,D` (the same as "
                "`id=A,B,C,D`)."
            )
        key, value = split_word(word)
        if key in _ONCE_KEYS and key in found:
            raise _bad(word, f"give `{key}=` only once", key)
        parts = value.split(",") if key in _COMMA_KEYS else [value]
        for part in parts:
            if not part.strip():
                raise _bad(word, "an empty value between commas", key)
            if len(part) > MAX_VALUE_LENGTH:
                raise _bad(word, f"a value is longer than {MAX_VALUE_LENGTH} characters", key)
            found.setdefault(key, []).append((word, part.strip()))
    return found


def _unique(items: Iterable[T]) -> tuple[T, ...]:
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class QueueFilter:
    """A parsed filter; build it with ``parse``. Values are normalised (see the module doc)."""

    domains: tuple[str, ...] = ()  # lower-case IDNA ASCII
    senders: tuple[str, ...] = ()  # "<>", "@domain" or "local@domain" (lower case)
    reason_classes: tuple[ReasonClass, ...] = ()
    reason_texts: tuple[str, ...] = ()  # as given; matched ignoring case
    older: int | None = None  # seconds
    newer: int | None = None
    queues: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()
    _folded: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _id_set: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_folded", tuple(t.casefold() for t in self.reason_texts))
        object.__setattr__(self, "_id_set", frozenset(self.ids))

    @property
    def by_queue_and_age_only(self) -> bool:
        """True if nothing but ``queue=``, ``older=`` or ``newer=`` narrows it: such a filter
        selects a whole queue (or all of it past an age), however it is worded."""
        return not (self.domains or self.senders or self.reason_classes or self.reason_texts
                    or self.ids)  # fmt: skip

    # -- building --------------------------------------------------------------------------

    @classmethod
    def parse(cls, words: Iterable[str]) -> QueueFilter:
        """Parse filter words; raises ``UsageError`` naming the bad word and an example."""
        found = _values(words)

        def each(key: str, convert: Callable[[str, str], T]) -> tuple[T, ...]:
            return _unique(convert(word, value) for word, value in found.get(key, []))

        reasons = [_reason_value(value) for _word, value in found.get("reason", [])]
        older = each("older", lambda w, v: _duration_value(w, v, "older"))
        newer = each("newer", lambda w, v: _duration_value(w, v, "newer"))
        result = cls(
            domains=each("domain", _domain_value),
            senders=each("sender", _sender_value),
            reason_classes=_unique(r for r in reasons if isinstance(r, ReasonClass)),
            reason_texts=_unique(r for r in reasons if not isinstance(r, ReasonClass)),
            older=older[0] if older else None,
            newer=newer[0] if newer else None,
            queues=each("queue", _queue_value),
            ids=each("id", _id_value),
        )
        result._check_ages()
        return result

    def _check_ages(self) -> None:
        if self.older is not None and self.newer is not None and self.older >= self.newer:
            old, new = format_duration(self.older), format_duration(self.newer)
            raise UsageError(
                f"`older={old} newer={new}` selects nothing: no message is at least {old} old "
                f"and less than {new} old. Did you mean `older={new} newer={old}`?"
            )

    # -- matching --------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        """True if the filter selects every message."""
        return self == QueueFilter()

    @property
    def per_recipient(self) -> bool:
        return bool(self.domains or self.reason_classes or self.reason_texts)

    def matches(self, message: QueueMessage, now: float) -> bool:
        """True if ``message`` is selected, judging ages against ``now`` (epoch seconds)."""
        if not self._message_matches(message, now):
            return False
        if not self.per_recipient:
            return True
        return any(self._recipient_matches(message, r) for r in message.recipients)

    def matching_recipients(
        self, message: QueueMessage, now: float
    ) -> tuple[Recipient, ...] | None:
        """None if ``message`` is not selected; else the recipients that make it match
        (all of them when no recipient key is set; possibly none if it has none)."""
        if not self._message_matches(message, now):
            return None
        if not self.per_recipient:
            return message.recipients
        selected = tuple(r for r in message.recipients if self._recipient_matches(message, r))
        return selected or None

    def _message_matches(self, message: QueueMessage, now: float) -> bool:
        age = max(0.0, now - message.arrival_time)
        return (
            (not self.queues or message.queue_name in self.queues)
            and (not self._id_set or message.queue_id in self._id_set)
            and (self.older is None or age >= self.older)
            and (self.newer is None or age < self.newer)
            and (not self.senders or self._sender_matches(message.sender))
        )

    def _sender_matches(self, sender: str) -> bool:
        if sender in ("", NULL_SENDER_SHOWN):
            return NULL_SENDER in self.senders
        domain = _address_domain(sender)
        normal = _normal_address(sender)
        for wanted in self.senders:
            if wanted.startswith("@"):
                if domain is not None and _in_domain(domain, wanted[1:]):
                    return True
            elif wanted == normal:
                return True
        return False

    def _recipient_matches(self, message: QueueMessage, recipient: Recipient) -> bool:
        if self.domains:
            domain = _address_domain(recipient.address)
            if domain is None or not any(_in_domain(domain, d) for d in self.domains):
                return False
        if not (self.reason_classes or self.reason_texts):
            return True
        reason = recipient.delay_reason
        if self.reason_classes and reason_class(message, recipient) in self.reason_classes:
            return True
        folded = reason.casefold()
        return any(text in folded for text in self._folded)

    # -- showing ---------------------------------------------------------------------------

    def words(self) -> list[str]:
        """Canonical words: ``QueueFilter.parse(f.words()) == f``. The null sender is
        written ``MAILER-DAEMON`` (no ``<>``, which chat formatting would mangle)."""
        words = _joined("domain", self.domains)
        if self.senders:
            shown = [NULL_SENDER_SHOWN if s == NULL_SENDER else s for s in self.senders]
            words += _joined("sender", shown)
        words += [f"reason={c.value}" for c in self.reason_classes]
        words += [f"reason={t}" for t in self.reason_texts]
        if self.older is not None:
            words.append(f"older={format_duration(self.older)}")
        if self.newer is not None:
            words.append(f"newer={format_duration(self.newer)}")
        return words + _joined("queue", self.queues) + _joined("id", self.ids)

    def __str__(self) -> str:
        """The words as one shell-quoted string (what a user would type)."""
        return shlex.join(self.words())

    def describe(self) -> str:
        """The filter in words for people, e.g. ``recipient domain example.com (or a
        subdomain), reason greylisted, older than 2d``; ``all messages`` if empty."""
        reasons = [c.value for c in self.reason_classes]
        reasons += [f'containing "{t}"' for t in self.reason_texts]
        domains = [_domain_label(d) for d in self.domains]
        clauses = [
            _either("recipient domain", domains, " (or a subdomain)"),
            _either("sender", [_sender_label(s) for s in self.senders]),
            _either("reason", reasons),
            f"older than {human_duration(self.older)}" if self.older is not None else "",
            f"newer than {human_duration(self.newer)}" if self.newer is not None else "",
            _either("queue", list(self.queues)),
            _either("queue ID", list(self.ids))
            if len(self.ids) <= 5
            else f"one of {len(self.ids):,} queue IDs",
        ]
        return ", ".join(c for c in clauses if c) or "all messages"


def _joined(key: str, values: Iterable[str]) -> list[str]:
    """``key=a,b,...`` words, each at most ``MAX_WORD_LENGTH`` characters long."""
    words: list[str] = []
    for value in values:
        if words and len(words[-1]) + 1 + len(value) <= MAX_WORD_LENGTH:
            words[-1] += "," + value
        else:
            words.append(f"{key}={value}")
    return words


def reason_class(message: QueueMessage, recipient: Recipient) -> ReasonClass | None:
    """The class of a recipient's delay reason, as the summary counts it (module doc)."""
    if recipient.delay_reason:
        return classify(recipient.delay_reason)
    return ReasonClass.other if message.queue_name == "deferred" else None


def _either(what: str, values: list[str], suffix: str = "") -> str:
    return f"{what} {' or '.join(values)}{suffix}" if values else ""


def _domain_label(domain: str) -> str:
    try:
        unicode = idna.decode(domain)
    except (idna.IDNAError, UnicodeError, ValueError):
        return domain
    return domain if unicode == domain else f"{unicode} ({domain})"


def _sender_label(sender: str) -> str:
    if sender == NULL_SENDER:
        return "<> (MAILER-DAEMON)"
    return f"in {_domain_label(sender[1:])} (or a subdomain)" if sender[0] == "@" else sender
