"""Block Kit checks every rendered reply must pass: the blocks parse with slack_sdk's models
(which validate lengths), at most 50 blocks, no text object over 3,000 characters."""

from __future__ import annotations

import json

from slack_sdk.models.blocks import Block


def all_text(blocks: list[dict[str, object]]) -> str:
    return json.dumps(blocks, ensure_ascii=False)


def assert_valid_block_kit(blocks: list[dict[str, object]]) -> None:
    assert 0 < len(blocks) <= 50
    for parsed, raw in zip(Block.parse_all(blocks), blocks, strict=True):
        assert parsed is not None
        assert parsed.to_dict() is not None  # validates lengths, raising on a violation
        assert raw["type"] == parsed.type
    for block in blocks:
        texts = [block.get("text"), *block.get("fields", [])]  # type: ignore[list-item]
        for text in texts:
            if isinstance(text, dict):
                assert len(text["text"]) <= 3000
