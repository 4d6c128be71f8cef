"""Shared test data for tests/postfix: Postfix-exact formatters, samples and strategies.

The formatters are Python ports of Postfix's own printf formats (postqueue/showq_json.c
and postqueue/showq_compat.c, Postfix 3.x), so parsers are tested against the exact
spacing Postfix produces. Real captured output from the lab lives in tests/data/*.lab.*
and is used whenever it is present.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from hypothesis import strategies as st

from bot.postfix.models import QueueMessage, Recipient

DATA = Path(__file__).resolve().parent.parent / "data"
LAB_JSON = DATA / "postqueue-j.lab.jsonl"
LAB_LIST = DATA / "postqueue-p.lab.txt"
VERSIONS = DATA / "versions"  # per-version fixtures, each with a "#" header naming its origin
VERSIONS_NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC).timestamp()  # when they were "taken"


def versions_fixture(name: str) -> str:
    """A fixture from ``VERSIONS`` without its ``#`` header (the origin notes)."""
    lines = (VERSIONS / name).read_text().splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("#"))


NOW = 1_732_702_323  # 2024-11-27T10:12:03Z, a Wednesday
SAFE52 = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
SAFE51 = SAFE52[:-1]

REASONS = {
    "connection_timeout": "connect to mx.timeout.test[127.0.0.4]:25: Connection timed out",
    "connection_refused": "connect to mx.refused.test[127.0.0.3]:25: Connection refused",
    "host_not_found": "Host or domain name not found. Name service error for "
    "name=nodata.test type=AAAA: Host found but no data record of requested type",
    "dns_tempfail": "Host or domain name not found. Name service error for "
    "name=dnsfail.test type=MX: Host not found, try again",
    "tls_failure": "TLS is required, but was not offered by host mx.notls.test[127.0.0.7]",
    "auth_failure": "SASL authentication failed; server relay.sasl.test[127.0.0.8] said: "
    "535 5.7.8 Error: authentication failed: authentication failure",
    "greylisted": "host mx.grey.test[127.0.0.2] said: 450 4.7.1 <{rcpt}>: Recipient address "
    "rejected: Greylisted, see http://postgrey.schweikert.ch/help/grey.test.html "
    "(in reply to RCPT TO command)",
    "rate_limited": "host mx.busy.test[127.0.0.6] refused to talk to me: 421 4.7.0 "
    "mx.busy.test Error: too many connections from 127.0.0.1",
    "blocklisted": "host mx.bl.test[127.0.0.11] said: 554 5.7.1 Service unavailable; Client "
    "host [127.0.0.1] blocked using zen.spamhaus.org (in reply to RCPT TO command)",
    "mailbox_full": "host mx.full.test[127.0.0.9] said: 452 4.2.2 <{rcpt}>: Mailbox full "
    "(in reply to RCPT TO command)",
    "other": "lost connection with mx.drop.test[127.0.0.10] while sending end of data -- "
    "message may be sent more than once",
}


def short_id(rng: random.Random) -> str:
    return f"{rng.randrange(1_000_000):05X}{rng.randrange(1, 2**32):X}"


def _encode(value: int, alphabet: str, pad: int) -> str:
    digits = ""
    while value or len(digits) < pad:
        value, rest = divmod(value, len(alphabet))
        digits = alphabet[rest] + digits
    return digits


def long_id(rng: random.Random) -> str:
    seconds = _encode(rng.randrange(10**9, 2 * 10**9), SAFE52, 6)
    micros = _encode(rng.randrange(1_000_000), SAFE52, 4)
    return f"{seconds}{micros}z{_encode(rng.randrange(1, 2**32), SAFE51, 0)}"


def to_json_lines(messages: Iterable[QueueMessage]) -> bytes:
    """``postqueue -j`` output, spaced as showq_json.c prints it."""
    out = []
    for m in messages:
        rcpts = ", ".join(
            "{"
            + f'"address": {json.dumps(r.address)}'
            + (f', "delay_reason": {json.dumps(r.delay_reason)}' if r.delay_reason else "")
            + "}"
            for r in m.recipients
        )
        out.append(
            f'{{"queue_name": "{m.queue_name}", "queue_id": "{m.queue_id}", '
            f'"arrival_time": {m.arrival_time}, "message_size": {m.message_size}, '
            f'"forced_expire": {"true" if m.forced_expire else "false"}, '
            f'"sender": {json.dumps(m.sender)}, "recipients": [{rcpts}]}}\n'
        )
    return "".join(out).encode()


def to_list_text(
    messages: Iterable[QueueMessage], *, long_ids: bool = False, tz: tzinfo = UTC
) -> str:
    """``postqueue -p`` output, a port of showq_compat.c's printf formats."""
    out: list[str] = []
    count = total = 0
    for m in messages:
        if count:
            out.append("\n")
        elif long_ids:
            out.append(
                f"{'----Queue ID-----':<17} {'--Size--':>8} {'---Arrival Time----':<19} "
                "--Sender/Recipient------\n"
            )
        else:
            out.append(
                f"{'-Queue ID-':<11} {'--Size--':>7} {'----Arrival Time----':<20} "
                "-Sender/Recipient-------\n"
            )
        status = {"active": "*", "hold": "!"}.get(m.queue_name, "")
        id_status = m.queue_id + status + ("#" if m.forced_expire else "")
        asct = datetime.fromtimestamp(m.arrival_time, tz).ctime() + "\n"
        if long_ids:
            out.append(f"{id_status:<17} {m.message_size:>8} {asct[:19]:>19} {m.sender}\n")
        else:
            out.append(f"{id_status:<11} {m.message_size:>7} {asct[:20]:>20} {m.sender}\n")
        saved = ""
        for r in m.recipients:
            if r.delay_reason != saved:
                saved = r.delay_reason
                shown = saved or "reason unavailable"
                out.append(" " * max(76 - len(shown), 0) + f"({shown})\n")
            blank = " " * (17 + 1 + 8 + 1 + 19 + 1) if long_ids else " " * (11 + 1 + 7 + 1 + 20 + 1)
            out.append(f"{blank}{r.address}\n")
        count += 1
        total += m.message_size
    if count == 0:
        out.append("Mail queue is empty\n")
    else:
        out.append(f"\n-- {total // 1024} Kbytes in {count} Request{'' if count == 1 else 's'}.\n")
    return "".join(out)


def sample_messages() -> list[QueueMessage]:
    """A small queue touching every queue, reason class and corner case."""
    rng = random.Random(7)
    messages = []
    for index, (name, reason) in enumerate(sorted(REASONS.items())):
        rcpts = tuple(
            Recipient(f"user{n}@{name}.test", reason.format(rcpt=f"user{n}@{name}.test"))
            for n in range(1 + index % 3)
        )
        messages.append(
            QueueMessage(
                "deferred", short_id(rng), NOW - 600 * index**2, 1000 + index, "a@x.test", rcpts
            )
        )
    mixed = (
        Recipient("p@mixed.test", REASONS["connection_refused"]),
        Recipient(
            "q@mixed.test", "delivery temporarily suspended: " + REASONS["connection_refused"]
        ),
        Recipient("r@other.test", REASONS["tls_failure"]),
        Recipient("s@other.test", ""),
    )
    messages += [
        QueueMessage("deferred", long_id(rng), NOW - 90_000, 5000, "MAILER-DAEMON", mixed),
        QueueMessage(
            "active", short_id(rng), NOW - 5, 800, "b@y.test", (Recipient("t@z.test", ""),)
        ),
        QueueMessage("hold", long_id(rng), NOW - 3600, 900, "<!channel>@evil.test", ()),
        QueueMessage(
            "incoming", short_id(rng), NOW + 30, 700, "c@y.test", (Recipient("u@Z.test", ""),)
        ),
        QueueMessage(
            "deferred", short_id(rng), NOW - 10, 600, "d@y.test", (Recipient("root", ""),), True
        ),
    ]
    return messages


def synthetic_messages(
    count: int, seed: int = 1, *, unique: bool = False
) -> Iterator[QueueMessage]:
    """A large queue shaped like the lab's: mostly deferred, a few reasons, 1-3 recipients.

    With ``unique`` every sender, recipient domain and destination host is new.
    """
    rng = random.Random(seed)
    names = sorted(REASONS)
    for n in range(count):
        domain = f"d{n}.test" if unique else f"d{rng.randrange(200)}.test"
        rcpts = []
        for k in range(1 + n % 3):
            address = f"user{n}.{k}@{domain}"
            reason = REASONS[names[rng.randrange(len(names))]].format(rcpt=address)
            if unique:
                reason = f"connect to mx.{domain}[10.0.0.1]:25: Connection refused"
            if rng.random() < 0.7:
                reason = "delivery temporarily suspended: " + reason
            rcpts.append(Recipient(address, reason))
        queue = "deferred" if n % 10 else rng.choice(("active", "incoming", "hold"))
        sender = f"s{n}@{domain}" if unique else f"s{rng.randrange(50)}@sender.test"
        yield QueueMessage(
            queue,
            short_id(rng),
            NOW - rng.randrange(200_000),
            rng.randrange(500, 50_000),
            sender,
            tuple(rcpts),
        )


# -- hypothesis strategies --------------------------------------------------------------

_printable = st.characters(blacklist_categories=("Cc", "Cs"))
queue_ids = st.builds(short_id, st.randoms(use_true_random=False)) | st.builds(
    long_id, st.randoms(use_true_random=False)
)
hostile_text = st.text(_printable, max_size=60)


def _addresses() -> st.SearchStrategy[str]:
    word = st.text(_printable, min_size=1, max_size=20).map(str.strip).filter(bool)
    return st.builds(lambda a, b: f"{a}@{b}", word, word).filter(
        lambda a: not (a.startswith("(") and a.endswith(")"))
    )


recipients = st.builds(
    Recipient,
    _addresses(),
    st.one_of(st.just(""), st.sampled_from(sorted(REASONS.values())), hostile_text).filter(
        lambda r: r != "reason unavailable"
    ),
)
messages = st.builds(
    QueueMessage,
    queue_name=st.sampled_from(("active", "incoming", "deferred", "hold")),
    queue_id=queue_ids,
    arrival_time=st.integers(NOW - 4 * 365 * 86400, NOW),
    message_size=st.integers(0, 10**9),
    sender=st.one_of(st.just("MAILER-DAEMON"), _addresses()),
    recipients=st.lists(recipients, max_size=5).map(tuple),
    forced_expire=st.booleans(),
)
