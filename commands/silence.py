"""``/mailq silence HOST|GROUP|RULE for=2h why="..."``: mute alerts until the silence ends.

A silence matches a host, a host group (every host in it) or a rule (``unreachable``,
``deferred``, ``growth``, ``oldest_age``, ``spool_kib``, ``spike:CLASS``; ``*`` patterns
such as ``spike:*``). While it lasts, a matching incident that opens posts nothing; one that
is already in the channel lists the silence in its root and posts no notes. When it ends,
open incidents that nothing mutes any more get their root. The caller needs the role set
in ``[monitor.silences] role`` (operator by default) on every host it mutes; the silence
and who set it are in the audit trail like every command.
"""

from __future__ import annotations

import argparse
import fnmatch
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.app.registry import Argument, CommandSpec
from bot.auth import ROLE_PERMISSIONS
from bot.errors import PermissionDenied, UsageError
from bot.inventory import Inventory
from bot.postfix.filter import parse_duration
from bot.postfix.reasons import ReasonClass
from bot.stores import silences as store
from bot.stores.silences import SilenceView
from bot.text import code, duration

if TYPE_CHECKING:
    from bot.context import Context

USAGE = '/mailq silence HOST|GROUP|RULE for=2h why="..."'
RULES = ("unreachable", "queued", "deferred", "growth", "oldest_age", "spool_kib")
SPIKES = tuple(f"spike:{c.value}" for c in ReasonClass)


@dataclass(frozen=True)
class Args:
    target: str
    seconds: int
    why: str


@dataclass(frozen=True)
class Silenced:
    silence: SilenceView
    hosts: int  # how many hosts it can mute

    @property
    def lasts(self) -> str:
        return duration(self.silence.expires_at - self.silence.created_at)


def parse(ns: argparse.Namespace) -> Args:
    words = list(ns.words)
    options = dict(w.split("=", 1) for w in words if "=" in w)
    plain = [w for w in words if "=" not in w]
    if len(plain) != 1:
        raise UsageError("Name one host, host group or rule to silence.", USAGE)
    unknown = sorted(set(options) - {"for", "why"})
    if unknown:
        raise UsageError(f"Unknown option `{code(unknown[0])[:40]}`: give for= and why=.", USAGE)
    seconds = parse_duration(options.get("for", ""))
    if seconds is None or seconds <= 0:
        raise UsageError("Say how long with for=, e.g. for=30m, for=2h or for=1h30m.", USAGE)
    why = options.get("why", "").strip()
    if not why:
        raise UsageError('Say why with why="...": it is shown on the muted alerts.', USAGE)
    return Args(plain[0], seconds, why[:300])


def target_of(name: str, inventory: Inventory) -> tuple[str, list[str]]:
    """What ``name`` is (host, group or rule) and the hosts it can mute."""
    if name in inventory.names:
        return "host", [name]
    if name in inventory.groups:
        return "group", [h.name for h in inventory.select(name)]
    if any(fnmatch.fnmatchcase(rule, name) for rule in RULES + SPIKES):
        return "rule", list(inventory.names)
    raise UsageError(
        f"`{code(name)[:60]}` is no host, host group or rule. Rules: {', '.join(RULES)}, "
        "spike:CLASS (or spike:*).",
        USAGE,
    )


def scope(ns: argparse.Namespace, inventory: Inventory) -> list[str]:
    return target_of(parse(ns).target, inventory)[1]


async def run(args: Args, ctx: Context) -> Silenced:
    services = ctx.services
    config = services.inventory.config.monitor.silences
    kind, hosts = target_of(args.target, services.inventory)
    if not all(ctx.may(p, hosts) for p in ROLE_PERMISSIONS[config.role]):  # type: ignore[arg-type]
        raise PermissionDenied(
            f"Silencing alerts on {args.target} needs the {config.role} role on every host it "
            "mutes. Ask a mailqbot admin."
        )
    if args.seconds > config.longest:
        raise UsageError(f"A silence lasts at most {duration(config.longest)}.", USAGE)
    now = services.clock()
    found = await store.create(
        services.sessions,
        kind,
        args.target,
        args.why,
        ctx.identity.user_id,
        now,
        now + args.seconds,
    )
    return Silenced(found, len(hosts))


SPEC = CommandSpec(
    name="silence",
    summary="Mute alerts of a host, a host group or a rule for a while (for=, why=); "
    "`silences` lists them.",
    permission="read",
    template="silence",
    examples=('/mailq silence mx1 for=2h why="disk swap"', "/mailq silence spike:* for=30m why=x"),
    arguments=(
        Argument(
            "words",
            help="what to silence, for= and why=",
            metavar='HOST|GROUP|RULE for=2h why="..."',
            nargs="*",
        ),
    ),
    parse=parse,
    run=run,
    scope=scope,
)
