"""Outbound webhooks: endpoints, and one delivery per endpoint and event (queue and log).

Revision ID: o0009
Revises: o0008
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from commerce_core_sqlalchemy._base import Key, LongText, UTCDateTime

revision: str = 'o0009'
down_revision: str | None = 'o0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', Key(64), nullable=False),
        sa.Column('url', sa.String(2048), nullable=False),
        sa.Column('secret', sa.String(255), nullable=False),
        sa.Column('events', sa.Text(), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('updated_at', UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'webhook_deliveries',
        sa.Column('position', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                  autoincrement=True, nullable=False),
        sa.Column('id', Key(64), nullable=False),
        sa.Column('endpoint_id', Key(64), nullable=False),
        sa.Column('event_id', Key(64), nullable=False),
        sa.Column('event_type', sa.String(100), nullable=False),
        sa.Column('aggregate', Key(255), nullable=False),
        sa.Column('body', LongText, nullable=False),
        sa.Column('status', sa.String(16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('next_attempt_at', UTCDateTime(), nullable=False),
        sa.Column('last_attempt_at', UTCDateTime(), nullable=True),
        sa.Column('response_status', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('delivered_at', UTCDateTime(), nullable=True),
        sa.Column('lease_owner', Key(200), nullable=True),
        sa.Column('lease_until', UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('position'),
        sa.UniqueConstraint('id'),
        sa.UniqueConstraint('endpoint_id', 'event_id',
                            name='uq_webhook_deliveries_endpoint_event'),
    )
    op.create_index('ix_webhook_deliveries_queue', 'webhook_deliveries',
                    ['endpoint_id', 'aggregate', 'status', 'position'], unique=False)
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries',
                    ['status', 'next_attempt_at'], unique=False)
    op.create_index('ix_webhook_deliveries_log', 'webhook_deliveries',
                    ['endpoint_id', 'position'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_log', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_queue', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_endpoints')
