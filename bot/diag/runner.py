"""Run checks concurrently, each with its own timeout, inside one overall budget.

``CheckRunner.start(kind, subject, work, after=...)`` starts a check at once; one that needs
another's result names it in ``after`` and reads it with ``Check.value`` (None if that
check failed or timed out). Waiting for those does not count against a check's own
timeout. ``CheckRunner.finish`` waits until the budget is spent, cancels whatever still runs,
and returns every check's outcome: ok, failed (with the error), timeout (its own limit),
or over_budget (cancelled when the budget ran out). Nothing outlives ``finish``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from bot.errors import MailqbotError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    kind: str  # what was checked (the template words it): mx, probe, postconf, dnsbl, ...
    subject: str  # of what: a domain, an address, a zone
    status: str  # ok, failed, timeout, over_budget
    elapsed: float
    error: str = ""


class Check(Generic[T]):
    def __init__(self, kind: str, subject: str, task: asyncio.Task[T]) -> None:
        self.kind = kind
        self.subject = subject
        self.task = task
        self.elapsed = 0.0

    @property
    def value(self) -> T | None:
        """The result, or None if the check has not succeeded."""
        task = self.task
        if not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()


class CheckRunner:
    def __init__(self, timeout: float, budget: float) -> None:
        self.timeout = timeout
        self.budget = budget
        self._loop = asyncio.get_running_loop()
        self._deadline = self._loop.time() + budget
        self._checks: list[Check[Any]] = []

    def start(
        self,
        kind: str,
        subject: str,
        work: Callable[[], Awaitable[T]],
        *,
        after: Sequence[Check[Any]] = (),
        timeout: float | None = None,
    ) -> Check[T]:
        limit = self.timeout if timeout is None else timeout
        holder: list[Check[T]] = []

        async def run() -> T:
            if after:
                await asyncio.wait([dep.task for dep in after])
            started = self._loop.time()
            try:
                async with asyncio.timeout(limit):
                    return await work()
            finally:
                holder[0].elapsed = self._loop.time() - started

        check = Check(kind, subject, asyncio.ensure_future(run()))
        holder.append(check)
        self._checks.append(check)
        return check

    async def finish(self) -> list[CheckResult]:
        """Wait for every check (including ones started meanwhile) within the budget."""
        while True:
            pending = [c.task for c in self._checks if not c.task.done()]
            remaining = self._deadline - self._loop.time()
            if not pending or remaining <= 0:
                break
            await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
        late = [c.task for c in self._checks if not c.task.done()]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        return [self._outcome(check, check.task in late) for check in self._checks]

    def _outcome(self, check: Check[Any], late: bool) -> CheckResult:
        elapsed = round(check.elapsed, 2)
        if late:
            return CheckResult(check.kind, check.subject, "over_budget", elapsed)
        exc = check.task.exception()
        if exc is None:
            return CheckResult(check.kind, check.subject, "ok", elapsed)
        if isinstance(exc, TimeoutError):
            return CheckResult(check.kind, check.subject, "timeout", elapsed)
        if not isinstance(exc, MailqbotError | OSError | ValueError):
            log.warning("check %s %s failed", check.kind, check.subject, exc_info=exc)
        message = exc.user_message if isinstance(exc, MailqbotError) else str(exc)
        return CheckResult(check.kind, check.subject, "failed", elapsed, message[:300])
