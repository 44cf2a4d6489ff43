"""Station records from the gateway: gateway health, outbound parcel details, villagers' fault reports.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'gateway_health',
        sa.Column('station_id', sa.String(length=32), nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.Column('outbox_depth', sa.BigInteger(), nullable=False),
        sa.Column('oldest_unsent_s', sa.Float(), nullable=True),
        sa.Column('uplink', sa.String(length=8), nullable=False),
        sa.Column('lockers_online', sa.Integer(), nullable=False),
        sa.Column('lockers_total', sa.Integer(), nullable=False),
        sa.Column('cpu_temp', sa.Float(), nullable=True),
        sa.Column('up_s', sa.BigInteger(), nullable=False),
        sa.Column('counters', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name='fk_gateway_health_station_id_stations'),
        sa.PrimaryKeyConstraint('station_id', name='pk_gateway_health'),
    )
    with op.batch_alter_table('parcels') as batch_op:
        batch_op.add_column(sa.Column('sender_name', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('dest', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('weight_g', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('produce_name', sa.String(length=40), nullable=True))
    with op.batch_alter_table('alarms') as batch_op:
        batch_op.add_column(sa.Column('phone', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('text', sa.String(length=300), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alarms') as batch_op:
        batch_op.drop_column('text')
        batch_op.drop_column('phone')
    with op.batch_alter_table('parcels') as batch_op:
        batch_op.drop_column('produce_name')
        batch_op.drop_column('weight_g')
        batch_op.drop_column('dest')
        batch_op.drop_column('sender_name')
    op.drop_table('gateway_health')
