"""Random queues for the summary builders' tests, and the fields a brief summary keeps."""

from __future__ import annotations

import random

from bot.postfix.models import QueueMessage, Recipient
from bot.postfix.summary import QueueSummary
from helpers.mta_samples import NOW

ADDRESSES = ["a@X.com", "b@x.com", "noat", "MAILER-DAEMON", "", "c@", "@d.org", "e@f..g.",
             "h@.I.", "x\n@y.z", "q@y.z\n", "w@É.fr", "u@e@v.net", "z@Y.COM"]  # fmt: skip
REASONS = [
    "",
    "connect to mx.a.example[192.0.2.4]:25: Connection timed out",
    "host mx.b.example[192.0.2.9] said: 452 4.2.2 <z@b.example>: Mailbox full",
    "delivery temporarily suspended: connect to mx.a.example[192.0.2.4]:25: Connection refused",
    "Host or domain name not found. Name service error for name=c.example type=MX: "
    "Host not found, try again",
    "something else",
]


def random_queue(rng: random.Random, count: int) -> list[QueueMessage]:
    queues = ["deferred"] * 5 + ["active", "hold", "incoming"]
    ages = [0, 10, 400, 3000, 90000, -50, 3 * 86400]
    return [
        QueueMessage(
            rng.choice(queues),
            f"{0xA00000 + n:X}",
            int(NOW) - rng.choice(ages),
            rng.randrange(10**6),
            rng.choice(ADDRESSES),
            tuple(
                Recipient(rng.choice(ADDRESSES), rng.choice(REASONS))
                for _ in range(rng.choice([0, 1, 1, 2, 3, 5]))
            ),
        )
        for n in range(count)
    ]


def brief_fields(result: QueueSummary) -> tuple[object, ...]:
    classes = [(g.reason_class, g.messages, g.recipients) for g in result.deferred_by_class]
    return (
        result.total_messages,
        result.total_recipients,
        result.total_bytes,
        result.queues,
        classes,
        result.age_buckets,
        result.oldest,
        result.oldest_deferred,
        result.deferred_shape.total,
    )
