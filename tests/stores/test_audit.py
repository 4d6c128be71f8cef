"""The audit chain: appends link up, concurrent appends stay linear, tampering is named.

The tampering tests act as an attacker who can write to the database (as its owner, so on
PostgreSQL they first switch the append-only triggers off) but holds neither the audit key
nor the checkpoint file. Each of them passed ``mailqbot audit verify`` before the chain was
keyed and checkpointed: the newest rows removed, all rows removed, and a row rewritten with
the chain re-hashed after it.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cli import main
from bot.db.models import AuditEvent
from bot.stores import audit
from bot.stores.audit_key import AuditTrail, read_checkpoint


async def _append(sessions: async_sessionmaker[AsyncSession], n: int, actor: str = "U1") -> None:
    for i in range(n):
        async with sessions() as session, session.begin():
            await audit.append(
                session, audit.AuditRecord(source="test", actor=actor, action="t", detail={"i": i})
            )


async def _as_owner(sessions: async_sessionmaker[AsyncSession], *sql: str) -> None:
    """Run ``sql`` as the tables' owner would, triggers off (the attacker's position)."""
    async with sessions() as session, session.begin():
        pg = session.bind.dialect.name == "postgresql"
        if pg:
            await session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        for statement in sql:
            await session.execute(text(statement))
        if pg:
            await session.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))


def heads(trail: AuditTrail) -> list[tuple[int, str]]:
    assert trail.checkpoint is not None
    return list(read_checkpoint(trail.checkpoint))


async def test_chain_verifies_and_every_commit_is_checkpointed(
    sessions: async_sessionmaker[AsyncSession], trail: AuditTrail
) -> None:
    await _append(sessions, 5)
    assert [seq for seq, _hash in heads(trail)] == [1, 2, 3, 4, 5]
    result = await audit.verify(sessions, heads(trail))
    assert result.ok, result.problem
    assert (result.rows, result.checkpoints) == (5, 5)


async def test_concurrent_appends_stay_one_chain(
    sessions: async_sessionmaker[AsyncSession], trail: AuditTrail
) -> None:
    await asyncio.gather(*(_append(sessions, 5, actor=f"U{i}") for i in range(4)))
    result = await audit.verify(sessions, heads(trail))
    assert result.ok, result.problem
    assert result.rows == 20
    async with sessions() as session:
        seqs = list((await session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq))).all())
    assert seqs == list(range(1, 21))
    assert max(heads(trail))[0] == 20


async def test_a_rolled_back_append_is_not_checkpointed(
    sessions: async_sessionmaker[AsyncSession], trail: AuditTrail
) -> None:
    await _append(sessions, 1)

    async def append_then_fail() -> None:
        async with sessions() as session, session.begin():
            await audit.append(session, audit.AuditRecord(source="t", actor="U1", action="t"))
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await append_then_fail()
    assert [seq for seq, _hash in heads(trail)] == [1]
    assert (await audit.verify(sessions, heads(trail))).ok


async def test_edited_row_is_named(
    sessions: async_sessionmaker[AsyncSession], trail: AuditTrail
) -> None:
    await _append(sessions, 6)
    async with sessions() as session:
        victim = (await session.scalars(select(AuditEvent).where(AuditEvent.seq == 4))).one()
    await _as_owner(sessions, f"UPDATE audit_events SET actor = 'U_ELSE' WHERE id = {victim.id}")
    result = await audit.verify(sessions, heads(trail))
    assert not result.ok
    assert result.first_bad_id == victim.id
    assert result.rows == 3
    assert "content changed" in (result.problem or "")


async def test_deleted_row_is_named(
    sessions: async_sessionmaker[AsyncSession], trail: AuditTrail
) -> None:
    await _append(sessions, 4)
    await _as_owner(sessions, "DELETE FROM audit_events WHERE seq = 2")
    async with sessions() as session:
        after = (await session.scalars(select(AuditEvent).where(AuditEvent.seq == 3))).one()
    result = await audit.verify(sessions, heads(trail))
    assert result.first_bad_id == after.id
    assert "sequence gap" in (result.problem or "")


async def test_newest_rows_removed_are_named(
    sessions: async_sessionmaker[AsyncSession], trail: AuditTrail
) -> None:
    await _append(sessions, 6)
    await _as_owner(sessions, "DELETE FROM audit_events WHERE seq > 4")
    result = await audit.verify(sessions, heads(trail))
    assert not result.ok
    assert result.rows == 4
    assert "rows 5..6 are missing from the end" in (result.problem or "")


async def test_all_rows_removed_are_named(
    sessions: async_sessionmaker[AsyncSession], trail: AuditTrail
) -> None:
    await _append(sessions, 3)
    await _as_owner(sessions, "DELETE FROM audit_events")
    result = await audit.verify(sessions, heads(trail))
    assert not result.ok
    assert "the audit table is empty, but the checkpoint names seq 3" in (result.problem or "")


async def test_a_rewritten_and_rehashed_row_is_named(
    sessions: async_sessionmaker[AsyncSession], trail: AuditTrail
) -> None:
    """The attacker rewrites a row and re-hashes the chain from there, with plain SHA-256
    (the old scheme) or with a key of their own: neither passes, with or without the
    checkpoint."""
    for rehash in ("sha256", "other-key"):
        await _append(sessions, 4, actor=rehash)
        async with sessions() as session:
            rows = list((await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all())
        first = rows[-4]
        statements, prev = [], first.prev_hash
        for row in rows[-4:]:
            row.actor = "U_FORGED" if row.seq == first.seq else row.actor
            row.prev_hash = prev
            body = audit.canonical(row)
            if rehash == "sha256":
                forged = hashlib.sha256(body).hexdigest()
            else:
                forged = AuditTrail(b"x" * 64).mac(body)
            statements.append(
                f"UPDATE audit_events SET actor = '{row.actor}', prev_hash = '{prev}', "
                f"hash = '{forged}' WHERE id = {row.id}"
            )
            prev = forged
        await _as_owner(sessions, *statements)
        for checkpoints in (heads(trail), []):
            result = await audit.verify(sessions, checkpoints)
            assert not result.ok, rehash
            assert result.first_bad_id == first.id, (rehash, result.problem)
            assert "content changed" in (result.problem or "")
        await _as_owner(sessions, "DELETE FROM audit_events")
        assert trail.checkpoint is not None
        trail.checkpoint.unlink()


async def test_the_cli_exits_non_zero_and_names_what_is_missing(
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    trail: AuditTrail,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    await _append(sessions, 5)
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 0
    assert "audit chain OK: 5 event(s); 5 checkpointed head(s) match" in capsys.readouterr().out
    await _as_owner(sessions, "DELETE FROM audit_events WHERE seq >= 4")
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert "audit chain BROKEN at its end: rows 4..5 are missing from the end" in out
    assert trail.checkpoint is not None
    elsewhere = Path(str(trail.checkpoint) + ".gone")
    trail.checkpoint.rename(elsewhere)
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 1
    assert "not found: without it, rows removed from the end" in capsys.readouterr().out


async def _rehash_from(sessions: async_sessionmaker[AsyncSession], seq: int) -> int:
    """Rewrite row ``seq`` and re-hash the chain after it under a key of the attacker's
    own; returns the rewritten row's id."""
    async with sessions() as session:
        rows = list((await session.scalars(select(AuditEvent).order_by(AuditEvent.seq))).all())
    statements, prev = [], rows[seq - 1].prev_hash
    for row in rows[seq - 1 :]:
        row.actor = "U_FORGED" if row.seq == seq else row.actor
        row.prev_hash = prev
        forged = AuditTrail(b"x" * 64).mac(audit.canonical(row))
        statements.append(
            f"UPDATE audit_events SET actor = '{row.actor}', prev_hash = '{prev}', "
            f"hash = '{forged}' WHERE id = {row.id}"
        )
        prev = forged
    await _as_owner(sessions, *statements)
    return rows[seq - 1].id


@pytest.mark.parametrize("tampering", ["all rows removed", "a row rewritten and re-hashed"])
async def test_the_cli_exits_non_zero_on_every_tampering(
    db_url: str,
    sessions: async_sessionmaker[AsyncSession],
    trail: AuditTrail,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tampering: str,
) -> None:
    """``mailqbot audit verify`` itself (the newest rows removed: the test above)."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    await _append(sessions, 5)
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 0
    capsys.readouterr()
    if tampering == "all rows removed":
        await _as_owner(sessions, "DELETE FROM audit_events")
        says = "audit chain BROKEN at its end: the audit table is empty, but the checkpoint "
    else:
        forged = await _rehash_from(sessions, 3)
        says = f"audit chain BROKEN at row id {forged}: "
    assert await asyncio.to_thread(main, ["audit", "verify"]) == 1
    out = capsys.readouterr().out
    assert says in out, out
    if tampering != "all rows removed":
        assert "content changed" in out, out
        assert "(2 event(s) before it verified)" in out, out


@pytest.mark.parametrize("empty_db_url", ["postgresql"], indirect=True)
async def test_postgresql_refuses_update_delete_truncate_for_every_role(
    db_url: str, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The migration's triggers, and the documented role setup (docs/ops/audit.md): the
    bot's role may SELECT and INSERT audit rows, nothing else."""
    await _append(sessions, 2)
    dsn = db_url.replace("postgresql+asyncpg://", "postgresql://")
    owner = await asyncpg.connect(dsn)
    try:
        for statement in (
            "UPDATE audit_events SET actor = 'x'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await owner.execute(statement)
        role = f"mailqbot_app_{dsn.rsplit('_', 1)[-1]}"
        await owner.execute(f'CREATE ROLE "{role}" LOGIN')
        await owner.execute(f'GRANT SELECT, INSERT ON audit_events TO "{role}"')
        await owner.execute(f'GRANT USAGE ON SEQUENCE audit_events_id_seq TO "{role}"')
        app = await asyncpg.connect(dsn.rsplit("@", 1)[0].rsplit("//", 1)[0] + f"//{role}@"
                                    + dsn.rsplit("@", 1)[1])  # fmt: skip
        try:
            await owner.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
                await app.execute("DELETE FROM audit_events")
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="must be owner"):
                await app.execute("ALTER TABLE audit_events DISABLE TRIGGER USER")
        finally:
            await app.close()
            await owner.execute("ALTER TABLE audit_events ENABLE TRIGGER USER")
            await owner.execute(f'REVOKE ALL ON audit_events FROM "{role}"')
            await owner.execute(f'REVOKE ALL ON SEQUENCE audit_events_id_seq FROM "{role}"')
            await owner.execute(f'DROP ROLE "{role}"')
    finally:
        await owner.close()
    assert (await audit.verify(sessions)).rows == 2
