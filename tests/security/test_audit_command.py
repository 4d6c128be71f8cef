"""``/mailq audit``: admins read the newest events of the hosts they administer; hostile
text recorded in the trail is shown escaped; more events than fit go into a file."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.inventory import Access, Grant
from commands.audit import SHOWN
from helpers.fakes import FakeSlack
from helpers.refusal_cases import CHANNEL, TEAM, SlackWorld, slack_world

ACCESS = Access(
    team_ids=[TEAM],
    grants=[Grant(role="viewer", members=["U0VIEWER"]), Grant(role="admin", members=["U0ADMIN"])],
)


@pytest.fixture
async def world(db_url: str, tmp_path: Path, slack: FakeSlack) -> AsyncIterator[SlackWorld]:
    async with slack_world(db_url, tmp_path, ACCESS, slack) as world:
        yield world


def finals(world: SlackWorld) -> list[dict[str, object]]:
    return [c.args for c in world.slack.calls_to("chat.update") if "blocks" in c.args]


async def run(world: SlackWorld, text: str, user: str = "U0ADMIN") -> dict[str, object]:
    before = len(finals(world))
    await world.slash(text, user=user)
    await world.slack.wait_for(
        "chat.update", before + 1, timeout=30, predicate=lambda c: "blocks" in c.args
    )
    return finals(world)[-1]


async def refused(world: SlackWorld, text: str, user: str = "U0VIEWER") -> str:
    reply = await world.ephemeral(await world.slash(text, user=user))
    return str(reply["text"])


async def test_admin_reads_the_trail_by_host(world: SlackWorld) -> None:
    await run(world, "summary mx1", "U0VIEWER")
    await run(world, "summary mx2", "U0VIEWER")
    await refused(world, "summary <!channel>")
    await refused(world, "audit")  # a viewer may not read the trail
    result = await run(world, "audit mx1 since=1h")
    table = str(result["blocks"][2]["text"]["text"])  # type: ignore[index]
    assert "summary mx1" in table
    assert "summary mx2" not in table
    assert result["text"].startswith("Audit trail on mx1, last 1h: 1 event")  # type: ignore[union-attr]

    everything = await run(world, "audit")
    table = str(everything["blocks"][2]["text"]["text"])  # type: ignore[index]
    assert "command.denied" in table
    assert "U0VIEWER" in table
    assert "&lt;!channel&gt;" in table
    assert "<!channel>" not in json.dumps(everything["blocks"])
    assert "5 events" in str(everything["text"])  # 2 runs, 2 refusals, the first audit
    assert world.slack.files == {}  # fits in the message


async def test_more_than_fit_go_into_a_file(world: SlackWorld) -> None:
    for _ in range(SHOWN + 5):
        await refused(world, "summary nowhere")
    await run(world, "audit limit=18")
    await world.slack.wait_for("files.completeUploadExternal", timeout=10)
    (file,) = world.slack.files.values()
    assert file.filename.startswith("mailq-audit-all-")
    assert file.content is not None
    lines = file.content.decode().splitlines()
    rows = [line for line in lines if "command.refused" in line]
    assert len(rows) == 18  # the newest 18 of the 20 refusals
    assert file.thread_ts is not None
    assert file.channel == CHANNEL


async def test_bad_options_are_usage_errors(world: SlackWorld) -> None:
    assert "give a duration" in await refused(world, "audit since=forever", "U0ADMIN")
    assert "from 1 to 1,000" in await refused(world, "audit limit=0", "U0ADMIN")
    assert "options are since= and limit=" in await refused(world, "audit mx1 order=asc", "U0ADMIN")
    assert "Unknown host `nowhere`" in await refused(world, "audit nowhere", "U0ADMIN")
