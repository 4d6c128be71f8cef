"""retention: time indexes on queue_samples and command_runs; the maintenance lease

Revision ID: e3b9f2a1c508
Revises: d7e1a0c4f107
Create Date: 2026-12-03 22:30:00.000000

Pruning (``mailqbot prune``, and the monitor every ``retention.every``) deletes and
downsamples by time over all hosts: ``ix_queue_samples_at`` and
``ix_command_runs_started_at`` let it read one time range without scanning the table.
``maintenance_leases`` lets one replica at a time prune, and remembers where the last
run stopped so the next one only reads what has aged since.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "e3b9f2a1c508"
down_revision: str | None = "d7e1a0c4f107"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "maintenance_leases",
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("done_until", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("job", name=op.f("pk_maintenance_leases")),
    )
    with op.batch_alter_table("queue_samples", schema=None) as batch_op:
        batch_op.create_index("ix_queue_samples_at", ["at"], unique=False)
    with op.batch_alter_table("command_runs", schema=None) as batch_op:
        batch_op.create_index("ix_command_runs_started_at", ["started_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("command_runs", schema=None) as batch_op:
        batch_op.drop_index("ix_command_runs_started_at")
    with op.batch_alter_table("queue_samples", schema=None) as batch_op:
        batch_op.drop_index("ix_queue_samples_at")
    op.drop_table("maintenance_leases")
