"""A stop waits for the listeners Bolt runs after their ack, then cancels the stragglers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from slack_bolt.util.utils import get_arg_names_of_callable

from bot.inventory import Access, Grant
from bot.slack.running import Running, is_tracked
from helpers.fakes import FakeSlack
from helpers.refusal_cases import TEAM, slack_world


async def test_a_stop_lets_an_acked_command_finish() -> None:
    running, finished = Running(), asyncio.Event()

    async def listener() -> None:  # what on_mailq does after its ack
        running.track()
        await asyncio.sleep(0.2)
        finished.set()

    task = asyncio.ensure_future(listener())  # as Bolt starts it: nobody keeps the task
    await asyncio.sleep(0)
    assert running.tasks == {task}
    await running.drain()
    assert finished.is_set()
    assert running.tasks == set()


async def test_a_stop_cancels_what_outlasts_its_grace() -> None:
    running, cancelled = Running(), asyncio.Event()

    async def listener() -> None:
        running.track()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = asyncio.ensure_future(listener())
    await asyncio.sleep(0)
    await asyncio.wait_for(running.drain(grace=0.1), 5)
    assert cancelled.is_set()
    assert task.cancelled()


async def test_nothing_running_returns_at_once() -> None:
    await asyncio.wait_for(Running().drain(), 0.5)


async def test_every_listener_of_the_app_is_tracked(db_url: str, tmp_path: Path) -> None:
    """Each listener the app registers is ``tracked`` (a new one cannot be forgotten), and
    Bolt still finds its parameters through the wrapper."""
    access = Access(team_ids=[TEAM], grants=[Grant(role="viewer", members=["U0VIEWER"])])
    async with FakeSlack() as slack, slack_world(db_url, tmp_path, access, slack) as world:
        listeners = world.app._async_listeners  # Bolt keeps no public list
        assert len(listeners) >= 4  # /mailq, the run buttons, Acknowledge, Snooze
        for listener in listeners:
            assert is_tracked(listener.ack_function), listener.ack_function
            assert "ack" in get_arg_names_of_callable(listener.ack_function)
