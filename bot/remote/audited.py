"""The request's gateway to its hosts: scoped, recorded, and journalled before any change.

Every remote call a request makes goes through its ``Remote`` (``ctx.remote``), which

1. checks the host against the caller's hosts for the permission the command runs under
   (a command that reaches a host the caller may not use fails here, whatever its author
   remembered);
2. for a command that changes the queue (``RemoteCommand.changes_queue``), commits an
   intent event holding the exact command line and selection *before* it runs, and refuses
   to run it when that write fails (``AuditUnavailable``: nothing was changed);
3. runs or streams it through the one SSH executor, digesting standard output as it passes;
4. keeps one ``RemoteRecord`` per call for the request's audit event, and for a change
   writes its outcome event (an intent without one reads as "outcome unknown").

The monitor's polls use ``Remote.discarding``: records are dropped (polls are not
requests) and changes are refused, which makes both choices explicit.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, Self

from bot.errors import AuditUnavailable, MailqbotError, PermissionDenied
from bot.inventory import Host
from bot.remote.command import RemoteCommand
from bot.remote.ssh import CommandResult, RemoteStream, SSHExecutor

if TYPE_CHECKING:
    from bot.context import Context, Progress

log = logging.getLogger(__name__)
PROGRESS_INTERVAL = 1.0  # seconds between progress reports of one request
SELECTION_KEPT = 5_000  # queue IDs an intent event names (a postsuper batch is 2,000)


class ChangeJournal(Protocol):
    """Where intents and outcomes of queue changes are committed (the audit trail)."""

    async def intent(self, host: str, detail: dict[str, Any]) -> int:
        """Commit an intent event now; its sequence number. Raises if it cannot."""

    async def outcome(self, host: str, detail: dict[str, Any]) -> None:
        """Commit the outcome of an intent now. Raises if it cannot."""


class RefuseChanges:
    """The journal of a caller that must never change a queue (the monitor's polls)."""

    async def intent(self, host: str, detail: dict[str, Any]) -> int:
        raise AuditUnavailable(
            f"mailqbot's monitor only reads queues; it refused `{detail.get('command')}` on {host}."
        )

    async def outcome(self, host: str, detail: dict[str, Any]) -> None:
        raise AssertionError("no intent was written")


@dataclass(frozen=True, slots=True)
class RemoteRecord:
    """What the audit trail keeps of one remote call (never its output)."""

    host: str
    command: str
    exit: int | None
    host_key: str
    elapsed: float
    stdout_sha256: str | None
    stdout_bytes: int = 0
    stderr_sha256: str | None = None
    stopped_early: bool = False
    intent: int | None = None  # the intent event of a change
    outcome_recorded: bool | None = None  # a change: whether its outcome event was written

    def as_json(self) -> dict[str, Any]:
        """The record for the audit event: optional fields only when they say something."""
        return {k: v for k, v in asdict(self).items()
                if k in ("exit", "stdout_sha256") or v not in (None, False)}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Change:
    """A queue change this request made (or tried): its intent and whether it ran."""

    host: str
    command: str
    intent: int
    ran: bool
    outcome_recorded: bool


@dataclass
class Remote:
    executor: SSHExecutor
    journal: ChangeJournal
    allowed: Callable[[str], bool]
    progress_to: Progress | None = None
    keep_records: bool = True
    # Added to every intent and outcome event (a plan's id, for example).
    labels: dict[str, Any] = field(default_factory=dict)
    records: list[RemoteRecord] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    # Progress only for work that takes a while: the first report waits one interval.
    _last_progress: float = field(default_factory=time.monotonic)

    @classmethod
    def for_request(cls, ctx: Context, journal: ChangeJournal) -> Self:
        """The gateway of ``ctx``'s request: scoped by its permission, journalling its
        changes in ``journal`` (refusing them if the delivery's repeat was not ruled out)."""

        def allowed(host: str) -> bool:
            return ctx.may(ctx.permission, [host])

        if ctx.request.replay_unchecked:
            journal = _Unchecked()
        return cls(ctx.services.executor, journal, allowed, ctx.progress)

    @classmethod
    def discarding(cls, executor: SSHExecutor) -> Self:
        """Reads for the bot itself (the monitor): every host, no records kept, no changes."""
        return cls.reader(executor, keep_records=False)

    @classmethod
    def reader(cls, executor: SSHExecutor, *, keep_records: bool = True) -> Self:
        """Reads outside any request (benchmarks, tools): every host, no changes."""
        return cls(executor, RefuseChanges(), lambda _host: True, keep_records=keep_records)

    # -- calls ----------------------------------------------------------------------------

    async def run(
        self, host: Host, command: RemoteCommand, *, stdin: bytes | None = None,
        check: bool = True,
    ) -> CommandResult:  # fmt: skip
        """Run ``command`` on ``host`` and return its output (see ``SSHExecutor.run``)."""
        intent = await self._admit(host, command, stdin)
        try:
            result = await self.executor.run(host, command, stdin=stdin, check=check)
        except MailqbotError as exc:
            await self._failed(host, command, intent, exc)
            raise
        record = _record(result, _sha(result.stdout.encode()), len(result.stdout.encode()))
        await self._keep(record, intent, host, result)
        return result

    @contextlib.asynccontextmanager
    async def stream(
        self, host: Host, command: RemoteCommand, *, check: bool = True, private: bool = False
    ) -> AsyncIterator[AuditedStream]:
        """``async with remote.stream(host, cmd) as out: async for chunk in out: ...``

        Leaving the block early closes the channel; the record says so and how much was
        read. ``private`` output (a message body) is not even hashed: a short body could be
        guessed back from its hash. Queue changes are not streamed (they go through ``run``).
        """
        if command.changes_queue:
            raise ValueError("queue changes go through Remote.run, which journals them")
        await self._admit(host, command, None)
        started = time.monotonic()
        audited: AuditedStream | None = None
        try:
            async with self.executor.stream(host, command, check=check) as out:
                audited = AuditedStream(out, digest=not private)
                yield audited
        finally:
            if audited is not None:
                await self._keep(audited.record(time.monotonic() - started), None, host, None)

    async def report(self, text: str, *, force: bool = False) -> None:
        """Progress for the person waiting, at most once per ``PROGRESS_INTERVAL``."""
        now = time.monotonic()
        if self.progress_to is None or (not force and now - self._last_progress
                                        < PROGRESS_INTERVAL):  # fmt: skip
            return
        self._last_progress = now
        await self.progress_to(text)

    def quiet(self) -> Remote:
        """The same gateway (scope, journal, records) without progress reports."""
        return replace(self, progress_to=None)

    def records_json(self) -> list[dict[str, Any]]:
        return [record.as_json() for record in self.records]

    # -- the steps around a call ------------------------------------------------------------

    async def _admit(self, host: Host, command: RemoteCommand, stdin: bytes | None) -> int | None:
        if not self.allowed(host.name):
            raise PermissionDenied(
                f"You may not use {host.name} for this. Ask a mailqbot admin for a role "
                "on that host; `/mailq help` lists what you can run."
            )
        if not command.changes_queue:
            return None
        selection = _selection(stdin)
        detail = {
            "command": command.command_line(),
            "selection": selection[:SELECTION_KEPT],
            "selection_count": len(selection),
            **self.labels,
        }
        try:
            return await self.journal.intent(host.name, detail)
        except AuditUnavailable:
            raise
        except Exception as exc:
            log.error("intent for %s on %s not recorded (%s): not run", command.display(),
                      host.name, exc.__class__.__name__)  # fmt: skip
            raise AuditUnavailable(
                f"mailqbot could not write to its audit trail, so it did not run "
                f"`{command.display()}` on {host.name}: nothing was changed there. Check "
                "that mailqbot's database is reachable (`mailqbot migrate` connects to it), "
                "then ask again."
            ) from None

    async def _failed(
        self, host: Host, command: RemoteCommand, intent: int | None, exc: MailqbotError
    ) -> None:
        if intent is None:
            return
        detail = {"outcome": "unknown", "error": exc.user_message[:500]}
        recorded = await self._outcome(host, intent, detail)
        self.changes.append(Change(host.name, command.display(), intent, True, recorded))

    async def _keep(
        self, record: RemoteRecord, intent: int | None, host: Host, result: CommandResult | None
    ) -> None:
        if intent is not None and result is not None:
            detail = {
                "outcome": "ran",
                "exit": result.exit_status,
                "stderr_sha256": record.stderr_sha256,
                "host_key": result.host_key_fingerprint,
                "elapsed": record.elapsed,
            }
            recorded = await self._outcome(host, intent, detail)
            self.changes.append(Change(host.name, record.command, intent, True, recorded))
            record = _with_intent(record, intent, recorded)
        if self.keep_records:
            self.records.append(record)

    async def _outcome(self, host: Host, intent: int, detail: dict[str, Any]) -> bool:
        try:
            await self.journal.outcome(host.name, {"intent": intent, **detail, **self.labels})
        except Exception as exc:
            log.error("outcome of intent %s on %s not recorded (%s): it reads as unknown",
                      intent, host.name, exc.__class__.__name__)  # fmt: skip
            return False
        return True


class _Unchecked:
    """The journal of a delivery whose repeat could not be ruled out: changes refused."""

    async def intent(self, host: str, detail: dict[str, Any]) -> int:
        raise AuditUnavailable(
            "mailqbot could not reach its database to check that Slack did not deliver this "
            f"request twice, so it changed nothing on {host}. Ask again in a minute."
        )

    async def outcome(self, host: str, detail: dict[str, Any]) -> None:
        raise AssertionError("no intent was written")


class AuditedStream:
    """The chunks of a streamed command, digested as they pass."""

    def __init__(self, out: RemoteStream, *, digest: bool = True) -> None:
        self._out = out
        self._digest = hashlib.sha256() if digest else None
        self.exhausted = False

    @property
    def bytes_received(self) -> int:
        return self._out.bytes_received

    @property
    def result(self) -> CommandResult | None:
        return self._out.result

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._out.__anext__()
        except StopAsyncIteration:
            self.exhausted = True
            raise
        if self._digest is not None:
            self._digest.update(chunk)
        return chunk

    def record(self, elapsed: float) -> RemoteRecord:
        out = self._out
        digest = None if self._digest is None else self._digest.hexdigest()
        if out.result is not None:
            return _record(out.result, digest, out.bytes_received)
        return RemoteRecord(
            host=out.host.name,
            command=out.command.command_line(),
            exit=None,
            host_key="",
            elapsed=round(elapsed, 3),
            stdout_sha256=digest,
            stdout_bytes=out.bytes_received,
            stopped_early=True,
        )


def _record(result: CommandResult, digest: str | None, size: int) -> RemoteRecord:
    return RemoteRecord(
        host=result.host,
        command=result.command_line,
        exit=result.exit_status,
        host_key=result.host_key_fingerprint,
        elapsed=round(result.elapsed, 3),
        stdout_sha256=digest,
        stdout_bytes=size,
        stderr_sha256=_sha(result.stderr.encode()) if result.stderr else None,
    )


def _with_intent(record: RemoteRecord, intent: int, recorded: bool) -> RemoteRecord:
    return RemoteRecord(**{**asdict(record), "intent": intent, "outcome_recorded": recorded})


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _selection(stdin: bytes | None) -> list[str]:
    """The queue IDs a change is given on standard input, one per line."""
    if not stdin:
        return []
    return stdin.decode("ascii", errors="replace").split()
