"""Pruning old rows: ``mailqbot prune`` and the monitor's periodic run (one replica at a
time, through the lease in ``bot.stores.retention``). What is kept: ``bot.retention``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING

from bot.retention import RetentionSection
from bot.stores import retention
from bot.text import utc

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.stores.retention import Sessions

log = logging.getLogger(__name__)
LABELS = {
    "samples_fine": "queue samples merged into 10-minute buckets",
    "samples_coarse": "queue samples merged into hourly buckets",
    "samples_expired": "queue samples past the longest tier",
    "command_runs": "command runs",
    "plans": "settled plans",
    "plan_decisions": "their approvals and denials",
    "incidents": "resolved incidents",
    "silences": "expired silences",
    "replicas": "heartbeats of stopped replicas",
}


def report(pruned: retention.Pruned, dry_run: bool) -> str:
    verb = "would delete" if dry_run else "deleted"
    lines = [f"{count:>12,}  {LABELS[name]}" for name, count in asdict(pruned).items()]
    return "\n".join([f"prune {verb} {pruned.total:,} row(s):", *lines])


async def prune_command(settings: Settings, dry_run: bool, full: bool) -> int:
    """``mailqbot prune``: apply the config's ``[retention]`` now, or say who is pruning."""
    from bot.db.session import make_engine, make_sessionmaker
    from bot.inventory import load_config
    from bot.stores.audit_key import AuditTrail

    policy = load_config(settings.config_path).retention
    trail = AuditTrail.from_settings(settings, create=False)
    engine = make_engine(settings.database_url)
    owner = f"{settings.replica_id or socket.gethostname()}:prune"
    try:
        sessions = make_sessionmaker(engine, trail)
        pruned = await retention.run(
            sessions, policy, owner, time.time(), dry_run=dry_run, full=full
        )
        if pruned is None:
            holder = await retention.holder(sessions)
            who = holder.owner if holder else "another process"
            until = utc(holder.expires_at) if holder else "soon"
            print(f"{who} is pruning (its lease runs until {until}); try again after that.")
            return 1
    finally:
        await engine.dispose()
    print(report(pruned, dry_run))
    return 0


async def prune_periodically(
    sessions: Sessions,
    policy: RetentionSection,
    owner: str,
    stop: asyncio.Event,
    clock: Callable[[], float] = time.time,
) -> None:
    """Until ``stop``: every few minutes ask for the prune lease; the replica that gets it
    (at most once per ``every`` across all of them) prunes."""
    if not policy.background:
        return
    every = policy.every
    check = min(300.0, every / 4)
    while not stop.is_set():
        try:
            pruned = await retention.run(sessions, policy, owner, clock(), every=every)
        except Exception:
            log.exception("pruning failed; trying again in %.0f s", check)
        else:
            if pruned is not None:
                log.info("pruned %d row(s): %s", pruned.total, asdict(pruned))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), check)
