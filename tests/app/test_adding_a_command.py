"""docs/dev/adding-a-command.md, followed: the command on that page is built from the page's
own code blocks and runs through the real pipeline against the demo hosts.

If the registry, the pipeline or the gateway change so that the walkthrough no longer
works, this fails: the page cannot drift from the code.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import commands
from bot import render
from bot.app.pipeline import handle
from bot.context import Request
from bot.inventory import Access, Grant
from helpers.demo_world import World, demo_world

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "dev" / "adding-a-command.md"
BLOCK = re.compile(
    r"^(?P<fence>`{3,})\w+ file=(?P<file>\S+)(?P<append> append)?\n(?P<code>.*?)^(?P=fence)$",
    re.S | re.M,
)
ACCESS = Access(
    team_ids=["T0LAB"],
    grants=[Grant(role="viewer", members=["U0MX1"], hosts=["mx1"])],
)


def files_from_the_page() -> dict[str, str]:
    files: dict[str, str] = {}
    for block in BLOCK.finditer(PAGE.read_text(encoding="utf-8")):
        name = block["file"]
        files[name] = files.get(name, "") + ("\n\n" if block["append"] else "") + block["code"]
    return files


@pytest.fixture
async def world(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    files = files_from_the_page()
    assert set(files) == {
        "commands/senders.py",
        "bot/render/templates/senders.blocks.j2",
        "bot/render/templates/senders.txt.j2",
    }
    templates = tmp_path / "templates"
    templates.mkdir()
    for name, text in files.items():
        if name.endswith(".j2"):
            (templates / Path(name).name).write_text(text, encoding="utf-8")
    module_path = tmp_path / "senders.py"
    module_path.write_text(files["commands/senders.py"], encoding="utf-8")
    spec = importlib.util.spec_from_file_location("commands.senders", module_path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "commands.senders", module)
    spec.loader.exec_module(module)
    # step 3: one line in COMMANDS (help last)
    monkeypatch.setattr(commands, "COMMANDS", (*commands.COMMANDS[:-1], "senders", "help"))
    monkeypatch.setattr(render, "TEMPLATES", [templates, render.TEMPLATES])
    commands.all_specs.cache_clear()
    render._envs.cache_clear()
    try:
        async with demo_world(db_url, tmp_path, ACCESS) as opened:
            yield opened
    finally:
        commands.all_specs.cache_clear()
        render._envs.cache_clear()


async def ask(world: World, text: str, user: str = "U0MX1") -> tuple[bool, str, object]:
    request = Request("slack", user, text, team_id="T0LAB", channel_id="C0OPS")
    outcome = await handle(request, world.services)
    return outcome.ok, outcome.reply.text, outcome.reply.blocks


async def test_the_walkthrough_command_runs_scoped_audited_and_in_help(world: World) -> None:
    ok, text, blocks = await ask(world, "senders mx1")
    assert ok, text
    assert text.startswith("Deferred mail on mx1 by sender domain")
    assert "sender domain" in text
    assert "messages" in text
    assert isinstance(blocks, list)
    assert blocks[0]["type"] == "header"
    ok, text, _ = await ask(world, "senders mx2")  # the caller may read mx1 only
    assert not ok
    assert "You may not run `senders` on mx2" in text
    ok, text, _ = await ask(world, "senders")  # a missing argument is a usage error
    assert not ok
    assert "/mailq senders HOST" in text
    ok, text, _ = await ask(world, "help")
    assert "/mailq senders HOST" in text
    async with world.sessions() as session:
        from sqlalchemy import select

        from bot.stores.audit import AuditEvent

        first = (await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).first()
    assert first is not None
    assert first.detail["command"] == "senders"
    assert [r["command"].split()[-1] for r in first.detail["remote"]] == ["mail_version", "-j"]
