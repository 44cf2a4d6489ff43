"""A station's address, phone and opening hours, for the villagers' phone page.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stations') as batch:
        batch.add_column(sa.Column('address', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('phone', sa.String(length=24), nullable=True))
        batch.add_column(sa.Column('hours', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('stations') as batch:
        batch.drop_column('hours')
        batch.drop_column('phone')
        batch.drop_column('address')
