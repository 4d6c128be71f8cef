"""postcat parsing (real lab captures of every flag combination), templates, finding a message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import ParseError, UsageError
from bot.postfix.models import QueueMessage, Recipient, is_queue_id
from bot.postfix.postcat import (
    BodyExcerpt,
    EnvelopeRecipient,
    ListingSearch,
    MessageRecipient,
    body_excerpt,
    merge_recipients,
    parse_content,
    parse_postcat,
    unquote_address,
)
from bot.postfix.postfix import PostqueueJsonParser, PostqueueListParser
from bot.postfix.tools import Parts, postcat
from helpers.mta_samples import DATA, LAB_JSON, LAB_LIST, NOW

ROOT = DATA.parent.parent
RECORDS = {
    r["queue_id"]: r
    for r in map(json.loads, (DATA / "postcat-records.lab.jsonl").read_text().splitlines())
}
MARKED = sorted(p for p in DATA.glob("postcat-*.lab.txt") if p.read_bytes().startswith(b"***"))
FOUR = "ABB9416B775"  # the message of the postcat-*-4rcpt captures (4 recipients, 76 body lines)


def capture(name: str) -> str:
    return (DATA / name).read_text()


def sudoers_postcat_rule() -> re.Pattern[str]:
    """The argument regex of deploy/sudoers.mailqbot's postcat rule (what the host allows)."""
    text = (ROOT / "deploy/sudoers.mailqbot").read_text()
    rule = re.search(r"/usr/sbin/postcat (\^.*\$)", text)
    assert rule is not None
    return re.compile(rule.group(1).replace("\\,", ","))


# -- command templates -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("parts", "argv"),
    [
        ("eh", ("/usr/sbin/postcat", "-eh", "-q", FOUR)),
        ("b", ("/usr/sbin/postcat", "-b", "-q", FOUR)),
    ],
)
def test_postcat_command_lines_fit_the_sudoers_rule(parts: Parts, argv: tuple[str, ...]) -> None:
    command = postcat(FOUR, parts, sudo=True)
    assert command.argv == argv
    assert command.sudo
    assert not command.changes_queue
    assert command.display() == "sudo -n " + " ".join(argv)
    assert sudoers_postcat_rule().fullmatch(" ".join(argv[1:]))


def test_postcat_follows_the_host_sudo_setting() -> None:
    assert not postcat(FOUR, "eh", sudo=False).sudo


@pytest.mark.parametrize("bad", ["ALL", "abc", "", "ABB9416B775 -e", "../../etc/passwd", "-q"])
def test_postcat_refuses_anything_but_a_queue_id(bad: str) -> None:
    with pytest.raises(UsageError, match="not a Postfix queue ID"):
        postcat(bad, "eh", sudo=True)


@pytest.mark.parametrize("parts", ["", "he", "e", "h", "beh", "x", "ee", "-e", "o", "c"])
def test_postcat_parts_are_envelope_and_headers_or_the_body(parts: str) -> None:
    with pytest.raises(ValueError, match="postcat parts must be one of"):
        postcat(FOUR, parts, sudo=True)  # type: ignore[arg-type]


# -- real captures ---------------------------------------------------------------------


@pytest.mark.parametrize("path", MARKED, ids=lambda p: p.name)
def test_every_marked_capture_parses_and_agrees_with_postqueue(path: Path) -> None:
    out = parse_postcat(path.read_text())
    assert out.complete
    assert is_queue_id(out.queue_id)
    assert out.path.endswith("/" + out.queue_id)
    assert out.queue_name == "deferred"
    assert out.content_size
    assert out.recipient_count == len(out.recipients)
    record = RECORDS.get(out.queue_id)
    if record is None:
        return  # postcat-q.lab.txt: captured before postcat-records.lab.jsonl
    assert out.content_size == record["message_size"]
    sender = "MAILER-DAEMON" if out.sender == "" else out.sender
    assert sender == unquote_address(record["sender"])
    waiting = sorted(r.address for r in out.recipients if r.status == "waiting")
    assert waiting == sorted(unquote_address(r["address"]) for r in record["recipients"])


def test_whole_file_capture_in_detail() -> None:
    out = parse_postcat(capture("postcat-q-4rcpt.lab.txt"), FOUR)
    assert out.path == "deferred/A/ABB9416B775"
    assert out.sender == "noreply@bulk-mailer.test"
    assert out.arrival == "Sat Nov 28 11:18:37 2026"
    assert out.recipients[0] == EnvelopeRecipient(
        "orders49@silent.test", "orders49@silent.test", "waiting"
    )
    assert ("helo_name", "fill.lab.test") in out.attributes
    assert ("create_time", "Sat Nov 28 11:18:37 2026") in out.records
    assert [h.name for h in out.headers] == [
        "Received", "From", "To", "Subject", "Date", "Message-ID", "MIME-Version", "Content-Type",
    ]  # fmt: skip
    received = out.headers[0]
    assert len(received.lines) == 3
    assert received.value.startswith("from fill.lab.test (localhost [127.0.0.1]) by mail.lab")
    assert out.body[0] == ""
    assert len(out.body) == 76
    assert out.body[-1] == "Line 74 of message 1199: lorem ipsum dolor sit amet."


def test_flag_variants_agree_with_the_whole_file() -> None:
    whole = parse_postcat(capture("postcat-q-4rcpt.lab.txt"))
    env_only = parse_postcat(capture("postcat-e-4rcpt.lab.txt"))
    env_headers = parse_postcat(capture("postcat-eh-4rcpt.lab.txt"))
    for part in (env_only, env_headers):
        assert (part.sender, part.recipients, part.attributes) == (
            whole.sender,
            whole.recipients,
            whole.attributes,
        )
        assert part.body == ()
    assert env_only.headers == ()
    assert env_headers.headers == whole.headers
    headers, body = parse_content(capture("postcat-h-4rcpt.lab.txt"))
    assert (headers, body) == (whole.headers, [])
    headers, body = parse_content(capture("postcat-bh-4rcpt.lab.txt"))
    assert (headers, tuple(body)) == (whole.headers, whole.body)
    headers, body = parse_content(capture("postcat-b-4rcpt.lab.txt"))
    assert (headers, tuple(body)) == ((), whole.body)
    assert capture("postcat-q-4rcpt.lab.txt") == (DATA / "postcat-q-4rcpt.lab.txt").read_text()


def test_done_recipient_and_null_sender() -> None:
    done = parse_postcat(capture("postcat-eh-done.lab.txt"), "3F67B16B2ED")
    assert [(r.address, r.status) for r in done.recipients if r.status != "waiting"] == [
        ("bob20@sink.test", "delivered")
    ]
    bounce = parse_postcat(capture("postcat-q-null-sender.lab.txt"))
    assert bounce.sender == ""


def test_hostile_text_is_kept_as_printed() -> None:
    out = parse_postcat(capture("postcat-q.lab.txt"))
    assert out.sender == "<!channel>@evil.test"
    from_header = next(h for h in out.headers if h.name == "From")
    assert from_header.value == '"IT Support <!here>" <"<!channel>"@evil.test>'


# -- damaged, cut and forged output ----------------------------------------------------


def test_output_cut_without_notice_is_an_error_but_a_deliberate_stop_is_not() -> None:
    text = capture("postcat-q-4rcpt.lab.txt")
    cut = text[: text.index("*** HEADER EXTRACTED")]
    with pytest.raises(ParseError, match="cut short"):
        parse_postcat(cut)
    out = parse_postcat(cut + "Line 75 of mess", truncated=True)
    assert not out.complete
    assert out.body[-1].startswith("Line 74")  # the partial last line was dropped


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "printed nothing"),
        ("hello\n", "expected `*** ENVELOPE RECORDS"),
        (
            "*** ENVELOPE RECORDS deferred/A/ABB9416B775 ***\nHello there\n",
            "not an envelope record",
        ),
        ("*** ENVELOPE RECORDS deferred/A/NOTANID ***\n", "queue file name"),
        ("*** ENVELOPE RECORDS /etc/passwd ***\n", "queue file name"),
        ("*** MESSAGE CONTENTS deferred/A/ABB9416B775 ***\n", "out of order"),
        (
            "*** ENVELOPE RECORDS deferred/A/ABB9416B775 ***\nmessage_size: 12 x\n",
            "message_size",
        ),
        (
            "*** ENVELOPE RECORDS deferred/A/ABB9416B775 ***\n"
            "*** MESSAGE CONTENTS deferred/B/B7D9B16A110 ***\n",
            "different queue file",
        ),
    ],
)
def test_damaged_output_is_a_parse_error(text: str, says: str) -> None:
    with pytest.raises(ParseError, match=re.escape(says)):
        parse_postcat(text)


def test_a_different_queue_file_than_asked_is_refused() -> None:
    with pytest.raises(ParseError, match="not 3F67B16B2ED"):
        parse_postcat(capture("postcat-eh-4rcpt.lab.txt"), "3F67B16B2ED")


def test_markers_forged_in_a_body_end_in_a_parse_error() -> None:
    text = capture("postcat-q-4rcpt.lab.txt")
    path = "deferred/A/ABB9416B775"
    forged = (
        f"*** HEADER EXTRACTED {path} ***\nrecipient: attacker@evil.test\n"
        f"*** MESSAGE FILE END {path} ***\n"
    )
    at = text.index("Line 3 of")
    with pytest.raises(ParseError):
        parse_postcat(text[:at] + forged + text[at:])
    # Lines that merely look like markers of another file stay body text.
    other = "*** HEADER EXTRACTED deferred/B/B7D9B16A110 ***\n*** MESSAGE FILE END x ***\n"
    out = parse_postcat(text[:at] + other + text[at:])
    assert "*** MESSAGE FILE END x ***" in out.body
    assert all(r.address != "attacker@evil.test" for r in out.recipients)


RECORD_NAMES = st.sampled_from(
    ["recipient", "done_recipient", "original_recipient", "sender", "named_attribute",
     "message_size", "create_time", "content_filter", "Recipient", "x y"]
)  # fmt: skip
LINES = st.one_of(
    st.builds(lambda n, v: f"{n}: {v}", RECORD_NAMES, st.text(max_size=30)),
    st.sampled_from(
        [
            "*** ENVELOPE RECORDS deferred/A/ABB9416B775 ***",
            "*** MESSAGE CONTENTS deferred/A/ABB9416B775 ***",
            "*** HEADER EXTRACTED deferred/A/ABB9416B775 ***",
            "*** MESSAGE FILE END deferred/A/ABB9416B775 ***",
            "*** ENVELOPE RECORDS hold/Z/ZZZ ***",
            "Subject: hi",
            "\tfolded",
            "",
            "message_size: 1 2 3",
        ]
    ),
    st.text(max_size=40),
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, max_size=30), st.booleans())
def test_fuzzed_output_only_ever_raises_parse_error(lines: list[str], truncated: bool) -> None:
    try:
        out = parse_postcat("\n".join(lines) + "\n", truncated=truncated)
    except ParseError:
        return
    assert is_queue_id(out.queue_id)
    assert out.path.endswith(out.queue_id)


@settings(max_examples=200)
@given(st.integers(min_value=0, max_value=6007))
def test_a_capture_cut_anywhere_is_a_prefix_or_an_error(cut: int) -> None:
    text = capture("postcat-q-4rcpt.lab.txt")
    whole = parse_postcat(text)
    try:
        out = parse_postcat(text[:cut], truncated=True)
    except ParseError:
        assert cut < len("*** ENVELOPE RECORDS deferred/A/ABB9416B775 ***\n")
        return
    assert out.queue_id == FOUR
    assert whole.recipients[: len(out.recipients)] == out.recipients
    assert out.complete == (cut == len(text))


# -- the body excerpt ------------------------------------------------------------------


def test_body_excerpt_of_the_real_body() -> None:
    data = (DATA / "postcat-b-4rcpt.lab.txt").read_bytes()
    whole = body_excerpt(data, whole=True, max_lines=100, max_bytes=10_000)
    assert whole.complete
    assert len(whole.lines) == 75
    assert whole.lines[0] == "Line 0 of message 1199: lorem ipsum dolor sit amet."
    by_lines = body_excerpt(data, whole=True, max_lines=60, max_bytes=10_000)
    assert (len(by_lines.lines), by_lines.complete) == (60, False)
    by_bytes = body_excerpt(data, whole=True, max_lines=100, max_bytes=1000)
    assert by_bytes.shown_bytes <= 1000
    assert not by_bytes.complete
    assert by_bytes.lines == whole.lines[: len(by_bytes.lines)]
    assert body_excerpt(data[:2000], whole=False, max_lines=100, max_bytes=1000) == by_bytes


def test_body_excerpt_edges() -> None:
    assert body_excerpt(b"", whole=True, max_lines=60, max_bytes=4096) == BodyExcerpt((), 0, True)
    long_line = body_excerpt(b"\n" + b"x" * 9000, whole=False, max_lines=60, max_bytes=4096)
    assert long_line.lines == ("x" * 4096,)
    assert not long_line.complete
    bad_utf8 = body_excerpt(b"\n\xff\xfe ok\n", whole=True, max_lines=60, max_bytes=4096)
    assert bad_utf8.lines == ("\ufffd\ufffd ok",)
    assert bad_utf8.complete


@given(st.binary(max_size=300), st.booleans(), st.integers(1, 20), st.integers(1, 200))
def test_body_excerpt_never_exceeds_its_limits(
    data: bytes, whole: bool, max_lines: int, max_bytes: int
) -> None:
    out = body_excerpt(data, whole=whole, max_lines=max_lines, max_bytes=max_bytes)
    assert len(out.lines) <= max_lines
    assert out.shown_bytes <= max_bytes
    assert not out.complete or whole


# -- recipients: postqueue's reasons with postcat's records ----------------------------


def test_addresses_are_matched_across_quoting() -> None:
    assert unquote_address('"<!everyone>"@dropdata.test') == "<!everyone>@dropdata.test"
    assert unquote_address('"a\\"b"@x.test') == 'a"b@x.test'
    assert unquote_address("plain@x.test") == "plain@x.test"


def test_merge_keeps_reasons_and_adds_delivered_recipients() -> None:
    record = RECORDS["3F67B16B2ED"]
    listing = next(PostqueueJsonParser().feed(json.dumps(record).encode() + b"\n").__iter__())
    merged = merge_recipients(listing, parse_postcat(capture("postcat-eh-done.lab.txt")))
    waiting = [r for r in merged if r.status == "waiting"]
    assert [(r.address, r.reason) for r in waiting] == [
        (r["address"], r["delay_reason"]) for r in record["recipients"]
    ]
    assert merged[-1] == MessageRecipient("bob20@sink.test", "delivered")


def test_merge_shows_an_original_recipient_only_when_it_differs() -> None:
    listing = QueueMessage("deferred", FOUR, 0, 1, "a@x", (Recipient('"<!x>"@y.test', "r"),))
    text = (
        f"*** ENVELOPE RECORDS deferred/A/{FOUR} ***\noriginal_recipient: alias@y.test\n"
        f"recipient: <!x>@y.test\ndone_recipient: d@y.test\n"
        f"*** MESSAGE CONTENTS deferred/A/{FOUR} ***\n*** HEADER EXTRACTED deferred/A/{FOUR} ***\n"
        f"*** MESSAGE FILE END deferred/A/{FOUR} ***\n"
    )
    assert merge_recipients(listing, parse_postcat(text)) == [
        MessageRecipient('"<!x>"@y.test', "waiting", "r", "alias@y.test"),
        MessageRecipient("d@y.test", "delivered"),
    ]


def test_merge_shows_a_3_11_bounced_recipient_as_bounced_with_its_reason() -> None:
    """Postfix 3.11 lists a bounced recipient (done in the queue file, its non-delivery notice
    not written yet) with ``bounce_reason``: it is not "delivered", and its reason is kept."""
    bounce = "host mx.y.test[192.0.2.1] said: 550 5.1.1 no such user"
    listing = QueueMessage(
        "deferred",
        FOUR,
        0,
        1,
        "a@x",
        (
            Recipient("w@y.test", "connect to mx.y.test: Connection timed out", "sales@y.test"),
            Recipient("b@y.test", "", "b@y.test", bounce),
        ),
    )
    text = (
        f"*** ENVELOPE RECORDS deferred/A/{FOUR} ***\nrecipient: w@y.test\n"
        f"done_recipient: b@y.test\ndone_recipient: d@y.test\n"
        f"*** MESSAGE CONTENTS deferred/A/{FOUR} ***\n*** HEADER EXTRACTED deferred/A/{FOUR} ***\n"
        f"*** MESSAGE FILE END deferred/A/{FOUR} ***\n"
    )
    assert merge_recipients(listing, parse_postcat(text)) == [
        MessageRecipient("w@y.test", "waiting", "connect to mx.y.test: Connection timed out",
                         "sales@y.test"),
        MessageRecipient("b@y.test", "bounced", bounce),
        MessageRecipient("d@y.test", "delivered"),
    ]  # fmt: skip


# -- finding one message in the listing ------------------------------------------------


def lab_ids() -> list[str]:
    return [json.loads(line)["queue_id"] for line in LAB_JSON.read_text().splitlines()]


@settings(max_examples=50)
@given(st.data())
def test_search_finds_each_message_whatever_the_chunks(data: st.DataObject) -> None:
    listing = LAB_JSON.read_bytes()
    ids = lab_ids()
    wanted = data.draw(st.sampled_from(ids))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(listing)), max_size=20)))
    search = ListingSearch(wanted, PostqueueJsonParser())
    start = 0
    for cut in [*cuts, len(listing)]:
        search.feed(listing[start:cut])
        start = cut
    found = search.close()
    assert found is not None
    assert found.queue_id == wanted
    expected = PostqueueJsonParser().feed(listing)[ids.index(wanted)]
    assert found == expected


def test_search_for_an_absent_id_reads_everything_and_finds_nothing() -> None:
    search = ListingSearch("ABCDEF12345", PostqueueJsonParser())
    assert search.feed(LAB_JSON.read_bytes()) is None
    assert search.close() is None
    assert search.seen == len(lab_ids())


def test_search_reports_a_listing_cut_mid_line() -> None:
    listing = LAB_JSON.read_bytes()
    search = ListingSearch("ABCDEF12345", PostqueueJsonParser())
    search.feed(listing[:-10])
    with pytest.raises(ParseError, match="cut short"):
        search.close()


def test_search_in_postqueue_p_output() -> None:
    text = LAB_LIST.read_bytes()
    every = PostqueueListParser(now=NOW).feed(text)
    wanted = every[len(every) // 2]
    search = ListingSearch(wanted.queue_id, PostqueueListParser(now=NOW))
    assert search.feed(text) == wanted


def test_search_refuses_an_invalid_id() -> None:
    with pytest.raises(UsageError):
        ListingSearch("ALL", PostqueueJsonParser())


@settings(max_examples=200)
@given(st.binary(max_size=400), st.sampled_from(["ABB9416B775", "4Y2FQ3Lkb1z9Kq"]))
def test_fuzzed_listing_only_raises_parse_error(data: bytes, wanted: str) -> None:
    search = ListingSearch(wanted, PostqueueJsonParser())
    try:
        found = search.feed(data) or search.close()
    except ParseError:
        return
    assert found is None or found.queue_id == wanted
