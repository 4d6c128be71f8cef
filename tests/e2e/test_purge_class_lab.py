"""Whole-queue purges worded as filters need an admin, through signed Slack requests against
the real lab: `purge lab queue=deferred` and `purge lab older=1s` select the whole deferred
queue (300 or more messages) and are `purge_all` plans, so an approver's Approve click is
refused and nothing is deleted. (Before, only the words `ALL deferred` made such a plan.)
The requester then withdraws each plan; the lab queue is left as it was.
"""

from __future__ import annotations

from typing import Any

import pytest

from helpers.fakes import Call, FakeSlack, slash_command_body
from helpers.labbot import BotProcess, buttons, click, final, post_signed
from helpers.labmail import queue

pytestmark = pytest.mark.lab
REQUESTER, APPROVER = "U0OPERATOR", "U0APPROVER"


async def plan_message(bot: BotProcess, slack: FakeSlack, text: str) -> tuple[str, str, Any]:
    posted = len(slack.calls_to("chat.postMessage"))
    body = slash_command_body(text, user_id=REQUESTER, response_url=slack.response_url("ask"))
    assert await post_signed(bot, body) == 200
    await slack.wait_for("chat.postMessage", count=posted + 1)
    channel, ts = max(slack.messages, key=lambda key: float(key[1]))

    def on_it(call: Call) -> bool:
        return final(call) and (call.args["channel"], call.args["ts"]) == (channel, ts)

    (message,) = await slack.wait_for("chat.update", timeout=60, predicate=on_it)
    return channel, ts, message.args["blocks"]


@pytest.mark.parametrize("selection", ["queue=deferred", "older=1s"])
async def test_a_whole_queue_purge_worded_as_a_filter_needs_an_admin(
    bot: BotProcess, fake_slack: FakeSlack, lab: dict[str, object], selection: str
) -> None:
    before = {str(m["queue_id"]) for m in queue()}
    channel, ts, blocks = await plan_message(
        bot, fake_slack, f'purge lab {selection} why="INC-13 whole queue"'
    )
    shown = str(blocks)
    assert "(purge_all)" in shown
    assert "Needs a purge_all approver:* it selects only by queue or age" in shown
    found = buttons(blocks)
    name = f"approve-{selection}"
    await click(bot, fake_slack, APPROVER, found["approve"], channel, ts, name)
    (refusal,) = await fake_slack.wait_for(f"response_url:{name}", timeout=30)
    assert "You may not approve `purge_all` plans on lab" in str(refusal.args)
    withdrawn = f"withdraw-{selection}"
    await click(bot, fake_slack, REQUESTER, found["deny"], channel, ts, withdrawn)
    await fake_slack.wait_for(
        "chat.update", count=2, timeout=60,
        predicate=lambda c: final(c) and (c.args["channel"], c.args["ts"]) == (channel, ts),
    )  # fmt: skip
    assert before <= {str(m["queue_id"]) for m in queue()}  # nothing was deleted
