"""Hostile text in every argument of the read commands is refused through Slack: a clear
ephemeral reply, one audit row, nothing posted, and no command line reaches any host.

Free-text filter values (``reason=``) are data: they may run, but the host receives only
the fixed command lines that a harmless search sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.inventory import Access, Grant
from helpers.fakes import Call, FakeSlack
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
ACCESS = Access(
    team_ids=[TEAM],
    grants=[Grant(role="viewer", members=["U0VIEWER"]), Grant(role="admin", members=["U0ADMIN"])],
)
TEMPLATES = {
    "summary": ["summary {X}"],
    "show": ["show {X} " + QID, "show mx1 {X}", f"show mx1 {QID} {{X}}"],
    "list": [
        "list {X}", "list mx1 {X}", "list mx1 {X}=1", "list mx1 domain={X}",
        "list mx1 sender={X}", "list mx1 queue={X}", "list mx1 id={X}", "list mx1 older={X}",
        "list mx1 newer={X}", "list mx1 limit={X}", "list mx1 offset={X}",
    ],
    "log": ["log {X}", "log mx1 {X}", "log mx1 since={X}"],
    "audit": ["audit {X}", "audit mx1 {X}", "audit mx1 since={X}", "audit mx1 limit={X}"],
    "help": ["help {X}"],
}  # fmt: skip


@pytest.fixture
async def world(db_url: str, tmp_path: Path, slack: FakeSlack) -> AsyncIterator[SlackWorld]:
    async with slack_world(db_url, tmp_path, ACCESS, slack) as world:
        yield world


# Look-alike and invisible letters in a domain are valid IDNA (UTS 46 maps fullwidth
# letters and drops zero-width spaces; a Cyrillic "х" is a letter like any other), and the
# Slack front end drops NUL (PostgreSQL cannot store it), leaving `mx1id`: the filter compares
# these locally, so they run, and the host receives only fixed command lines.
AS_DATA = {
    ("list mx1 domain={X}", name)
    for name in ("cyrillic-homoglyph", "fullwidth", "zero-width", "nul")
}


def is_finished(call: Call) -> bool:
    return "blocks" in call.args


async def expect_data(world: SlackWorld, text: str, baseline: set[str] | None) -> None:
    finished = len([c for c in world.slack.calls_to("chat.update") if is_finished(c)])
    before = len(world.host_commands())
    await world.slash(text, user="U0VIEWER")
    await world.slack.wait_for("chat.update", finished + 1, timeout=30, predicate=is_finished)
    if baseline is not None:
        assert set(world.host_commands()[before:]) <= baseline, text


@pytest.mark.parametrize("command", sorted(TEMPLATES))
async def test_injection_in_every_argument_is_refused(world: SlackWorld, command: str) -> None:
    user = "U0ADMIN" if command == "audit" else "U0VIEWER"
    baseline: set[str] = set()
    if command == "list":
        await expect_data(world, "list mx1 domain=example.com", None)
        baseline = set(world.host_commands())
    refused = 0
    for template in TEMPLATES[command]:
        for (name, _token), case in zip(INJECTIONS, injected(template), strict=True):
            if (template, name) in AS_DATA:
                await expect_data(world, case.text, baseline)
                continue
            await expect_refused(world, Case(f"{case.id} in {case.text[:40]!r}", case.text), user)
            refused += 1
    assert refused == len(TEMPLATES[command]) * len(INJECTIONS) - (
        len(AS_DATA) if command == "list" else 0
    )
    assert set(world.host_commands()) == baseline


@pytest.mark.parametrize(("user", "team"), [("U0NOBODY", TEAM), ("U0VIEWER", "T0ELSEWHERE")])
async def test_unauthorised_injection_is_refused_before_parsing_hosts(
    world: SlackWorld, user: str, team: str
) -> None:
    for case in [*injected("summary {X}")[:6], Case("plain", "summary mx1")]:
        await expect_refused(world, case, user, team_id=team)
    assert world.host_commands() == []


async def test_free_text_filter_stays_data(world: SlackWorld) -> None:
    """``reason=`` searches queue text; hostile text is searched for, never sent to a host."""
    await world.slash("list mx1 reason=greylisted", user="U0VIEWER")
    await world.slack.wait_for("chat.update", timeout=30, predicate=lambda c: "blocks" in c.args)
    baseline = set(world.host_commands())
    assert any(line.endswith("postqueue -j") for line in baseline)
    ran = 1
    for name, token in INJECTIONS:
        if len(token) > 500 or "'" in token or '"' in token or any(c in token for c in "\n\r "):
            continue  # refused before running: too long, or split into several words
        ran += 1
        await world.slash(f"list mx1 reason={token}", user="U0VIEWER")
        await world.slack.wait_for(
            "chat.update", ran, timeout=30, predicate=lambda c: "blocks" in c.args
        )
        assert set(world.host_commands()) == baseline, name
    assert ran > 10
