"""app-manifest.yml validates against Slack's schema and declares what the code registers."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

import commands
from bot.slack.app import SLASH_COMMAND

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests/data/slack_schema/manifest.schema.1.0.0.json"


def manifest() -> dict[str, object]:
    data: dict[str, object] = yaml.safe_load((ROOT / "app-manifest.yml").read_text())
    return data


def test_manifest_validates_against_slacks_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(manifest()), key=str)
    assert errors == []


def test_manifest_declares_the_slash_command_and_its_subcommands() -> None:
    features = manifest()["features"]
    declared = {c["command"]: c for c in features["slash_commands"]}  # type: ignore[index]
    assert set(declared) == {SLASH_COMMAND}
    hint = declared[SLASH_COMMAND]["usage_hint"]
    for spec in commands.all_specs():
        assert spec.name in hint, f"usage_hint does not mention {spec.name}"


def test_manifest_asks_for_the_scopes_the_bot_uses() -> None:
    scopes = set(manifest()["oauth_config"]["scopes"]["bot"])  # type: ignore[index]
    assert {"commands", "chat:write", "files:write", "usergroups:read"} <= scopes
