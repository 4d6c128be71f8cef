"""Tables that templates place in code blocks: built here, in Python, once for both outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from bot.postfix.qshape import HEADERS, QueueShape
from bot.postfix.summary import QueueSummary
from bot.text import duration, num, size, table

if TYPE_CHECKING:
    from bot.fleet import FleetSummary, FleetTotals, HostLine

DOMAIN_WIDTH = 32  # longer domains are shown as "+" and their tail, as qshape does


def queue_table(s: QueueSummary) -> str:
    rows = [
        [name, num(c.messages), num(c.recipients), size(c.bytes)] for name, c in s.queues.items()
    ]
    return table(rows, ["queue", "messages", "recipients", "size"], right=(1, 2, 3))


def class_table(s: QueueSummary) -> str:
    rows = [
        [
            g.reason_class.label,
            num(g.messages),
            num(g.recipients),
            g.top_domains[0][0] if g.top_domains else "",
        ]
        for g in s.deferred_by_class
    ]
    return table(rows, ["deferred because", "messages", "recipients", "top destination"], (1, 2))


def age_table(s: QueueSummary) -> str:
    return table([[b.label, num(b.messages)] for b in s.age_buckets], ["age", "messages"], (1,))


def top_table(pairs: list[tuple[str, int]], what: str, unit: str) -> str:
    return table([[key, num(n)] for key, n in pairs], [what, unit], (1,))


def fit(text: str, width: int = DOMAIN_WIDTH) -> str:
    return text if len(text) <= width else "+" + text[len(text) - width + 1 :]


def shape_table(shape: QueueShape, rows: int | None = None) -> str:
    """qshape's layout: a TOTAL row, then domains by total; columns T, then age in minutes."""
    label = "recipient domain" if shape.counting == "recipients" else "sender domain"
    chosen = shape.rows if rows is None else shape.rows[:rows]
    body = [[fit(row.domain), *(num(n) for n in row.counts)] for row in [shape.total, *chosen]]
    return table(body, [label, *HEADERS], right=range(1, len(HEADERS) + 1))


def sender_domain_table(s: QueueSummary) -> str:
    rows = [
        [fit(domain), num(n), f"{100 * n / s.total_messages:.0f}%"]
        for domain, n in s.top_sender_domains
    ]
    return table(rows, ["sender domain", "msgs", "share"], right=(1, 2))


def fleet_table(lines: Sequence[HostLine], now: float) -> str:
    rows = [_fleet_row(line, now) for line in lines]
    headers = ["host", "messages", "deferred", "top reason", "oldest", "returned in", "status"]
    return table(rows, headers, right=(1, 2, 4, 5))


def _fleet_row(line: HostLine, now: float) -> list[str]:
    if line.summary is None:
        return [fit(line.host, 40), "", "", "", "", "", "error"]
    age = line.oldest_age(now)
    left = line.expiry.left(now) if line.expiry else None
    return [
        fit(line.host, 40),
        num(line.messages),
        num(line.deferred),
        line.top_class,
        "" if age is None else duration(age),
        "" if left is None else ("due" if left <= 0 else duration(left)),
        "ok",
    ]


def fleet_class_table(t: FleetTotals) -> str:
    rows = [[c.label, num(c.messages), num(c.recipients), num(c.hosts)] for c in t.classes]
    return table(rows, ["deferred because", "messages", "recipients", "hosts"], (1, 2, 3))


def fleet_age_table(t: FleetTotals) -> str:
    return table(
        [["TOTAL", *(num(n) for n in t.deferred_ages)]],
        ["deferred rcpts", *HEADERS],
        right=range(1, len(HEADERS) + 1),
    )


def failure_lines(f: FleetSummary, limit: int | None = None, full: bool = False) -> str:
    chosen = f.failures if limit is None else f.failures[:limit]
    return "\n".join(
        f"• {line.host}: {line.error_detail if full else line.error}" for line in chosen
    )


def pairs_text(pairs: list[tuple[str, int]]) -> str:
    return ", ".join(f"{key} ({num(n)})" for key, n in pairs)


def reason_lines(pairs: list[tuple[str, int]]) -> str:
    """One mrkdwn line per reason; the code span cannot be closed by the reason's text."""
    return "\n".join(f"• {num(n)} × `{_no_backticks(reason)}`" for reason, n in pairs)


def _no_backticks(text: str) -> str:
    return text.replace("`", "'")


GLOBALS = {
    "table": table,
    "reason_lines": reason_lines,
    "queue_table": queue_table,
    "class_table": class_table,
    "age_table": age_table,
    "top_table": top_table,
    "pairs_text": pairs_text,
    "shape_table": shape_table,
    "sender_domain_table": sender_domain_table,
    "fleet_table": fleet_table,
    "fleet_class_table": fleet_class_table,
    "fleet_age_table": fleet_age_table,
    "failure_lines": failure_lines,
}
