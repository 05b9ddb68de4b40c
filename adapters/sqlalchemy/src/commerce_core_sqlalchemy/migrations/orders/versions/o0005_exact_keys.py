"""Identifiers and keys compare exactly on MySQL and MariaDB; idempotency records of
requests that made no order; payments found by their authorization id.

Revision ID: o0005
Revises: o0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from commerce_core_sqlalchemy._base import Key
from commerce_core_sqlalchemy.migrations import exact_keys

revision: str = 'o0005'
down_revision: str | None = 'o0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: {table: [(column, length, nullable)]}: every identifier and key of the order store
KEYS = {
    'orders': [('id', 64, False), ('customer_id', 255, False), ('payment_id', 64, True)],
    'order_lines': [('order_id', 64, False), ('sku', 64, False)],
    'payments': [('id', 64, False), ('order_id', 64, False), ('authorization_id', 255, True)],
    'idempotency_keys': [('scope', 255, False), ('key', 255, False), ('order_id', 64, True)],
    'payment_notifications': [('provider', 50, False), ('event_id', 255, False),
                              ('reference', 255, True)],
    'outbox': [('id', 64, False), ('aggregate_id', 200, False)],
    'outbox_leases': [('relay', 100, False), ('owner', 200, False)],
}


def upgrade() -> None:
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.alter_column('order_id', existing_type=Key(64), nullable=True)
    exact_keys(op, KEYS)
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index('ix_payments_authorization_id', ['authorization_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_index('ix_payments_authorization_id')
    exact_keys(op, KEYS, exact=False)
    op.execute(sa.text("DELETE FROM idempotency_keys WHERE order_id IS NULL"))
    with op.batch_alter_table('idempotency_keys', schema=None) as batch_op:
        batch_op.alter_column('order_id', existing_type=Key(64), nullable=False)
