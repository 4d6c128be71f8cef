"""The listener bodies Bolt runs after their ack, kept so that a stop lets them finish.

Bolt (``process_before_response=False``, so that a slow command never delays its ack) runs
each listener in a task of its own and keeps no hold on it: once the ack is sent, nothing
waits for the command that follows. ``serve`` drains these tasks before it closes the
database, as it drains the requests its HTTP endpoint dispatched; without that a command
still running at a stop (a hold between its intent and its outcome record, a reply being
posted) would be cut off with its database connection open.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec

P = ParamSpec("P")

DRAIN_GRACE = 10.0  # seconds a stop waits for running listeners before cancelling them


class Running:
    """Tasks still working after their request was acknowledged: listeners (``LISTENERS``)
    and the requests an ``Endpoint`` dispatched."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[object]] = set()

    def track(self) -> None:
        """Called first thing in a listener's task (by ``tracked``): it is waited for at a
        stop."""
        task = asyncio.current_task()
        if task is not None:
            self.add(task)

    def add(self, task: asyncio.Task[object]) -> None:
        if task not in self.tasks:
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def drain(self, grace: float = DRAIN_GRACE) -> None:
        """Let the tracked tasks of this event loop finish (at most ``grace`` seconds),
        then cancel what is left."""
        loop = asyncio.get_running_loop()
        mine = {task for task in self.tasks if task.get_loop() is loop and not task.done()}
        if not mine:
            return
        _done, pending = await asyncio.wait(mine, timeout=grace)
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*pending, return_exceptions=True)


LISTENERS = Running()


def tracked(listener: Callable[P, Awaitable[None]]) -> Callable[P, Awaitable[None]]:
    """``listener`` with its task in ``LISTENERS``: how every listener is registered
    (Bolt reads the wrapped function's parameters, through ``functools.wraps``)."""

    @functools.wraps(listener)
    async def run(*args: P.args, **kwargs: P.kwargs) -> None:
        LISTENERS.track()
        await listener(*args, **kwargs)

    run.tracked = True  # type: ignore[attr-defined]  # checked by tests/slack/test_running.py
    return run


def is_tracked(listener: Any) -> bool:
    return getattr(listener, "tracked", False) is True
