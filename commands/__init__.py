"""The ``/mailq`` commands: ``COMMANDS`` lists their modules in help order.

Each module defines ``Args``, ``parse``, ``run`` and ``SPEC`` (see ``bot.app.registry``).
Commands never touch Slack; help is built from here. A model whose ``private`` attribute
is true (``show ... body``) is shown only to the person who asked, by every front end
(``render.Rendered.private``). docs/dev/adding-a-command.md walks through adding one.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
from functools import cache
from typing import Any

from bot.app.registry import CommandSpec, parse_args
from bot.errors import UsageError

# The command modules, in help order.
COMMANDS = (
    "summary", "show", "diagnose", "list", "log", "flush", "requeue", "hold", "release",
    "purge", "approve", "deny", "plans", "silence", "silences", "audit", "help",
)  # fmt: skip


@cache
def all_specs() -> list[CommandSpec[Any]]:
    """The ``SPEC`` of every module in ``COMMANDS``, in that order."""
    specs = []
    for name in COMMANDS:
        spec = getattr(importlib.import_module(f"{__name__}.{name}"), "SPEC", None)
        if not isinstance(spec, CommandSpec) or spec.name != name:
            raise TypeError(f"commands.{name} must define SPEC, a CommandSpec named {name!r}")
        specs.append(spec)
    return specs


def registry() -> dict[str, CommandSpec[Any]]:
    return {spec.name: spec for spec in all_specs()}


def parse(text: str) -> tuple[CommandSpec[Any], argparse.Namespace]:
    """Split ``text`` like a shell would (no expansion) and parse it against the registry."""
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise UsageError(f"Could not split the command: {exc}. Check your quotes.") from None
    specs = registry()
    if not words:
        words = ["help"]
    name, rest = words[0].lower(), words[1:]
    spec = specs.get(name)
    if spec is None:
        known = ", ".join(f"`{n}`" for n in specs)
        raise UsageError(f"Unknown command `{name}`. Commands: {known}. Try `/mailq help`.")
    return spec, parse_args(spec, rest)
