"""A stop waits for the listeners Bolt runs after their ack, then cancels the stragglers."""

from __future__ import annotations

import asyncio

from bot.slack.running import Running


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
