"""Hostile text in every argument of the queue-changing commands is refused through Slack:
a clear ephemeral reply, one audit row, nothing posted, and nothing runs on any host.

Look-alike letters in a domain are valid IDNA (see test_refusals.py): such a filter only
lists the queue (read-only) and matches nothing, so it is data, not a refusal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.inventory import Access, Grant
from helpers.fakes import FakeSlack
from helpers.refusal_cases import (
    INJECTIONS,
    TEAM,
    Case,
    SlackWorld,
    expect_refused,
    injected,
    slack_world,
)

QID = "ABCDEF12345"
ACCESS = Access(team_ids=[TEAM], grants=[Grant(role="admin", members=["U0ADMIN"])])
TEMPLATES = {
    "purge": [
        "purge {X} id=" + QID + " why=x", "purge mx1 {X} why=x", "purge mx1 id={X} why=x",
        "purge mx1 sender={X} why=x", "purge mx1 queue={X} why=x", "purge mx1 older={X} why=x",
        "purge mx1 ALL {X} why=x", "purge mx1 {X}=1 why=x",
    ],
    "flush": ["flush {X}", "flush mx1 {X}", "flush mx1 id={X}"],
    "hold": ["hold {X} " + QID, "hold mx1 {X}", "hold mx1 queue={X}"],
    "release": ["release mx1 {X}", "release mx1 newer={X}"],
    "requeue": ["requeue mx1 {X}", "requeue mx1 id={X}"],
    "approve": ["approve {X}"],
    "deny": ["deny {X}"],
}  # fmt: skip


@pytest.fixture
async def world(db_url: str, tmp_path: Path, slack: FakeSlack) -> AsyncIterator[SlackWorld]:
    async with slack_world(db_url, tmp_path, ACCESS, slack) as world:
        yield world


@pytest.mark.parametrize("command", sorted(TEMPLATES))
async def test_injection_in_every_action_argument_is_refused(
    world: SlackWorld, command: str
) -> None:
    refused = 0
    for template in TEMPLATES[command]:
        for (name, _token), case in zip(INJECTIONS, injected(template), strict=True):
            if name == "double-dash" and template.startswith(("approve", "deny")):
                continue  # "--" ends the options; what follows is checked like any plan id
            await expect_refused(
                world, Case(f"{case.id} in {case.text[:40]!r}", case.text), "U0ADMIN"
            )
            refused += 1
    assert refused >= len(TEMPLATES[command]) * (len(INJECTIONS) - 1)
    assert world.host_commands() == []


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("purge mx1 domain=example.com", "why="),
        ("purge mx1 why=x", "Name queue IDs or a filter"),
        ("purge mx1 ALL why=x", "ALL deferred"),
        ("purge edge domain=example.com why=x", "one host"),
        ("release mx1 queue=deferred", "hold"),
        ("approve p0000000000", "There is no plan"),
    ],
)
async def test_mistakes_get_a_clear_next_step(world: SlackWorld, text: str, says: str) -> None:
    if text.startswith(("approve", "purge edge")):
        reply = await world.ephemeral(await world.slash(text, user="U0ADMIN"))
        assert says in str(reply.get("text"))
    else:
        await expect_refused(world, Case(text, text), "U0ADMIN", says=says)
    assert world.host_commands() == []


@pytest.mark.parametrize(
    ("user", "team"),
    [("U0NOBODY", TEAM), ("U0ADMIN", "T0ELSEWHERE")],
    ids=["no-grant", "other-team"],
)
@pytest.mark.parametrize(
    "text",
    [
        'purge mx1 domain=example.com why="x"',
        "hold mx1 ABCDEF12345",
        "flush mx1",
        "approve p0000000000",
    ],
)
async def test_unauthorised_or_foreign_team_is_refused(
    world: SlackWorld, user: str, team: str, text: str
) -> None:
    await expect_refused(world, Case(text, text), user, says="You may not run", team_id=team)
    assert world.host_commands() == []
