"""Block Kit's limits, enforced on every rendered message (the last step of ``render``).

Templates aim to stay inside the limits; this makes sure whatever they produce does, however
long the queue's text is: a text over its limit is cut (with "…", never inside an escape
like ``&amp;``), fields, elements and blocks beyond their counts are dropped, and the last
block says how much was left out. Cuts are counted so a test can show a template never
needed one for ordinary data.
"""

from __future__ import annotations

import re
from typing import Any

from bot.text import truncate

MAX_BLOCKS = 50
SECTION_TEXT = 3000
FIELD_TEXT = 2000
MAX_FIELDS = 10
HEADER_TEXT = 150
CONTEXT_ELEMENTS = 10
ACTIONS_ELEMENTS = 25
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
CONFIRM = {"title": 100, "text": 300, "confirm": 30, "deny": 30}
MESSAGE_TEXT = 4000
_ESCAPE = re.compile(r"&[a-z]{0,4}$")


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, with "…" at the cut, never mid-escape."""
    short = truncate(text, limit)
    if short is text:
        return text
    return _ESCAPE.sub("", short[:-1]) + "…"


def _text(obj: Any, limit: int) -> None:
    if isinstance(obj, dict) and isinstance(obj.get("text"), str):
        obj["text"] = cut(obj["text"], limit)


def _element(element: dict[str, Any]) -> None:
    if element.get("type") == "button":
        _text(element.get("text"), BUTTON_TEXT)
        if isinstance(element.get("value"), str) and len(element["value"]) > BUTTON_VALUE:
            element.pop("value")  # a cut command would run something else: no value, no run
        confirm = element.get("confirm")
        if isinstance(confirm, dict):
            for key, limit in CONFIRM.items():
                _text(confirm.get(key), limit)
    elif element.get("type") in ("mrkdwn", "plain_text"):
        _text(element, SECTION_TEXT)


def _block(block: dict[str, Any]) -> None:
    kind = block.get("type")
    if kind == "header":
        _text(block.get("text"), HEADER_TEXT)
    elif kind == "section":
        _text(block.get("text"), SECTION_TEXT)
        fields = block.get("fields")
        if isinstance(fields, list):
            del fields[MAX_FIELDS:]
            for field in fields:
                _text(field, FIELD_TEXT)
        if isinstance(block.get("accessory"), dict):
            _element(block["accessory"])
    elif kind in ("context", "actions"):
        elements = block.get("elements")
        if isinstance(elements, list):
            del elements[CONTEXT_ELEMENTS if kind == "context" else ACTIONS_ELEMENTS :]
            for element in elements:
                if isinstance(element, dict):
                    _element(element)


def fit(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The blocks within Block Kit's limits (changed in place, and returned)."""
    for block in blocks:
        if isinstance(block, dict):
            _block(block)
    if len(blocks) > MAX_BLOCKS:
        left_out = len(blocks) - (MAX_BLOCKS - 1)
        del blocks[MAX_BLOCKS - 1 :]
        note = f"{left_out:,} more blocks did not fit in one message."
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": note}]})
    return blocks
