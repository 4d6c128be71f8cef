"""postqueue -p parsing (Postfix < 3.1, or when -j is unavailable)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import ParseError
from bot.postfix.models import QUEUE_NAMES, QueueMessage, Recipient, is_queue_id
from bot.postfix.postfix import (
    PostqueueJsonParser,
    PostqueueListParser,
    infer_arrival,
    parse_postqueue_list,
)
from helpers.mta_samples import (
    LAB_JSON,
    LAB_LIST,
    NOW,
    REASONS,
    messages,
    sample_messages,
    to_list_text,
)

GREY = REASONS["greylisted"].format(rcpt="b@grey.test")
# Exactly what Postfix 3.x prints with enable_long_queue_ids = no (showq_compat.c).
SAMPLE = (
    "-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------\n"
    "3F0A4C0123*    1234 Wed Nov 27 10:12:03  sender@example.com\n"
    "                                         rcpt@example.net\n"
    "\n"
    "B1C2D3E4F5#    2345 Tue Nov 26 09:12:03  MAILER-DAEMON\n"
    "                (connect to mx.refused.test[127.0.0.3]:25: Connection refused)\n"
    "                                         a@refused.test\n"
    f"({GREY})\n"
    "                                         b@grey.test\n"
    "                                                          (reason unavailable)\n"
    "                                         c@grey.test\n"
    "\n"
    "4Y2FQ3Lkb1z9Kq!      99 Tue Oct 24 10:12:03  x@y.test\n"
    "\n"
    "-- 3 Kbytes in 3 Requests.\n"
)
EXPECTED = [
    QueueMessage(
        "active",
        "3F0A4C0123",
        NOW,
        1234,
        "sender@example.com",
        (Recipient("rcpt@example.net", ""),),
    ),
    QueueMessage(
        "deferred",
        "B1C2D3E4F5",
        NOW - 90_000,
        2345,
        "MAILER-DAEMON",
        (
            Recipient("a@refused.test", REASONS["connection_refused"]),
            Recipient("b@grey.test", GREY),
            Recipient("c@grey.test", ""),
        ),
        forced_expire=True,
    ),
    QueueMessage("hold", "4Y2FQ3Lkb1z9Kq", NOW - 400 * 86400, 99, "x@y.test", ()),
]


def parse_bytes(data: bytes, cuts: Sequence[int] = (), now: float = NOW) -> list[QueueMessage]:
    parser = PostqueueListParser(now=now)
    out: list[QueueMessage] = []
    start = 0
    for cut in sorted(cuts):
        out += parser.feed(data[start:cut])
        start = cut
    return out + parser.feed(data[start:]) + parser.close()


def as_listed(message: QueueMessage) -> QueueMessage:
    """What -p can tell about a message (see bot.postfix.postfix's module doc)."""
    if message.queue_name in ("active", "hold"):
        return message
    has_reason = any(r.delay_reason for r in message.recipients)
    name = "deferred" if has_reason else "incoming"
    return QueueMessage(
        name,
        message.queue_id,
        message.arrival_time,
        message.message_size,
        message.sender,
        message.recipients,
        message.forced_expire,
    )


def test_sample_matches_postfix_format() -> None:
    assert to_list_text(EXPECTED) == SAMPLE


def test_sample() -> None:
    assert list(parse_postqueue_list(SAMPLE, now=NOW)) == EXPECTED
    assert parse_bytes(SAMPLE.encode()) == EXPECTED


def test_long_queue_id_format() -> None:
    text = to_list_text(EXPECTED, long_ids=True)
    assert text.startswith(
        "----Queue ID----- --Size-- ---Arrival Time---- --Sender/Recipient------\n"
    )
    assert list(parse_postqueue_list(text, now=NOW)) == EXPECTED


def test_lines_iterable() -> None:
    assert list(parse_postqueue_list(SAMPLE.splitlines(keepends=True), now=NOW)) == EXPECTED


def test_empty_queue() -> None:
    assert list(parse_postqueue_list("Mail queue is empty\n", now=NOW)) == []
    assert parse_bytes(b"Mail queue is empty\n") == []


def test_one_request_trailer() -> None:
    text = to_list_text(EXPECTED[:1])
    assert text.endswith("-- 1 Kbytes in 1 Request.\n")
    assert list(parse_postqueue_list(text, now=NOW)) == EXPECTED[:1]


@given(st.lists(messages, max_size=6), st.booleans(), st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip(queue: list[QueueMessage], long_ids: bool, data: st.DataObject) -> None:
    raw = to_list_text(queue, long_ids=long_ids).encode()
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=10))
    assert parse_bytes(raw, cuts) == [as_listed(m) for m in queue]


@given(st.lists(messages, min_size=1, max_size=4), st.data())
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_output_cut_anywhere_is_an_error(queue: list[QueueMessage], data: st.DataObject) -> None:
    raw = to_list_text(queue).encode()
    cut = data.draw(st.integers(0, len(raw) - 2))  # anything short of the whole trailer
    with pytest.raises(ParseError, match=r"cut short|summary"):
        parse_bytes(raw[:cut])


def test_missing_trailer() -> None:
    text = SAMPLE.rsplit("\n-- ", 1)[0] + "\n"
    with pytest.raises(ParseError, match="before its summary line"):
        list(parse_postqueue_list(text, now=NOW))


def test_trailer_count_is_checked() -> None:
    text = SAMPLE.replace("in 3 Requests", "in 4 Requests")
    with pytest.raises(ParseError, match="counts 4 messages but 3"):
        list(parse_postqueue_list(text, now=NOW))


@pytest.mark.parametrize(
    ("bad", "what"),
    [
        (
            "3F0A4C0123*    1234 Wed Nov 27 10:12:03  sender@example.com",
            "3F0A4C01;3*    1234 Wed Nov 27 10:12:03  sender@example.com",
        ),
        ("3F0A4C0123*", "AEIOU0123*"),
        ("3F0A4C0123*", "3F0A4C0123?"),
        ("Wed Nov 27", "Wed Nov 32"),
        ("Wed Nov 27", "Xyz Nov 27"),
        ("-Queue ID-  --Size--", "Queue ID --Size--"),
        ("\n\n4Y2FQ3Lkb1z9Kq!", "\n4Y2FQ3Lkb1z9Kq!"),
        ("    1234 Wed", "    12a4 Wed"),
        ("    1234 Wed", " 99999999999999999999999 Wed"),
    ],
)
def test_malformed_lines(bad: str, what: str) -> None:
    text = SAMPLE.replace(bad, what, 1)
    assert text != SAMPLE
    with pytest.raises(ParseError, match=r"line \d+"):
        list(parse_postqueue_list(text, now=NOW))


def test_recipient_outside_a_message() -> None:
    text = SAMPLE.replace(
        "-Sender/Recipient-------\n", "-Sender/Recipient-------\n      x@y.test\n", 1
    )
    with pytest.raises(ParseError, match="line 2: a recipient outside"):
        list(parse_postqueue_list(text, now=NOW))


def test_text_after_trailer() -> None:
    with pytest.raises(ParseError, match="after the summary"):
        list(parse_postqueue_list(SAMPLE + "ABCDEF 1 Wed Nov 27 10:12:03  x\n", now=NOW))


def test_hostile_text_is_kept_verbatim() -> None:
    hostile = QueueMessage(
        "deferred",
        "ABCDEF0123",
        NOW - 60,
        1,
        "<!channel>\u200b@evil.test",
        (
            Recipient('"(paren) x"@evil.test', "(nested (parens)) <https://evil.test|click>"),
            Recipient("@@@", "   "),
            Recipient("-- 1 Kbytes in 1 Request.@x", "-- 1 Kbytes in 1 Request."),
        ),
    )
    assert list(parse_postqueue_list(to_list_text([hostile]), now=NOW)) == [hostile]


@given(st.text(max_size=300), st.booleans())
@settings(max_examples=500)
def test_fuzz_text(noise: str, with_header: bool) -> None:
    text = (SAMPLE.split("\n", 1)[0] + "\n" if with_header else "") + noise
    try:
        result = parse_bytes(text.encode("utf-8", "surrogatepass"))
    except ParseError:
        return
    assert all(is_queue_id(m.queue_id) and m.queue_name in QUEUE_NAMES for m in result)


@given(st.binary(max_size=300))
@settings(max_examples=300)
def test_fuzz_bytes(raw: bytes) -> None:
    try:
        result = parse_bytes(raw)
    except ParseError:
        return
    assert all(is_queue_id(m.queue_id) for m in result)


@given(st.lists(messages, min_size=1, max_size=3), st.integers(0, 10_000), st.text(max_size=30))
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_splice(queue: list[QueueMessage], where: int, noise: str) -> None:
    text = to_list_text(queue)
    where %= len(text)
    try:
        result = list(parse_postqueue_list(text[:where] + noise + text[where:], now=NOW))
    except ParseError:
        return
    assert all(is_queue_id(m.queue_id) for m in result)


# -- year inference ---------------------------------------------------------------------


def ts(text: str, tz: timezone = UTC) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=tz).timestamp())


def test_new_year() -> None:
    now = ts("2025-01-01T00:05:00")
    assert infer_arrival(12, 31, (23, 59, 0), 1, now, UTC) == ts("2024-12-31T23:59:00")


def test_weekday_picks_the_year() -> None:
    # 2023-03-01 was a Wednesday; 2024-03-01 a Friday.
    now = ts("2024-11-27T10:00:00")
    assert infer_arrival(3, 1, (8, 0, 0), 2, now, UTC) == ts("2023-03-01T08:00:00")
    assert infer_arrival(3, 1, (8, 0, 0), 4, now, UTC) == ts("2024-03-01T08:00:00")


def test_leap_day() -> None:
    now = ts("2025-03-10T00:00:00")
    assert infer_arrival(2, 29, (1, 2, 3), 3, now, UTC) == ts("2024-02-29T01:02:03")


def test_host_clock_ahead_of_ours() -> None:
    # The host's local time is up to a day ahead of UTC: still this year, not last year.
    now = ts("2024-11-27T10:00:00")
    assert infer_arrival(11, 27, (20, 0, 0), 2, now, UTC) == ts("2024-11-27T20:00:00")


def test_zone_is_applied() -> None:
    tz = timezone(timedelta(hours=2))
    now = ts("2024-11-27T10:00:00")
    assert infer_arrival(11, 27, (9, 0, 0), 2, now, tz) == ts("2024-11-27T07:00:00")


def test_impossible_date() -> None:
    with pytest.raises(ValueError, match="no such date"):
        infer_arrival(2, 30, (0, 0, 0), 0, NOW, UTC)


# -- lab captures -----------------------------------------------------------------------


def lab_json() -> list[QueueMessage]:
    parser = PostqueueJsonParser()
    return parser.feed(LAB_JSON.read_bytes()) + parser.close()


@pytest.mark.skipif(not LAB_LIST.exists(), reason="no lab capture in tests/data yet")
def test_lab_capture() -> None:
    text = LAB_LIST.read_text()
    # The lab host runs in UTC; "now" is an hour after the newest arrival in the -j capture.
    now = max(m.arrival_time for m in lab_json()) + 3600 if LAB_JSON.exists() else NOW
    queue = list(parse_postqueue_list(text, now=now))
    assert parse_bytes(text.encode(), list(range(0, len(text), 997)), now=now) == queue
    assert len(queue) == int(text.rsplit(" in ", 1)[1].split()[0])
    assert all(is_queue_id(m.queue_id) for m in queue)
    assert {m.queue_name for m in queue} <= {"deferred", "hold", "active", "incoming"}


@pytest.mark.skipif(
    not (LAB_LIST.exists() and LAB_JSON.exists()), reason="no lab capture in tests/data yet"
)
def test_lab_list_agrees_with_lab_json() -> None:
    """Both listings were captured from the same queue: -p must say what -j says."""
    from_json = lab_json()
    now = max(m.arrival_time for m in from_json) + 3600
    assert list(parse_postqueue_list(LAB_LIST.read_text(), now=now)) == from_json


def test_sample_messages_round_trip() -> None:
    sample = sample_messages()
    assert list(parse_postqueue_list(to_list_text(sample), now=NOW)) == [
        as_listed(m) for m in sample
    ]
