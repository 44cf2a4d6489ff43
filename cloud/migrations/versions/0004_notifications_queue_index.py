"""Index the SMS outbox by status: claiming the queued messages reads them in order from the index instead
of scanning every message ever sent.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_notifications_queue', 'notifications', ['status', 'attempts', 'id'])


def downgrade() -> None:
    op.drop_index('ix_notifications_queue', table_name='notifications')
