"""The events ledger keeps no foreign key to stations.

A ledger row's station id is the station of the gateway key that sent it, checked once per batch, and
stations are deactivated, never deleted. The key's per-row check (a look-up and a lock of the station row
for each of a batch's rows) cost a quarter of the ledger insert, the largest statement of every batch.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

FK = 'fk_events_station_id_stations'


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint(FK, 'events', type_='foreignkey')
    else:
        with op.batch_alter_table('events', schema=None) as batch_op:
            batch_op.drop_constraint(FK, type_='foreignkey')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.create_foreign_key(FK, 'events', 'stations', ['station_id'], ['id'])
    else:
        with op.batch_alter_table('events', schema=None) as batch_op:
            batch_op.create_foreign_key(FK, 'stations', ['station_id'], ['id'])
