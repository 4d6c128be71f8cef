"""Retention keeps the database bounded: a month of 200 hosts polled every minute, pruned
as the days pass, on SQLite and PostgreSQL; the tiers, runs and plans; one pruner at a time;
the audit trail untouched."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from bot.db.models import (
    ActionPlan,
    AuditEvent,
    CommandRun,
    Incident,
    PlanDecision,
    QueueSample,
    Silence,
)
from bot.maintenance import prune_periodically
from bot.retention import RetentionSection
from bot.stores import audit, retention
from bot.stores.audit_key import AuditTrail, read_checkpoint
from helpers.samplefill import count, fill

Sessions = async_sessionmaker[AsyncSession]
DAY = 86400.0
START = 1_800_000_000.0  # a whole hour (epoch seconds)
HOSTS = 200
POLLS_A_DAY = HOSTS * 1440  # every 60 s


async def _runs(sessions: Sessions, day: int, n: int) -> None:
    """``n`` command runs on simulated day ``day``."""
    base = datetime.fromtimestamp(START + day * DAY, UTC)
    rows = [
        {
            "request_id": f"r{day:03d}{i:04d}",
            "source": "slack",
            "user_id": "U1",
            "team_id": "T1",
            "channel_id": "C1",
            "command": "summary",
            "text": "summary all",
            "target": "all",
            "started_at": base + timedelta(minutes=i),
            "finished_at": base + timedelta(minutes=i, seconds=2),
            "outcome": "ok",
            "error": None,
        }
        for i in range(n)
    ]
    async with sessions() as session, session.begin():
        await session.execute(insert(CommandRun), rows)


async def _plans(sessions: Sessions, day: int) -> None:
    """One plan in each status on simulated day ``day``, each with one decision."""
    at = datetime.fromtimestamp(START + day * DAY, UTC)
    statuses = ("pending", "approved", "executing", "unknown", "done", "failed", "denied",
                "expired")  # fmt: skip
    async with sessions() as session, session.begin():
        for status in statuses:
            plan_id = f"p{day:03d}{status}"
            session.add(
                ActionPlan(
                    id=plan_id,
                    request_id=plan_id,
                    host="mx001",
                    action="hold",
                    action_class="hold",
                    selector="older=1h",
                    items=[],
                    item_count=0,
                    preview={},
                    plan_hash="0" * 64,
                    requester="U1",
                    requester_team="T1",
                    reason="test",
                    status=status,
                    approvals_needed=1,
                    approvals=0,
                    created_at=at,
                    expires_at=at + timedelta(hours=1),
                    decided_at=at + timedelta(minutes=5) if status != "pending" else None,
                    finished_at=at + timedelta(minutes=6) if status in {"done", "failed"} else None,
                )
            )
            await session.flush()
            session.add(PlanDecision(plan_id=plan_id, actor="U2", team_id="T1",
                                     decision="approve", at=at))  # fmt: skip


async def _audit_rows(sessions: Sessions) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count(AuditEvent.id)))).scalar_one())


def _expected_samples(days: int) -> int:
    """Rows after ``days`` days of polls and a prune at the end of each day (defaults)."""
    raw_days = min(days, 2)
    return raw_days * POLLS_A_DAY + (days - raw_days) * HOSTS * 144


@pytest.mark.slow
async def test_a_month_of_200_hosts_stays_bounded(sessions: Sessions, trail: AuditTrail) -> None:
    """30 days x 200 hosts x a poll a minute (8.64 M polls): pruned daily, queue_samples
    holds two days of polls plus one per 10 minutes; runs and plans stop growing."""
    policy = RetentionSection(command_runs=7 * DAY, plans=7 * DAY)
    await audit.write(sessions, audit.AuditRecord(source="console", actor="U1", action="x"))
    for day in range(30):
        await fill(sessions, HOSTS, START + day * DAY, DAY)
        await _runs(sessions, day, 100)
        await _plans(sessions, day)
        pruned = await retention.run(sessions, policy, "r1", START + (day + 1) * DAY)
        assert pruned is not None
        samples = await count(sessions, "queue_samples")
        assert samples == _expected_samples(day + 1), day
        assert await count(sessions, "command_runs") == 100 * min(day + 1, 7)
    # 8 plans a day; the 4 unsettled ones are always kept, the settled only for 7 days
    assert await count(sessions, "action_plans") == 30 * 4 + 7 * 4
    assert await count(sessions, "plan_decisions") == 30 * 4 + 7 * 4
    assert samples == 2 * POLLS_A_DAY + 28 * HOSTS * 144 == 1_382_400
    # each host keeps one sample per 10-minute bucket: its busiest good poll
    async with sessions() as session:
        per_bucket = (
            select(QueueSample.host, func.count())
            .where(QueueSample.at < START + 27 * DAY)
            .group_by(QueueSample.host)
        )
        counts = dict((await session.execute(per_bucket)).all())
    assert set(counts.values()) == {27 * 144}
    # audit events are never pruned: one per prune that deleted anything (from day 3 on)
    # was added, and the chain verifies
    assert await _audit_rows(sessions) == 1 + 28
    assert (await audit.verify(sessions, list(read_checkpoint(trail.checkpoint)))).ok


async def test_every_tier_reaches_a_plateau(sessions: Sessions) -> None:
    """With short tiers (25 h raw, 2 days of 10-minute samples, 3 days at most) the count
    is the same every day once the oldest tier is full."""
    policy = RetentionSection(samples_raw=25 * 3600, samples_fine=2 * DAY, samples_max=3 * DAY)
    hosts = 20
    sizes = []
    for day in range(6):
        await fill(sessions, hosts, START + day * DAY, DAY)
        await retention.run(sessions, policy, "r1", START + (day + 1) * DAY)
        sizes.append(await count(sessions, "queue_samples"))
    plateau = hosts * (25 * 60 + 23 * 6 + 24)  # raw 25 h, 10-minute 23 h, hourly 24 h
    assert sizes[3:] == [plateau] * 3
    async with sessions() as session:
        oldest = (await session.execute(select(func.min(QueueSample.at)))).scalar_one()
    assert oldest >= START + 6 * DAY - 3 * DAY


async def test_a_dry_run_counts_exactly_and_changes_nothing(sessions: Sessions) -> None:
    policy = RetentionSection(samples_raw=25 * 3600, samples_fine=2 * DAY, samples_max=3 * DAY)
    await fill(sessions, 10, START, 4 * DAY)
    await _runs(sessions, 0, 5)
    now = START + 4 * DAY + 3600
    before = await count(sessions, "queue_samples")
    planned = await retention.run(sessions, policy, "r1", now, dry_run=True)
    assert planned is not None
    assert planned.samples_fine > 0
    assert planned.samples_coarse > 0
    assert planned.samples_expired > 0
    assert await count(sessions, "queue_samples") == before
    done = await retention.run(sessions, policy, "r1", now)
    assert done == planned
    assert await count(sessions, "queue_samples") == before - planned.total


def _incident(host: str, opened: float, resolved: float | None) -> Incident:
    return Incident(
        host=host, kind="deferred", open_key=None if resolved else f"{host}|deferred",
        state="resolved" if resolved else "open", severity="warning", value=120, peak=120,
        threshold=100, detail={}, opened_at=opened, updated_at=resolved or opened,
        resolved_at=resolved, created_by="test",
    )  # fmt: skip


def _silence(target: str, created: float, expires: float) -> Silence:
    return Silence(target_kind="host", target=target, reason="maintenance", created_by="U1",
                   created_at=created, expires_at=expires)  # fmt: skip


async def _names(sessions: Sessions, model: type[Incident] | type[Silence]) -> set[str]:
    column = Incident.host if model is Incident else Silence.target
    async with sessions() as session:
        return set((await session.scalars(select(column))).all())


async def test_resolved_incidents_and_expired_silences_go_after_their_time(
    sessions: Sessions,
) -> None:
    """Resolved incidents older than ``incidents`` and silences expired more than
    ``silences`` ago are deleted; an open incident (however old) and a silence in force
    (however long) stay, and the run's audit event counts what went."""
    policy = RetentionSection(incidents=30 * DAY, silences=7 * DAY)
    now = START + 100 * DAY
    async with sessions() as session, session.begin():
        session.add_all([
            _incident("old-resolved", now - 90 * DAY, now - 31 * DAY),
            _incident("recent-resolved", now - 40 * DAY, now - 29 * DAY),
            _incident("open-for-long", now - 99 * DAY, None),
            _silence("expired-long-ago", now - 20 * DAY, now - 8 * DAY),
            _silence("expired-lately", now - 10 * DAY, now - 6 * DAY),
            _silence("in-force", now - 99 * DAY, now + 365 * DAY),
        ])  # fmt: skip
    planned = await retention.run(sessions, policy, "r1", now, dry_run=True)
    assert planned is not None
    assert (planned.incidents, planned.silences) == (1, 1)
    assert len(await _names(sessions, Incident)) == 3  # a dry run deletes nothing
    events = await _audit_rows(sessions)
    done = await retention.run(sessions, policy, "r1", now)
    assert done == planned
    assert await _names(sessions, Incident) == {"recent-resolved", "open-for-long"}
    assert await _names(sessions, Silence) == {"expired-lately", "in-force"}
    assert await _audit_rows(sessions) == events + 1  # one retention.pruned event
    async with sessions() as session:
        last = (await session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()))).first()
    assert last is not None
    assert last.action == "retention.pruned"
    deleted = last.detail["deleted"]
    assert (deleted["incidents"], deleted["silences"]) == (1, 1)


async def test_one_pruner_at_a_time_and_at_most_every_interval(sessions: Sessions) -> None:
    now = START
    first = await retention.take_lease(sessions, "r1", now, 600)
    assert first is not None
    assert await retention.take_lease(sessions, "r2", now + 10, 600) is None
    holder = await retention.holder(sessions)
    assert holder is not None
    assert holder.owner == "r1"
    # the lease outlives a dead owner only until it expires
    assert await retention.take_lease(sessions, "r2", now + 601, 600) is not None
    await retention.give_back(sessions, "r2", done_until=now + 700)
    # scheduled runs: not again within ``every`` of the last finished run, whoever asks
    assert await retention.run(sessions, RetentionSection(), "r1", now + 800, every=3600) is None
    assert await retention.run(sessions, RetentionSection(), "r1", now + 4400, every=3600)


async def test_replicas_racing_to_prune_run_it_once(sessions: Sessions) -> None:
    await fill(sessions, 10, START, 3 * DAY)
    policy = RetentionSection()
    now = START + 3 * DAY
    results = await asyncio.gather(
        *(retention.run(sessions, policy, f"r{i}", now, every=3600) for i in range(4))
    )
    ran = [r for r in results if r is not None]
    assert len(ran) == 1
    assert ran[0].samples_fine == 10 * 1440 - 10 * 144


async def test_the_cli_prunes_by_the_config_and_a_dry_run_changes_nothing(
    db_url: str,
    sessions: Sessions,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "known_hosts").write_text("")
    config = tmp_path / "mailqbot.toml"
    config.write_text(
        f'[ssh]\nknown_hosts = "{tmp_path / "known_hosts"}"\n'
        '[[hosts]]\nname = "mx001"\naddress = "127.0.0.1"\n'
        '[retention]\nsamples_raw = "25h"\nsamples_fine = "2d"\nsamples_max = "3d"\n'
    )
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("MAILQBOT_CONFIG", str(config))
    now = time.time()
    await fill(sessions, 5, now - 5 * DAY, 5 * DAY)
    before = await count(sessions, "queue_samples")
    assert await asyncio.to_thread(main, ["prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "prune would delete" in out
    assert "queue samples past the longest tier" in out
    assert await count(sessions, "queue_samples") == before
    assert await asyncio.to_thread(main, ["prune"]) == 0
    out = capsys.readouterr().out
    deleted = int(out.split("prune deleted ")[1].split(" ")[0].replace(",", ""))
    assert deleted > 0
    assert await count(sessions, "queue_samples") == before - deleted
    # while another process holds the lease, the CLI says who and changes nothing
    assert await retention.take_lease(sessions, "replica-b", time.time(), 600)
    assert await asyncio.to_thread(main, ["prune"]) == 1
    assert "replica-b is pruning (its lease runs until" in capsys.readouterr().out


async def test_the_monitor_prunes_in_the_background(sessions: Sessions) -> None:
    """``prune_periodically`` (started by the monitor's scheduler) prunes at once, then
    keeps asking for the lease until it is stopped."""
    await fill(sessions, 5, START, 3 * DAY)
    before = await count(sessions, "queue_samples")
    stop = asyncio.Event()
    task = asyncio.create_task(
        prune_periodically(sessions, RetentionSection(), "r1", stop, lambda: START + 3 * DAY)
    )
    for _ in range(200):
        holder = await retention.holder(sessions)
        if holder is not None and holder.done_until is not None:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert holder is not None
    assert holder.done_until == START + 3 * DAY
    assert await count(sessions, "queue_samples") == before - (5 * 1440 - 5 * 144)
