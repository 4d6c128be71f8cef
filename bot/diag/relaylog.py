"""Relay providers' permanent refusals from the mail log.

A provider's 5xx refusal (an unverified sender, a sandbox recipient) bounces the message:
it leaves the queue at once and only the log keeps it. ``bounced_refusals`` reads the last
``RELAY_LOG_WINDOW`` seconds of the host's log (``bot.postfix.logreader``) and tallies the
bounces whose reason a provider said; deferrals are counted from the queue instead.
"""

from __future__ import annotations

from bot.diag.relays import RefusalTally
from bot.inventory import Host
from bot.postfix.logreader import read_log
from bot.postfix.maillog import Delivery, LogAnalyser
from bot.remote.audited import Remote

RELAY_LOG_WINDOW = 3600


class _Bounces(LogAnalyser):
    """Keeps only the bounced lines' provider refusals (no other analysis)."""

    def __init__(self, start: float, aliases: dict[str, str]) -> None:
        super().__init__(start, max_keys=16, max_ids=16)
        self.aliases = aliases
        self.tally = RefusalTally()

    def add(self, d: Delivery) -> None:
        if d.when >= self.start and d.status == "bounced":
            self.tally.add(d.reason, d.recipient, self.aliases, bounced=True)


async def _quiet(_message: str) -> None:
    return None


async def bounced_refusals(
    gateway: Remote, host: Host, now: float, aliases: dict[str, str]
) -> RefusalTally:
    bounces = _Bounces(now - RELAY_LOG_WINDOW, aliases)
    await read_log(gateway, host, now, RELAY_LOG_WINDOW, _quiet, analyser=bounces)
    return bounces.tally
