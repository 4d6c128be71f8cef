"""postqueue -j parsing, queue ID rules and command templates."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import ParseError, UsageError
from bot.postfix.models import QUEUE_NAMES, QueueMessage, Recipient, is_queue_id
from bot.postfix.postfix import (
    PostqueueJsonParser,
    PostqueueListParser,
    parser_for,
)
from bot.postfix.tools import (
    postconf_values,
    postconf_version,
    postqueue_json,
    postqueue_list,
    queue_listing,
)
from helpers.mta_samples import LAB_JSON, NOW, messages, sample_messages, to_json_lines

# One record exactly as Postfix 3.7 prints it (showq_json.c spacing).
LINE = (
    b'{"queue_name": "deferred", "queue_id": "4Y2FQ3Lkb1z9Kq", "arrival_time": 1732702323, '
    b'"message_size": 438, "forced_expire": false, "sender": "a@x.test", "recipients": '
    b'[{"address": "b@y.test", "delay_reason": "connect to mx.y.test[192.0.2.1]:25: '
    b'Connection refused"}, {"address": "c@y.test"}]}\n'
)


def parse(data: bytes) -> list[QueueMessage]:
    parser = PostqueueJsonParser()
    return parser.feed(data) + parser.close()


def parse_in_chunks(data: bytes, cuts: list[int]) -> list[QueueMessage]:
    parser = PostqueueJsonParser()
    out: list[QueueMessage] = []
    start = 0
    for cut in sorted(cuts):
        out += parser.feed(data[start:cut])
        start = cut
    return out + parser.feed(data[start:]) + parser.close()


def test_one_record() -> None:
    [message] = parse(LINE)
    assert message == QueueMessage(
        queue_name="deferred",
        queue_id="4Y2FQ3Lkb1z9Kq",
        arrival_time=1732702323,
        message_size=438,
        sender="a@x.test",
        recipients=(
            Recipient("b@y.test", "connect to mx.y.test[192.0.2.1]:25: Connection refused"),
            Recipient("c@y.test", ""),
        ),
    )


def test_empty_queue_prints_nothing() -> None:
    assert parse(b"") == []


def test_unknown_fields_are_ignored() -> None:
    record = json.loads(LINE)
    record["future_field"] = {"nested": [1, 2]}
    record["recipients"][0]["dsn_status"] = "4.4.1"
    del record["forced_expire"]  # older 3.x releases lack it
    assert parse(json.dumps(record).encode() + b"\n") == parse(LINE)


def test_round_trip_of_samples() -> None:
    sample = sample_messages()
    assert parse(to_json_lines(sample)) == sample


@given(st.lists(messages, max_size=8), st.data())
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_chunk_boundaries_do_not_matter(queue: list[QueueMessage], data: st.DataObject) -> None:
    raw = to_json_lines(queue)
    cuts = data.draw(st.lists(st.integers(0, len(raw)), max_size=12))
    assert parse_in_chunks(raw, cuts) == queue


def test_byte_by_byte() -> None:
    raw = to_json_lines(sample_messages())
    assert parse_in_chunks(raw, list(range(len(raw)))) == sample_messages()


@given(st.lists(messages, min_size=1, max_size=5), st.data())
@settings(max_examples=200)
def test_output_cut_inside_a_line_is_an_error(
    queue: list[QueueMessage], data: st.DataObject
) -> None:
    raw = to_json_lines(queue)
    line_ends = {i + 1 for i, byte in enumerate(raw) if byte == ord("\n")}
    cut = data.draw(st.integers(1, len(raw) - 1).filter(lambda c: c not in line_ends))
    parser = PostqueueJsonParser()
    parser.feed(raw[:cut])
    with pytest.raises(ParseError, match="ended in the middle"):
        parser.close()


def test_missing_final_newline_is_truncation() -> None:
    with pytest.raises(ParseError, match="line 1"):
        parse(LINE.rstrip(b"\n"))


BAD_IDS = [
    "",
    "12345",  # too short
    "abcdef",  # short form is upper-case hex
    "ABCDEG",
    "ALL",
    "../../etc/passwd",
    "ABCDEF; rm -rf /",
    "-d ALL",
    "4Y2FQ3Lkb1a9Kq",  # vowel
    "4Y2FQ3Lkb1z9Kz",  # 'z' in the inode part: the last 'z' must be the separator
    "4Y2FQz9Kq",  # time part shorter than ten characters
    "4Y2FQ3Lkb1z",  # empty inode part
    "A" * 40,
    "ABCDEF\n",
    "ＡＢＣＤＥＦ",  # full-width letters
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_invalid_queue_ids_are_rejected(bad: str) -> None:
    assert not is_queue_id(bad)
    record = json.loads(LINE)
    record["queue_id"] = bad
    with pytest.raises(ParseError, match="line 1: queue_id"):
        parse(json.dumps(record).encode() + b"\n")


@pytest.mark.parametrize("good", ["3F0A4C0123", "ABCDEF", "4Y2FQ3Lkb1z9Kq", "4Zx3Ld2Fg3z9Kq1"])
def test_valid_queue_ids(good: str) -> None:
    assert is_queue_id(good)


@pytest.mark.parametrize(
    ("field", "value", "what"),
    [
        ("queue_name", "bogus", "queue_name"),
        ("queue_name", None, "queue_name"),
        ("arrival_time", "1732702323", "arrival_time"),
        ("arrival_time", -1, "arrival_time"),
        ("arrival_time", True, "arrival_time"),
        ("arrival_time", 1.5, "arrival_time"),
        ("message_size", None, "message_size"),
        ("forced_expire", "no", "forced_expire"),
        ("sender", 5, "sender"),
        ("recipients", {"address": "x"}, "recipients"),
        ("recipients", ["b@y.test"], "a recipient"),
        ("recipients", [{"delay_reason": "x"}], "recipient address"),
        ("recipients", [{"address": "b@y.test", "delay_reason": 4}], "delay_reason"),
    ],
)
def test_wrong_types_are_rejected(field: str, value: object, what: str) -> None:
    record = json.loads(LINE)
    record[field] = value
    with pytest.raises(ParseError, match=f"line 2: {what}"):
        parse(LINE + json.dumps(record).encode() + b"\n")


def test_missing_field_is_rejected() -> None:
    record = json.loads(LINE)
    del record["queue_id"]
    with pytest.raises(ParseError, match="queue_id"):
        parse(json.dumps(record).encode() + b"\n")


@pytest.mark.parametrize(
    "line", [b"[]", b"null", b"postqueue: fatal: Queue report unavailable", b"{"]
)
def test_non_records_are_rejected(line: bytes) -> None:
    with pytest.raises(ParseError, match="line 1"):
        parse(line + b"\n")


def test_error_messages_do_not_echo_queue_text() -> None:
    record = json.loads(LINE)
    record["queue_id"] = "<!channel> ping"
    with pytest.raises(ParseError) as caught:
        parse(json.dumps(record).encode() + b"\n")
    assert "<!channel>" not in caught.value.user_message


@given(st.binary(max_size=400), st.lists(st.integers(0, 400), max_size=5))
@settings(max_examples=500)
def test_fuzz_arbitrary_bytes(raw: bytes, cuts: list[int]) -> None:
    try:
        result = parse_in_chunks(raw, [c for c in cuts if c <= len(raw)])
    except ParseError:
        return
    assert all(is_queue_id(m.queue_id) and m.queue_name in QUEUE_NAMES for m in result)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)


@given(
    st.dictionaries(st.sampled_from([*json.loads(LINE), "x"]), json_values, max_size=8),
    st.booleans(),
)
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_json_records(changes: dict[str, object], base_valid: bool) -> None:
    record = json.loads(LINE) if base_valid else {}
    record.update(changes)
    try:
        result = parse(json.dumps(record).encode() + b"\n")
    except ParseError:
        return
    [message] = result
    assert is_queue_id(message.queue_id)
    assert message.queue_name in QUEUE_NAMES
    assert all(isinstance(r.address, str) for r in message.recipients)


def test_feed_after_close_is_a_bug() -> None:
    parser = PostqueueJsonParser()
    parser.close()
    with pytest.raises(RuntimeError):
        parser.feed(LINE)


@pytest.mark.skipif(not LAB_JSON.exists(), reason="no lab capture in tests/data yet")
def test_lab_capture() -> None:
    raw = LAB_JSON.read_bytes()
    queue = parse(raw)
    assert len(queue) == sum(1 for line in raw.splitlines() if line.strip())
    assert all(is_queue_id(m.queue_id) for m in queue)
    assert parse_in_chunks(raw, list(range(0, len(raw), 4093))) == queue
    records = [json.loads(line) for line in raw.splitlines() if line.strip()]
    for message, record in zip(queue, records, strict=True):
        assert message.queue_id == record["queue_id"]
        assert message.arrival_time == record["arrival_time"]
        assert [r.address for r in message.recipients] == [
            r["address"] for r in record["recipients"]
        ]
        assert [r.delay_reason for r in message.recipients] == [
            r.get("delay_reason", "") for r in record["recipients"]
        ]


# -- command templates ------------------------------------------------------------------


def test_commands() -> None:
    assert postqueue_json().argv == ("/usr/sbin/postqueue", "-j")
    assert postqueue_list().argv == ("/usr/sbin/postqueue", "-p")
    assert postconf_version().argv == ("/usr/sbin/postconf", "-h", "mail_version")
    assert postconf_values("mail_version", "queue_directory").argv == (
        "/usr/sbin/postconf",
        "-h",
        "mail_version",
        "queue_directory",
    )
    for command in (postqueue_json(), postqueue_list(), postconf_version()):
        assert not command.sudo
        assert not command.changes_queue
    assert postqueue_json().command_line() == "timeout -k 5 3600 /usr/sbin/postqueue -j"


@pytest.mark.parametrize("name", ["", "Mail_version", "x;id", "a b", "-e", "x=y", "a" * 65])
def test_postconf_names_are_validated(name: str) -> None:
    with pytest.raises(UsageError):
        postconf_values(name)


def test_postconf_needs_a_name() -> None:
    with pytest.raises(UsageError):
        postconf_values()


@pytest.mark.parametrize(
    ("version", "json_parser"),
    [
        ("3.7.11", True),
        ("3.1.0", True),
        ("3.10-20250101", True),
        ("3.0.15", False),
        ("2.11.3", False),
    ],
)
def test_parser_for(version: str, json_parser: bool) -> None:
    parser = parser_for(version + "\n", now=NOW)
    expected = PostqueueJsonParser if json_parser else PostqueueListParser
    assert isinstance(parser, expected)
    assert queue_listing(version).argv[-1] == ("-j" if json_parser else "-p")


def test_parser_for_unreadable_version() -> None:
    with pytest.raises(ParseError):
        parser_for("postconf: warning: bad", now=NOW)
