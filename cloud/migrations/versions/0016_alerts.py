"""Alerts to people: a station's maintenance phone, alert episodes and the group-robot outbox.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('stations') as batch:
        batch.add_column(sa.Column('maint_phone', sa.String(length=24), nullable=True))
    op.create_table(
        'alert_episodes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('station_id', sa.String(length=32), nullable=False),
        sa.Column('locker_id', sa.String(length=32), nullable=False),
        sa.Column('c', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=24), nullable=False),
        sa.Column('open_key', sa.String(length=120), nullable=True),
        sa.Column('opened_at', sa.Float(), nullable=False),
        sa.Column('closed_at', sa.Float(), nullable=True),
        sa.Column('detail', sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_episodes')),
        sa.UniqueConstraint('open_key', name=op.f('uq_alert_episodes_open_key')),
    )
    op.create_index(op.f('ix_alert_episodes_station_id'), 'alert_episodes', ['station_id'])
    op.create_table(
        'alert_posts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('episode_id', sa.Integer(), nullable=False),
        sa.Column('phase', sa.String(length=8), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=8), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_at', sa.Float(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['episode_id'], ['alert_episodes.id'],
                                name=op.f('fk_alert_posts_episode_id_alert_episodes')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_posts')),
    )
    op.create_index('ix_alert_posts_due', 'alert_posts', ['status', 'next_at'])


def downgrade() -> None:
    op.drop_index('ix_alert_posts_due', table_name='alert_posts')
    op.drop_table('alert_posts')
    op.drop_index('ix_alert_episodes_station_id', table_name='alert_episodes')
    op.drop_table('alert_episodes')
    with op.batch_alter_table('stations') as batch:
        batch.drop_column('maint_phone')
