"""Host scope by construction: every command that reaches a host is checked against the
caller's hosts, and approvals use the same full check as commands.

Before: a command was scoped only when its author set a flag and named its argument
``target``; approvals ignored channel-limited grants; ``plans`` listed every host's plans.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import commands
from bot.app.pipeline import Outcome, handle
from bot.app.registry import Argument, CommandSpec, HostArg
from bot.context import Context, Identity, Request
from bot.errors import PermissionDenied
from bot.inventory import Access, Grant
from bot.postfix import tools
from helpers.demo_world import World, demo_world

TEAM = "T0LAB"
OPS, ELSEWHERE = "C0OPS", "C0OTHER"
ACCESS = Access(
    team_ids=[TEAM],
    grants=[
        # U0ONE may do everything, but only on mx1
        Grant(role="admin", members=["U0ONE"], hosts=["mx1"]),
        Grant(role="operator", members=["U0ASKER"]),
        # U0CHAN approves any host, but only in the ops channel; elsewhere U0CHAN is admin
        # of relay1 only (which let U0CHAN approve mx2's plans from there before)
        Grant(role="approver", members=["U0CHAN"], channels=[OPS]),
        Grant(role="admin", members=["U0CHAN"], hosts=["relay1"], channels=[ELSEWHERE]),
        # U0LIMITED is admin only on relay1, and only in the ops channel
        Grant(role="admin", members=["U0LIMITED"], hosts=["relay1"], channels=[OPS]),
        Grant(role="viewer", members=["U0LIMITED"]),
        Grant(role="admin", members=["U0ADMIN"]),
    ],
)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with demo_world(db_url, tmp_path, ACCESS) as world:
        yield world


async def ask(world: World, user: str, text: str, channel: str = OPS) -> Outcome:
    request = Request("slack", user, text, team_id=TEAM, channel_id=channel)
    return await handle(request, world.services)


def commands_on(world: World, host: str) -> int:
    return len(world.demo.servers[host].commands)


def examples_on(host: str) -> list[str]:
    """Every help example of every command, aimed at ``host`` instead of mx1."""
    found = []
    for spec in commands.all_specs():
        for example in spec.examples:
            text = example.removeprefix("/mailq ")
            found.append(re.sub(r"\bmx1\b", host, text))
    return found


async def test_no_command_reaches_a_host_outside_the_callers_hosts(world: World) -> None:
    """Every example of every command in the registry, run by a user who holds every
    permission on mx1 only, aimed at mx2: none reaches mx2, each is refused."""
    for text in examples_on("mx2"):
        before = commands_on(world, "mx2")
        outcome = await ask(world, "U0ONE", text)
        assert commands_on(world, "mx2") == before, f"`{text}` reached mx2"
        if re.search(r"\bmx2\b|\ball\b|\bedge\b", text):
            assert not outcome.ok, f"`{text}` was not refused: {outcome.reply.text[:200]}"
    # the same user on mx1 is served (the scope is the grant, not a blanket refusal)
    assert (await ask(world, "U0ONE", "summary mx1")).ok
    assert commands_on(world, "mx1") > 0


async def test_the_gateway_refuses_a_host_no_argument_named() -> None:
    """A command that reaches a host its arguments do not name still cannot: the request's
    gateway checks every call."""
    with pytest.raises(ValueError, match="names a host but is not a HostArg"):
        CommandSpec("bad", "", "read", "summary", (), _words, _sneaky,
                    arguments=(Argument("where", help="", metavar="HOST"),))  # fmt: skip
    spec = CommandSpec("sneaky", "", "read", "summary", (), _words, _sneaky,
                       arguments=(HostArg("target", help="", metavar="HOST"),))  # fmt: skip
    assert spec.host_args
    assert spec.host_args[0].name == "target"


def _words(ns: argparse.Namespace) -> argparse.Namespace:
    return ns


async def _sneaky(args: argparse.Namespace, ctx: Context) -> object:
    host = ctx.services.inventory.get("mx2")  # not the host its argument named
    return await ctx.remote.run(host, tools.postconf_version())


async def test_a_sneaky_command_is_stopped_at_the_gateway(world: World) -> None:
    request = Request("slack", "U0ONE", "sneaky mx1", team_id=TEAM, channel_id=OPS)
    ctx = Context(world.services, request, Identity.of(request))
    before = commands_on(world, "mx2")
    with pytest.raises(PermissionDenied, match="You may not use mx2"):
        await _sneaky(argparse.Namespace(target="mx1"), ctx)
    assert commands_on(world, "mx2") == before


async def plan_on(world: World, host: str) -> str:
    outcome = await ask(world, "U0ASKER", f"purge {host} domain=bank.example why=INC-5")
    if not outcome.ok or "Plan" not in outcome.reply.text:
        outcome = await ask(world, "U0ASKER", f"purge {host} domain=gmail.example why=INC-5")
    found = re.search(r"Plan (p[0-9a-f]{10})", outcome.reply.text)
    assert found is not None, outcome.reply.text
    return found[1]


async def test_an_approver_limited_to_a_channel_cannot_approve_elsewhere(world: World) -> None:
    plan = await plan_on(world, "mx2")
    refused = await ask(world, "U0CHAN", f"approve {plan}", channel=ELSEWHERE)
    assert not refused.ok
    assert "You may not approve plans here on mx2" in refused.reply.text
    assert "Deleted" not in (await ask(world, "U0ADMIN", "plans mx2")).reply.text
    approved = await ask(world, "U0CHAN", f"approve {plan}", channel=OPS)
    assert approved.ok, approved.reply.text


async def test_a_channel_limited_admin_of_another_host_cannot_approve(world: World) -> None:
    plan = await plan_on(world, "mx2")
    for channel in (OPS, ELSEWHERE):
        refused = await ask(world, "U0LIMITED", f"approve {plan}", channel=channel)
        assert not refused.ok, channel
        assert "You may not" in refused.reply.text
        assert "approve" in refused.reply.text
        denied = await ask(world, "U0LIMITED", f"deny {plan}", channel=channel)
        assert not denied.ok, channel


async def test_plans_lists_only_hosts_the_caller_may_read(world: World) -> None:
    on_mx2 = await plan_on(world, "mx2")
    listed = (await ask(world, "U0ONE", "plans")).reply.text
    assert on_mx2 not in listed
    assert on_mx2 in (await ask(world, "U0ADMIN", "plans")).reply.text
    refused = await ask(world, "U0ONE", "plans mx2")
    assert not refused.ok
    assert "You may not" in refused.reply.text


async def test_refusals_are_denied_events_with_the_callers_identity(world: World) -> None:
    """A viewer asking for a body, an approval refused for the plan's host: each is one
    ``command.denied`` event (they were ``command.error`` before)."""
    plan = await plan_on(world, "mx2")
    await ask(world, "U0LIMITED", f"approve {plan}")
    await ask(world, "U0LIMITED", "show mx2 ABCDEF1234 body")
    async with world.sessions() as session:
        from sqlalchemy import select

        from bot.db.models import AuditEvent

        rows = (
            await session.scalars(select(AuditEvent).where(AuditEvent.actor == "U0LIMITED"))
        ).all()
    assert [(r.action, r.detail["channel_id"]) for r in rows] == [
        ("command.denied", OPS),
        ("command.denied", OPS),
    ]
