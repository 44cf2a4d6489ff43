"""The SMS outbox keeps each message's template kind and parameters.

The SMS providers counties use (Alibaba Cloud, Tencent Cloud) send only registered templates, filled in with
parameters; the outbox keeps them beside the text, so a message queued now is sent by template later.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('params', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('params')
        batch_op.drop_column('kind')
