"""Every Postfix from 2.0 to 3.11: queue listings (``postqueue -p`` as each version's showq or
postqueue prints it, ``postqueue -j`` from 3.1 on), from fixtures derived from each version's
sources (``tests/data/versions/``; each file's ``#`` header names the source file and version
it follows, and says what a reader must find in it).
"""

from __future__ import annotations

import re
from datetime import timedelta, timezone
from fnmatch import fnmatch

import pytest

from bot.errors import ParseError
from bot.postfix import postfix
from bot.postfix.models import QueueMessage, Recipient
from bot.postfix.postfix import PostqueueJsonParser, parse_postqueue_list
from helpers.mta_samples import VERSIONS
from helpers.mta_samples import VERSIONS_NOW as NOW
from helpers.mta_samples import versions_fixture as fixture


def test_every_fixture_names_its_origin() -> None:
    for path in VERSIONS.iterdir():
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        assert header, path.name
        assert "github.com/vdukhovni/postfix" in " ".join(header) or "lab" in " ".join(header)


def test_every_file_in_tests_data_has_its_origin_in_the_readme() -> None:
    data = VERSIONS.parent
    readme = (data / "README.md").read_text(encoding="utf-8")
    patterns = [
        cell.strip("`")
        for row in readme.splitlines()
        if row.startswith("| `")
        for cell in re.findall(r"`[^`]+`", row.split("|")[1])
    ]
    for path in data.rglob("*"):
        if path.is_file() and path.name != "README.md":
            name = path.relative_to(data).as_posix()
            assert any(fnmatch(name, p) or name.startswith(p) for p in patterns), name


# -- queue listings, version by version ----------------------------------------------------------


def listing(name: str, offset: str) -> list[QueueMessage]:
    tz = timezone(timedelta(seconds=postfix.parse_utc_offset(offset)))
    return list(parse_postqueue_list(fixture(name), now=NOW, tz=tz))


def ages(messages: list[QueueMessage]) -> list[float]:
    return [NOW - m.arrival_time for m in messages]


def test_legacy_listing_from_a_utc_minus_5_host() -> None:
    messages = listing("postqueue-p-3.0-utc-5.txt", "-0500")
    assert [(m.queue_id, m.queue_name) for m in messages] == [
        ("3F67B16B2ED", "deferred"), ("3F67B16B2EE", "hold"), ("3F67B16B2EF", "active"),
    ]  # fmt: skip
    assert ages(messages) == [30 * 60, 3 * 3600 + 600, 5]
    timeout = "connect to mx.example.com[203.0.113.5]:25: Connection timed out"
    full = "host mx.example.org[198.51.100.7] said: 452 4.2.2 <dave@example.org>: Mailbox full"
    assert messages[0].recipients == (
        Recipient("bob@example.com", timeout),
        Recipient("carol@example.com", timeout),
        Recipient("dave@example.org", full),
    )
    # Read as UTC (what mailqbot did before), the 30-minute-old message was 5.5 hours old.
    as_utc = list(parse_postqueue_list(fixture("postqueue-p-3.0-utc-5.txt"), now=NOW))
    assert NOW - as_utc[0].arrival_time == 5.5 * 3600


def test_postfix_2_0_listing_with_the_marker_after_padding() -> None:
    messages = listing("postqueue-p-2.0.txt", "+0100")
    assert [(m.queue_id, m.queue_name, m.message_size) for m in messages] == [
        ("5C2A41B4E", "deferred", 1234),
        ("5C2A41B4F", "active", 456),
        ("5C2A41B50", "hold", 98765),
    ]
    assert ages(messages) == [1800, 60, 2 * 86400 + 3 * 3600]
    assert messages[2].sender == '"<!channel>"@example.com'
    # 2.x lists the recipients never tried after the reason blocks: they inherit the reason.
    assert [r.address for r in messages[0].recipients] == ["carl@example.com", "dora@example.com"]


def test_postfix_2_1_to_2_4_listing_without_a_space_before_the_size() -> None:
    messages = listing("postqueue-p-2.3.txt", "+0000")
    assert [(m.queue_id, m.queue_name, m.message_size) for m in messages] == [
        ("8F3C2A2B1D", "deferred", 2048), ("8F3C2A2B1E", "active", 512),
    ]  # fmt: skip
    assert ages(messages) == [5 * 3600, 20]


def test_long_queue_ids_and_an_unreadable_maildrop_file_at_plus_0530() -> None:
    messages = listing("postqueue-p-2.9-long.txt", "+0530")
    assert [(m.queue_id, m.queue_name, m.sender) for m in messages] == [
        ("4Y2FQ3Lkb1z9Kq", "deferred", "billing@example.in"),
        ("4Y2FQ3Lkb2z9Kr", "maildrop", ""),
    ]
    assert ages(messages) == [26 * 3600, 120]


def test_forced_expiry_marker_in_the_listing() -> None:
    messages = listing("postqueue-p-3.5.txt", "+0000")
    assert [(m.queue_id, m.queue_name, m.forced_expire) for m in messages] == [
        ("7A1B2C3D4E", "deferred", True), ("7A1B2C3D4F", "active", True),
    ]  # fmt: skip


def json_listing(name: str) -> list[QueueMessage]:
    parser = PostqueueJsonParser()
    return parser.feed(fixture(name).encode()) + parser.close()


def test_json_3_1_and_3_5() -> None:
    old, newer = json_listing("postqueue-j-3.1.jsonl"), json_listing("postqueue-j-3.5.jsonl")
    assert [(m.queue_id, m.forced_expire, ages([m])[0]) for m in old] == [
        ("3F67B16B2ED", False, 1800), ("3F67B16B2EF", False, 5),
    ]  # fmt: skip
    assert old[0].recipients[1] == Recipient("carol@example.com", "")
    assert [(m.queue_id, m.queue_name, m.forced_expire) for m in newer] == [
        ("7A1B2C3D4E", "deferred", True), ("4Y2FQ3Lkb1z9Kq", "hold", False),
    ]  # fmt: skip


def test_json_3_11_keeps_orig_address_and_bounce_reason() -> None:
    first, second = json_listing("postqueue-j-3.11.jsonl")
    assert first.recipients == (
        Recipient("bob@example.com",
                  "connect to mx.example.com[203.0.113.5]:25: Connection timed out",
                  "sales@shop.example"),
        Recipient("carol@example.org", "", "carol@example.org",
                  "host mx.example.org[198.51.100.7] said: 550 5.1.1 <carol@example.org>: "
                  "Recipient address rejected: User unknown (in reply to RCPT TO command)"),
        Recipient("dave@example.net", "", "dave@example.net", ""),
    )  # fmt: skip
    assert (second.sender, second.forced_expire) == ("MAILER-DAEMON", True)
    assert second.recipients[0].orig_address == "postmaster@shop.example"


@pytest.mark.parametrize("member", ["orig_address", "bounce_reason"])
def test_json_3_11_members_of_the_wrong_type_are_refused(member: str) -> None:
    line = fixture("postqueue-j-3.11.jsonl").splitlines()[1]
    bad = line.replace('"orig_address": "postmaster@shop.example"', f'"{member}": 7')
    with pytest.raises(ParseError, match=member):
        PostqueueJsonParser().feed(bad.encode() + b"\n")
    with pytest.raises(ParseError, match=member):
        PostqueueJsonParser().feed_into(bad.encode() + b"\n", lambda *f: None)


def test_json_fast_path_passes_the_3_11_members_through() -> None:
    seen: list[list[dict[str, str]]] = []
    parser = PostqueueJsonParser()
    parser.feed_into(fixture("postqueue-j-3.11.jsonl").encode(), lambda *f: seen.append(f[5]))
    assert seen[0][1]["bounce_reason"].startswith("host mx.example.org")
    assert seen[0][0]["orig_address"] == "sales@shop.example"
