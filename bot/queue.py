"""Read a host's queue through the executor, parsing while the listing streams in.

Nothing per message is kept: each parsed record goes straight into a ``SummaryBuilder``,
so memory stays flat however large the queue is.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from bot.inventory import Host
from bot.mta import postfix
from bot.mta.summary import QueueSummary, SummaryBuilder
from bot.ssh import CommandResult, SSHExecutor

PROGRESS_EVERY = 5_000
Progress = Callable[[str], Awaitable[None]]


def remote_record(result: CommandResult, digest: str | None = None) -> dict[str, Any]:
    """What the audit trail keeps of one remote command (never its output)."""
    return {
        "host": result.host,
        "command": result.command_line,
        "exit": result.exit_status,
        "host_key": result.host_key_fingerprint,
        "elapsed": round(result.elapsed, 3),
        "stdout_sha256": digest,
    }


async def mail_version(executor: SSHExecutor, host: Host, remote: list[dict[str, Any]]) -> str:
    result = await executor.run(host, postfix.postconf_version())
    remote.append(remote_record(result))
    return result.stdout.strip()


async def read_summary(
    executor: SSHExecutor,
    host: Host,
    now: float,
    progress: Progress,
    remote: list[dict[str, Any]],
) -> QueueSummary:
    """Stream the queue listing of ``host`` into a summary as of ``now``."""
    version = await mail_version(executor, host, remote)
    parser = postfix.parser_for(version, now=now)
    builder = SummaryBuilder(now)
    digest = hashlib.sha256()
    seen = 0
    async with executor.stream(host, postfix.queue_listing(version)) as out:
        async for chunk in out:
            digest.update(chunk)
            before = seen
            for message in parser.feed(chunk):
                builder.add(message)
                seen += 1
            if seen // PROGRESS_EVERY > before // PROGRESS_EVERY:
                await progress(f"{host.name}: read {seen:,} messages…")
    for message in parser.close():
        builder.add(message)
    assert out.result is not None
    remote.append(remote_record(out.result, digest.hexdigest()))
    return builder.build()
