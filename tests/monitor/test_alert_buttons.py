"""The alert's risky buttons: Flush asks first, Purge… never targets mail that will go.

Flush retries every deferred message on the host in one tap, so its button carries Slack's
confirm dialog (and the click is still authorised for whoever clicks: the dialog is UI
only). Purge… never proposes a class whose mail is delivered on its own (greylisting, rate
limits: ``DELIVERS_ON_ITS_OWN``); it proposes the next largest class, or is left out.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from bot import render
from bot.db.models import CommandRun, Incident, Silence
from bot.inventory import Access, Grant
from bot.monitor.alert import Alert
from bot.monitor.config import Budget, MonitorSection
from bot.postfix.reasons import DELIVERS_ON_ITS_OWN, ReasonClass
from helpers.fakes import FakeSlack, block_actions_body
from helpers.refusal_cases import CHANNEL, TEAM, SlackWorld, slack_world


def alert(kind: str, by_class: dict[str, int], host: str = "mx1") -> Alert:
    return Alert(
        7, host, kind, "open", "warning", 120.0, 120.0, 100.0,
        {"by_class": by_class, "error": None}, 0.0, 0.0, None, None, None, None, None, None,
    )  # fmt: skip


def rendered_buttons(an_alert: Alert) -> dict[str, dict[str, Any]]:
    blocks = render.render("alert", an_alert).blocks
    for parsed in Block.parse_all(blocks):
        assert parsed is not None
        parsed.to_dict()  # raises on any Block Kit limit (confirm: title 100, text 300, ...)
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    return {e["text"]["text"]: e for e in actions["elements"]}


@pytest.mark.parametrize("host", ["mx1", "mx-" + "a" * 200 + ".example"])
def test_flush_asks_for_confirmation_within_block_kit_limits(host: str) -> None:
    buttons = rendered_buttons(alert("deferred", {"connection_refused": 90}, host))
    flush = buttons["Flush"]
    assert flush["value"] == f"flush {host}"
    confirm = flush["confirm"]
    assert confirm["title"]["text"].startswith("Flush all deferred mail on mx")
    assert "retries every deferred message" in confirm["text"]["text"]
    assert (confirm["confirm"]["text"], confirm["deny"]["text"]) == ("Flush", "Cancel")
    assert confirm["style"] == "danger"
    assert "confirm" not in buttons["Diagnose"]  # reading needs no dialog


def test_purge_is_not_offered_for_greylisting() -> None:
    greylisting = {"greylisted": 400, "rate_limited": 120, "connection_refused": 30, "other": 5}
    buttons = rendered_buttons(alert("deferred", greylisting))
    assert buttons["Purge…"]["value"] == 'purge mx1 reason=connection_refused why="alert 7"'
    only_waiting = alert("deferred", {"greylisted": 400, "rate_limited": 120})
    assert only_waiting.purge_class is None
    assert "Purge…" not in rendered_buttons(only_waiting)
    assert alert("spike:greylisted", greylisting).purge_class is None
    assert alert("spike:rate_limited", greylisting).purge_class is None
    assert alert("spike:connection_refused", greylisting).purge_class == "connection_refused"


def test_the_classes_that_deliver_on_their_own() -> None:
    assert {ReasonClass.greylisted, ReasonClass.rate_limited} == DELIVERS_ON_ITS_OWN
    for cls in set(ReasonClass) - DELIVERS_ON_ITS_OWN:
        assert alert("deferred", {"greylisted": 900, cls.value: 1}).purge_class == cls.value


# -- the click: authorised for the person who clicks, confirm dialog or not ---------------

ACCESS = Access(
    team_ids=[TEAM],
    grants=[Grant(role="viewer", members=["U0VIEWER"]), Grant(role="operator", members=["U0OPS"])],
)


@pytest.fixture
async def world(db_url: str, tmp_path: Path) -> AsyncIterator[SlackWorld]:
    async with FakeSlack() as slack, slack_world(db_url, tmp_path, ACCESS, slack) as world:
        yield world


async def click(world: SlackWorld, button: dict[str, Any], user: str, ts: str) -> str:
    name = world.response_name()
    body = block_actions_body(
        button["action_id"], button["value"], user_id=user, team_id=TEAM, channel_id=CHANNEL,
        message_ts=ts, response_url=world.slack.response_url(name),
    )  # fmt: skip
    assert await world.post(body) == 200
    return name


def flushes(world: SlackWorld) -> list[str]:
    return [c for c in world.host_commands() if "postqueue -f" in c]


async def test_the_flush_click_is_authorised_for_the_clicker(world: SlackWorld) -> None:
    flush = rendered_buttons(alert("deferred", {"connection_refused": 90}))["Flush"]
    ts = world.slack.seed_message(CHANNEL, "WARNING mx1: Deferred messages 120")
    refusal = await world.ephemeral(await click(world, flush, "U0VIEWER", ts))
    assert "may not run `flush` on mx1" in refusal["text"]
    assert flushes(world) == []
    await click(world, flush, "U0OPS", ts)
    await world.slack.wait_for("chat.update", timeout=20, predicate=lambda c: "blocks" in c.args)
    assert len(flushes(world)) == 1
    rows = await world.audit_rows()
    assert [(r.actor, r.action) for r in rows] == [
        ("U0VIEWER", "command.denied"),
        ("U0OPS", "remote.intent"),  # committed before postqueue -f ran
        ("U0OPS", "remote.outcome"),
        ("U0OPS", "command.ok"),
    ]


async def _open_incident(world: SlackWorld, kind: str = "deferred") -> int:
    async with world.sessions() as session, session.begin():
        row = Incident(host="mx1", kind=kind, open_key=f"mx1|{kind}", state="open",
                       severity="warning", value=120, peak=120, threshold=100,
                       detail={"error": None}, opened_at=1.0, updated_at=1.0,
                       created_by="test", channel_id=CHANNEL, root_ts="1.0")  # fmt: skip
        session.add(row)
    return row.id


@pytest.mark.parametrize("action_id", ["mailq_alert_ack", "mailq_alert_snooze"])
async def test_a_refused_acknowledge_or_snooze_is_recorded_like_a_command(
    world: SlackWorld, action_id: str
) -> None:
    """Before, these refusals left no record at all, and their identity had no channel."""
    incident = await _open_incident(world)
    button = {"action_id": action_id, "value": str(incident)}
    refusal = await world.ephemeral(await click(world, button, "U0VIEWER", "1.0"))
    assert "may not snooze or acknowledge alerts on mx1" in refusal["text"]
    (row,) = await world.audit_rows()
    verb = "acknowledge" if action_id == "mailq_alert_ack" else "snooze"
    assert (row.actor, row.action, row.team_id) == ("U0VIEWER", "command.denied", TEAM)
    assert row.detail["command"] == verb
    assert row.detail["channel_id"] == CHANNEL
    assert row.detail["text"] == f"{verb} incident {incident}"
    async with world.sessions() as session:
        (run,) = (await session.scalars(select(CommandRun))).all()
    assert (run.command, run.outcome, run.channel_id) == (verb, "denied", CHANNEL)


async def test_snooze_is_a_silence_of_the_incident(world: SlackWorld) -> None:
    """Snooze 1h makes a silence of that one incident (audited with it), listed in its root
    and by ``/mailq silences``; the monitor posts nothing about it until it ends."""
    incident = await _open_incident(world)
    ts = world.slack.seed_message(CHANNEL, "WARNING mx1: Deferred messages 120")
    async with world.sessions() as session, session.begin():
        (await session.get(Incident, incident)).root_ts = ts  # type: ignore[union-attr]
    button = {"action_id": "mailq_alert_snooze", "value": str(incident)}
    await click(world, button, "U0OPS", ts)
    (update,) = await world.slack.wait_for("chat.update", timeout=20)
    assert f"Silenced (incident {incident}) until" in json.dumps(update.args["blocks"])
    async with world.sessions() as session:
        (silence,) = (await session.scalars(select(Silence))).all()
    assert (silence.target_kind, silence.target, silence.created_by) == (
        "incident",
        str(incident),
        "U0OPS",
    )
    assert silence.expires_at - silence.created_at == 3600
    (row,) = [r for r in await world.audit_rows() if r.action == "incident.snoozed"]
    assert row.detail["silence"] == silence.id


async def test_acknowledge_notes_keep_to_the_alert_channel_budget(
    db_url: str, tmp_path: Path
) -> None:
    """Acknowledge's note in the thread is a post like any alert post: it takes a token of
    the channel's budget (here one every 2 s), waits for it rather than being dropped, and
    is counted; three quick clicks make three notes, 2 s apart, not a burst."""
    monitor = MonitorSection(budget=Budget(per_minute=30, burst=1, gap=1, edit_gap=0))
    async with (
        FakeSlack() as slack,
        slack_world(db_url, tmp_path, ACCESS, slack, monitor=monitor) as world,
    ):
        incidents = [await _open_incident(world, kind) for kind in ("a", "b", "c")]
        for incident in incidents:
            button = {"action_id": "mailq_alert_ack", "value": str(incident)}
            await click(world, button, "U0OPS", "1.0")

        def note(call: Any) -> bool:
            return call.args.get("thread_ts") == "1.0"

        notes = await slack.wait_for("chat.postMessage", 3, timeout=20, predicate=note)
        assert ["Acknowledged by U0OPS" in str(n.args["text"]) for n in notes] == [True] * 3
        gaps = [b.time - a.time for a, b in itertools.pairwise(notes)]
        assert min(gaps) >= 1.8, gaps  # one token per 2 s, not three posts at once
