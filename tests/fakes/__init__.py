"""Offline fakes for tests: a fake Slack server and Slack request signing."""

from .signing import (
    block_actions_body,
    block_actions_payload,
    sign,
    slash_command_body,
    slash_command_payload,
)
from .slack import Call, FakeFile, FakeSlack

__all__ = [
    "Call",
    "FakeFile",
    "FakeSlack",
    "block_actions_body",
    "block_actions_payload",
    "sign",
    "slash_command_body",
    "slash_command_payload",
]
