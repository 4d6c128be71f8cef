"""``/mailq diagnose HOST [DOMAIN]``: tell the causes of a deferred queue apart.

Gathers evidence concurrently within the ``[diagnose]`` budget (``bot.diag.collect``):
DNS from the bot, DNS and SMTP from the host (``posttls-finger``), relay and SASL
settings, the sending address against DNSBL zones, a settings lint, and the queue's reason
classes. Then names the verdicts with their evidence, next step and, where an action fits,
a button that runs the command (as the person who clicks).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.app.registry import Argument, CommandSpec, HostArg
from bot.errors import UsageError

if TYPE_CHECKING:
    from bot.context import Context
    from bot.diag.collect import Diagnosis


def domain_argument(text: str | None) -> str | None:
    if text is None:
        return None
    from bot.postfix.tools import checked_domain  # the diagnosis (DNS, TLS) loads when used

    domain = checked_domain(text.strip().removeprefix("@"))
    if domain is None:
        shown = text[:60].replace("`", "'")
        raise UsageError(
            f"`{shown}` is not a valid domain name (like `example.com`).",
            usage=SPEC.usage,
        )
    return domain


@dataclass(frozen=True)
class Args:
    target: str
    domain: str | None  # IDNA ASCII


def parse(ns: argparse.Namespace) -> Args:
    return Args(ns.target, domain_argument(ns.domain))


async def run(args: Args, ctx: Context) -> Diagnosis:
    from bot.diag.collect import Diagnoser

    services = ctx.services
    host = services.inventory.get(args.target)
    domain = args.domain
    config = services.inventory.config.diagnose
    await ctx.progress(
        f"{host.name}: checking DNS, SMTP, relay, blocklists and the queue "
        f"(at most {config.budget:g} s)…"
    )
    return await Diagnoser(ctx.remote, host, config, services.clock()).run(domain)


SPEC = CommandSpec(
    name="diagnose",
    summary="Why mail is deferred: DNS, SMTP and TLS from the host, relay login, blocklists, "
    "settings and the queue's reasons, with verdicts and next steps.",
    permission="read",
    template="diagnose",
    examples=("/mailq diagnose mx1", "/mailq diagnose mx1 example.com"),
    arguments=(
        HostArg("target", help="a host from the inventory", metavar="HOST"),
        Argument("domain", help="a recipient domain to check", metavar="[DOMAIN]", nargs="?"),
    ),
    parse=parse,
    run=run,
)
