"""The postsuper report parser on real lab output, the selection words, and the recheck
of a plan against the listing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.actions.perform import Recheck
from bot.actions.select import Action, Item, parse_selection
from bot.errors import ParseError, UsageError
from bot.postfix import postsuper, tools
from bot.postfix.models import QueueMessage, Recipient, is_queue_id

DATA = Path(__file__).parents[1] / "data"
USAGE = "/mailq purge HOST ..."


@pytest.mark.parametrize(
    ("action", "name", "count"),
    [
        ("purge", "purge", 3),
        ("hold", "hold", 3),
        ("release", "release", 3),
        ("requeue", "requeue", 3),
    ],
)
def test_report_of_real_postsuper_output(action: tools.Change, name: str, count: int) -> None:
    text = (DATA / f"postsuper-{name}.lab.txt").read_text()
    report = postsuper.parse_report(action, text)
    assert report.count == count
    assert len(report.changed) == count
    assert all(is_queue_id(i) for i in report.changed)
    assert report.other == ()


def test_report_without_a_count_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="did not report"):
        postsuper.parse_report("purge", "postsuper: 6B3F616E041: removed\n")


def test_report_of_another_verb_is_not_counted() -> None:
    text = (DATA / "postsuper-hold.lab.txt").read_text()
    with pytest.raises(ParseError):
        postsuper.parse_report("purge", text)


def test_warnings_are_kept_not_counted() -> None:
    text = "postsuper: warning: bad file\npostsuper: Deleted: 0 messages\n"
    report = postsuper.parse_report("purge", text)
    assert report.changed == ()
    assert report.count == 0
    assert report.other == ("postsuper: warning: bad file",)


@given(st.text(max_size=400))
def test_report_parser_never_yields_an_invalid_id(text: str) -> None:
    try:
        report = postsuper.parse_report("purge", text + "\npostsuper: Deleted: 1 message\n")
    except ParseError:
        return
    assert all(is_queue_id(i) for i in report.changed)


def test_ids_input_refuses_anything_but_queue_ids() -> None:
    assert tools.ids_input(["6B3F616E041"]) == b"6B3F616E041\n"
    with pytest.raises(ValueError, match="not a queue ID"):
        tools.ids_input(["ALL"])


def test_change_command_is_fixed_and_queue_checked() -> None:
    assert (
        tools.change("purge", "deferred", sudo=True).display()
        == "sudo -n /usr/sbin/postsuper -d - deferred"
    )
    with pytest.raises(UsageError):
        tools.change("purge", "corrupt", sudo=True)


def test_change_follows_the_host_sudo_setting() -> None:
    command = tools.change("hold", "deferred", sudo=False)
    assert command.command_line() == "timeout -k 5 600 /usr/sbin/postsuper -h - deferred"


def test_selection_words() -> None:
    sel = parse_selection("purge", ["6B3F616E041", "domain=example.com", "why=INC-1"], USAGE)
    assert sel.filter.ids == ("6B3F616E041",)
    assert sel.filter.domains == ("example.com",)
    assert sel.reason == "INC-1"
    everything = parse_selection("purge", ["ALL", "deferred", "why=x"], USAGE)
    assert everything.everything
    assert parse_selection("flush", [], USAGE).everything


@pytest.mark.parametrize(
    "words",
    [
        ["ALL"],
        ["ALL", "deferred", "domain=x.com"],
        ["all"],
        ["rm", "-rf"],
        ["$(reboot)"],
        ["queue=corrupt"],
        ["6B3F616E041;reboot"],
        [],
    ],
)
def test_bad_selection_is_a_usage_error(words: list[str]) -> None:
    with pytest.raises(UsageError):
        parse_selection("purge", words, USAGE)


def test_release_only_touches_hold() -> None:
    with pytest.raises(UsageError, match="hold"):
        parse_selection("release", ["queue=deferred"], USAGE)


def listed(queue_id: str, arrival: int, sender: str, queue: str) -> QueueMessage:
    return QueueMessage(queue, queue_id, arrival, 1000, sender,
                        (Recipient("u@x", "Connection refused"),), False)  # fmt: skip


PLANNED = [
    Item(queue_id, at, sender, "deferred")
    for queue_id, at, sender in [
        ("AAAAAA1", 100, "a@x"), ("BBBBBB2", 200, "b@x"),
        ("CCCCCC3", 300, "c@x"), ("DDDDDD4", 400, "d@x"),
    ]
]  # fmt: skip
LISTING = [
    listed("AAAAAA1", 100, "a@x", "deferred"),  # unchanged
    listed("BBBBBB2", 999, "b@x", "deferred"),  # ID reused by another message
    listed("CCCCCC3", 300, "c@x", "active"),  # moved on: still the same message
    listed("EEEEEE5", 500, "e@x", "deferred"),  # not in the plan
]  # DDDDDD4 is gone


def run_recheck(
    action: Action, listing: list[QueueMessage]
) -> tuple[list[tuple[str, str]], Recheck]:
    confirmed: list[tuple[str, str]] = []
    recheck = Recheck(action, {i.queue_id: i for i in PLANNED},
                      lambda queue, queue_id: confirmed.append((queue, queue_id)))  # fmt: skip
    for message in listing:
        recheck.add(message)
    return confirmed, recheck


def test_recheck_confirms_only_matching_ids_as_they_are_listed() -> None:
    confirmed, recheck = run_recheck("purge", LISTING)
    assert confirmed == [("deferred", "AAAAAA1"), ("active", "CCCCCC3")]
    assert recheck.skipped(PLANNED) == [
        ("BBBBBB2", "the ID now names a different message"),
        ("DDDDDD4", "no longer in the queue"),
    ]
    confirmed, recheck = run_recheck("release", LISTING)
    assert confirmed == []
    assert dict(recheck.skipped(PLANNED))["AAAAAA1"] == "now in the deferred queue"


def test_recheck_confirms_once_and_a_later_sighting_can_lift_a_doubt() -> None:
    # A message moving between queues can be listed twice: the first sighting in a queue
    # the action may touch confirms it, once; one in a queue it may not is only a doubt.
    moving = [
        listed("AAAAAA1", 100, "a@x", "deferred"),
        listed("AAAAAA1", 100, "a@x", "hold"),
        listed("CCCCCC3", 300, "c@x", "deferred"),
        listed("CCCCCC3", 300, "c@x", "hold"),
    ]
    confirmed, recheck = run_recheck("release", moving)
    assert confirmed == [("hold", "AAAAAA1"), ("hold", "CCCCCC3")]
    confirmed, recheck = run_recheck("purge", [*moving, *moving])
    assert confirmed == [("deferred", "AAAAAA1"), ("deferred", "CCCCCC3")]
    assert [i for i, _ in recheck.skipped(PLANNED)] == ["BBBBBB2", "DDDDDD4"]


@given(st.lists(st.sampled_from(LISTING), max_size=12))
def test_recheck_never_confirms_an_unplanned_or_changed_id(listing: list[QueueMessage]) -> None:
    confirmed, recheck = run_recheck("purge", listing)
    ids = [queue_id for _queue, queue_id in confirmed]
    assert len(ids) == len(set(ids))
    assert set(ids) <= {"AAAAAA1", "CCCCCC3"}
    assert {i for i, _ in recheck.skipped(PLANNED)} | set(ids) == {i.queue_id for i in PLANNED}
