"""Reading a `/mailq list` reply's blocks, for the demo-host and the lab tests alike."""

from __future__ import annotations

import re
from typing import Any


def counts(blocks: list[dict[str, Any]]) -> tuple[int, int, int]:
    """(matched, scanned, recipients) as the message states them."""
    text = blocks[1]["text"]["text"]
    found = re.match(r"\*([\d,]+)\* of ([\d,]+) messages match · \*([\d,]+)\* recipients", text)
    assert found, text
    matched, scanned, rcpts = (int(g.replace(",", "")) for g in found.groups())
    return matched, scanned, rcpts


def page_ids(blocks: list[dict[str, Any]]) -> list[str]:
    """The queue IDs in the page's table."""
    ids = []
    for block in blocks:
        text = block.get("text", {}).get("text", "") if block["type"] == "section" else ""
        if text.startswith("```queue id"):
            ids += [line.split()[0] for line in text.strip("`").splitlines()[1:]]
    return ids
