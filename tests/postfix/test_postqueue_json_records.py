"""``PostqueueJsonParser.feed_records`` (msgspec) against ``feed_into`` (orjson and Python
checks) as the oracle: the same lines accepted, the same values, the same errors (line
numbers included), on valid listings and on generated and mutated ones."""

from __future__ import annotations

import itertools
import json
import random
import typing
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import ParseError
from bot.postfix.models import QUEUE_ID_PATTERN, QUEUE_NAMES, is_queue_id
from bot.postfix.postfix import JsonRecord, PostqueueJsonParser, QueueName
from bot.postfix.summary import SummaryBuilder
from bot.postfix.summary_brief import BriefSummaryBuilder
from helpers.mta_samples import (
    LAB_JSON,
    NOW,
    messages,
    queue_ids,
    sample_messages,
    synthetic_messages,
    to_json_lines,
    versions_fixture,
)
from helpers.queues import brief_fields, random_queue

MAX_EPOCH = 253402300799
MAX_SIZE = 2**63 - 1
VALID_LINES = [
    *to_json_lines(sample_messages()).splitlines(),
    *LAB_JSON.read_bytes().splitlines()[:40],
    *[line.encode() for line in versions_fixture("postqueue-j-3.11.jsonl").splitlines()],
]
VALID_RECORDS = [json.loads(line) for line in VALID_LINES if line.strip()]
FIELDS = ["queue_name", "queue_id", "arrival_time", "message_size", "sender", "recipients",
          "forced_expire"]  # fmt: skip
RECIPIENT_FIELDS = ["address", "delay_reason", "orig_address", "bounce_reason"]
Fields = tuple[tuple[type, object], ...]
Outcome = tuple[str, object]


def typed(values: tuple[object, ...]) -> Fields:
    """Each value with its type: ``True == 1`` and ``0 == 0.0`` in Python, not here."""
    return tuple((type(value), value) for value in values)


def old_fields(*fields: Any) -> Fields:
    recipients = tuple(
        typed(tuple(item.get(name, "") for name in RECIPIENT_FIELDS)) for item in fields[5]
    )
    return typed((*fields[:5], recipients, fields[6]))


def new_fields(record: JsonRecord) -> Fields:
    recipients = tuple(
        typed(tuple(getattr(item, name) for name in RECIPIENT_FIELDS)) for item in record.recipients
    )
    values = (
        record.queue_name,
        record.queue_id,
        record.arrival_time,
        record.message_size,
        record.sender,
        recipients,
        record.forced_expire,
    )
    return typed(values)


def oracle(chunks: list[bytes]) -> Outcome:
    """What ``feed_into`` (the parser's checks before msgspec) makes of the listing."""
    parser = PostqueueJsonParser()
    seen: list[Fields] = []
    try:
        for chunk in chunks:
            parser.feed_into(chunk, lambda *fields: seen.append(old_fields(*fields)))
        parser.close()
    except ParseError as exc:
        return "error", str(exc)
    return "ok", seen


def records(chunks: list[bytes]) -> Outcome:
    parser = PostqueueJsonParser()
    seen: list[Fields] = []
    try:
        for chunk in chunks:
            seen += map(new_fields, parser.feed_records(chunk))
        parser.close()
    except ParseError as exc:
        return "error", str(exc)
    return "ok", seen


def assert_same(data: bytes, cuts: Sequence[int] = ()) -> Outcome:
    points = sorted({0, *[c for c in cuts if 0 < c < len(data)], len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(points)] or [b""]
    expected = oracle(chunks)
    assert records(chunks) == expected
    return expected


# -- hand-picked lines: every way msgspec and orjson were seen to differ, and then some ---------

BASE = (
    b'"queue_name": "deferred", "queue_id": "4Y2FQ3Lkb1z9Kq", "arrival_time": 1732702323, '
    b'"message_size": 438, "sender": "a@x.test", "recipients": [{"address": "b@y.test", '
    b'"delay_reason": "connect to mx.y.test[192.0.2.1]:25: Connection refused"}]'
)
GOOD = b"{" + BASE + b"}"


def swap(old: bytes, new: bytes) -> bytes:
    assert old in GOOD
    return GOOD.replace(old, new, 1)


TRICKY = {
    "valid": GOOD,
    "blank": b"",
    "spaces": b" \t ",
    "carriage return": GOOD + b"\r",
    "form feed before": b"\x0c" + GOOD,
    "vertical tab after": GOOD + b"\x0b",
    "byte order mark": b"\xef\xbb\xbf" + GOOD,
    "NUL after": GOOD + b"\x00",
    "two records on a line": GOOD + b"," + GOOD,
    "two records, no comma": GOOD + GOOD,
    "in an array": b"[" + GOOD + b"]",
    "trailing comma": b"{" + BASE + b",}",
    "unknown member": b'{"x": 1, ' + BASE + b"}",
    "unknown member 3.11 other_reason": swap(b'"b@y.test", ', b'"b@y.test", "other_reason": 7, '),
    "unknown member, deep": b'{"x": ' + b"[" * 1000 + b"]" * 1000 + b", " + BASE + b"}",
    "unknown member, too deep": b'{"x": ' + b"[" * 2000 + b"]" * 2000 + b", " + BASE + b"}",
    "unknown member 1e400": b'{"x": 1e400, ' + BASE + b"}",
    "unknown member 400 digits": b'{"x": ' + b"9" * 400 + b", " + BASE + b"}",
    "unknown member bad UTF-8": b'{"x": "\xff", ' + BASE + b"}",
    "unknown key bad UTF-8": b'{"\xc0\xaf": 1, ' + BASE + b"}",
    "unknown member UTF-8 surrogate": b'{"x": "\xed\xa0\x80", ' + BASE + b"}",
    "unknown member lone surrogate": b'{"x": "\\ud800", ' + BASE + b"}",
    "unknown member NaN": b'{"x": NaN, ' + BASE + b"}",
    "sender bad UTF-8": swap(b'"a@x.test"', b'"a\xffx"'),
    "sender overlong UTF-8": swap(b'"a@x.test"', b'"\xc0\xaf"'),
    "sender UTF-8 surrogate": swap(b'"a@x.test"', b'"\xed\xa0\x80"'),
    "sender cut UTF-8": swap(b'"a@x.test"', b'"\xe2\x82"'),
    "sender lone surrogate": swap(b'"a@x.test"', b'"\\ud800"'),
    "sender surrogate pair": swap(b'"a@x.test"', b'"\\ud83d\\ude00"'),
    "sender U+FFFF": swap(b'"a@x.test"', b'"\xef\xbf\xbf"'),
    "sender NUL escape": swap(b'"a@x.test"', b'"\\u0000"'),
    "sender control character": swap(b'"a@x.test"', b'"a\x01"'),
    "sender DEL": swap(b'"a@x.test"', b'"a\x7f"'),
    "sender bad escape": swap(b'"a@x.test"', b'"\\x41"'),
    "reason unicode": swap(b"Connection refused", "Verbindung abgelehnt – “é”".encode()),
    "queue name escaped": swap(b'"deferred"', b'"d\\u0065ferred"'),
    "queue name key escaped": swap(b'"queue_name"', b'"queue\\u005fname"'),
    "queue name unknown": swap(b'"deferred"', b'"bounce"'),
    "queue name upper case": swap(b'"deferred"', b'"DEFERRED"'),
    "queue name with NUL": swap(b'"deferred"', b'"deferred\\u0000"'),
    "queue name null": swap(b'"deferred"', b"null"),
    "queue id short form": swap(b'"4Y2FQ3Lkb1z9Kq"', b'"3F0A4C0123"'),
    "queue id with newline": swap(b'"4Y2FQ3Lkb1z9Kq"', b'"ABCDEF\\nABCDEF"'),
    "queue id with trailing newline": swap(b'"4Y2FQ3Lkb1z9Kq"', b'"ABCDEF\\n"'),
    "queue id full-width": swap(b'"4Y2FQ3Lkb1z9Kq"', '"ＡＢＣＤＥＦ"'.encode()),
    "queue id Arabic-Indic digits": swap(b'"4Y2FQ3Lkb1z9Kq"', '"٣٣٣٣٣٣"'.encode()),
    "queue id empty": swap(b'"4Y2FQ3Lkb1z9Kq"', b'""'),
    "queue id number": swap(b'"4Y2FQ3Lkb1z9Kq"', b"123456"),
    "arrival -0": swap(b"1732702323", b"-0"),
    "arrival 0": swap(b"1732702323", b"0"),
    "arrival -1": swap(b"1732702323", b"-1"),
    "arrival max": swap(b"1732702323", str(MAX_EPOCH).encode()),
    "arrival max + 1": swap(b"1732702323", str(MAX_EPOCH + 1).encode()),
    "arrival 1.0": swap(b"1732702323", b"1.0"),
    "arrival 1e3": swap(b"1732702323", b"1e3"),
    "arrival true": swap(b"1732702323", b"true"),
    "arrival string": swap(b"1732702323", b'"1732702323"'),
    "arrival leading zero": swap(b"1732702323", b"01732702323"),
    "arrival plus sign": swap(b"1732702323", b"+1732702323"),
    "arrival 30 digits": swap(b"1732702323", b"9" * 30),
    "size max": swap(b"438", str(MAX_SIZE).encode()),
    "size max + 1": swap(b"438", str(MAX_SIZE + 1).encode()),
    "size 2**64": swap(b"438", str(2**64).encode()),
    "size -2**63": swap(b"438", str(-(2**63)).encode()),
    "size false": swap(b"438", b"false"),
    "forced_expire true": b"{" + BASE + b', "forced_expire": true}',
    "forced_expire 1": b"{" + BASE + b', "forced_expire": 1}',
    "forced_expire null": b"{" + BASE + b', "forced_expire": null}',
    "forced_expire string": b"{" + BASE + b', "forced_expire": "true"}',
    "sender missing": swap(b'"sender": "a@x.test", ', b""),
    "recipients empty": swap(b"[{", b'[], "x": [{'),
    "recipients missing": b'{"queue_name": "deferred", "queue_id": "ABCDEF", "arrival_time": 1, '
    b'"message_size": 2, "sender": ""}',
    "recipients null": b'{"queue_name": "deferred", "queue_id": "ABCDEF", "arrival_time": 1, '
    b'"message_size": 2, "sender": "", "recipients": null}',
    "recipient a string": swap(b'[{"address": "b@y.test", ', b'["b@y.test", {"address": "c", '),
    "recipient without address": swap(b'"address": "b@y.test", ', b""),
    "recipient address null": swap(b'"b@y.test"', b"null"),
    "recipient reason null": swap(
        b'"connect to mx.y.test[192.0.2.1]:25: Connection refused"', b"null"
    ),
    "recipient unknown member 1e400": swap(b'"b@y.test", ', b'"b@y.test", "x": 1e400, '),
    "recipient unknown member bad UTF-8": swap(b'"b@y.test", ', b'"b@y.test", "x": "\xff", '),
    "recipient orig_address number": swap(b'"b@y.test", ', b'"b@y.test", "orig_address": 1, '),
    "recipient bounce_reason list": swap(b'"b@y.test", ', b'"b@y.test", "bounce_reason": [], '),
    "duplicate queue id, both valid": b"{" + BASE + b', "queue_id": "BBBBBB"}',
    "duplicate queue id, the last bad": b"{" + BASE + b', "queue_id": "ALL"}',
    "duplicate queue id, the first bad": b'{"queue_id": "ALL", ' + BASE + b"}",
    "duplicate queue name, the first a number": b'{"queue_name": 7, ' + BASE + b"}",
    "duplicate recipients": b"{" + BASE + b', "recipients": [{"address": "z@z.test"}]}',
    "duplicate address": swap(b'"address": "b@y.test"', b'"address": 7, "address": "b@y.test"'),
    "cut short": GOOD[:-1],
    "not JSON": b"postqueue: fatal: Queue report unavailable - mail system is down",
    "null": b"null",
    "array": b"[]",
    "number": b"7",
    "single quotes": b"{'queue_name': 'deferred'}",
}


@pytest.mark.parametrize("line", TRICKY.values(), ids=TRICKY.keys())
def test_tricky_lines_alone_and_among_valid_ones(line: bytes) -> None:
    assert_same(line + b"\n")
    listing = VALID_LINES[0] + b"\n" + line + b"\n" + VALID_LINES[1] + b"\n"
    outcome = assert_same(listing)
    for cut in range(0, len(listing), max(1, len(listing) // 7)):
        assert assert_same(listing, [cut]) == outcome


def test_the_tricky_lines_cover_both_outcomes_and_the_fallback() -> None:
    outcomes = {name: assert_same(line + b"\n")[0] for name, line in TRICKY.items()}
    assert outcomes["valid"] == outcomes["arrival -0"] == outcomes["blank"] == "ok"
    assert outcomes["duplicate queue name, the first a number"] == "ok"  # msgspec refuses it
    assert outcomes["unknown member 1e400"] == outcomes["sender bad UTF-8"] == "error"
    assert outcomes["queue id with newline"] == outcomes["two records on a line"] == "error"
    assert list(outcomes.values()).count("error") > 50


def test_lines_joined_across_a_newline_are_not_one_record() -> None:
    """A record split over two lines, and two records on one line, keep their count."""
    head, tail = GOOD.split(b'"sender"')
    listing = head + b"\n" + b'"sender"' + tail + b"\n" + GOOD + b"," + GOOD + b"\n"
    assert assert_same(listing) == ("error", "`postqueue -j` output line 1: not valid JSON.")
    first, second = GOOD.split(b"}]")
    split = first + b"}\n" + b'{"address": "c@y.test"}]' + second + b"\n"
    assert assert_same(split)[0] == "error"


def test_error_line_numbers_count_every_line_before() -> None:
    bad = swap(b'"4Y2FQ3Lkb1z9Kq"', b'"ALL"')
    listing = b"\n".join([*VALID_LINES[:5], b"", b"  ", *VALID_LINES[5:9], bad, GOOD]) + b"\n"
    assert assert_same(listing) == (
        "error",
        "`postqueue -j` output line 12: queue_id is not a valid Postfix queue ID.",
    )
    for cut in range(1, len(listing), 97):
        assert assert_same(listing, [cut, cut + 50])[1] == assert_same(listing)[1]


def test_the_decoder_knows_the_queue_names() -> None:
    assert typing.get_args(QueueName) == QUEUE_NAMES


# -- generated and mutated records ------------------------------------------------------------

edge_ints = st.sampled_from(
    [0, 1, -1, MAX_EPOCH, MAX_EPOCH + 1, MAX_SIZE, MAX_SIZE + 1, 2**64, -(2**63), 10**30]
)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | edge_ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from([*QUEUE_NAMES, "DEFERRED", "", "ALL", "ABCDEF\n", "ABCDEF", "3F0A4C0123"])
    | queue_ids
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
recipient_values = (
    st.fixed_dictionaries(
        {"address": st.text(max_size=12)},
        optional={name: st.text(max_size=12) | json_values for name in RECIPIENT_FIELDS[1:]},
    )
    | json_values
)
raw_literals = [b"1e400", b"-1e400", b"1.0", b"-0", b"1E2", b"9" * 40, b"true", b'"\\ud800"',
                b'"\\udc00x"', b'"\xff"', b'"\xed\xa0\x80"', b'"a\\u0000"',
                b"[" * 3 + b"]" * 3]  # fmt: skip
PLACEHOLDER = "\x00raw\x00"


@st.composite
def mutated_line(draw: st.DrawFn) -> bytes:
    """A valid record, changed in a few ways, then perhaps damaged as bytes."""
    record = json.loads(json.dumps(draw(st.sampled_from(VALID_RECORDS))))
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(["set", "delete", "recipient", "id", "raw"]))
        field = draw(st.sampled_from([*FIELDS, "x", "other_reason"]))
        if kind == "set":
            record[field] = draw(json_values)
        elif kind == "delete":
            record.pop(field, None)
        elif kind == "id":
            record["queue_id"] = draw(queue_ids | st.from_regex(QUEUE_ID_PATTERN, fullmatch=True))
        elif kind == "raw":
            record[field] = PLACEHOLDER
        elif isinstance(record.get("recipients"), list):
            items = record["recipients"]
            at = draw(st.integers(0, len(items)))
            if at == len(items) or draw(st.booleans()):
                items.insert(at, draw(recipient_values))
            elif isinstance(items[at], dict):
                name = draw(st.sampled_from([*RECIPIENT_FIELDS, "other_reason"]))
                if draw(st.booleans()):
                    items[at].pop(name, None)
                else:
                    items[at][name] = draw(json_values)
    separators = draw(st.sampled_from([(", ", ": "), (",", ":")]))
    text = json.dumps(record, ensure_ascii=draw(st.booleans()), separators=separators)
    line = text.encode().replace(
        json.dumps(PLACEHOLDER).encode(), draw(st.sampled_from(raw_literals))
    )
    damage = draw(st.sampled_from(["none", "none", "cut", "insert", "delete", "duplicate key"]))
    if damage == "cut":
        line = line[: draw(st.integers(0, len(line)))]
    elif damage in ("insert", "delete") and line:
        at = draw(st.integers(0, len(line) - 1))
        extra = draw(st.binary(min_size=1, max_size=2)) if damage == "insert" else b""
        line = line[:at] + extra + line[at + (damage == "delete") :]
    elif damage == "duplicate key":
        field = draw(st.sampled_from(FIELDS))
        value = json.dumps(draw(json_values)).encode()
        line = b'{"' + field.encode() + b'": ' + value + b", " + line[1:]
    return line


@given(
    st.lists(mutated_line() | st.sampled_from(VALID_LINES) | st.sampled_from([b"", b" "]),
             min_size=1, max_size=5),
    st.lists(st.integers(0, 4000), max_size=4),
    st.booleans(),
)  # fmt: skip
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_listings_give_the_same_outcome(
    lines: list[bytes], cuts: list[int], newline_at_end: bool
) -> None:
    assert_same(b"\n".join(lines) + (b"\n" if newline_at_end else b""), cuts)


@given(st.lists(messages, max_size=12), st.lists(st.integers(0, 5000), max_size=5))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_valid_listings_give_the_same_records(queue: list[Any], cuts: list[int]) -> None:
    data = to_json_lines(queue)
    assert assert_same(data, cuts) == ("ok", assert_same(data)[1])
    assert len(assert_same(data)[1]) == len(queue)  # type: ignore[arg-type]


@given(st.lists(queue_ids | st.text(max_size=30), min_size=1, max_size=8))
@settings(max_examples=500, deadline=None)
def test_a_chunk_of_queue_ids_is_valid_when_each_is(ids: list[str]) -> None:
    lines = [swap(b'"4Y2FQ3Lkb1z9Kq"', json.dumps(i).encode()) for i in ids]
    outcome = assert_same(b"\n".join(lines) + b"\n")
    assert (outcome[0] == "ok") == all(map(is_queue_id, ids))


def test_fuzz_arbitrary_bytes_alike() -> None:
    rng = random.Random(15)
    for _ in range(3000):
        line = bytearray(rng.choice(VALID_LINES))
        for _ in range(rng.randrange(1, 4)):
            at = rng.randrange(len(line))
            line[at] = rng.randrange(256)
        assert_same(bytes(line) + b"\n", [rng.randrange(len(line) + 1)])


# -- the brief summary from records --------------------------------------------------------


@pytest.mark.parametrize("now", [NOW, NOW + 0.5, NOW - 0.25])
@pytest.mark.parametrize("seed", range(4))
def test_records_give_the_brief_summary_the_full_builder_counts(now: float, seed: int) -> None:
    rng = random.Random(seed)
    queue = sample_messages() + random_queue(rng, 400) + list(synthetic_messages(300, seed=seed))
    rng.shuffle(queue)
    data = to_json_lines(queue)
    full = SummaryBuilder(now)
    for message in queue:
        full.add(message)
    brief = BriefSummaryBuilder(now, max_keys=rng.choice([1, 3, 50, 1000]))
    parser = PostqueueJsonParser()
    size = rng.choice([1, 97, 5734, 65536])
    for start in range(0, len(data), size):
        brief.add_records(parser.feed_records(data[start : start + size]))
    parser.close()
    assert brief_fields(brief.build()) == brief_fields(full.build())
