"""The approval flow the way Slack drives it: a signed slash command asks for a purge, the
requester's own Approve click is refused (ephemeral), another person's click deletes exactly
the planned messages and the approval message is updated in place. Real `mailqbot serve`,
real lab Postfix over SSH, the fake Slack Web API recording every call.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.actions import approvals
from bot.app.pipeline import handle
from bot.app.runtime import open_services
from bot.app.services import LiveServices
from bot.context import Context, Identity, Request
from bot.db.models import ActionPlan, AuditEvent
from bot.settings import Settings
from bot.slack.client import make_client
from bot.slack.recovery import recover_forever
from helpers.fakes import Call, FakeSlack, slash_command_body
from helpers.labbot import (
    LAB_CONFIG,
    BotProcess,
    buttons,
    click,
    final,
    post_signed,
)
from helpers.labmail import ids_from, inject, new_sender, remove

pytestmark = pytest.mark.lab
REQUESTER, SECOND = "U0APPROVER", "U0ADMIN"


async def test_purge_approved_by_button_updates_the_message_in_place(
    bot: BotProcess, fake_slack: FakeSlack, sessions: async_sessionmaker[AsyncSession]
) -> None:
    sender = new_sender()
    planned = inject(sender, 4)
    try:
        posted = len(fake_slack.calls_to("chat.postMessage"))
        text = f'purge lab sender={sender} why="INC-9 spam run"'
        body = slash_command_body(
            text, user_id=REQUESTER, response_url=fake_slack.response_url("ask")
        )
        assert await post_signed(bot, body) == 200
        await fake_slack.wait_for("chat.postMessage", count=posted + 1)
        channel, ts = max(fake_slack.messages, key=lambda key: float(key[1]))

        def on_it(call: Call) -> bool:
            return final(call) and (call.args["channel"], call.args["ts"]) == (channel, ts)

        (plan_msg,) = await fake_slack.wait_for("chat.update", timeout=60, predicate=on_it)
        found = buttons(plan_msg.args["blocks"])
        assert set(found) == {"approve", "deny"}
        assert found["approve"]["confirm"]["title"]["text"] == "Approve this plan?"
        assert "4 messages, waiting for approval" in str(plan_msg.args["blocks"])

        await click(bot, fake_slack, REQUESTER, found["approve"], channel, ts, "self")
        (refusal,) = await fake_slack.wait_for("response_url:self", timeout=30)
        assert refusal.args["response_type"] == "ephemeral"
        assert "another person must approve" in str(refusal.args)
        assert ids_from(sender) == planned

        await click(bot, fake_slack, SECOND, found["approve"], channel, ts, "second")
        done = (await fake_slack.wait_for("chat.update", count=2, timeout=60, predicate=on_it))[1]
        assert "Deleted 4* of 4 planned messages" in str(done.args["blocks"])
        assert buttons(done.args["blocks"]) == {}  # no buttons on a finished plan
        assert fake_slack.messages[(channel, ts)]["blocks"] == done.args["blocks"]
        assert len(fake_slack.calls_to("chat.postMessage")) == posted + 1  # updated in place
        assert ids_from(sender) == set()
    finally:
        remove(ids_from(sender))
    async with sessions() as session:
        plan = (await session.scalars(select(ActionPlan).order_by(ActionPlan.created_at))).all()[-1]
    assert (plan.requester, plan.status, plan.channel_id) == (REQUESTER, "done", channel)
    # Every event of the plan links to the approval message (auth.test gives the address).
    link = f"https://{fake_slack.team_domain}.slack.com/archives/{channel}/p{ts.replace('.', '')}"
    async with sessions() as session:
        events = (
            await session.scalars(
                select(AuditEvent).where(AuditEvent.action.like("plan.%")).order_by(AuditEvent.seq)
            )
        ).all()
    mine = [e for e in events if e.detail.get("plan") == plan.id]
    assert [e.action for e in mine] == [
        "plan.created",
        "plan.approved",
        "plan.claimed",
        "plan.done",
    ]
    assert {e.detail["message_link"] for e in mine} == {link}


async def test_plan_approved_before_a_restart_runs_once_and_is_announced(
    fake_slack: FakeSlack, db_url: str, lab: dict[str, object], caplog: pytest.LogCaptureFixture
) -> None:
    """The approving replica died after the approval was stored, before it claimed the
    plan: the next replica's recovery runs it once and posts the result in its channel."""
    sender = new_sender()
    planned = inject(sender, 2)
    settings = Settings(
        DATABASE_URL=db_url,
        MAILQBOT_CONFIG=LAB_CONFIG,
        SLACK_API_URL=fake_slack.api_url,
        SLACK_BOT_TOKEN="xoxb-lab",  # a replica has one (serve refuses to start without)
    )
    try:
        async with open_services(settings) as services:
            text = f'purge lab sender={sender} why="restart"'
            ask = Request("slack", REQUESTER, text, team_id="T0LAB", channel_id="C0OPS")
            found = re.search(r"Plan (p[0-9a-f]{10})", (await handle(ask, services)).reply.text)
            assert found is not None
            pid = found.group(1)
            request = Request("slack", SECOND, f"approve {pid}", team_id="T0LAB")
            ctx = Context(services, request, Identity("slack", SECOND, "T0LAB"))
            assert (await approvals.decide(ctx, pid, "approve")).status == "approved"
            assert ids_from(sender) == planned  # approved, not run: the replica "died" here

            stop = asyncio.Event()
            client = make_client(services.settings)
            started = await approvals.start_mark(services)  # the next replica starts
            task = asyncio.create_task(
                recover_forever(LiveServices(services), client, stop, started)
            )
            (post,) = await fake_slack.wait_for("chat.postMessage", timeout=60)
            stop.set()
            await task
            assert post.args["channel"] == "C0OPS"
            assert "Deleted 2* of 2 planned messages" in str(post.args["blocks"])
            assert post.token == "xoxb-lab"
            assert [k for k in fake_slack.messages if k[0] == "C0OPS"]  # Slack accepted it
            assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
            assert ids_from(sender) == set()
            assert await approvals.recover(services) == []  # never twice
    finally:
        remove(ids_from(sender))
