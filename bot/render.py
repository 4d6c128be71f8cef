"""One Jinja environment that turns command models into Block Kit and plain text.

Each command has ``templates/<name>.blocks.j2`` (JSON for Slack) and ``<name>.txt.j2``
(the terminal, and Slack's notification fallback). In the blocks templates every ``{{ }}``
is finalised as a JSON literal whose text is cleaned and mrkdwn-escaped, so queue-derived
text can neither break the JSON nor ping anyone. Trusted mrkdwn (date tokens) is ``Markup``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from bot import messages
from bot.errors import MailqbotError, UsageError

TEMPLATES = Path(__file__).parent / "templates"
_INVISIBLE = re.compile(r"[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]")


@dataclass(frozen=True)
class Rendered:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def console(self) -> str:
        return self.text


def clean(value: object) -> str:
    """Drop control, zero-width and bidi-override characters; normalise to NFC."""
    return _INVISIBLE.sub("", unicodedata.normalize("NFC", str(value)))


def escape_mrkdwn(value: object) -> str:
    return clean(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code(value: object) -> str:
    """Text for inside a ``` block: escaped, and unable to close the block."""
    return escape_mrkdwn(value).replace("`", "'")


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
            return f"{seconds // span}{unit}" + (f" {rest // sub[1]}{sub[0]}" if rest >= sub[1] else "")
    return f"{seconds}s"


def utc(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def slackdate(epoch: float) -> Markup:
    """Slack's date token: shown in each reader's own time zone."""
    return Markup(f"<!date^{int(epoch)}^{{date_short_pretty}} {{time}}|{utc(epoch)}>")


def table(rows: list[list[object]], headers: list[str], right: set[int] | None = None) -> str:
    """An aligned monospace table; columns in ``right`` are right-aligned (numbers)."""
    right = right or set()
    cells = [[clean(c) for c in headers]] + [[clean(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def _json_finalize(value: object) -> str:
    if isinstance(value, Markup):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    return json.dumps(escape_mrkdwn(value), ensure_ascii=False)


def _text_finalize(value: object) -> str:
    return clean(value)


def _env(finalize: Any) -> Environment:
    env = Environment(  # noqa: S701 - output is JSON/plain text, escaped by finalize
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(num=num, size=size, duration=duration, utc=utc, slackdate=slackdate, code=code)
    env.globals.update(table=table, messages=messages)
    return env


@cache
def _envs() -> tuple[Environment, Environment]:
    return _env(_json_finalize), _env(_text_finalize)


def render(name: str, model: Any, **extra: Any) -> Rendered:
    blocks_env, text_env = _envs()
    text = text_env.get_template(f"{name}.txt.j2").render(m=model, **extra).strip()
    raw = blocks_env.get_template(f"{name}.blocks.j2").render(m=model, **extra)
    try:
        blocks = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"template {name}.blocks.j2 made invalid JSON: {exc}") from exc
    return Rendered(text=text, blocks=blocks)


def error(exc: MailqbotError) -> Rendered:
    usage = exc.usage if isinstance(exc, UsageError) else ""
    return render("error", exc, usage=usage)


def crash(reference: str) -> Rendered:
    return render("crash", reference)


def audit_failed(reference: str) -> Rendered:
    return render("audit_failed", reference)
