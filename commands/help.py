"""``/mailq help``: the commands the caller may run, with examples."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

import commands
from bot.app.registry import CommandSpec

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
    return HelpModel(entries, inventory.names, list(inventory.groups))


SPEC = CommandSpec(
    name="help",
    summary="List the commands you may run, with examples.",
    permission="read",
    template="help",
    examples=("/mailq help",),
    parse=parse,
    run=run,
)
