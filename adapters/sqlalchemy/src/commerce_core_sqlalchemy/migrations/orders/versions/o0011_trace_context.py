"""The trace context with the outbox's events and the webhooks' deliveries (W3C headers as
JSON; NULL when nothing traced), so that a consumer continues the trace.

Revision ID: o0011
Revises: o0010
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'o0011'
down_revision: str | None = 'o0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trace', sa.Text(), nullable=True))
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('trace', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('webhook_deliveries', schema=None) as batch_op:
        batch_op.drop_column('trace')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_column('trace')
