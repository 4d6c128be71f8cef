"""``/mailq log HOST [since=24h]``: deferrals, reasons, relays, delays and statuses from the log.

Where the log is: the host's ``[log]`` source from the config (``bot.postfix.logsource``); by
default ``postconf -h maillog_file``, else the first of ``/var/log/mail.log`` and
``/var/log/maillog`` that ``stat`` finds, else the journal.
A file is read only from where the window starts: a binary search over byte offsets with
short ``tail -c +N | head -c 16384`` probes finds the first line of the window to within
1 MiB; then ``tail -c +N | head -c REST | grep -F ' status='`` sends only the status lines
up to the size ``stat`` saw (a snapshot). Only the current file is read: if it starts after
the window start (rotated), the report says so. The journal and containers are asked for the
window by time. Status lines that could not be read are counted, with a few examples.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.errors import CommandFailed, CommandTimeout, ParseError, SudoPasswordRequired, UsageError
from bot.inventory import Host
from bot.postfix import logsource, maillog
from bot.postfix.logsource import LogTarget
from bot.postfix.maillog import LogAnalyser, LogAnalysis, LogClock
from bot.postfix.reader import Turns, host_utc_offset, slices
from bot.remote.audited import Remote
from bot.remote.command import RemoteCommand
from bot.remote.ssh import SUDO_NEEDS_AUTH, CommandResult
from bot.text import duration, num, table
from commands import Argument, CommandSpec, HostArg

if TYPE_CHECKING:
    from bot.context import Context

DEFAULT_SINCE = 24 * 3600
MAX_SINCE = 31 * 24 * 3600
GRANULE = 1024 * 1024  # the window search stops when the start is known to within this
PROBE_BYTES = 16 * 1024
READ_TIMEOUT = 600.0  # capped by the host's command_timeout
PROGRESS_EVERY = 100_000
_SINCE = re.compile(r"(\d{1,6})([mhd])")
_UNITS = {"m": 60, "h": 3600, "d": 86400}
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


@dataclass(frozen=True)
class LogReport:
    host: str
    since: int
    now: float
    source: LogTarget
    read: ReadStats
    a: LogAnalysis

    @property
    def filename(self) -> str:
        return f"mailq-log-{self.host}-{_since_text(self.since)}.txt"

    @property
    def file_title(self) -> str:
        return f"Queue IDs deferred in more than one attempt on {self.host}, last {self.since_text}"

    @property
    def since_text(self) -> str:
        return _since_text(self.since)

    @property
    def rotated(self) -> bool:
        starts = self.read.log_starts
        return bool(self.source.path) and starts is not None and starts > self.a.start + 60

    def unknown_statuses(self) -> list[tuple[str, int]]:
        """Status words this version of mailqbot does not know (format drift), with counts."""
        return [(s, n) for s, n in self.a.statuses if s not in maillog.KNOWN_STATUSES]

    def unknown_status_text(self) -> str:
        return ", ".join(f"{status} ({num(n)})" for status, n in self.unknown_statuses())

    def tls_text(self) -> str:
        return " · ".join(f"{value} {num(n)}" for value, n in self.a.tls)

    def status_line(self) -> str:
        """``*11,754* sent · *339,562* deferred · ...`` (mrkdwn; status words are [a-z])."""
        return " · ".join(f"*{num(n)}* {status}" for status, n in self.a.statuses)

    def count(self, status: str) -> int:
        return dict(self.a.statuses).get(status, 0)

    def status_table(self) -> str:
        rows = [[status, num(n)] for status, n in self.a.statuses]
        return table(rows, ["status", "lines"], right=(1,))

    def class_table(self) -> str:
        total = self.count("deferred") or 1
        rows = [[c.label, num(n), f"{100 * n / total:.1f}%"] for c, n in self.a.deferred_by_class]
        return table(rows, ["deferred because", "deferrals", "share"], right=(1, 2))

    def reason_pairs(self, n: int) -> list[tuple[str, int]]:
        return [(f"{c.label}: {reason}", k) for c, reason, k in self.a.top_reasons[:n]]

    def top_table(self, which: str, n: int = 10) -> str:
        pairs = self.a.top_relays if which == "relay" else self.a.top_domains
        which = "recipient domain" if which == "domain" else which
        return table([[key, num(k)] for key, k in pairs[:n]], [which, "deferrals"], right=(1,))

    def delay_table(self) -> str:
        rows = []
        for status, (count, parts) in self.a.delays.items():
            for i, (name, part) in enumerate(zip(maillog.DELAY_PARTS, parts, strict=True)):
                label = f"{status} ({num(count)})" if i == 0 else ""
                rows.append([label, f"{'abcd'[i]}: {name}", *map(_secs, (part.mean, part.max))])
                rows[-1].insert(3, "≤" + _secs(part.p95))
        return table(rows, ["status (lines)", "delays=a/b/c/d", "mean", "p95", "max"], (2, 3, 4))

    def repeated_table(self, n: int | None = None) -> str:
        rows = [
            [
                r.queue_id,
                num(r.attempts),
                num(r.deferrals),
                _hm(r.first),
                _hm(r.last),
                r.status,
                r.reason_class.label,
            ]
            for r in self.a.repeated[:n]
        ]
        headers = ["queue ID", "attempts", "rcpt lines", "first", "last", "now", "last reason"]
        return table(rows, headers, right=(1, 2))

    def reason_lines_full(self) -> str:
        return "\n".join(
            f"{num(k):>10}  {text}" for text, k in self.reason_pairs(len(self.a.top_reasons))
        )

    def outcome_text(self) -> str:
        parts = [
            f"{num(k)} {status}"
            for status, k in sorted(self.a.outcomes.items(), key=lambda kv: -kv[1])
        ]
        return ", ".join(parts)


def _since_text(seconds: int) -> str:
    units = ("h", "m") if seconds < 2 * 86400 else ("d", "h", "m")
    for unit in units:
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


def _secs(value: float) -> str:
    return f"{value:.2f}s" if value < 60 else duration(value)


def _hm(epoch: float) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.gmtime(epoch))


# -- arguments --------------------------------------------------------------------------------


def parse_since(words: list[str]) -> int:
    """``since=`` in minutes, hours or days (``30m``, ``6h``, ``7d``); at most 31 days."""
    since = DEFAULT_SINCE
    for word in words:
        key, eq, value = word.partition("=")
        if key != "since" or not eq:
            raise UsageError(
                f"`log`: unknown option `{word[:40]}`; use since=30m, 6h, 24h or 7d.", SPEC.usage
            )
        match = _SINCE.fullmatch(value)
        if match is None:
            raise UsageError(
                f"`log`: since=`{value[:40]}` is not a duration like 30m, 6h, 24h or 7d.",
                SPEC.usage,
            )
        since = int(match[1]) * _UNITS[match[2]]
    if not 60 <= since <= MAX_SINCE:
        raise UsageError("`log`: since= must be between 1m and 31d.", SPEC.usage)
    return since


# -- reading the host -------------------------------------------------------------------------


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
        result = await ex.run(host, logsource.maillog_file_setting())
        configured = result.stdout.strip()
        paths = (logsource.log_path(configured),) if configured else logsource.SYSLOG_FILES
    result = await ex.run(host, logsource.file_sizes(*paths), check=False)
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
    command = logsource.probe_file(source.path, start, PROBE_BYTES, sudo=host.sudo)
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
    ctx: Context,
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
                await ctx.progress(f"{host.name}: read {num(shown)} delivery lines…")
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


async def read_log(ctx: Context, host: Host, since: int) -> LogReport:
    ex = ctx.remote
    now = ctx.services.clock()
    started = time.monotonic()
    source, clock = await asyncio.gather(detect_source(ex, host), host_clock(ex, host, now))
    analyser = LogAnalyser(now - since)
    read_from, probes, log_starts = 0, 0, None
    window = (int(now - since), int(now) + 1)
    if source.kind == "file":
        await ctx.progress(f"{host.name}: finding the last {_since_text(since)} in {source.path}…")
        read_from, probes, log_starts = await find_start(ex, host, source, clock, now - since)
        command = logsource.read_file(
            source.path, read_from, source.size - read_from, sudo=host.sudo, timeout=READ_TIMEOUT
        )
    elif source.kind == "journal":
        command = logsource.read_journal(
            *window, unit=source.unit, sudo=host.sudo, timeout=READ_TIMEOUT
        )
    else:
        command = logsource.read_container(
            source.runtime, source.container, *window, sudo=host.sudo, timeout=READ_TIMEOUT
        )
    reader = maillog.LineReader(clock)
    container = source.kind == "container"
    received = await read_deliveries(ex, host, command, analyser, reader, ctx, container)
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
    return LogReport(host.name, since, now, source, stats, analyser.build())


async def _check_not_rotated(ex: Remote, host: Host, source: LogTarget) -> None:
    result = await ex.run(host, logsource.file_sizes(source.path), check=False)
    if logsource.parse_sizes(result.stdout).get(source.path, 0) < source.size:
        raise ParseError(
            f"{source.path} on {host.name} was rotated while mailqbot read it, so the counts "
            "would be incomplete. Run the command again."
        )


async def run(args: argparse.Namespace, ctx: Context) -> LogReport:
    since = parse_since(args.options)
    host = ctx.services.inventory.get(args.target)
    return await read_log(ctx, host, since)


SPEC = CommandSpec(
    name="log",
    validate=lambda args: parse_since(args.options),
    summary="Deferral analysis from the mail log: statuses, reasons, relays, delays, "
    "queue IDs deferred again and again.",
    permission="read",
    template="log",
    examples=("/mailq log mx1", "/mailq log mx1 since=6h"),
    arguments=(
        HostArg("target", help="a host from the inventory", metavar="HOST"),
        Argument(
            "options",
            help="since=30m|6h|24h|7d (default 24h, at most 31d)",
            metavar="[since=24h]",
            nargs="*",
        ),
    ),
    run=run,
)
