"""Rendering: hostile queue text is shown escaped, and every message fits Block Kit."""

from __future__ import annotations

import pytest

from bot import render
from bot.errors import UnknownHost, UsageError
from bot.postfix.models import QueueMessage, Recipient
from bot.postfix.summary import SummaryBuilder
from commands.help import HelpEntry, HelpModel
from commands.summary import HostSummary
from helpers.blockkit import all_text, assert_valid_block_kit

NOW = 1_795_000_000.0
HOSTILE = [
    "<!channel>@evil.test",
    "<!here|here>@evil.test",
    "<https://evil.test|click me>@evil.test",
    "bob\u200b@evil\u202e.test",
    "```@evil.test",
    "&amp;@evil.test",
]


def summary_with(senders: list[str], reasons: list[str], n: int = 50) -> HostSummary:
    builder = SummaryBuilder(NOW)
    for i in range(n):
        builder.add(
            QueueMessage(
                queue_name="deferred",
                queue_id=f"{0xA00000 + i:X}",
                arrival_time=int(NOW) - i * 977,
                message_size=1000 + i,
                sender=senders[i % len(senders)],
                recipients=(Recipient(f"user{i}@d{i % 7}.example", reasons[i % len(reasons)]),),
            )
        )
    return HostSummary("mx1", builder.build())


def test_hostile_senders_and_reasons_ping_nobody() -> None:
    reasons = [f"host mx[1.2.3.4] said: 550 {s} rejected" for s in HOSTILE]
    rendered = render.render("summary", summary_with(HOSTILE, reasons))
    text = all_text(rendered.blocks)
    assert "<!channel>" not in text
    assert "<!here" not in text
    assert "<https://evil.test" not in text
    assert "&lt;!channel&gt;@evil.test" in text
    assert "\u200b" not in text
    assert "\u202e" not in text
    # The only unescaped "<" in the whole message are our own date tokens.
    for block in rendered.blocks:
        for field in [block.get("text"), *block.get("fields", [])]:  # type: ignore[list-item]
            if isinstance(field, dict):
                body = field["text"]
                assert body.count("<") == body.count("<!date^")
                assert body.count("```") % 2 == 0
    assert_valid_block_kit(rendered.blocks)


def test_dates_use_slack_tokens_with_a_utc_fallback() -> None:
    rendered = render.render("summary", summary_with(["a@b.test"], ["Connection refused"]))
    text = all_text(rendered.blocks)
    assert "<!date^1795000000^{date_short_pretty} {time}|" in text
    assert "UTC" in rendered.text


def test_forged_date_placeholder_in_queue_text_stays_text() -> None:
    forged = "[0123456789abcdef:date:1]@evil.test"
    rendered = render.render("summary", summary_with([forged], ["x"]))
    assert "<!date^1^" not in all_text(rendered.blocks)


def test_many_classes_and_long_reasons_still_fit() -> None:
    reasons = [f"host h{i}[10.0.0.{i}] said: 4{i:02d} " + "x" * 400 for i in range(40)]
    senders = [f"sender{i}@{'long' * 30}.example" for i in range(40)]
    rendered = render.render("summary", summary_with(senders, reasons, n=4000))
    assert_valid_block_kit(rendered.blocks)
    assert len(rendered.fallback) <= render.FALLBACK_LIMIT


def test_empty_queue_renders() -> None:
    rendered = render.render("summary", HostSummary("mx1", SummaryBuilder(NOW).build()))
    assert "0 messages" in rendered.text
    assert_valid_block_kit(rendered.blocks)


@pytest.mark.parametrize(
    "error",
    [
        UnknownHost("<!channel>", ["mx1", "mx2"], ["edge"]),
        UsageError("`summary`: the following arguments are required: HOST.", "/mailq summary HOST"),
    ],
)
def test_errors_say_what_to_do_and_fit(error: Exception) -> None:
    rendered = render.error(error)  # type: ignore[arg-type]
    assert_valid_block_kit(rendered.blocks)
    assert "<!channel>" not in all_text(rendered.blocks)


def test_help_fits() -> None:
    entries = [
        HelpEntry(f"c{i}", f"/mailq c{i} HOST", "does things", ("/mailq c1 mx1",))
        for i in range(20)
    ]
    rendered = render.render("help", HelpModel(entries, ["mx1"], ["edge"]))
    assert_valid_block_kit(rendered.blocks)


def test_numbers_are_scannable() -> None:
    text = render.render("summary", summary_with(["a@b"], ["r"], n=1234)).text
    assert "1,234 messages" in text
