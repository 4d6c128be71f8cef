"""Text helpers for people: cleaning hostile text, numbers, sizes, durations, tables."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

_INVISIBLE = re.compile(
    r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)


def clean(value: object) -> str:
    """Drop control, zero-width and bidi-override characters; normalise to NFC."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFC", str(value)))


def truncate(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ending in "…" where it was cut (the one
    truncation rule; ``bot.render.limits.cut`` adds Block Kit's escapes on top)."""
    if len(text) <= limit:
        return text
    return text[: limit - 1].rstrip() + "…"


def escape_mrkdwn(value: object) -> str:
    return clean(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(value: object) -> str:
    """Text for inside a ``` block, unable to close the block (escaping comes later)."""
    return str(value).replace("`", "'")


def num(value: int | float) -> str:
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def size(n: int | float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1024
    return f"{n:,.1f} TiB"


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, span in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= span:
            rest = seconds % span
            sub = {"d": ("h", 3600), "h": ("m", 60), "m": ("s", 1)}[unit]
            return f"{seconds // span}{unit}" + (
                f" {rest // sub[1]}{sub[0]}" if rest >= sub[1] else ""
            )
    return f"{seconds}s"


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def table(
    rows: Sequence[Sequence[object]], headers: Sequence[str], right: Collection[int] = ()
) -> str:
    """An aligned monospace table; columns in ``right`` are right-aligned (numbers)."""
    cells = [[clean(c) for c in headers]] + [[clean(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)
