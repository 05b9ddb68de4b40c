"""Orders shipped in parts: their parcels and each line's shipped and cancelled units, and
room for the status ``partially_shipped``.

Rows written before keep their meaning: an order shipped whole by 0.1 reads as one parcel
(its shipment columns) with every unit shipped, a cancelled one with every unit cancelled.

Revision ID: o0007
Revises: o0006
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from commerce_core_sqlalchemy._base import LongText

revision: str = 'o0007'
down_revision: str | None = 'o0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _status_length(length: int, before: int) -> None:
    """``partially_shipped`` is 17 characters. SQLite does not hold text to a length (and
    would have to copy the table, which its foreign keys refuse): nothing to do there."""
    if op.get_bind().dialect.name != 'sqlite':
        op.alter_column('orders', 'status', existing_type=sa.String(before),
                        type_=sa.String(length), existing_nullable=False)


def upgrade() -> None:
    _status_length(24, 16)
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shipments', LongText, nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('line_progress', LongText, nullable=False,
                                      server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('line_progress')
        batch_op.drop_column('shipments')
    _status_length(16, 24)
