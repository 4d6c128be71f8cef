"""grouped incidents (group rows, members, reason class, last note) and silences

Revision ID: e8f2b1d5a208
Revises: e3b9f2a1c508
Create Date: 2026-12-04 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'e8f2b1d5a208'
down_revision: str | None = 'e3b9f2a1c508'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('group_key', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('group_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reason_class', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('noted_at', sa.Float(), nullable=True))
        batch_op.create_index(batch_op.f('ix_incidents_group_key'), ['group_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_incidents_group_id'), ['group_id'], unique=False)
    op.create_table('silences',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('target_kind', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=255), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('expires_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_silences'))
    )
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_silences_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('silences', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_silences_expires_at'))
    op.drop_table('silences')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incidents_group_id'))
        batch_op.drop_index(batch_op.f('ix_incidents_group_key'))
        batch_op.drop_column('noted_at')
        batch_op.drop_column('reason_class')
        batch_op.drop_column('group_id')
        batch_op.drop_column('group_key')
