"""Returns of shipped units, kept with their order: a JSON list on the order's row ("[]":
none), so that a return's change and the order's saga step are one write.

Revision ID: o0008
Revises: o0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from commerce_core_sqlalchemy._base import LongText

revision: str = 'o0008'
down_revision: str | None = 'o0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('returns', LongText, nullable=False,
                                      server_default='[]'))


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('returns')
