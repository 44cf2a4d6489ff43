"""Staff administration: retired lockers kept for history, and station agents' terminal PINs.

Revision ID: 0014
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lockers') as batch_op:
        batch_op.add_column(sa.Column('active', sa.Boolean(), nullable=False, server_default=sa.true()))
    with op.batch_alter_table('users') as batch_op:
        batch_op.add_column(sa.Column('pin_hash', sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('users') as batch_op:
        batch_op.drop_column('pin_hash')
    with op.batch_alter_table('lockers') as batch_op:
        batch_op.drop_column('active')
