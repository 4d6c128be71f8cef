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


# -- the one duration grammar: 90s, 30m, 1h30m, 2d, 1w -------------------------------------

DURATION_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
DURATION_FORMS = "90s, 30m, 1h30m, 2d or 1w"
_DURATION = re.compile(r"(?:\d{1,7}(?:ms|[wdhms]))+")
_DURATION_PART = re.compile(r"(\d{1,7})(ms|[wdhms])")


def parse_seconds(text: str) -> float | None:
    """Seconds in a duration of numbers each with a unit (``90s``, ``1h30m``, ``1w``,
    ``250ms``); None unless it is one above zero. A plain number is not a duration: its
    unit is unknown."""
    text = text.strip().lower()
    if not _DURATION.fullmatch(text):
        return None
    millis = sum(
        int(n) * (1 if unit == "ms" else 1000 * DURATION_UNITS[unit])
        for n, unit in _DURATION_PART.findall(text)
    )
    return millis / 1000 if millis else None


def parse_duration(text: str) -> int | None:
    """Whole seconds in a duration (``parse_seconds``); None if it is not one, or has a
    fraction of a second."""
    seconds = parse_seconds(text)
    return int(seconds) if seconds is not None and seconds.is_integer() else None


def format_duration(seconds: int) -> str:
    """The shortest ``parse_duration`` text for ``seconds`` (``5400`` -> ``1h30m``)."""
    parts = []
    for unit, span in DURATION_UNITS.items():
        if unit != "w" and seconds >= span:
            parts.append(f"{seconds // span}{unit}")
            seconds %= span
    return "".join(parts) or "0s"


def duration_problem(value: object) -> str | None:
    """Why ``value`` (from a config file) is not a duration, or None if it is one."""
    if isinstance(value, str) and parse_seconds(value) is not None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value!r} has no unit; write a duration with one, like {DURATION_FORMS}"
    return f"{str(value)[:40]!r} is not a duration; write one like {DURATION_FORMS}"
