"""Provider events (webhooks) already applied, so each is applied once.

Revision ID: o0003
Revises: o0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from commerce_core_sqlalchemy._base import UTCDateTime

revision: str = 'o0003'
down_revision: str | None = 'o0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('payment_notifications',
    sa.Column('provider', sa.String(length=50), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('reference', sa.String(length=255), nullable=True),
    sa.Column('received_at', UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'event_id')
    )


def downgrade() -> None:
    op.drop_table('payment_notifications')
