"""`/mailq list` against the real lab: counts per reason class, and the Next button.

The oracle is `postqueue -j` run locally on the lab host (this machine), recounted here with
the reason classifier alone. The button test drives a real `mailqbot serve` process with
Slack's signed request formats and reads what it did on the fake Slack Web API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.app.services import Services
from bot.context import Request
from bot.db.models import CommandRun
from bot.postfix.reasons import ReasonClass, classify
from bot.settings import Settings
from helpers.fakes import Call, FakeSlack, block_actions_body, sign, slash_command_body
from helpers.labbot import LAB_CONFIG, SIGNING_SECRET, BotProcess, final
from helpers.labqueue import postqueue_json
from helpers.listpage import counts, page_ids

pytestmark = pytest.mark.lab
Queue = list[dict[str, Any]]


@pytest.fixture
async def services(db_url: str, lab: dict[str, object]) -> AsyncIterator[Services]:
    settings = Settings(DATABASE_URL=db_url, MAILQBOT_CONFIG=LAB_CONFIG)
    async with open_services(settings) as opened:
        yield opened


def class_of(message: dict[str, Any], recipient: dict[str, Any]) -> ReasonClass | None:
    reason = recipient.get("delay_reason", "")
    if reason:
        return classify(reason)
    return ReasonClass.other if message["queue_name"] == "deferred" else None


def recount(queue: Queue, cls: ReasonClass) -> tuple[list[str], int]:
    """IDs of the messages with a recipient of class ``cls``, and those recipients."""
    ids, rcpts = [], 0
    for message in queue:
        hits = sum(1 for r in message["recipients"] if class_of(message, r) is cls)
        if hits:
            ids.append(message["queue_id"])
            rcpts += hits
    return ids, rcpts


def next_button(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    (button,) = actions["elements"]
    return dict(button)


ATTEMPTS = 4  # the lab is shared: retry while someone else's test changes the queue


async def list_every_class(services: Services) -> dict[ReasonClass, Any]:
    shown = {}
    for cls in ReasonClass:
        request = Request("slack", "U0VIEWER", f"list lab reason={cls.value}", team_id="T0LAB")
        outcome = await handle(request, services)
        assert outcome.ok, outcome.reply.text
        shown[cls] = (counts(outcome.reply.blocks), page_ids(outcome.reply.blocks))
    return shown


async def test_counts_per_reason_class_equal_a_recount(services: Services) -> None:
    for _ in range(ATTEMPTS):
        before = postqueue_json()
        shown = await list_every_class(services)
        after = postqueue_json()
        if before == after:
            break
        await asyncio.sleep(2)
    else:
        pytest.fail("the lab queue kept changing during the test; run it again when it is quiet")

    for cls, ((matched, scanned, rcpts), ids) in shown.items():
        expected_ids, expected_rcpts = recount(after, cls)
        assert (matched, scanned, rcpts) == (len(expected_ids), len(after), expected_rcpts), cls
        assert ids == expected_ids[:20], cls  # Postfix's own listing order
    classes = [cls for cls, ((matched, _, _), _) in shown.items() if matched]
    assert len(classes) >= 8, f"the lab should defer for many reasons, got {classes}"


async def post_signed(bot: BotProcess, body: bytes) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{bot.url}/slack/events", data=body, headers=sign(SIGNING_SECRET, body)
        ) as response,
    ):
        await response.read()
        return response.status


@dataclass
class Clicked:
    channel: str
    ts: str
    page1: list[dict[str, Any]]
    page2: list[dict[str, Any]]


async def list_then_click_next(bot: BotProcess, fake_slack: FakeSlack) -> Clicked:
    """`/mailq list lab limit=5` as U0VIEWER, then U0OPERATOR clicks its Next button."""
    posted = len(fake_slack.calls_to("chat.postMessage"))
    body = slash_command_body("list lab limit=5", response_url=fake_slack.response_url("list"))
    assert await post_signed(bot, body) == 200
    await fake_slack.wait_for("chat.postMessage", count=posted + 1)
    channel, ts = max(fake_slack.messages, key=lambda key: float(key[1]))  # the placeholder

    def on_it(call: Call) -> bool:
        return final(call) and (call.args["channel"], call.args["ts"]) == (channel, ts)

    (page1,) = await fake_slack.wait_for("chat.update", timeout=90, predicate=on_it)
    button = next_button(page1.args["blocks"])
    assert button["action_id"] == "mailq_run_replace"
    assert button["value"] == "list lab limit=5 offset=5"
    click = block_actions_body(
        "mailq_run_replace", button["value"], user_id="U0OPERATOR", channel_id=channel,
        message_ts=ts, response_url=fake_slack.response_url("click"),
    )  # fmt: skip
    assert await post_signed(bot, click) == 200
    page2 = (await fake_slack.wait_for("chat.update", count=2, timeout=90, predicate=on_it))[1]
    assert len(fake_slack.calls_to("chat.postMessage")) == posted + 1  # replaced in place
    return Clicked(channel, ts, page1.args["blocks"], page2.args["blocks"])


async def test_next_button_replaces_the_message_with_page_two(
    bot: BotProcess, fake_slack: FakeSlack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    for _ in range(ATTEMPTS):
        before = postqueue_json()
        clicked = await list_then_click_next(bot, fake_slack)
        queue = postqueue_json()
        if before == queue:
            break
        await asyncio.sleep(2)
    else:
        pytest.fail("the lab queue kept changing during the test; run it again when it is quiet")

    ids = [m["queue_id"] for m in queue]
    assert page_ids(clicked.page1) == ids[:5]
    assert page_ids(clicked.page2) == ids[5:10]
    assert fake_slack.messages[(clicked.channel, clicked.ts)]["blocks"] == clicked.page2
    assert f"Messages 6–10 of {len(queue):,}" in str(clicked.page2)
    assert next_button(clicked.page2)["value"] == "list lab limit=5 offset=10"

    async with sessions() as session:
        runs = (await session.scalars(select(CommandRun).order_by(CommandRun.id))).all()
    assert [(r.user_id, r.text, r.outcome) for r in runs[-2:]] == [
        ("U0VIEWER", "list lab limit=5", "ok"),
        ("U0OPERATOR", "list lab limit=5 offset=5", "ok"),
    ]
