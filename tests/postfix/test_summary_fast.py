"""The summary's fast path: raw keys folded later must give exactly the message-by-message
counts, caps included, and the fleet's brief builder the same totals as the full one."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.postfix import reasons
from bot.postfix import summary as summary_module
from bot.postfix.models import QueueMessage
from bot.postfix.postfix import PostqueueJsonParser
from bot.postfix.qshape import ShapeCounter, bucket_of, qshape_domain
from bot.postfix.reasons import analyse
from bot.postfix.summary import (
    NO_REASON,
    NULL_SENDER,
    BoundedCounter,
    QueueSummary,
    SummaryBuilder,
    domain_of,
)
from bot.postfix.summary_brief import BriefSummaryBuilder
from helpers.mta_samples import NOW, messages, sample_messages, synthetic_messages, to_json_lines
from helpers.queues import REASONS, brief_fields, random_queue


class Reference:
    """The counters that depend on the order keys arrive in, fed message by message."""

    def __init__(self, now: float, max_keys: int) -> None:
        self.now, self.max_keys = now, max_keys
        self.counters: dict[str, BoundedCounter] = {}
        self.shape, self.sender_shape = ShapeCounter(max_keys), ShapeCounter(max_keys)

    def counter(self, name: str) -> BoundedCounter:
        return self.counters.setdefault(name, BoundedCounter(self.max_keys))

    def add(self, message: QueueMessage) -> None:
        null = message.sender in ("", "MAILER-DAEMON")
        self.counter("senders").add(NULL_SENDER if null else message.sender)
        self.counter("sender_domains").add(NULL_SENDER if null else domain_of(message.sender))
        for r in message.recipients:
            self.counter("recipient_domains").add(domain_of(r.address))
        if message.queue_name != "deferred":
            return
        column = bucket_of(int(self.now - message.arrival_time))
        for r in message.recipients:
            reason_class, reason = analyse(r.delay_reason)
            self.counter(f"{reason_class}.reasons").add(reason or NO_REASON)
            self.counter(f"{reason_class}.domains").add(domain_of(r.address))
            self.shape.add(column, qshape_domain(r.address))
        if message.recipients:
            self.sender_shape.add(column, qshape_domain(message.sender))


def build(queue: Iterable[QueueMessage], builder: SummaryBuilder) -> QueueSummary:
    for message in queue:
        builder.add(message)
    return builder.build()


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("raw_keys", [1, 3, 16_384])
def test_capped_counters_equal_message_by_message_counting(
    seed: int, raw_keys: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(summary_module, "RAW_KEYS", raw_keys)
    rng = random.Random(seed)
    queue = random_queue(rng, rng.randrange(1, 300))
    max_keys = rng.randrange(1, 8)
    reference = Reference(NOW, max_keys)
    for message in queue:
        reference.add(message)
    builder = SummaryBuilder(NOW, top_n=100, max_keys=max_keys, shape_rows=100)
    result = build(queue, builder)
    want = {name: c.top(100) for name, c in reference.counters.items()}
    got = {
        "senders": result.top_senders,
        "sender_domains": result.top_sender_domains,
        "recipient_domains": result.top_recipient_domains,
    }
    for group in result.deferred_by_class:
        got[f"{group.reason_class}.reasons"] = group.top_reasons
        got[f"{group.reason_class}.domains"] = group.top_domains
    assert got == want
    assert result.deferred_shape == reference.shape.build("deferred", "recipients", 100)
    assert result.deferred_sender_shape == reference.sender_shape.build("deferred", "senders", 100)


def test_folding_often_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    queue = list(synthetic_messages(3000, seed=4))
    whole = build(queue, SummaryBuilder(NOW, top_n=50))
    monkeypatch.setattr(summary_module, "RAW_KEYS", 2)
    assert build(queue, SummaryBuilder(NOW, top_n=50)) == whole


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(messages, max_size=40), st.integers(1, 5))
def test_brief_builder_counts_what_the_full_one_counts(
    queue: list[QueueMessage], max_keys: int
) -> None:
    full = build(queue, SummaryBuilder(NOW))
    brief = build(queue, BriefSummaryBuilder(NOW, max_keys=max_keys))
    assert brief_fields(brief) == brief_fields(full)
    assert brief.top_senders == brief.top_recipient_domains == brief.deferred_shape.rows == []
    assert all(g.top_reasons == g.top_domains == [] for g in brief.deferred_by_class)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("known", ["none", "some", "all"])
def test_brief_builder_counts_known_and_new_reasons_alike(seed: int, known: str) -> None:
    """A reason whose class is in ``KNOWN_CLASSES`` is counted at once, any other at the
    next fold: either way, the same totals."""
    rng = random.Random(seed)
    queue = random_queue(rng, rng.randrange(1, 300))
    full = build(queue, SummaryBuilder(NOW))
    reasons.KNOWN_CLASSES.clear()
    for reason in REASONS[: {"none": 0, "some": 3, "all": len(REASONS)}[known]]:
        analyse(reason)
    brief = build(queue, BriefSummaryBuilder(NOW, max_keys=rng.randrange(1, 8)))
    assert brief_fields(brief) == brief_fields(full)


def test_parser_fields_and_messages_give_the_same_summary() -> None:
    queue = (
        sample_messages()
        + list(synthetic_messages(500, seed=2))
        + random_queue(random.Random(9), 200)
    )
    data = to_json_lines(queue)
    direct = SummaryBuilder(NOW)
    parser = PostqueueJsonParser()
    assert parser.feed_into(data, direct.add_fields) == len(queue)
    parser.close()
    assert direct.build() == build(queue, SummaryBuilder(NOW))
