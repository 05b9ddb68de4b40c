"""The admin's reports: how many of an order's returns wait for an admin, indexed, so that
the console lists them without reading every order.

Revision ID: o0010
Revises: o0009
Create Date: 2026-12-02
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'o0010'
down_revision: str | None = 'o0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WAITING = ('requested', 'received')


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('open_returns', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.create_index('ix_orders_open_returns_id', ['open_returns', 'id'])
    # orders that have returns already: count the waiting ones (few rows: most have none)
    connection = op.get_bind()
    orders = sa.table('orders', sa.column('id', sa.String), sa.column('returns', sa.Text),
                      sa.column('open_returns', sa.Integer))
    rows = connection.execute(sa.select(orders.c.id, orders.c.returns)
                              .where(orders.c.returns != '[]')).all()
    for row in rows:
        waiting = sum(1 for r in json.loads(row.returns) if r.get('status') in _WAITING)
        if waiting:
            connection.execute(sa.update(orders).where(orders.c.id == row.id)
                               .values(open_returns=waiting))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_open_returns_id')
        batch_op.drop_column('open_returns')
