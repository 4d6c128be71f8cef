"""Block Kit's limits hold for every rendered message, whatever the template produced."""

from __future__ import annotations

from typing import Any

from bot import render
from bot.errors import UsageError
from bot.render import limits
from helpers.blockkit import assert_valid_block_kit


def test_overlong_text_is_cut_never_inside_an_escape() -> None:
    text = "x" * 2996 + "&amp;" + "y" * 100
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]
    (section,) = limits.fit(blocks)
    assert len(section["text"]["text"]) <= 3000
    assert section["text"]["text"].endswith("x…")  # the cut dropped the half escape


def test_too_many_blocks_end_in_a_note() -> None:
    many = [{"type": "section", "text": {"type": "mrkdwn", "text": str(i)}} for i in range(70)]
    fitted = limits.fit(many)
    assert len(fitted) == 50
    assert fitted[-1]["elements"][0]["text"] == "21 more blocks did not fit in one message."
    assert_valid_block_kit(fitted)


def test_every_kind_of_overflow_is_within_limits() -> None:
    long = "L" * 5000
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": long}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": long} for _ in range(12)]},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": long} for _ in range(12)]},
        {"type": "actions", "elements": [
            {"type": "button", "action_id": f"a{i}", "value": "v" * 3000,
             "text": {"type": "plain_text", "text": long},
             "confirm": {"title": {"type": "plain_text", "text": long},
                         "text": {"type": "mrkdwn", "text": long},
                         "confirm": {"type": "plain_text", "text": long},
                         "deny": {"type": "plain_text", "text": long}}}
            for i in range(30)
        ]},
    ]  # fmt: skip
    fitted = limits.fit(blocks)
    assert_valid_block_kit(fitted)
    assert all("value" not in b for b in fitted[3]["elements"])  # never a cut command


def test_render_enforces_them_on_a_template() -> None:
    """A refusal quoting 10,000 characters of hostile input still fits one message."""
    rendered = render.error(UsageError("<!channel> " * 1000, usage="/mailq x"))
    assert_valid_block_kit(rendered.blocks)
    assert "<!channel>" not in str(rendered.blocks)
