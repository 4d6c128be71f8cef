"""Reading a host's mail log through the request's gateway: where it logs, the window.

Where: ``maillog_file``, else the first syslog file that exists, else the journal, unless
the host's group names a source (``[log]``). The window: for a file, a binary search with
small probes for the first line at or after the window's start, then one read of the rest
filtered on the host to status lines; for the journal or a container, the window asked of
the tool. Lines are parsed in slices (``bot.postfix.reader.slices``) that never hold the
event loop long. A pipe's failure is judged by its stderr and the clock, not its exit status.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.errors import CommandFailed, CommandTimeout, ParseError, SudoPasswordRequired
from bot.inventory import Host
from bot.postfix import logsource, maillog, tools
from bot.postfix.logsource import LogTarget
from bot.postfix.maillog import LogAnalyser, LogAnalysis, LogClock
from bot.postfix.reader import Turns, host_utc_offset, slices
from bot.remote.audited import Remote
from bot.remote.command import RemoteCommand
from bot.remote.ssh import SUDO_NEEDS_AUTH, CommandResult
from bot.text import duration, num

Progress = Callable[[str], Awaitable[None]]
GRANULE = 1024 * 1024  # the window search stops when the start is known to within this
PROBE_BYTES = 16 * 1024
READ_TIMEOUT = 600.0  # capped by the host's command_timeout
PROGRESS_EVERY = 100_000
_STDERR_DROPPED = (
    "(the container wrote more than 16 MiB to stderr in the window: the start of it was not "
    "read; set Postfix's maillog_file to /dev/stdout, or ask for a shorter since=)"
)


@dataclass(frozen=True)
class ReadStats:
    read_from: int  # byte range of the file that was read (0, 0 for the journal)
    read_to: int
    probes: int
    received: int  # bytes that crossed the network (delivery lines only)
    lines: int
    malformed: int  # status lines that could not be read
    log_starts: float | None  # the file's first time stamp
    seconds: float
    examples: tuple[str, ...] = ()  # the first few unreadable lines (hostile text)


async def detect_source(ex: Remote, host: Host) -> LogTarget:
    """The host's configured source; for ``auto``: ``maillog_file``, else the first syslog
    file that exists, else the journal."""
    config = host.log
    if config.source == "journal":
        return LogTarget("journal", unit=config.unit or "")
    if config.source == "container":
        assert config.container is not None  # checked by the config
        return LogTarget(
            "container", runtime=config.runtime or "docker", container=config.container
        )
    configured = ""
    if config.source == "file":
        assert config.path is not None
        paths: tuple[str, ...] = (config.path,)
    else:
        result = await ex.run(host, tools.maillog_file_setting())
        configured = result.stdout.strip()
        paths = (tools.log_path(configured),) if configured else logsource.SYSLOG_FILES
    result = await ex.run(host, tools.file_sizes(*paths), check=False)
    sizes = logsource.parse_sizes(result.stdout)
    for path in paths:
        if path in sizes:
            return LogTarget("file", path, sizes[path])
    if configured or config.source == "file":
        where = f"{paths[0]} (maillog_file)" if configured else f"{paths[0]} (the config's [log])"
        raise CommandFailed(
            host.name,
            f"Postfix on {host.name} logs to {where}, but `stat` cannot see it as "
            f"{host.user}: {result.stderr.strip()[:300]}. Check that the file exists and "
            "that its directory is searchable by that user.",
            result.exit_status,
            result.stderr,
        )
    return LogTarget("journal")


async def host_clock(ex: Remote, host: Host, now: float) -> LogClock:
    return LogClock(now, await host_utc_offset(ex, host))


def check_pipeline(
    host: Host, command: RemoteCommand, result: CommandResult, stderr: str | None = None
) -> None:
    """A pipe's status is its last stage's: judge the first stage by stderr (``stderr``:
    the part of it that is the tools' own) and the clock."""
    stderr = (result.stderr if stderr is None else stderr).strip()
    if SUDO_NEEDS_AUTH in stderr:
        raise SudoPasswordRequired(
            host.name,
            f"sudo on {host.name} asked for a password for `{command.display()}`: the sudoers "
            f"rule for {host.user} does not allow reading this log (see docs/commands/log.md). "
            "Install mailqbot's sudoers snippet on the host (check it with `visudo -cf`).",
        )
    if result.exit_status not in (0, 1) or stderr:
        raise CommandFailed(
            host.name,
            f"`{command.display()}` on {host.name} failed (exit {result.exit_status}): "
            f"{stderr[-500:] or '(no error output)'}\nTo investigate, run it on the host as "
            f"{host.user}; without sudo the user needs read access to the log (e.g. group adm).",
            result.exit_status,
            result.stderr,
        )
    if result.elapsed >= min(command.remote_timeout, host.command_timeout):
        raise CommandTimeout(
            host.name,
            f"Reading the log on {host.name} took {result.elapsed:.0f} s, the time limit, so "
            "it may have been cut short. Ask for a shorter window (since=) or raise "
            "command_timeout.",
        )


async def _fetch(ex: Remote, host: Host, command: RemoteCommand, limit: int) -> bytes:
    """The output of a command that prints at most ``limit`` bytes (more is refused)."""
    chunks: list[bytes] = []
    size = 0
    async with ex.stream(host, command, check=False) as out:
        async for chunk in out:
            size += len(chunk)
            if size > limit:
                raise ParseError(
                    f"`{command.display()}` on {host.name} printed more than the {limit:,} "
                    f"bytes it asks for, so mailqbot stopped reading. Check what "
                    f"`{command.pipe_to[-1][0] if command.pipe_to else command.argv[0]}` is "
                    f"on {host.name}."
                )
            chunks.append(chunk)
    assert out.result is not None
    check_pipeline(host, command, out.result)
    return b"".join(chunks)


async def probe(
    ex: Remote, host: Host, source: LogTarget, offset: int, clock: LogClock
) -> tuple[int, float] | None:
    """Where the first whole line at or after ``offset`` starts, and its time (None: none)."""
    start = max(offset - 1, 0)
    command = tools.probe_file(source.path, start, PROBE_BYTES, sudo=host.sudo)
    data = await _fetch(ex, host, command, PROBE_BYTES)
    pos = 0 if offset == 0 else data.find(b"\n") + 1
    if pos == 0 and offset > 0:
        return None
    while (end := data.find(b"\n", pos)) >= 0:
        when = maillog.line_time(data[pos:end].decode("utf-8", "replace"), clock)
        if when is not None:
            return start + pos, when
        pos = end + 1
    return None


async def find_start(
    ex: Remote, host: Host, source: LogTarget, clock: LogClock, start: float
) -> tuple[int, int, float | None]:
    """(offset of a line at or before the window start, probes made, the log's first time)."""
    first = await probe(ex, host, source, 0, clock)
    probes, lo, lo_line, hi = 1, 0, 0, source.size
    if first is None or first[1] >= start:
        return 0, probes, None if first is None else first[1]
    while hi - lo > GRANULE:
        mid = (lo + hi) // 2
        found = await probe(ex, host, source, mid, clock)
        probes += 1
        if found is None or found[1] >= start:
            hi = mid
        else:
            lo, lo_line = mid, found[0]
    return lo_line, probes, first[1]


async def read_deliveries(
    ex: Remote,
    host: Host,
    command: RemoteCommand,
    analyser: LogAnalyser,
    reader: maillog.LineReader,
    progress: Progress,
    container: bool = False,
) -> int:
    """Stream ``command``'s status lines through ``reader`` into ``analyser``; bytes received.

    For a container, what it wrote to stderr comes on stderr: those lines are read after
    the rest, and only the tool's own messages there count as errors."""
    shown = 0
    turn = Turns()
    async with ex.stream(host, command, check=False) as out:
        async for chunk in out:
            for piece in slices(chunk):
                for delivery in reader.feed(piece):
                    analyser.add(delivery)
                await turn.maybe()
            if reader.lines - shown >= PROGRESS_EVERY:
                shown = reader.lines
                await progress(f"{host.name}: read {num(shown)} delivery lines…")
    assert out.result is not None
    for delivery in reader.close():
        analyser.add(delivery)
    errors = None
    if container:
        logged, errors, dropped = logsource.split_container_stderr(out.result.stderr)
        if dropped:
            reader.unreadable(_STDERR_DROPPED)
        for delivery in reader.feed(logged.encode() + b"\n") if logged else []:
            analyser.add(delivery)
    check_pipeline(host, command, out.result, errors)
    return out.bytes_received


async def read_log(
    ex: Remote,
    host: Host,
    now: float,
    since: int,
    progress: Progress,
    analyser: LogAnalyser | None = None,
) -> tuple[LogTarget, ReadStats, LogAnalysis]:
    """Where the host logs, then the status lines of the last ``since`` seconds, analysed
    (by ``analyser`` when given: one whose window starts at ``now - since``)."""
    started = time.monotonic()
    source, clock = await asyncio.gather(detect_source(ex, host), host_clock(ex, host, now))
    analyser = analyser or LogAnalyser(now - since)
    read_from, probes, log_starts = 0, 0, None
    window = (int(now - since), int(now) + 1)
    if source.kind == "file":
        await progress(f"{host.name}: finding the last {duration(since)} in {source.path}…")
        read_from, probes, log_starts = await find_start(ex, host, source, clock, now - since)
        command = tools.read_file(
            source.path, read_from, source.size - read_from, sudo=host.sudo, timeout=READ_TIMEOUT
        )
    elif source.kind == "journal":
        command = tools.read_journal(
            *window, unit=source.unit, sudo=host.sudo, timeout=READ_TIMEOUT
        )
    else:
        command = tools.read_container(
            source.runtime, source.container, *window, sudo=host.sudo, timeout=READ_TIMEOUT
        )
    reader = maillog.LineReader(clock)
    container = source.kind == "container"
    received = await read_deliveries(ex, host, command, analyser, reader, progress, container)
    if source.kind == "file":
        await _check_not_rotated(ex, host, source)
    stats = ReadStats(
        read_from,
        source.size,
        probes,
        received,
        reader.lines,
        reader.malformed,
        log_starts,
        time.monotonic() - started,
        tuple(reader.examples),
    )
    return source, stats, analyser.build()


async def _check_not_rotated(ex: Remote, host: Host, source: LogTarget) -> None:
    result = await ex.run(host, tools.file_sizes(source.path), check=False)
    if logsource.parse_sizes(result.stdout).get(source.path, 0) < source.size:
        raise ParseError(
            f"{source.path} on {host.name} was rotated while mailqbot read it, so the counts "
            "would be incomplete. Run the command again."
        )
