"""Tables that templates place in code blocks: built here, in Python, once for both outputs."""

from __future__ import annotations

from bot.mta.summary import QueueSummary
from bot.text import num, size, table


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


def pairs_text(pairs: list[tuple[str, int]]) -> str:
    return ", ".join(f"{key} ({num(n)})" for key, n in pairs)


def reason_lines(pairs: list[tuple[str, int]]) -> str:
    """One mrkdwn line per reason; the code span cannot be closed by the reason's text."""
    return "\n".join(f"• {num(n)} × `{_no_backticks(reason)}`" for reason, n in pairs)


def _no_backticks(text: str) -> str:
    return text.replace("`", "'")


GLOBALS = {
    "reason_lines": reason_lines,
    "queue_table": queue_table,
    "class_table": class_table,
    "age_table": age_table,
    "top_table": top_table,
    "pairs_text": pairs_text,
}
