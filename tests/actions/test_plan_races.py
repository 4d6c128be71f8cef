"""Approval races, on SQLite and PostgreSQL: one decision, at most one execution.

The host is an in-process SSH server with a fake queue (fake_postfix.py) so every
``postsuper`` run is counted; the bot runs in this process and, for the cross-process
cases, as separate OS processes sharing the database.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from bot.actions import approvals
from bot.actions.perform import BATCH
from bot.actions.rules import PlanView
from bot.app.pipeline import Outcome, handle
from bot.app.runtime import open_services
from bot.app.services import LiveServices, Services
from bot.auth import GUEST
from bot.context import Request
from bot.db.models import ActionPlan, AuditEvent, PlanDecision
from bot.settings import Settings
from bot.slack import recovery
from bot.slack.client import make_client
from bot.stores import audit
from bot.stores import plans as plans_store
from helpers import approve_proc
from helpers.fake_postfix import (
    APPROVER_A,
    APPROVER_B,
    REQUESTER,
    TEAM,
    VIEWER,
    FakePostfix,
    RaceHost,
    queue_lines,
    race_host,
)  # fmt: skip
from helpers.fakes import FakeSlack

PROC = Path(approve_proc.__file__)  # one bot process, run as a script


@pytest.fixture
async def host(tmp_path: Path) -> AsyncIterator[RaceHost]:
    async with race_host(tmp_path, FakePostfix(queue_lines(5, time.time()))) as opened:
        yield opened


def settings(db_url: str, host: RaceHost, replica: str = "test") -> Settings:
    return Settings(DATABASE_URL=db_url, MAILQBOT_CONFIG=host.config, MAILQBOT_REPLICA_ID=replica)


@pytest.fixture
async def services(db_url: str, host: RaceHost) -> AsyncIterator[Services]:
    async with open_services(settings(db_url, host)) as opened:
        yield opened


async def ask(services: Services, user: str, text: str) -> Outcome:
    return await handle(Request("slack", user, text, team_id=TEAM), services)


async def new_plan(services: Services) -> str:
    outcome = await ask(services, REQUESTER, 'purge mx1 domain=gone.example why="race test"')
    match = re.search(r"Plan (p[0-9a-f]{10})", outcome.reply.text)
    assert outcome.ok, outcome.reply.text
    assert match, outcome.reply.text
    return match.group(1)


async def plan_row(services: Services, pid: str) -> ActionPlan:
    async with services.sessions() as session:
        plan = await session.get(ActionPlan, pid)
        assert plan is not None
        return plan


async def decisions(services: Services, pid: str) -> int:
    async with services.sessions() as session:
        stmt = select(func.count()).select_from(PlanDecision).where(PlanDecision.plan_id == pid)
        return int((await session.execute(stmt)).scalar_one())


async def test_double_click_is_one_decision_and_one_run(services: Services, host: RaceHost) -> None:
    pid = await new_plan(services)
    first, second = await asyncio.gather(
        ask(services, APPROVER_A, f"approve {pid}"), ask(services, APPROVER_A, f"approve {pid}")
    )
    assert sorted([first.ok, second.ok]) == [False, True]
    assert len(host.fake.changes) == 1
    assert (await plan_row(services, pid)).status == "done"
    assert await decisions(services, pid) == 1


async def test_two_approvers_at_once(services: Services, host: RaceHost) -> None:
    pid = await new_plan(services)
    results = await asyncio.gather(
        ask(services, APPROVER_A, f"approve {pid}"), ask(services, APPROVER_B, f"approve {pid}")
    )
    assert sorted(r.ok for r in results) == [False, True]
    loser = next(r for r in results if not r.ok)
    assert "nothing was changed by this click" in loser.reply.text
    assert len(host.fake.changes) == 1
    assert await decisions(services, pid) == 1
    assert (await audit.verify(services.sessions)).ok


async def run_proc(
    db_url: str, host: RaceHost, replica: str, user: str, text: str
) -> asyncio.subprocess.Process:
    env = {**os.environ, "DATABASE_URL": db_url, "MAILQBOT_CONFIG": str(host.config),
           "MAILQBOT_REPLICA_ID": replica}  # fmt: skip
    return await asyncio.create_subprocess_exec(
        sys.executable, str(PROC), user, text, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def answer(proc: asyncio.subprocess.Process) -> dict[str, object]:
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def test_two_processes_click_the_same_plan(
    services: Services, host: RaceHost, db_url: str
) -> None:
    pid = await new_plan(services)
    procs = [
        await run_proc(db_url, host, "replica-a", APPROVER_A, f"approve {pid}"),
        await run_proc(db_url, host, "replica-b", APPROVER_B, f"approve {pid}"),
    ]
    results = [await answer(p) for p in procs]
    assert sorted(bool(r["ok"]) for r in results) == [False, True], results
    assert len(host.fake.changes) == 1
    assert "Deleted 5 of 5" in str(next(r["text"] for r in results if r["ok"]))
    assert await decisions(services, pid) == 1


async def test_killed_after_claim_is_outcome_unknown_never_rerun(
    services: Services, host: RaceHost, db_url: str
) -> None:
    pid = await new_plan(services)  # listing 1
    host.fake.hold_listing = 2  # the re-listing at execution never answers
    proc = await run_proc(db_url, host, "replica-k", APPROVER_A, f"approve {pid}")
    deadline = time.monotonic() + 30
    while host.fake.listings < 2 and time.monotonic() < deadline and proc.returncode is None:
        await asyncio.sleep(0.05)
    if host.fake.listings != 2:
        proc.kill()
        out, err = await proc.communicate()
        pytest.fail(f"the bot process never re-listed the queue: {out.decode()} {err.decode()}")
    assert (await plan_row(services, pid)).status == "executing"
    proc.send_signal(signal.SIGKILL)
    await proc.wait()

    again = await ask(services, APPROVER_B, f"approve {pid}")
    assert not again.ok
    assert "running" in again.reply.text
    await asyncio.sleep(1.1)  # a restart takes longer than SQLite's claim stamps' second
    async with open_services(settings(db_url, host, "replica-k")) as restarted:
        started = await approvals.start_mark(restarted)
        assert await approvals.recover(restarted, started=started) == []
    plan = await plan_row(services, pid)
    assert plan.status == "unknown"
    assert plan.claimed_by == "replica-k"
    assert await approvals.recover(services, lease=0) == []  # nothing left to run
    assert host.fake.changes == []  # the change never ran, and never will
    async with services.sessions() as session:
        actions = (
            await session.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.action.like("plan.%"))
                .order_by(AuditEvent.seq)
            )
        ).all()
    assert actions == ["plan.created", "plan.approved", "plan.claimed", "plan.unknown"]


async def test_approved_but_unclaimed_runs_once_on_recovery(
    services: Services, host: RaceHost, db_url: str
) -> None:
    pid = await new_plan(services)
    async with open_services(settings(db_url, host, "replica-x")) as approver:
        ctx = approvals.replica_context(approver)
        ctx = type(ctx)(approver, Request("slack", APPROVER_A, "approve", team_id=TEAM),
                        ctx.identity.__class__("slack", APPROVER_A, TEAM))  # fmt: skip
        decided = await approvals.decide(ctx, pid, "approve")  # then the process "dies"
    assert decided.status == "approved"
    assert host.fake.changes == []
    async with open_services(settings(db_url, host, "replica-y")) as other:
        ran = await asyncio.gather(approvals.recover(services), approvals.recover(other))
    assert sum(len(r) for r in ran) == 1
    assert len(host.fake.changes) == 1
    assert (await plan_row(services, pid)).status == "done"


async def test_recovery_announces_each_plan_and_starts_up_once_when_slack_refuses_one(
    services: Services,
    host: RaceHost,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """After a restart, recovery runs two approved plans; Slack refuses the first
    announcement (not_in_channel, as for a channel the bot has left). The second is still
    announced, the failure names its plan, and a plan this replica claimed meanwhile (a
    click it is executing) stays executing instead of being settled as "unknown"."""

    async def asked_in(channel: str) -> str:
        text = 'purge mx1 domain=gone.example why="restart"'
        request = Request("slack", REQUESTER, text, team_id=TEAM, channel_id=channel)
        found = re.search(r"Plan (p[0-9a-f]{10})", (await handle(request, services)).reply.text)
        assert found is not None
        return found.group(1)

    left, kept, busy = [await asked_in(channel) for channel in ("C0LEFT", "C0KEPT", "C0BUSY")]
    async with open_services(settings(db_url, host, "replica-x")) as approver:
        ctx = approvals.replica_context(approver)
        ctx = type(ctx)(approver, Request("slack", APPROVER_A, "approve", team_id=TEAM),
                        ctx.identity.__class__("slack", APPROVER_A, TEAM))  # fmt: skip
        for pid in (left, kept):  # approved; the approving replica "dies" before claiming
            assert (await approvals.decide(ctx, pid, "approve")).status == "approved"

        passes: list[bool] = []
        second_pass = asyncio.Event()
        real_recover = approvals.recover

        async def recover(services: Services, *, started: datetime | None = None) -> list[PlanView]:
            passes.append(started is not None)
            ran = await real_recover(services, started=started)
            if len(passes) == 1:  # meanwhile a click on this replica claims `busy`
                assert (await approvals.decide(ctx, busy, "approve")).status == "approved"
                assert await approvals.claim(approvals.replica_context(services), busy)
            else:
                second_pass.set()
            return ran

        monkeypatch.setattr(approvals, "recover", recover)
        monkeypatch.setattr(recovery, "RECOVERY_INTERVAL", 0.01)
        async with FakeSlack() as slack:
            slack.fail_next("chat.postMessage", 200, error="not_in_channel")
            client = make_client(
                Settings(
                    DATABASE_URL=db_url,
                    MAILQBOT_CONFIG=host.config,
                    SLACK_BOT_TOKEN="xoxb-test",
                    SLACK_API_URL=slack.api_url,
                )
            )
            stop = asyncio.Event()
            task = asyncio.create_task(
                recovery.recover_forever(LiveServices(services), client, stop, datetime.now(UTC))
            )
            await asyncio.wait_for(second_pass.wait(), 30)
            stop.set()
            await task
            posted = [call.args["channel"] for call in slack.calls_to("chat.postMessage")]
    assert (await plan_row(services, busy)).status == "executing"  # not "unknown"
    assert passes[:2] == [True, False]
    assert (await plan_row(services, left)).status == "done"
    assert (await plan_row(services, kept)).status == "done"
    assert sorted(posted) == ["C0KEPT", "C0LEFT"]
    failed = [r for r in caplog.records if r.name == "bot.slack.recovery"]
    assert len(failed) == 1
    assert left in failed[0].getMessage()
    assert "not_in_channel" in failed[0].getMessage()


async def test_a_start_up_pass_retried_later_leaves_the_claims_made_since(
    services: Services, host: RaceHost
) -> None:
    """The start-up pass settles this replica's claims made before the process started
    (its dead predecessor's) and only those: when it is retried later (the database was
    down at start), a plan this process claimed meanwhile, running, is left alone."""
    ctx = approvals.replica_context(services)
    ctx = type(ctx)(services, Request("slack", APPROVER_A, "approve", team_id=TEAM),
                    ctx.identity.__class__("slack", APPROVER_A, TEAM))  # fmt: skip
    dead, busy = await new_plan(services), await new_plan(services)
    for pid in (dead, busy):
        assert (await approvals.decide(ctx, pid, "approve")).status == "approved"
    assert await approvals.claim(ctx, dead)  # the predecessor's claim; then it dies
    await asyncio.sleep(1.1)  # SQLite stamps claims to the second
    started = await approvals.start_mark(services)  # this process starts
    assert await approvals.claim(ctx, busy)  # a click here, before the pass succeeds
    assert await approvals.recover(services, started=started) == []
    assert (await plan_row(services, dead)).status == "unknown"
    assert (await plan_row(services, busy)).status == "executing"


async def test_expired_plan_is_refused_and_recorded(services: Services, host: RaceHost) -> None:
    pid = await new_plan(services)
    async with services.sessions() as session, session.begin():
        past = await plans_store.db_now(session) - timedelta(seconds=5)
        await session.execute(
            update(ActionPlan).where(ActionPlan.id == pid).values(expires_at=past)
        )
    late = await ask(services, APPROVER_A, f"approve {pid}")
    assert not late.ok
    assert "is expired" in late.reply.text
    assert host.fake.changes == []
    plan = await plan_row(services, pid)
    assert plan.status == "expired"


async def test_hold_needs_approval_when_configured(services: Services, host: RaceHost) -> None:
    asked = await ask(services, REQUESTER, 'hold mx1 domain=gone.example why="park them"')
    pid = re.search(r"Plan (p[0-9a-f]{10})", asked.reply.text)
    assert pid is not None, asked.reply.text
    other = await ask(services, APPROVER_A, f"approve {pid.group(1)}")  # not in the list
    assert not other.ok
    assert "Approvers: U0APPB" in other.reply.text
    done = await ask(services, APPROVER_B, f"approve {pid.group(1)}")
    assert "Put on hold 5 of 5 planned messages" in done.reply.text
    assert [argv[1] for argv, _ in host.fake.changes] == ["-h"]


async def test_two_approvals_needed(db_url: str, tmp_path: Path) -> None:
    fake = FakePostfix(queue_lines(3, time.time()))
    async with (
        race_host(tmp_path, fake, approvals=2) as host,
        open_services(settings(db_url, host)) as services,
    ):
        pid = await new_plan(services)
        first = await ask(services, APPROVER_A, f"approve {pid}")
        assert "Approvals: 1 of 2" in first.reply.text
        assert fake.changes == []
        second = await ask(services, APPROVER_B, f"approve {pid}")
        assert "Deleted 3 of 3 planned messages" in second.reply.text
        assert len(fake.changes) == 1


async def test_guest_cannot_decide_and_nul_in_reason_is_dropped(
    services: Services, host: RaceHost
) -> None:
    async def groups(user: str) -> frozenset[str]:
        return frozenset({GUEST}) if user == APPROVER_B else frozenset()

    services = replace(services, groups_of=groups)
    asked = await ask(services, REQUESTER, 'purge mx1 domain=gone.example why="INC\x00-5"')
    assert "Why: INC-5" in asked.reply.text
    found = re.search(r"Plan (p[0-9a-f]{10})", asked.reply.text)
    assert found is not None
    denied = await ask(services, APPROVER_B, f"deny {found.group(1)}")
    assert not denied.ok
    assert "Guest accounts may only read" in denied.reply.text
    assert (await plan_row(services, found.group(1))).status == "pending"


async def test_plans_lists_unsettled_plans(services: Services, host: RaceHost) -> None:
    pid = await new_plan(services)
    listed = await ask(services, VIEWER, "plans mx1")
    assert listed.ok, listed.reply.text
    assert pid in listed.reply.text
    assert "pending" in listed.reply.text
    await ask(services, APPROVER_A, f"deny {pid}")
    assert pid not in (await ask(services, VIEWER, "plans")).reply.text
    assert pid in (await ask(services, VIEWER, "plans all")).reply.text
    assert not (await ask(services, VIEWER, "plans mx1 mx2")).ok


async def test_large_plan_runs_postsuper_in_disjoint_batches(db_url: str, tmp_path: Path) -> None:
    fake = FakePostfix(queue_lines(4_500, time.time()))
    async with race_host(tmp_path, fake) as host, open_services(settings(db_url, host)) as services:
        pid = await new_plan(services)
        done = await ask(services, APPROVER_A, f"approve {pid}")
        assert "Deleted 4,500 of 4,500 planned messages; Postfix reported 4,500." in done.reply.text
        batches = [stdin.split() for _argv, stdin in fake.changes]
        assert sorted(len(b) for b in batches) == [500, BATCH, BATCH]
        assert sum(len(b) for b in batches) == len({i for b in batches for i in b}) == 4_500
        assert fake.lines == []


async def test_listing_that_breaks_off_leaves_the_unsent_rest_alone(
    db_url: str, tmp_path: Path
) -> None:
    fake = FakePostfix(queue_lines(4_500, time.time()))
    async with race_host(tmp_path, fake) as host, open_services(settings(db_url, host)) as services:
        pid = await new_plan(services)
        fake.cut_listing = 4_100  # the re-listing ends in the middle of the 4,101st message
        done = await ask(services, APPROVER_A, f"approve {pid}")
        # The two batches confirmed before the break ran; the 100 confirmed IDs of the third
        # were never sent, and nothing after the break was checked, so 500 are left alone.
        assert sorted(len(stdin.split()) for _argv, stdin in fake.changes) == [BATCH, BATCH]
        assert len(fake.lines) == 500
        assert "Deleted 4,000 of 4,500 planned messages" in done.reply.text
        assert "listing broke off (`postqueue -j` output ended in the middle of line 4101" in (
            done.reply.text
        )
        assert "only the 4,000 IDs confirmed and sent before that" in done.reply.text
        plan = await plan_row(services, pid)
        assert plan.status == "done"
        assert plan.result is not None
        assert plan.result["skipped_total"] == 500
        assert {why for _id, why in plan.result["skipped"]} == {
            "left alone: the queue listing broke off first"
        }
