"""Orders priced beyond their lines: adjustments, taxes, the voucher, the contact address and
metadata of each order; the uses of vouchers; the standard pricing's rules.

Orders made before keep their meaning: no adjustments, no taxes, no metadata (their total is
their lines, as it was).

Revision ID: o0006
Revises: o0005
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from commerce_core_sqlalchemy._base import Key, LongText, UTCDateTime

revision: str = 'o0006'
down_revision: str | None = 'o0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('adjustments', LongText, nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('taxes', LongText, nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('voucher_code', Key(64), nullable=True))
        batch_op.add_column(sa.Column('email', sa.String(254), nullable=True))
        batch_op.add_column(sa.Column('order_metadata', LongText, nullable=False,
                                      server_default='{}'))
    op.create_table(
        'voucher_usage',
        sa.Column('code', Key(64), nullable=False),
        sa.Column('used', sa.Integer(), nullable=False),
        sa.CheckConstraint('used >= 0', name='ck_voucher_usage_used'),
        sa.PrimaryKeyConstraint('code'),
    )
    op.create_table(
        'voucher_redemptions',
        sa.Column('order_id', Key(64), nullable=False),
        sa.Column('code', Key(64), nullable=False),
        sa.Column('customer_id', Key(255), nullable=False),
        sa.Column('redeemed_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('order_id'),
    )
    op.create_index('ix_voucher_redemptions_code_customer_id', 'voucher_redemptions',
                    ['code', 'customer_id'], unique=False)
    op.create_table(
        'shipping_options',
        sa.Column('code', Key(64), nullable=False),
        sa.Column('name', sa.String(200), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('currency', sa.String(3), nullable=False),
        sa.Column('countries', sa.Text(), nullable=True),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('code'),
    )
    op.create_table(
        'tax_rates',
        sa.Column('country', sa.String(2), nullable=False),
        sa.Column('rate_bp', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('country'),
    )
    op.create_table(
        'vouchers',
        sa.Column('code', Key(64), nullable=False),
        sa.Column('name', sa.String(200), nullable=True),
        sa.Column('kind', sa.String(16), nullable=False),
        sa.Column('percent_bp', sa.Integer(), nullable=True),
        sa.Column('amount', sa.BigInteger(), nullable=True),
        sa.Column('currency', sa.String(3), nullable=True),
        sa.Column('min_subtotal', sa.BigInteger(), nullable=True),
        sa.Column('min_subtotal_currency', sa.String(3), nullable=True),
        sa.Column('usage_limit', sa.Integer(), nullable=True),
        sa.Column('once_per_customer', sa.Boolean(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('code'),
    )


def downgrade() -> None:
    op.drop_table('vouchers')
    op.drop_table('tax_rates')
    op.drop_table('shipping_options')
    op.drop_index('ix_voucher_redemptions_code_customer_id', table_name='voucher_redemptions')
    op.drop_table('voucher_redemptions')
    op.drop_table('voucher_usage')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('order_metadata')
        batch_op.drop_column('email')
        batch_op.drop_column('voucher_code')
        batch_op.drop_column('taxes')
        batch_op.drop_column('adjustments')
