"""Offline fakes for tests: a fake Slack server, Slack request signing, a cuttable relay."""

from .cut import Cuttable
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
    "Cuttable",
    "FakeFile",
    "FakeSlack",
    "block_actions_body",
    "block_actions_payload",
    "sign",
    "slash_command_body",
    "slash_command_payload",
]
