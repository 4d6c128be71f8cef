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
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.app.registry import Argument, CommandSpec, HostArg
from bot.errors import UsageError
from bot.text import DURATION_FORMS, duration, num, parse_duration, table

if TYPE_CHECKING:
    from bot.context import Context
    from bot.postfix.logreader import ReadStats
    from bot.postfix.logsource import LogTarget
    from bot.postfix.maillog import LogAnalysis

DEFAULT_SINCE = 24 * 3600
MAX_SINCE = 31 * 24 * 3600
_UNITS = {"m": 60, "h": 3600, "d": 86400}


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
        from bot.postfix.maillog import KNOWN_STATUSES  # loaded with the log, not for help

        return [(s, n) for s, n in self.a.statuses if s not in KNOWN_STATUSES]

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
        from bot.postfix.maillog import DELAY_PARTS

        rows = []
        for status, (count, parts) in self.a.delays.items():
            for i, (name, part) in enumerate(zip(DELAY_PARTS, parts, strict=True)):
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
    """``since=`` as a duration (``bot.text``: ``30m``, ``6h``, ``1d12h``); at most 31 days."""
    since = DEFAULT_SINCE
    for word in words:
        key, eq, value = word.partition("=")
        if key != "since" or not eq:
            raise UsageError(
                f"`log`: unknown option `{word[:40]}`; use since=30m, 6h, 24h or 7d.", SPEC.usage
            )
        seconds = parse_duration(value)
        if seconds is None:
            raise UsageError(
                f"`log`: since=`{value[:40]}` is not a duration; write one like {DURATION_FORMS}.",
                SPEC.usage,
            )
        since = seconds
    if not 60 <= since <= MAX_SINCE:
        raise UsageError("`log`: since= must be between 1m and 31d.", SPEC.usage)
    return since


# -- reading the host -------------------------------------------------------------------------


@dataclass(frozen=True)
class Args:
    target: str
    since: int  # seconds


def parse(ns: argparse.Namespace) -> Args:
    return Args(ns.target, parse_since(ns.options))


async def run(args: Args, ctx: Context) -> LogReport:
    since = args.since
    host = ctx.services.inventory.get(args.target)
    now = ctx.services.clock()
    from bot.postfix import logreader  # the log's parsers load when a log is read

    source, stats, analysis = await logreader.read_log(ctx.remote, host, now, since, ctx.progress)
    return LogReport(host.name, since, now, source, stats, analysis)


SPEC = CommandSpec(
    name="log",
    parse=parse,
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
