"""One Jinja environment that turns command models into Block Kit and plain text.

Each command has ``templates/<name>.blocks.j2`` (JSON for Slack) and ``<name>.txt.j2``
(the terminal, and Slack's notification fallback). In the blocks templates every ``{{ }}``
is finalised as a JSON literal whose text is cleaned and mrkdwn-escaped, so queue-derived
text can neither break the JSON nor ping anyone. The one trusted mrkdwn construct, Slack's
date token, is written as a placeholder carrying a per-process random nonce that queue
text cannot forge, and turned into ``<!date^...>`` after escaping.

A model whose ``private`` attribute is true (``show ... body``: private mail) renders a
``Rendered`` marked ``private``: front ends show it only to the person who asked.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from bot import messages, tables
from bot.actions import rules as plans
from bot.errors import MailqbotError, UsageError
from bot.render import limits
from bot.text import clean, code, duration, escape_mrkdwn, num, size, utc

if TYPE_CHECKING:
    from bot.remote.audited import Change

TEMPLATES = Path(__file__).parent / "templates"
FALLBACK_LIMIT = 300
_NONCE = secrets.token_hex(8)
_DATE_TOKEN = re.compile(rf"\[{_NONCE}:date:(\d+)\]")
_USER_TOKEN = re.compile(rf"\[{_NONCE}:user:([UW][A-Z0-9]{{2,20}})\]")
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,20}")


@dataclass(frozen=True)
class Attachment:
    """Output too long for a message: posted as a file in the thread, printed in the console."""

    filename: str
    content: str
    title: str


@dataclass(frozen=True)
class Rendered:
    text: str
    blocks: list[dict[str, Any]] = field(default_factory=list)
    attachment: Attachment | None = None
    # Only for the person who asked: never in a channel, a thread or a shared file.
    private: bool = False

    @property
    def console(self) -> str:
        if self.attachment is None:
            return self.text
        rule = "-" * 72
        return f"{self.text}\n\n{rule}\n{self.attachment.title}\n{rule}\n{self.attachment.content}"

    @property
    def fallback(self) -> str:
        """Slack's notification text: the first line, kept short."""
        first = self.text.split("\n", 1)[0]
        return first if len(first) <= FALLBACK_LIMIT else first[: FALLBACK_LIMIT - 1] + "…"


def slackdate(epoch: float) -> str:
    """A placeholder for Slack's date token (shown in each reader's own time zone)."""
    return f"[{_NONCE}:date:{int(epoch)}]"


def slackuser(user_id: str) -> str:
    """A placeholder for a mention of a Slack user id (anything else stays plain text)."""
    return f"[{_NONCE}:user:{user_id}]" if _SLACK_USER.fullmatch(user_id) else user_id


def _date_token(match: re.Match[str]) -> str:
    epoch = int(match.group(1))
    return f"<!date^{epoch}^{{date_short_pretty}} {{time}}|{utc(epoch)}>"


def _json_finalize(value: object) -> str:
    if isinstance(value, bool | int | float) or value is None:
        return json.dumps(value)
    text = _DATE_TOKEN.sub(_date_token, escape_mrkdwn(value))
    text = _USER_TOKEN.sub(lambda m: f"<@{m.group(1)}>", text)
    return json.dumps(text, ensure_ascii=False)


def _text_finalize(value: object) -> str:
    return clean(value)


def _plain_user(user_id: str) -> str:
    return user_id


def _env(finalize: Any, date: Any, user: Any) -> Environment:
    env = Environment(  # noqa: S701 - output is JSON/plain text, escaped by finalize
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        finalize=finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters.update(num=num, size=size, duration=duration, utc=utc, slackdate=date, code=code,
                       slackuser=user)  # fmt: skip
    env.globals.update(messages=messages, plans=plans, **tables.GLOBALS)
    return env


@cache
def _envs() -> tuple[Environment, Environment]:
    return _env(_json_finalize, slackdate, slackuser), _env(_text_finalize, utc, _plain_user)


def render(name: str, model: Any, **extra: Any) -> Rendered:
    blocks_env, text_env = _envs()
    text = text_env.get_template(f"{name}.txt.j2").render(m=model, **extra).strip()
    raw = blocks_env.get_template(f"{name}.blocks.j2").render(m=model, **extra)
    try:
        blocks = limits.fit(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise RuntimeError(f"template {name}.blocks.j2 made invalid JSON: {exc}") from exc
    private = getattr(model, "private", False) is True
    attachment = _attachment(name, model, extra)
    return Rendered(text=text, blocks=blocks, attachment=attachment, private=private)


def _attachment(name: str, model: Any, extra: dict[str, Any]) -> Attachment | None:
    """``<name>.file.j2``, if the command has one and it renders to something."""
    _, text_env = _envs()
    if f"{name}.file.j2" not in text_env.list_templates(filter_func=lambda n: n.endswith(".j2")):
        return None
    content = text_env.get_template(f"{name}.file.j2").render(m=model, **extra).strip()
    if not content:
        return None
    filename = str(getattr(model, "filename", f"mailqbot-{name}.txt"))
    title = str(getattr(model, "file_title", f"Full output of {name}"))
    return Attachment(filename=filename, content=content + "\n", title=title)


def error(exc: MailqbotError) -> Rendered:
    usage = exc.usage if isinstance(exc, UsageError) else ""
    return render("error", exc, usage=usage)


def crash(reference: str) -> Rendered:
    return render("crash", reference)


def audit_failed(
    reference: str, changes: Sequence[Change] = (), result: Rendered | None = None
) -> Rendered:
    """The reply when a request's audit record could not be written: the answer withheld,
    or, for a change that already ran, what the host reported under a warning."""
    if not changes or result is None:
        return render("audit_failed", reference)
    hosts = ", ".join(sorted({c.host for c in changes}))
    warning = messages.AUDIT_FAILED_AFTER_CHANGE.format(hosts=hosts, ref=reference)
    head = {
        "type": "section",
        "text": {"type": "mrkdwn", "text": ":warning: " + escape_mrkdwn(warning)},
    }
    blocks = limits.fit([head, *result.blocks])
    return Rendered(f"{warning}\n\n{result.text}", blocks, result.attachment)
