"""Identifiers and keys compare exactly on MySQL and MariaDB; stock adjustments take an
idempotency key.

Revision ID: i0003
Revises: i0002
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from commerce_core_sqlalchemy._base import Key
from commerce_core_sqlalchemy.migrations import exact_keys

revision: str = 'i0003'
down_revision: str | None = 'i0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: {table: [(column, length, nullable)]}: every identifier and key of the inventory store
KEYS = {
    'products': [('sku', 64, False)],
    'warehouses': [('code', 64, False)],
    'stock_levels': [('sku', 64, False), ('warehouse', 64, False)],
    'reservations': [('id', 100, False), ('reference', 100, False)],
    'reservation_lines': [('reservation_id', 100, False), ('sku', 64, False),
                          ('warehouse', 64, False)],
    'stock_movements': [('sku', 64, False), ('warehouse', 64, False),
                        ('reference', 100, True)],
    'outbox': [('id', 64, False), ('aggregate_id', 200, False)],
    'outbox_leases': [('relay', 100, False), ('owner', 200, False)],
}


def upgrade() -> None:
    exact_keys(op, KEYS)
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', Key(255), nullable=True))
        batch_op.create_unique_constraint('uq_stock_movements_idempotency_key',
                                          ['idempotency_key'])


def downgrade() -> None:
    with op.batch_alter_table('stock_movements', schema=None) as batch_op:
        batch_op.drop_constraint('uq_stock_movements_idempotency_key', type_='unique')
        batch_op.drop_column('idempotency_key')
    exact_keys(op, KEYS, exact=False)
