"""Silences end to end: ``/mailq silence`` through the pipeline (authorised by the configured
role, audited), a silenced rule posts nothing, ``/mailq silences`` lists it with its expiry,
its expiry brings the alert back, and a silence of a host is listed in that host's root."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from sqlalchemy import select

from bot.app.pipeline import Outcome, handle
from bot.app.services import Services
from bot.context import Request
from bot.db.models import AuditEvent, Silence
from bot.text import utc
from helpers.fakes import FakeSlack
from helpers.monitoring import CHANNEL, MONITOR, roots, running, wait_until
from helpers.simhosts import farm

FAST = MONITOR.replace("[monitor.rules]", '[monitor.silences]\nrole = "operator"\n[monitor.rules]')


def shown(slack: FakeSlack, ts: str) -> str:
    """The root's blocks as they are now (the text is Slack's one-line notification)."""
    return json.dumps(slack.messages[(CHANNEL, ts)]["blocks"], ensure_ascii=False)


async def ask(services: Services, user: str, text: str) -> Outcome:
    request = Request("slack", user, text, team_id="T0LAB", channel_id="C0OPS")
    return await handle(request, services)


async def test_a_silenced_rule_posts_nothing_until_it_expires(tmp_path: Path, db_url: str) -> None:
    async with FakeSlack() as slack, farm(tmp_path, 2) as world:
        async with running(world, slack, db_url, rules=FAST) as monitor:
            services = monitor.services
            await wait_until(lambda: len(world.polls.get("h00", [])) >= 2)
            refused = await ask(services, "U0VIEWER", 'silence deferred for=1h why="nope"')
            assert not refused.ok
            assert "operator role" in refused.reply.text
            bad = await ask(services, "U0OPERATOR", "silence deferred for=soon why=x")
            assert not bad.ok
            assert "for=" in bad.reply.text
            nothing = await ask(services, "U0OPERATOR", "silence mx9 for=1h why=x")
            assert not nothing.ok

            made = await ask(services, "U0OPERATOR", 'silence deferred for=4s why="relay swap"')
            assert made.ok, made.reply.text
            assert "Silenced rule deferred until" in made.reply.text
            async with services.sessions() as session:
                (silence,) = (await session.scalars(select(Silence))).all()
            listed = await ask(services, "U0VIEWER", "silences")
            assert listed.ok
            assert "rule deferred" in listed.reply.text
            assert utc(silence.expires_at) in listed.reply.text
            assert "relay swap" in listed.reply.text

            world.deferred["h00"] = 150  # over the warning level while silenced
            polls = len(world.polls["h00"])
            await wait_until(lambda: len(world.polls["h00"]) >= polls + 5)
            assert services.clock() < silence.expires_at
            assert slack.calls_to("chat.postMessage") == []  # nothing at all in the channel

            await wait_until(lambda: len(roots(slack)) == 1, 15)  # the silence ended
            assert services.clock() >= silence.expires_at
            root = roots(slack)[0]
            assert "h00" in root.args["text"]
            ts = slack.messages_in(CHANNEL)[0]["ts"]

            # a silence of the host is listed in its root (edited in place)
            host = await ask(services, "U0OPERATOR", 'silence h00 for=2h why="disk swap"')
            assert host.ok
            await wait_until(lambda: "disk swap" in shown(slack, ts), 10)
            assert ":mute: Silenced (host h00) until <!date^" in shown(slack, ts)
            await asyncio.sleep(0.5)
            assert len(roots(slack)) == 1
            async with services.sessions() as session:
                events = (await session.scalars(select(AuditEvent))).all()
        commands = [e.detail.get("command") for e in events if e.actor == "U0OPERATOR"]
        assert sum(1 for c in commands if c == "silence") >= 2, commands


async def test_a_silenced_grouped_rule_posts_no_group_until_it_expires(
    tmp_path: Path, db_url: str
) -> None:
    rules = FAST + "unreachable = { warning = 2, critical = 100, clear = 1 }\n"
    async with FakeSlack() as slack, farm(tmp_path, 3) as world:  # noqa: SIM117
        async with running(world, slack, db_url, rules=rules) as monitor:
            services = monitor.services
            await wait_until(lambda: len(world.polls.get("h02", [])) >= 1)
            made = await ask(services, "U0OPERATOR", 'silence unreachable for=3s why="dc move"')
            assert made.ok, made.reply.text
            async with services.sessions() as session:
                (silence,) = (await session.scalars(select(Silence))).all()
            world.down |= {"h00", "h01"}
            await asyncio.sleep(1.5)  # five polls each: both hosts well past two failures
            assert services.clock() < silence.expires_at
            assert slack.calls_to("chat.postMessage") == []
            await wait_until(lambda: len(roots(slack)) == 1, 15)
            assert services.clock() >= silence.expires_at
            ts = slack.messages_in(CHANNEL)[0]["ts"]
            await wait_until(
                lambda: "Unreachable: 2 hosts" in slack.messages[(CHANNEL, ts)]["text"]
            )
            assert "h00" in shown(slack, ts)
            assert "h01" in shown(slack, ts)
