"""Audit export: every event, in chain order, streamed in batches; CSV a spreadsheet cannot
run; JSON lines from which the chain can be re-verified offline. Through the real CLI too."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.errors import UsageError
from bot.stores import audit
from bot.stores.audit_key import AuditTrail

MAILQBOT = Path(sys.executable).parent / "mailqbot"
HOSTILE = [
    "summary mx1",
    '=HYPERLINK("http://evil.example","x")',
    "+1+2",
    "-cmd",
    "@SUM(A1)",
    'quote " comma , newline \n end',
    "ünïcödé <!channel> `tick`",
]


async def _append(sessions: async_sessionmaker[AsyncSession], texts: list[str]) -> None:
    for i, text in enumerate(texts):
        async with sessions() as session, session.begin():
            await audit.append(
                session,
                audit.AuditRecord(
                    source="slack", actor=f"U{i}", action="command.ok", team_id="T0LAB",
                    host=text[:20], request_id=f"r{i}", detail={"text": text, "n": i},
                ),
            )  # fmt: skip


def _rehash(event: dict[str, object], key: bytes) -> str:
    """The chain hash, recomputed from an exported line and the audit key alone (what an
    auditor holding the key would do)."""
    body = {k: event[k] for k in event if k not in {"id", "hash"}}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


async def test_jsonl_reverifies_offline(
    sessions: async_sessionmaker[AsyncSession], trail: AuditTrail
) -> None:
    await _append(sessions, HOSTILE)
    out = io.StringIO()
    count = await audit.export(sessions, out, "jsonl", batch=3)
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert count == len(events) == len(HOSTILE)
    assert [e["seq"] for e in events] == list(range(1, len(HOSTILE) + 1))
    assert [e["detail"]["text"] for e in events] == HOSTILE
    previous = audit.GENESIS
    for event in events:
        assert event["prev_hash"] == previous
        assert _rehash(event, trail.key) == event["hash"]
        previous = str(event["hash"])


async def test_csv_round_trips_and_defuses_formulas(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _append(sessions, HOSTILE)
    out = io.StringIO()
    assert await audit.export(sessions, out, "csv", batch=2) == len(HOSTILE)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(audit.EXPORT_FIELDS)
    assert [json.loads(r["detail"])["text"] for r in rows] == HOSTILE  # JSON cell: exact
    hosts = [r["host"] for r in rows]
    assert hosts[1].startswith("'=HYPERLINK")
    assert hosts[2] == "'+1+2"
    assert hosts[3] == "'-cmd"
    assert hosts[4] == "'@SUM(A1)"
    assert hosts[0] == "summary mx1"
    assert not any(cell.startswith(("=", "+", "-", "@")) for r in rows for cell in r.values())


async def test_since_exports_only_the_window(sessions: async_sessionmaker[AsyncSession]) -> None:
    await _append(sessions, ["old 1", "old 2"])
    await asyncio.sleep(0.05)
    cut = datetime.now(UTC)
    await _append(sessions, ["new 1", "new 2", "new 3"])
    out = io.StringIO()
    assert await audit.export(sessions, out, "jsonl", since=cut, batch=2) == 3
    texts = [json.loads(line)["detail"]["text"] for line in out.getvalue().splitlines()]
    assert texts == ["new 1", "new 2", "new 3"]


def test_since_start_parses_durations_and_dates() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    assert audit.since_start("90m", now) == datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
    assert audit.since_start("7d", now) == datetime(2025, 2, 22, 12, 0, tzinfo=UTC)
    assert audit.since_start("2025-02-01", now) == datetime(2025, 2, 1, tzinfo=UTC)
    assert audit.since_start("2025-02-01T08:00+02:00", now) == datetime(
        2025, 2, 1, 6, 0, tzinfo=UTC
    )
    for bad in ("yesterday", "0h", "400d", "24h;id"):
        with pytest.raises(UsageError, match="neither a duration"):
            audit.since_start(bad, now)


def _cli(db_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    env["DATABASE_URL"] = db_url
    return subprocess.run(
        [str(MAILQBOT), "audit", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_cli_export_and_verify(
    sessions: async_sessionmaker[AsyncSession], db_url: str, tmp_path: Path
) -> None:
    await _append(sessions, HOSTILE)
    target = tmp_path / "audit.csv"
    done = await asyncio.to_thread(
        _cli, db_url, "export", "--format", "csv", "--output", str(target)
    )
    assert done.returncode == 0, done.stderr
    assert f"exported {len(HOSTILE)} audit event(s) as csv" in done.stderr
    with target.open(newline="", encoding="utf-8") as f:
        assert [json.loads(r["detail"])["n"] for r in csv.DictReader(f)] == list(range(7))

    done = await asyncio.to_thread(_cli, db_url, "export", "--since", "1h")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == len(HOSTILE)  # jsonl on stdout by default
    assert json.loads(done.stdout.splitlines()[-1])["seq"] == len(HOSTILE)

    done = await asyncio.to_thread(_cli, db_url, "export", "--since", "last tuesday")
    assert done.returncode == 2
    assert "neither a duration" in done.stderr
    assert done.stdout == ""

    done = await asyncio.to_thread(_cli, db_url, "verify")
    assert done.returncode == 0, done.stderr
    assert f"audit chain OK: {len(HOSTILE)} event(s)" in done.stdout
