"""Queue summaries: counts against a plain recount, ages, and flat memory."""

from __future__ import annotations

import random
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.postfix.models import QueueMessage, Recipient
from bot.postfix.postfix import PostqueueJsonParser
from bot.postfix.qshape import (
    ShapeRow,
    bucket_of,
    parse_qshape,
    qshape_bucket,
    qshape_domain,
    shape_table,
)
from bot.postfix.reasons import ReasonClass, classify, normalise
from bot.postfix.summary import OTHER_KEY, QueueSummary, SummaryBuilder
from helpers.mta_samples import LAB_JSON, NOW, messages, sample_messages, synthetic_messages


def summarise(queue: list[QueueMessage], now: float = NOW, top_n: int = 1000) -> QueueSummary:
    builder = SummaryBuilder(now=now, top_n=top_n)
    for message in queue:
        builder.add(message)
    return builder.build()


def domain(address: str) -> str:
    if "@" not in address or address.endswith("@"):
        return "(none)"
    return address.rpartition("@")[2].lower()


def sender_key(sender: str) -> str:
    return "<>" if sender in ("", "MAILER-DAEMON") else sender


def recount(queue: list[QueueMessage]) -> dict[str, object]:
    """The same numbers, computed the obvious way with everything in memory."""
    deferred = [m for m in queue if m.queue_name == "deferred"]
    by_class: dict[ReasonClass, tuple[int, int, dict[str, int], dict[str, int]]] = {}
    for cls in {classify(r.delay_reason) for m in deferred for r in m.recipients}:
        rcpts = [r for m in deferred for r in m.recipients if classify(r.delay_reason) is cls]
        by_class[cls] = (
            sum(1 for m in deferred if any(classify(r.delay_reason) is cls for r in m.recipients)),
            len(rcpts),
            dict(Counter(normalise(r.delay_reason) or "(no reason recorded)" for r in rcpts)),
            dict(Counter(domain(r.address) for r in rcpts)),
        )
    return {
        "total_messages": len(queue),
        "total_recipients": sum(len(m.recipients) for m in queue),
        "total_bytes": sum(m.message_size for m in queue),
        "queues": {
            name: (
                sum(1 for m in queue if m.queue_name == name),
                sum(len(m.recipients) for m in queue if m.queue_name == name),
                sum(m.message_size for m in queue if m.queue_name == name),
            )
            for name in {m.queue_name for m in queue} | {"active", "incoming", "deferred", "hold"}
        },
        "by_class": by_class,
        "recipient_domains": dict(Counter(domain(r.address) for m in queue for r in m.recipients)),
        "senders": dict(Counter(sender_key(m.sender) for m in queue)),
        "sender_domains": dict(
            Counter("<>" if sender_key(m.sender) == "<>" else domain(m.sender) for m in queue)
        ),
    }


def as_dict(summary: QueueSummary) -> dict[str, object]:
    return {
        "total_messages": summary.total_messages,
        "total_recipients": summary.total_recipients,
        "total_bytes": summary.total_bytes,
        "queues": {n: (c.messages, c.recipients, c.bytes) for n, c in summary.queues.items()},
        "by_class": {
            g.reason_class: (g.messages, g.recipients, dict(g.top_reasons), dict(g.top_domains))
            for g in summary.deferred_by_class
        },
        "recipient_domains": dict(summary.top_recipient_domains),
        "senders": dict(summary.top_senders),
        "sender_domains": dict(summary.top_sender_domains),
    }


def lab_queue() -> list[QueueMessage]:
    if not LAB_JSON.exists():
        return []
    parser = PostqueueJsonParser()
    return parser.feed(LAB_JSON.read_bytes()) + parser.close()


def test_counts_equal_a_plain_recount() -> None:
    queue = lab_queue() + sample_messages() + list(synthetic_messages(2000))
    assert as_dict(summarise(queue)) == recount(queue)


@given(st.lists(messages, max_size=20))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_counts_equal_a_plain_recount_for_any_queue(queue: list[QueueMessage]) -> None:
    assert as_dict(summarise(queue)) == recount(queue)


def test_sample_summary() -> None:
    summary = summarise(sample_messages(), top_n=3)
    assert list(summary.queues)[:4] == ["incoming", "active", "deferred", "hold"]
    assert summary.queues["hold"].messages == 1
    assert summary.queues["hold"].recipients == 0
    refused = next(
        g for g in summary.deferred_by_class if g.reason_class is ReasonClass.connection_refused
    )
    # Three refused recipients in one message, two more (one "suspended") in the mixed one.
    assert refused.messages == 2
    assert refused.recipients == 5
    assert refused.top_reasons == [("connect to mx.refused.test[<ip>]:25: Connection refused", 5)]
    recipients = [g.recipients for g in summary.deferred_by_class]
    assert recipients == sorted(recipients, reverse=True)
    assert ("<>", 1) in summary.top_senders or len(summary.top_senders) == 3
    assert len(summary.top_senders) <= 3


def test_empty_queue() -> None:
    summary = summarise([])
    assert summary.total_messages == 0
    assert set(summary.queues) == {"active", "incoming", "deferred", "hold"}
    assert summary.deferred_by_class == []
    assert summary.oldest is None
    assert sum(b.messages for b in summary.age_buckets) == 0


def test_null_sender() -> None:
    queue = [
        QueueMessage("deferred", "ABCDEF", NOW, 1, "MAILER-DAEMON", ()),
        QueueMessage("deferred", "ABCDE0", NOW, 1, "", ()),
    ]
    summary = summarise(queue)
    assert summary.top_senders == [("<>", 2)]
    assert summary.top_sender_domains == [("<>", 2)]


def test_missing_reason_counts_as_other() -> None:
    queue = [QueueMessage("deferred", "ABCDEF", NOW, 1, "a@b.test", (Recipient("c@d.test", ""),))]
    [group] = summarise(queue).deferred_by_class
    assert group.reason_class is ReasonClass.other
    assert group.top_domains == [("d.test", 1)]


def test_only_the_deferred_queue_is_grouped_by_reason() -> None:
    reason = "connect to mx.x.test[192.0.2.1]:25: Connection refused"
    queue = [QueueMessage("active", "ABCDEF", NOW, 1, "a@b.test", (Recipient("c@d.test", reason),))]
    assert summarise(queue).deferred_by_class == []


def message_at(arrival: int, queue_id: str = "ABCDEF") -> QueueMessage:
    return QueueMessage("deferred", queue_id, arrival, 1, "a@b.test", ())


@pytest.mark.parametrize(
    ("age_minutes", "label"),
    [
        (0, "<5m"),
        (4.9, "<5m"),
        (5, "5-10m"),
        (19.9, "10-20m"),
        (20, "20-40m"),
        (79, "40-80m"),
        (159, "80-160m"),
        (319, "160-320m"),
        (639, "320-640m"),
        (1279, "640-1280m"),
        (1280, "1280m+"),
        (100_000, "1280m+"),
        (-30, "<5m"),
    ],
)
def test_age_buckets(age_minutes: float, label: str) -> None:
    summary = summarise([message_at(int(NOW - age_minutes * 60))])
    assert [b.label for b in summary.age_buckets if b.messages] == [label]
    assert len(summary.age_buckets) == 10


def test_ages_follow_the_injected_clock() -> None:
    queue = [message_at(NOW - 60)]
    assert summarise(queue, now=NOW).age_buckets[0].messages == 1
    later = summarise(queue, now=NOW + 2 * 86400)
    assert later.age_buckets[-1].messages == 1
    assert later.now == NOW + 2 * 86400


def test_oldest() -> None:
    queue = [
        message_at(NOW - 10, "BBBBBB"),
        message_at(NOW - 99, "CCCCCC"),
        message_at(NOW - 99, "AAAAAA"),
    ]
    oldest = summarise(queue).oldest
    assert oldest is not None
    assert (oldest.queue_id, oldest.arrival_time, oldest.queue_name) == (
        "AAAAAA",
        NOW - 99,
        "deferred",
    )


def test_top_lists_are_ordered_and_cut() -> None:
    queue = [
        QueueMessage(
            "deferred", "ABCDEF", NOW, 1, f"s{n % 7}@x.test", (Recipient(f"r@d{n % 4}.test", ""),)
        )
        for n in range(100)
    ]
    summary = summarise(queue, top_n=3)
    assert len(summary.top_senders) == 3
    counts = [c for _, c in summary.top_senders]
    assert counts == sorted(counts, reverse=True)
    assert summary.top_recipient_domains == [("d0.test", 25), ("d1.test", 25), ("d2.test", 25)]


def test_memory_stays_flat() -> None:
    builder = SummaryBuilder(now=NOW)
    for message in synthetic_messages(200_000, unique=True):
        builder.add(message)
    sizes = builder.counter_sizes()
    assert max(sizes.values()) <= builder.max_keys + 1
    assert sizes["senders"] == builder.max_keys + 1  # capped: the rest went to "(other)"
    summary = builder.build()
    assert summary.total_messages == 200_000
    assert dict(builder._senders.top(1))[OTHER_KEY] == 200_000 - builder.max_keys


@pytest.mark.skipif(not LAB_JSON.exists(), reason="no lab capture in tests/data yet")
def test_lab_summary() -> None:
    queue = lab_queue()
    arrived = max(m.arrival_time for m in queue)
    summary = summarise(queue, now=arrived + 3600, top_n=20)
    assert summary.total_messages == len(queue)
    assert summary.queues["deferred"].messages == sum(m.queue_name == "deferred" for m in queue)
    assert summary.queues["hold"].messages == sum(m.queue_name == "hold" for m in queue)
    # The lab fills the queue in a few seconds: an hour later everything is 40-80 minutes old.
    assert [(b.label, b.messages) for b in summary.age_buckets if b.messages] == [
        ("40-80m", len(queue))
    ]
    assert summary.oldest is not None
    assert summary.oldest.arrival_time == min(m.arrival_time for m in queue)
    assert ("<>", sum(m.sender == "MAILER-DAEMON" for m in queue)) in summary.top_senders
    # Each lab destination has one behaviour, so each class names only its destinations.
    for group in summary.deferred_by_class:
        assert len(group.top_reasons) <= 2
        assert group.recipients == sum(n for _, n in group.top_domains)


def test_blank_reason_is_no_reason() -> None:
    queue = [
        QueueMessage("deferred", "ABCDEF", NOW, 1, "a@b.test", (Recipient("c@d.test", "  "),)),
        QueueMessage("deferred", "ABCDE0", NOW, 1, "a@b.test", (Recipient("c@d.test", ""),)),
    ]
    [group] = summarise(queue).deferred_by_class
    assert group.top_reasons == [("(no reason recorded)", 2)]


# -- qshape(1)'s table --------------------------------------------------------------------

QSHAPE = Path("/usr/sbin/qshape")
ODD_ADDRESSES = [
    "a@X.Test",
    "b@y.test.",
    "c@..z.test",
    "noat",
    "d@",
    "Ünïcode@ÉXAMPLE.test",
    "e@.dot.test",
    "f@g@h.test",
    "MAILER-DAEMON",
]


def qfile_record(kind: str, data: bytes) -> bytes:
    """One Postfix queue file record: type, length in 7-bit groups, data (rec_put)."""
    head, n = bytearray(kind.encode()), len(data)
    while True:
        n, low = n >> 7, n & 0x7F
        head.append(low | (0x80 if n else 0))
        if not n:
            return bytes(head) + data


def raw_address(address: str) -> bytes:
    """The envelope record's address: showq prints the empty one as ``MAILER-DAEMON``."""
    return b"" if address == "MAILER-DAEMON" else address.encode()


def write_queue_file(path: Path, message: QueueMessage) -> None:
    """A minimal queue file as cleanup writes it, enough for qshape's reader."""
    records = [
        qfile_record("C", b"%15d %15d %15d %15d" % (0, 0, len(message.recipients), 0)),
        qfile_record("T", b"%d 0" % message.arrival_time),
        qfile_record("S", raw_address(message.sender)),
        *(qfile_record("R", raw_address(r.address)) for r in message.recipients),
        qfile_record("M", b""),
        qfile_record("X", b""),
        qfile_record("E", b""),
    ]
    path.write_bytes(b"".join(records))
    path.chmod(0o700)


def shape_queue(now: int, rng: random.Random) -> list[QueueMessage]:
    """Deferred messages at every qshape boundary (and one second either side), odd domains."""
    edges = [60 * 5 * 2**k for k in range(10)]
    ages = [-60, 0, 1] + [edge + d for edge in edges for d in (-1, 0, 1)]
    ages += [rng.randrange(0, 200_000) for _ in range(150)]
    domains = ["gmail.test", "Big.Corp.test", "x.test", "y.test"]
    queue = []
    for n, age in enumerate(ages):
        count = rng.choice((0, 1, 1, 2, 3)) if n else 0  # one message without recipients
        rcpts = [
            rng.choice(ODD_ADDRESSES) if rng.random() < 0.2 else f"u{n}@{rng.choice(domains)}"
            for _ in range(count)
        ]
        sender = rng.choice(["MAILER-DAEMON", "s@Shop.test", "t@shop.test.", "bare"])
        recipients = tuple(Recipient(r, "deferred") for r in rcpts)
        queue.append(QueueMessage("deferred", f"{n + 1:06X}", now - age, 1, sender, recipients))
    return queue


def run_qshape(*args: str) -> dict[str, tuple[int, ...]]:
    out = subprocess.run([str(QSHAPE), *args], check=True, capture_output=True, timeout=60)
    return parse_qshape(out.stdout.decode("utf-8"))


@pytest.mark.skipif(not QSHAPE.exists(), reason="qshape is not installed (Debian: postfix)")
def test_shapes_equal_real_qshape_on_queue_files(tmp_path: Path) -> None:
    for _ in range(5):
        now = int(time.time())
        queue = shape_queue(now, random.Random(7))
        for message in queue:
            folder = tmp_path / "deferred" / message.queue_id[0]
            folder.mkdir(parents=True, exist_ok=True)
            write_queue_file(folder / message.queue_id, message)
        recipients = run_qshape(str(tmp_path / "deferred"))
        senders = run_qshape("-s", str(tmp_path / "deferred"))
        if int(time.time()) == now:  # qshape's clock read the same second as ours
            break
    summary = summarise(queue, now=now + 0.9)
    assert shape_table(summary.deferred_shape) == recipients
    assert shape_table(summary.deferred_sender_shape) == senders
    assert sum(1 for n in recipients["TOTAL"][1:] if n) >= 9  # every column was exercised


def test_bucket_of_equals_qshape_formula() -> None:
    ages = list(range(-120, 100_000)) + [300 * 2**k + d for k in range(12) for d in (-1, 0, 1)]
    assert [bucket_of(a) for a in ages] == [qshape_bucket(a) for a in ages]


@pytest.mark.parametrize(
    ("address", "domain"),
    [
        ("a@X.Test", "x.test"),
        ("b@y.test.", "y.test"),
        ("c@..z.test", "z.test"),
        ("e@.dot.test", "dot.test"),
        ("noat", "noat"),
        ("NoAt", "noat"),
        ("d@", ""),
        ("", "MAILER-DAEMON"),
        ("MAILER-DAEMON", "MAILER-DAEMON"),
        ("f@g@h.test", "h.test"),
        ("Ünïcode@ÉXAMPLE.test", "Éxample.test"),  # Perl's lc on bytes: ASCII only
        ("x@a...b", "a..b"),
        ("x@.", "."),
        ("a\nb@C.test", "a\nc.test"),
    ],
)
def test_qshape_domain(address: str, domain: str) -> None:
    assert qshape_domain(address) == domain


def test_shape_counts_only_the_deferred_queue() -> None:
    rcpt = (Recipient("a@b.test", "x"),)
    queue = [
        QueueMessage("active", "ABCDEF", NOW, 1, "s@x.test", rcpt),
        QueueMessage("hold", "ABCDE0", NOW, 1, "s@x.test", rcpt),
    ]
    summary = summarise(queue)
    assert summary.deferred_shape.total.counts == (0,) * 11
    assert summary.deferred_shape.rows == []


def test_shape_memory_is_capped_and_total_stays_exact() -> None:
    builder = SummaryBuilder(now=NOW, max_keys=50, shape_rows=10)
    for n in range(1000):
        rcpt = (Recipient(f"u@d{n}.test", "x"),)
        builder.add(QueueMessage("deferred", "ABCDEF", NOW - n * 60, 1, f"s@e{n}.test", rcpt))
    assert builder.counter_sizes()["shape_domains"] == 51
    shape = builder.build().deferred_shape
    assert shape.capped
    assert shape.total.total == 1000
    assert shape.rows[0] == ShapeRow("(other)", shape.rows[0].counts)
    assert shape.rows[0].total == 950
    assert len(shape.rows) == 10


@given(st.lists(messages, max_size=20))
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
def test_shape_rows_add_up(queue: list[QueueMessage]) -> None:
    summary = summarise(queue)
    for shape in (summary.deferred_shape, summary.deferred_sender_shape):
        total = shape.total.counts
        assert total[0] == sum(total[1:])
        assert [sum(col) for col in zip(*(r.counts for r in shape.rows), strict=True)] in (
            [],
            list(total),
        )
    deferred = [m for m in queue if m.queue_name == "deferred"]
    assert summary.deferred_shape.total.total == sum(len(m.recipients) for m in deferred)
    assert summary.deferred_sender_shape.total.total == sum(1 for m in deferred if m.recipients)


def test_oldest_deferred_by_lifetime() -> None:
    rcpt = (Recipient("a@b.test", "x"),)
    queue = [
        QueueMessage("deferred", "ABCDE1", NOW - 50, 1, "s@x.test", rcpt),
        QueueMessage("deferred", "ABCDE2", NOW - 90, 1, "MAILER-DAEMON", rcpt),
        QueueMessage("deferred", "ABCDE3", NOW - 70, 1, "t@x.test", rcpt),
        QueueMessage("hold", "ABCDE4", NOW - 999, 1, "u@x.test", rcpt),
    ]
    oldest = summarise(queue).oldest_deferred
    assert (oldest.regular, oldest.bounce) == (NOW - 70, NOW - 90)
