"""``/mailq help``: the commands the caller may run, with examples."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

import commands
from bot.app.registry import CommandSpec
from bot.errors import LIST_LIMIT

if TYPE_CHECKING:
    from bot.context import Context


@dataclass(frozen=True)
class HelpEntry:
    name: str
    usage: str
    summary: str
    examples: tuple[str, ...]


@dataclass(frozen=True)
class HelpModel:
    entries: list[HelpEntry]
    hosts: list[str]
    groups: list[str]


@dataclass(frozen=True)
class Args:
    """help takes no arguments."""


def parse(_ns: argparse.Namespace) -> Args:
    return Args()


async def run(_args: Args, ctx: Context) -> HelpModel:
    inventory = ctx.services.inventory
    entries = [
        HelpEntry(s.name, s.usage, s.summary, s.examples)
        for s in commands.all_specs()
        if ctx.may(s.permission)
    ]
    return HelpModel(entries, _first(inventory.names), _first(list(inventory.groups)))


def _first(names: list[str], limit: int = LIST_LIMIT) -> list[str]:
    """At most ``limit`` names, then ``and N more``: help fits Slack's limits at any size."""
    if len(names) <= limit:
        return names
    return [*names[:limit], f"and {len(names) - limit:,} more"]


SPEC = CommandSpec(
    name="help",
    summary="List the commands you may run, with examples.",
    permission="read",
    template="help",
    examples=("/mailq help",),
    parse=parse,
    run=run,
)
