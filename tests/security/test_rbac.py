"""Access control through Slack's real request format: deny by default, our team only,
grants limited to channels, guests read-only (looked up with users.info, failing closed),
help lists only what the caller may run, and a button re-checks the clicker's role."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import commands
from bot.auth import ROLE_PERMISSIONS
from bot.inventory import Access, Grant, Inventory
from helpers.fakes import FakeSlack
from helpers.refusal_cases import CHANNEL, TEAM, Case, SlackWorld, expect_refused, slack_world

OPS = "C0OPS"
ACCESS = Access(
    team_ids=[TEAM],
    grants=[
        Grant(role="viewer", members=["U0VIEWER", "U0LOSER", "U0GUEST", "U0ULTRA"]),
        Grant(role="admin", members=["U0ADMIN", "U0GUEST", "U0ULTRA", "U0LOOKUP"]),
        Grant(role="viewer", members=["U0OPSONLY"], channels=[OPS]),
        Grant(role="admin", members=["U0OPSADMIN"], channels=[OPS]),
        Grant(role="admin", members=["U0MX1ADMIN"], hosts=["mx1"]),
    ],
)


@pytest.fixture
async def world(db_url: str, tmp_path: Path, slack: FakeSlack) -> AsyncIterator[SlackWorld]:
    slack.users["U0GUEST"] = {"is_restricted": True}
    slack.users["U0ULTRA"] = {"is_ultra_restricted": True}
    async with slack_world(db_url, tmp_path, ACCESS, slack) as world:
        yield world


def final(call: object) -> bool:
    return "blocks" in getattr(call, "args", {})


async def run_ok(world: SlackWorld, text: str, user: str, **options: str) -> str:
    """Post a command that must run; return the text of the result."""
    before = len([c for c in world.slack.calls_to("chat.update") if final(c)])
    await world.slash(text, user=user, **options)
    updates = await world.slack.wait_for("chat.update", before + 1, timeout=30, predicate=final)
    return str(updates[-1].args["text"])


async def help_names(world: SlackWorld, user: str, channel: str = CHANNEL) -> set[str]:
    text = await run_ok(world, "help", user, channel_id=channel)
    (update,) = [c for c in world.slack.calls_to("chat.update") if c.args["text"] == text][-1:]
    blocks = str(update.args["blocks"])
    return set(re.findall(r"`/mailq (\w+)", blocks))


def may(role_permissions: set[str]) -> set[str]:
    return {s.name for s in commands.all_specs() if s.permission in role_permissions}


@pytest.mark.parametrize(
    ("user", "team", "says"),
    [
        ("U0NOBODY", TEAM, "may not run `summary` on mx1"),
        ("U0VIEWER", "T0OTHER", "may not run `summary`"),
        ("U0OPSONLY", TEAM, "may not run `summary`"),  # granted in C0OPS, asked in C0LAB
    ],
    ids=["no-grant", "other-team", "other-channel"],
)
async def test_refused(world: SlackWorld, user: str, team: str, says: str) -> None:
    await expect_refused(world, Case("summary", "summary mx1"), user, says, team_id=team)


async def test_channel_grant_holds_in_its_channel(world: SlackWorld) -> None:
    assert "Queue on mx1" in await run_ok(world, "summary mx1", "U0OPSONLY", channel_id=OPS)
    assert "Audit trail on all" in await run_ok(world, "audit", "U0OPSADMIN", channel_id=OPS)
    await expect_refused(world, Case("audit", "audit"), "U0OPSADMIN", "may not run `audit`")


async def test_guests_may_only_read(world: SlackWorld) -> None:
    """Both guests hold an admin grant; Slack says they are guests, so they only read."""
    for guest in ("U0GUEST", "U0ULTRA"):
        await expect_refused(world, Case("audit", "audit"), guest, "may not run `audit`")
        assert "Queue on mx1" in await run_ok(world, "summary mx1", guest)
        assert await help_names(world, guest) == may({"read"})
    assert "Audit trail on all" in await run_ok(world, "audit", "U0ADMIN")


async def test_failed_lookup_counts_as_guest(world: SlackWorld) -> None:
    world.slack.fail_next("users.info", status=200, error="user_not_found")
    await expect_refused(world, Case("audit", "audit"), "U0LOOKUP", "may not run `audit`")
    assert "Audit trail on all" in await run_ok(world, "audit", "U0LOOKUP")  # Slack answers


async def test_help_lists_only_what_the_caller_may_run(world: SlackWorld) -> None:
    assert await help_names(world, "U0VIEWER") == may(set(ROLE_PERMISSIONS["viewer"]))
    assert await help_names(world, "U0ADMIN") == may(set(ROLE_PERMISSIONS["admin"]))
    assert "audit" in may(set(ROLE_PERMISSIONS["admin"]))
    assert await help_names(world, "U0OPSADMIN", OPS) == may(set(ROLE_PERMISSIONS["admin"]))
    # Outside C0OPS no grant holds, so even help is refused (deny by default).
    await expect_refused(world, Case("help", "help"), "U0OPSADMIN", "may not run `help`")


async def test_host_scoped_admin_reads_only_their_hosts_trail(world: SlackWorld) -> None:
    assert "Audit trail on mx1" in await run_ok(world, "audit mx1", "U0MX1ADMIN")
    for text in ("audit", "audit mx2", "audit edge", "audit all since=7d"):
        await expect_refused(world, Case("audit", text), "U0MX1ADMIN", "may not run `audit`")


async def test_a_click_is_checked_against_the_clickers_role_now(world: SlackWorld) -> None:
    """U0LOSER lists a queue (a Next button); loses the role; clicks Next: refused."""
    await run_ok(world, "list mx1 limit=5", "U0LOSER")
    update = [c for c in world.slack.calls_to("chat.update") if final(c)][-1]
    (button,) = [
        e
        for b in update.args["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == "mailq_run_replace"
    ]
    assert button["value"].startswith("list mx1")
    config = world.services.inventory.config
    grants = [g for g in ACCESS.grants if "U0LOSER" not in g.members]
    access = ACCESS.model_copy(update={"grants": grants})
    world.live.update(inventory=Inventory(config.model_copy(update={"access": access})))

    rows, commands_before = len(await world.audit_rows()), len(world.host_commands())
    updates_before = len(world.slack.calls_to("chat.update"))
    name = await world.click(button["value"], "U0LOSER", str(update.args["ts"]))
    reply = await world.ephemeral(name)
    assert "may not run `list`" in reply["text"]
    events = await world.audit_rows()
    assert [(e.action, e.actor) for e in events[rows:]] == [("command.denied", "U0LOSER")]
    assert len(world.host_commands()) == commands_before
    assert len(world.slack.calls_to("chat.update")) == updates_before  # message untouched
