"""audit hashes keyed; audit rows append-only on PostgreSQL

Revision ID: d7e1a0c4f107
Revises: c6d0a1e70006
Create Date: 2026-12-03 18:00:00.000000

Rows written before this revision carry plain SHA-256 hashes. The upgrade verifies that
chain (and refuses to go on if it is broken: export it with `mailqbot audit export` and
investigate first), then re-hashes it in order under the audit key (MAILQBOT_AUDIT_KEY,
MAILQBOT_AUDIT_KEY_FILE, or STATE_DIR/audit.key, made if missing) and checkpoints the new
head. On PostgreSQL, triggers then refuse UPDATE, DELETE and TRUNCATE on ``audit_events``
for every role, the table's owner included (an owner could still drop them: run the bot
under a role that does not own the tables; see docs/ops/audit.md).
"""

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC

import sqlalchemy as sa
from alembic import op


revision: str = 'd7e1a0c4f107'
down_revision: str | None = 'c6d0a1e70006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GENESIS = "0" * 64
COLUMNS = ("seq", "id", "at", "request_id", "source", "actor", "team_id", "action", "host",
           "detail", "prev_hash", "hash")
APPEND_ONLY = """
CREATE FUNCTION mailqbot_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$
"""


def _canonical(row: dict[str, object]) -> bytes:
    # The body bot/stores/audit.py hashes (as_dict without id and hash), frozen here as of this
    # revision so the migration does not change with the code.
    at = row["at"]
    at = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    detail = row["detail"]
    body = {
        "seq": row["seq"], "at": at.isoformat(timespec="microseconds"),
        "request_id": row["request_id"], "source": row["source"], "actor": row["actor"],
        "team_id": row["team_id"], "action": row["action"], "host": row["host"],
        "detail": json.loads(detail) if isinstance(detail, str) else detail,
        "prev_hash": row["prev_hash"],
    }
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _rekey(bind: sa.Connection) -> None:
    typed = {"at": sa.DateTime(timezone=True), "detail": sa.JSON()}
    source = sa.table("audit_events", *(sa.column(c, typed.get(c)) for c in COLUMNS))
    rows = [dict(r._mapping) for r in bind.execute(sa.select(source).order_by(source.c.seq))]
    if not rows:
        return
    prev = GENESIS
    for expected, row in enumerate(rows, 1):
        body = _canonical(row)
        if (row["seq"], row["prev_hash"]) != (expected, prev) or \
                hashlib.sha256(body).hexdigest() != row["hash"]:
            raise RuntimeError(
                f"the audit chain is broken at seq {row['seq']}: refusing to re-hash it under "
                "the audit key. Export it (`mailqbot audit export`), investigate, then upgrade."
            )
        prev = row["hash"]
    from bot.stores.audit_key import AuditTrail
    from bot.settings import load_settings

    trail = AuditTrail.from_settings(load_settings())
    table = sa.table("audit_events", sa.column("id"), sa.column("prev_hash"), sa.column("hash"))
    # Unique hashes: move every row aside first, then write the keyed chain.
    bind.execute(sa.text("UPDATE audit_events SET prev_hash = 'x' || id, hash = 'y' || id"))
    prev = GENESIS
    for row in rows:
        row["prev_hash"] = prev
        new = trail.mac(_canonical(row))
        bind.execute(table.update().where(table.c.id == row["id"])
                     .values(prev_hash=prev, hash=new))
        prev = new
    trail.record_head(rows[-1]["seq"], prev)


def upgrade() -> None:
    bind = op.get_bind()
    _rekey(bind)
    if bind.dialect.name == 'postgresql':
        op.execute(APPEND_ONLY)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION mailqbot_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION mailqbot_audit_append_only()"
        )


def downgrade() -> None:
    # The keyed hashes stay: the plain SHA-256 chain they replaced cannot be restored.
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP TRIGGER audit_events_no_truncate ON audit_events")
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION mailqbot_audit_append_only()")
