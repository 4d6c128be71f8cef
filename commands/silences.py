"""``/mailq silences``: the silences in force, soonest to end first."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.app.registry import CommandSpec
from bot.stores import silences as store
from bot.stores.silences import SilenceView
from bot.text import table, utc

if TYPE_CHECKING:
    from bot.context import Context


@dataclass(frozen=True)
class Args:
    pass


@dataclass(frozen=True)
class SilenceList:
    rows: list[SilenceView]
    now: float

    def text_table(self) -> str:
        rows = [
            [str(s.id), s.what, utc(s.expires_at), s.created_by, s.reason[:60]] for s in self.rows
        ]
        return table(rows, ["id", "silences", "until", "set by", "why"], (0,))


def parse(_ns: argparse.Namespace) -> Args:
    return Args()


async def run(_args: Args, ctx: Context) -> SilenceList:
    now = ctx.services.clock()
    return SilenceList(await store.in_force(ctx.services.sessions, now), now)


SPEC = CommandSpec(
    name="silences",
    summary="The alert silences in force, with when each ends.",
    permission="read",
    template="silences",
    examples=("/mailq silences",),
    parse=parse,
    run=run,
)
