"""The pipeline on demo hosts (real in-process SSH servers) and a real database.

Every request leaves exactly one command_runs row and one audit event, refusals included,
and a refused request never reaches a host.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.app.pipeline import handle
from bot.context import Request
from bot.db.models import AuditEvent, CommandRun
from bot.inventory import Access, Grant, Inventory
from bot.stores import audit
from helpers.demo_world import World, demo_world

TEAM = "T0LAB"
ACCESS = Access(
    team_ids=[TEAM],
    grants=[
        Grant(role="viewer", members=["U0VIEWER"]),
        Grant(role="viewer", members=["U0EDGE"], hosts=["edge"]),
        Grant(role="viewer", members=["S0OPS"]),
    ],
)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[World]:
    async with demo_world(db_url, tmp_path, ACCESS) as world:
        yield world


def slack(text: str, user: str = "U0VIEWER", team: str = TEAM) -> Request:
    return Request(source="slack", user_id=user, team_id=team, channel_id="C1", text=text)


async def rows(world: World) -> tuple[list[CommandRun], list[AuditEvent]]:
    async with world.sessions() as session:
        runs = list((await session.scalars(select(CommandRun).order_by(CommandRun.id))).all())
        events = list((await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all())
    return runs, events


async def test_summary_runs_and_is_audited_once(world: World) -> None:
    outcome = await handle(slack("summary mx1"), world.services)
    assert outcome.ok
    assert "Queue on mx1" in outcome.reply.text
    runs, events = await rows(world)
    assert [(r.command, r.outcome, r.target) for r in runs] == [("summary", "ok", "mx1")]
    assert [(e.action, e.actor, e.host) for e in events] == [("command.ok", "U0VIEWER", "mx1")]
    assert events[0].request_id == runs[0].request_id == outcome.request_id
    fingerprint = world.demo.servers["mx1"].host_key_fingerprint()
    assert {r["host_key"] for r in events[0].detail["remote"]} == {fingerprint}  # type: ignore[index]


@pytest.mark.parametrize(
    ("request_", "outcome", "says"),
    [
        (slack("summary mx1", user="U0STRANGER"), "denied", "may not run `summary` on mx1"),
        (slack("summary mx1", team="T0OTHER"), "denied", "may not run"),
        (slack("summary relay1", user="U0EDGE"), "denied", "on relay1"),
        (slack("summary mx9"), "refused", "Known hosts: mx1, mx2, relay1"),
        (slack("summary"), "refused", "required: HOST"),
        (slack("summary mx1 extra"), "refused", "unrecognized arguments"),
        (slack("frobnicate mx1"), "refused", "Unknown command `frobnicate`"),
        (slack("summary 'mx1"), "refused", "Check your quotes"),
        (slack("summary mx1;reboot"), "refused", "Unknown host `mx1;reboot`"),
    ],
    ids=[
        "no-grant",
        "other-team",
        "host-outside-grant",
        "unknown-host",
        "missing-arg",
        "extra-arg",
        "unknown-command",
        "bad-quotes",
        "injection",
    ],
)
async def test_refusals_are_clear_audited_and_touch_no_host(
    world: World, request_: Request, outcome: str, says: str
) -> None:
    result = await handle(request_, world.services)
    assert not result.ok
    assert says in result.reply.text
    runs, events = await rows(world)
    assert [r.outcome for r in runs] == [outcome]
    assert [e.action for e in events] == [f"command.{outcome}"]
    assert all(server.commands == [] for server in world.demo.servers.values())


async def test_group_grant_applies_through_slack_user_groups(world: World) -> None:
    async def groups_of(user_id: str) -> frozenset[str]:
        return frozenset({"S0OPS"}) if user_id == "U0INGROUP" else frozenset()

    world.services = replace(world.services, groups_of=groups_of)
    assert (await handle(slack("summary mx2", user="U0INGROUP"), world.services)).ok
    assert not (await handle(slack("summary mx2", user="U0NOTIN"), world.services)).ok


async def test_help_lists_only_what_the_caller_may_run(world: World) -> None:
    viewer = await handle(slack("help"), world.services)
    assert "/mailq summary HOST" in viewer.reply.text
    stranger = await handle(slack("help", user="U0STRANGER"), world.services)
    assert not stranger.ok


async def test_unreachable_host_is_an_audited_error(world: World) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    config = world.services.inventory.config
    hosts = [
        h.model_copy(update={"port": closed_port}) if h.name == "mx2" else h for h in config.hosts
    ]
    world.services = replace(
        world.services, inventory=Inventory(config.model_copy(update={"hosts": hosts}))
    )
    result = await handle(slack("summary mx2"), world.services)
    assert not result.ok
    assert "cannot reach mx2" in result.reply.text
    assert (await handle(slack("summary mx1"), world.services)).ok  # others unaffected
    runs, _ = await rows(world)
    assert [r.outcome for r in runs] == ["error", "ok"]


async def test_audit_failure_withholds_the_answer(world: World, db_url: str) -> None:
    async with world.sessions() as session, session.begin():
        await session.execute(AuditEvent.__table__.delete())  # type: ignore[attr-defined]
    await world.services.sessions.kw["bind"].dispose()
    world.services.sessions.kw["bind"] = _broken_engine()
    result = await handle(slack("summary mx1"), world.services)
    assert not result.ok
    assert "result is withheld" in result.reply.text
    assert (await audit.verify(world.sessions)).rows == 0


def _broken_engine():  # type: ignore[no-untyped-def]
    from bot.db.session import make_engine

    return make_engine("postgresql+asyncpg://nobody@127.0.0.1:1/none")
