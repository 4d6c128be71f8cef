"""channel budgets: the alert channel's token bucket, shared by every replica

Revision ID: f4a9c2d6b310
Revises: e8f2b1d5a208
Create Date: 2026-12-04 05:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'f4a9c2d6b310'
down_revision: str | None = 'e8f2b1d5a208'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('channel_budgets',
    sa.Column('channel', sa.String(length=64), nullable=False),
    sa.Column('tokens', sa.Float(), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('last_post', sa.Float(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('channel', name=op.f('pk_channel_budgets'))
    )


def downgrade() -> None:
    op.drop_table('channel_budgets')
