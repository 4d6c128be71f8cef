"""Read a host's queue through the request's gateway, parsing while the listing streams in.

Nothing per message is kept: each parsed record goes straight into a ``SummaryBuilder``,
so memory stays flat however large the queue is.

A summary costs two round trips, plus one that runs alongside the listing:

1. ``postconf -h mail_version maximal_queue_lifetime bounce_queue_lifetime queue_directory``
   (the version picks the listing command; the rest costs nothing extra here). The answer
   is kept per executor and host for ``SETTINGS_TTL`` seconds, so a bot that summarises a
   host (or a fleet) again within that time skips this round trip (and its audit record).
   Before Postfix 3.1 also ``date +%z`` (cached the same way): ``postqueue -p`` prints
   arrival times in the host's local time;
2. ``postqueue -j`` (or ``-p`` before Postfix 3.1), streamed into the summary: the JSON
   parser hands each message's fields straight to the ``SummaryBuilder`` (no objects);
3. with ``disk=True``, ``[sudo -n] du -sk <queue_directory>/deferred`` at the same time. It
   needs root (a sudoers rule, or the forced-command wrapper); without it (or on any other
   failure) the summary says why disk use is unavailable instead of failing.

A listing is parsed ``SLICE_BYTES`` at a time, and whenever ``BUSY_LIMIT`` seconds of work
have passed the event loop gets a turn: other requests (and Slack's 3 s acknowledgements)
go on while a big or hostile listing is read. The summary's folds, which analyse every new
delay reason, are done the same way, a slice at a time (``_fold``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta, timezone

from bot.errors import MailqbotError, ParseError
from bot.inventory import Host
from bot.postfix import postfix, spool, tools
from bot.postfix.models import QueueMessage
from bot.postfix.reasons import analyse
from bot.postfix.spool import DiskUse, HostSettings
from bot.postfix.summary import QueueSummary, SummaryBuilder
from bot.postfix.summary_brief import BriefSummaryBuilder
from bot.remote.audited import Remote
from bot.remote.ssh import SUDO_NEEDS_AUTH, SSHExecutor
from bot.text import truncate

SLICE_BYTES = 64 * 1024  # listing bytes parsed at a time; a 256 KiB read is fed in four
BUSY_LIMIT = 0.02  # seconds of work before the event loop gets a turn
SETTINGS_TTL = 300.0  # seconds a host's postconf answer is reused by the same executor
DU_GRACE = 5.0  # seconds to wait for du once the listing is read
Progress = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class HostReading:
    """One host's summary with what ``postconf`` and ``du`` said."""

    summary: QueueSummary
    settings: HostSettings
    disk: DiskUse | None  # None: not asked for


async def mail_version(remote: Remote, host: Host) -> str:
    result = await remote.run(host, tools.postconf_version())
    return result.stdout.strip()


_HostKey = tuple[str, str, int, str]
_settings_cache: weakref.WeakKeyDictionary[
    SSHExecutor, dict[_HostKey, tuple[float, HostSettings]]
] = weakref.WeakKeyDictionary()


async def host_settings(remote: Remote, host: Host, *, cached: bool = False) -> HostSettings:
    """The version, both queue lifetimes and the queue directory, in one round trip.

    With ``cached``, an answer this executor got from the same host less than
    ``SETTINGS_TTL`` seconds ago is reused and nothing runs.
    """
    key = (host.name, host.address, host.port, host.user)
    entries = _settings_cache.setdefault(remote.executor, {})
    if cached and key in entries and time.monotonic() - entries[key][0] < SETTINGS_TTL:
        return entries[key][1]
    result = await remote.run(host, tools.postconf_values(*spool.SETTINGS))
    settings = spool.parse_settings(result.stdout)
    entries[key] = (time.monotonic(), settings)
    return settings


_offset_cache: weakref.WeakKeyDictionary[SSHExecutor, dict[_HostKey, tuple[float, int]]] = (
    weakref.WeakKeyDictionary()
)


async def host_utc_offset(remote: Remote, host: Host) -> int:
    """The host's UTC offset in seconds (``date +%z``), asked once per ``SETTINGS_TTL``.

    Year- and zone-less times (``postqueue -p`` before Postfix 3.1, syslog stamps) are the
    host's local time; an answer this executor got from the same host is reused.
    """
    key = (host.name, host.address, host.port, host.user)
    entries = _offset_cache.setdefault(remote.executor, {})
    if key in entries and time.monotonic() - entries[key][0] < SETTINGS_TTL:
        return entries[key][1]
    result = await remote.run(host, tools.utc_offset())
    offset = postfix.parse_utc_offset(result.stdout)
    entries[key] = (time.monotonic(), offset)
    return offset


async def listing_parser(
    remote: Remote, host: Host, mail_version: str, now: float
) -> postfix.QueueParser:
    """The parser for ``tools.queue_listing(mail_version)``; before Postfix 3.1 it reads
    ``postqueue -p`` dates in the host's time zone (a fixed offset: ``host_utc_offset``)."""
    if postfix.supports_json(mail_version):
        return postfix.PostqueueJsonParser()
    offset = await host_utc_offset(remote, host)
    return postfix.parser_for(mail_version, now=now, tz=timezone(timedelta(seconds=offset)))


async def read_summary(remote: Remote, host: Host, now: float) -> QueueSummary:
    """Stream the queue listing of ``host`` into a summary as of ``now``."""
    return (await read_host(remote, host, now)).summary


async def read_host(
    remote: Remote,
    host: Host,
    now: float,
    *,
    disk: bool = False,
    builder: SummaryBuilder | None = None,
) -> HostReading:
    """Settings (cached), then the listing summarised (with ``disk``, ``du`` alongside it)."""
    settings = await host_settings(remote, host, cached=True)
    du: asyncio.Task[DiskUse] | None = None
    if disk and settings.queue_directory is not None:
        du = asyncio.create_task(_disk_use(remote, host, settings.queue_directory))
    try:
        builder = builder or SummaryBuilder(now)
        summary = await _stream_summary(remote, host, settings, builder)
    except BaseException:
        if du is not None:
            du.cancel()
            await asyncio.gather(du, return_exceptions=True)
        raise
    usage = None if not disk else DiskUse(None, "queue_directory not usable")
    if du is not None:
        usage = await _within(du, DU_GRACE)
    return HostReading(summary, settings, usage)


async def _stream_summary(
    remote: Remote, host: Host, settings: HostSettings, builder: SummaryBuilder
) -> QueueSummary:
    parser = await listing_parser(remote, host, settings.mail_version, builder.now)
    seen = 0
    turn = Turns()
    async with remote.stream(host, tools.queue_listing(settings.mail_version)) as out:
        async for chunk in out:
            for piece in slices(chunk):
                seen += _feed(parser, piece, builder)
                if builder.fold_due():
                    await _fold(builder, turn)
                if turn.due():
                    await turn.take()
            await remote.report(f"{host.name}: read {seen:,} messages…")
    for message in parser.close():
        builder.add(message)
    await _fold(builder, turn)
    return builder.build()


class Turns:
    """Gives the event loop a turn once ``BUSY_LIMIT`` seconds of work have passed."""

    def __init__(self) -> None:
        self._since = time.monotonic()

    def due(self) -> bool:
        """Whether the loop's turn is due (a plain call: cheap enough for every item)."""
        return time.monotonic() - self._since > BUSY_LIMIT

    async def maybe(self) -> None:
        if self.due():
            await self.take()

    async def take(self) -> None:
        await asyncio.sleep(0)
        self._since = time.monotonic()


def slices(chunk: bytes) -> list[bytes]:
    """``chunk`` in pieces of at most ``SLICE_BYTES``."""
    if len(chunk) <= SLICE_BYTES:
        return [chunk]
    return [chunk[i : i + SLICE_BYTES] for i in range(0, len(chunk), SLICE_BYTES)]


async def _fold(builder: SummaryBuilder, turn: Turns) -> None:
    """Analyse the delay reasons a fold needs, giving the loop turns, then fold."""
    analysed = {}
    for reason in builder.pending_reasons():
        analysed[reason] = analyse(reason)
        if turn.due():
            await turn.take()
    builder.fold(analysed)


def _feed(parser: postfix.QueueParser, chunk: bytes, builder: SummaryBuilder) -> int:
    """Summarise the messages ``chunk`` completes; how many there were."""
    if isinstance(parser, postfix.PostqueueJsonParser):
        if isinstance(builder, BriefSummaryBuilder):
            records = parser.feed_records(chunk)
            builder.add_records(records)
            return len(records)
        return parser.feed_into(chunk, builder.add_fields)
    messages = parser.feed(chunk)
    for message in messages:
        builder.add(message)
    return len(messages)


async def stream_queue(
    remote: Remote, host: Host, now: float, add: Callable[[QueueMessage], None]
) -> None:
    """Feed every message of ``host``'s queue listing to ``add`` as it streams in."""
    version = await mail_version(remote, host)
    parser = await listing_parser(remote, host, version, now)
    seen = 0
    turn = Turns()
    async with remote.stream(host, tools.queue_listing(version)) as out:
        async for chunk in out:
            for piece in slices(chunk):
                for message in parser.feed(piece):
                    add(message)
                    seen += 1
                await turn.maybe()
            await remote.report(f"{host.name}: read {seen:,} messages…")
    for message in parser.close():
        add(message)


async def _within(task: asyncio.Task[DiskUse], grace: float) -> DiskUse:
    """The task's result if it ends within ``grace`` seconds; else cancel it and say so."""
    done, _ = await asyncio.wait({task}, timeout=grace)
    if done:
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return DiskUse(None, f"du still running {grace:g} s after the listing")


async def _disk_use(remote: Remote, host: Host, queue_directory: str) -> DiskUse:
    """``du`` on the deferred spool; every failure becomes a reason, never an exception."""
    try:
        command = tools.deferred_disk_use(queue_directory, sudo=host.sudo)
        result = await remote.run(host, command, check=False)
    except MailqbotError as exc:
        return DiskUse(None, shorten(exc.user_message, 80))
    if result.exit_status == 0:
        try:
            return DiskUse(spool.parse_du(result.stdout))
        except ParseError:
            return DiskUse(None, "unexpected du output")
    if SUDO_NEEDS_AUTH in result.stderr:
        return DiskUse(None, "sudo rule missing")
    lines = result.stderr.strip().splitlines() or ["no error output"]
    return DiskUse(None, f"du exited {result.exit_status}: {shorten(lines[-1], 80)}")


def shorten(text: str, limit: int) -> str:
    """The first sentence of ``text`` on one line, cut to ``limit`` characters."""
    line = " ".join(text.split())
    cut = line.find(". ")
    if cut > 0:
        line = line[: cut + 1]
    return truncate(line, limit)
