"""Reservations shipped in parts: each line's committed units.

Revision ID: i0004
Revises: i0003
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'i0004'
down_revision: str | None = 'i0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('reservation_lines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('committed', sa.BigInteger(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('reservation_lines', schema=None) as batch_op:
        batch_op.drop_column('committed')
