"""Initial schema: places, stations, lockers, parcels, events, outboxes; carriers seeded.

Revision ID: 0001
Revises: 
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('carriers',
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('name_zh', sa.String(length=64), nullable=False),
    sa.Column('name_en', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_carriers'))
    )
    op.create_table('dead_letters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('station_id', sa.String(length=32), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=False),
    sa.Column('raw_hash', sa.String(length=64), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters')),
    sa.UniqueConstraint('station_id', 'raw_hash', name='uq_dead_letters_raw')
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letters_station_id'), ['station_id'], unique=False)

    op.create_table('districts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_districts')),
    sa.UniqueConstraint('name', name=op.f('uq_districts_name'))
    )
    op.create_table('notifications',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=24), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('ref', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('sent_at', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications'))
    )
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notifications_phone'), ['phone'], unique=False)

    op.create_table('telemetry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('station_id', sa.String(length=32), nullable=False),
    sa.Column('locker_id', sa.String(length=32), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('rssi', sa.Integer(), nullable=True),
    sa.Column('vin', sa.Float(), nullable=True),
    sa.Column('temp', sa.Float(), nullable=True),
    sa.Column('heap', sa.Integer(), nullable=True),
    sa.Column('outbox', sa.Integer(), nullable=True),
    sa.Column('up', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_telemetry'))
    )
    with op.batch_alter_table('telemetry', schema=None) as batch_op:
        batch_op.create_index('ix_telemetry_locker_at', ['station_id', 'locker_id', 'at'], unique=False)

    op.create_table('towns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('district_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['district_id'], ['districts.id'], name=op.f('fk_towns_district_id_districts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_towns')),
    sa.UniqueConstraint('district_id', 'name', name='uq_towns_district_name')
    )
    op.create_table('villages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('town_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['town_id'], ['towns.id'], name=op.f('fk_villages_town_id_towns')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_villages')),
    sa.UniqueConstraint('town_id', 'name', name='uq_villages_town_name')
    )
    op.create_table('stations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('village_id', sa.Integer(), nullable=True),
    sa.Column('api_key_hash', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['village_id'], ['villages.id'], name=op.f('fk_stations_village_id_villages')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stations')),
    sa.UniqueConstraint('api_key_hash', name=op.f('uq_stations_api_key_hash'))
    )
    op.create_table('alarms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('station_id', sa.String(length=32), nullable=False),
    sa.Column('locker_id', sa.String(length=32), nullable=False),
    sa.Column('c', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('acked', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_alarms_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alarms'))
    )
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alarms_station_id'), ['station_id'], unique=False)

    op.create_table('events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('station_id', sa.String(length=32), nullable=False),
    sa.Column('src', sa.String(length=32), nullable=False),
    sa.Column('boot', sa.String(length=32), nullable=False),
    sa.Column('seq', sa.BigInteger(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('type', sa.String(length=16), nullable=True),
    sa.Column('ts', sa.Float(), nullable=True),
    sa.Column('rx', sa.Float(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_events_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('station_id', 'src', 'boot', 'seq', 'kind', name='uq_events_item')
    )
    op.create_table('lockers',
    sa.Column('station_id', sa.String(length=32), nullable=False),
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('fw', sa.String(length=64), nullable=True),
    sa.Column('boot', sa.String(length=32), nullable=True),
    sa.Column('birth_seq', sa.BigInteger(), nullable=True),
    sa.Column('online', sa.String(length=16), nullable=False),
    sa.Column('status_rx', sa.Float(), nullable=True),
    sa.Column('last_seen', sa.Float(), nullable=True),
    sa.Column('snapshot', sa.JSON(), nullable=True),
    sa.Column('rssi', sa.Integer(), nullable=True),
    sa.Column('vin', sa.Float(), nullable=True),
    sa.Column('temp', sa.Float(), nullable=True),
    sa.Column('heap', sa.Integer(), nullable=True),
    sa.Column('outbox', sa.Integer(), nullable=True),
    sa.Column('up', sa.BigInteger(), nullable=True),
    sa.Column('tele_at', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_lockers_station_id_stations')),
    sa.PrimaryKeyConstraint('station_id', 'id', name=op.f('pk_lockers'))
    )
    op.create_table('parcels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ref', sa.String(length=40), nullable=False),
    sa.Column('waybill', sa.String(length=64), nullable=True),
    sa.Column('carrier', sa.String(length=32), nullable=True),
    sa.Column('direction', sa.String(length=8), nullable=False),
    sa.Column('phone', sa.String(length=24), nullable=True),
    sa.Column('station_id', sa.String(length=32), nullable=False),
    sa.Column('locker_id', sa.String(length=32), nullable=True),
    sa.Column('compartment', sa.Integer(), nullable=True),
    sa.Column('size', sa.String(length=1), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.Float(), nullable=False),
    sa.Column('deposited_at', sa.Float(), nullable=True),
    sa.Column('picked_up_at', sa.Float(), nullable=True),
    sa.Column('fee_cents', sa.Integer(), nullable=False),
    sa.Column('fee_reason', sa.String(length=64), nullable=True),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_parcels_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parcels')),
    sa.UniqueConstraint('ref', name=op.f('uq_parcels_ref'))
    )
    with op.batch_alter_table('parcels', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parcels_phone'), ['phone'], unique=False)
        batch_op.create_index(batch_op.f('ix_parcels_station_id'), ['station_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_parcels_waybill'), ['waybill'], unique=False)

    op.create_table('pickup_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('station_id', sa.String(length=32), nullable=False),
    sa.Column('phone', sa.String(length=24), nullable=False),
    sa.Column('code', sa.String(length=6), nullable=False),
    sa.Column('refs', sa.JSON(), nullable=False),
    sa.Column('exp', sa.Float(), nullable=True),
    sa.Column('used', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_pickup_codes_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pickup_codes'))
    )
    with op.batch_alter_table('pickup_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pickup_codes_station_id'), ['station_id'], unique=False)

    op.create_table('compartments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('station_id', sa.String(length=32), nullable=False),
    sa.Column('locker_id', sa.String(length=32), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('size', sa.String(length=1), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('door', sa.String(length=8), nullable=False),
    sa.Column('occ', sa.Boolean(), nullable=False),
    sa.Column('ref', sa.String(length=40), nullable=True),
    sa.Column('updated_at', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['station_id', 'locker_id'], ['lockers.station_id', 'lockers.id'], name='fk_compartments_locker'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_compartments')),
    sa.UniqueConstraint('station_id', 'locker_id', 'n', name='uq_compartments_station_locker_n')
    )
    op.create_table('parcel_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('parcel_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.Column('source', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['parcel_id'], ['parcels.id'], name=op.f('fk_parcel_events_parcel_id_parcels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_parcel_events'))
    )
    with op.batch_alter_table('parcel_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_parcel_events_parcel_id'), ['parcel_id'], unique=False)


    carriers = sa.table("carriers", sa.column("code", sa.String), sa.column("name_zh", sa.String),
                        sa.column("name_en", sa.String))
    # frozen here on purpose: later carrier changes come as their own migrations
    op.bulk_insert(carriers, [
        {"code": "EMS", "name_zh": "中国邮政EMS", "name_en": "China Post EMS"},
        {"code": "SF", "name_zh": "顺丰速运", "name_en": "SF Express"},
        {"code": "ZTO", "name_zh": "中通快递", "name_en": "ZTO Express"},
        {"code": "YTO", "name_zh": "圆通速递", "name_en": "YTO Express"},
        {"code": "STO", "name_zh": "申通快递", "name_en": "STO Express"},
        {"code": "YUNDA", "name_zh": "韵达快递", "name_en": "Yunda Express"},
        {"code": "JT", "name_zh": "极兔速递", "name_en": "J&T Express"},
        {"code": "JD", "name_zh": "京东物流", "name_en": "JD Logistics"},
    ])


def downgrade() -> None:
    with op.batch_alter_table('parcel_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parcel_events_parcel_id'))

    op.drop_table('parcel_events')
    op.drop_table('compartments')
    with op.batch_alter_table('pickup_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_pickup_codes_station_id'))

    op.drop_table('pickup_codes')
    with op.batch_alter_table('parcels', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_parcels_waybill'))
        batch_op.drop_index(batch_op.f('ix_parcels_station_id'))
        batch_op.drop_index(batch_op.f('ix_parcels_phone'))

    op.drop_table('parcels')
    op.drop_table('lockers')
    op.drop_table('events')
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alarms_station_id'))

    op.drop_table('alarms')
    op.drop_table('stations')
    op.drop_table('villages')
    op.drop_table('towns')
    with op.batch_alter_table('telemetry', schema=None) as batch_op:
        batch_op.drop_index('ix_telemetry_locker_at')

    op.drop_table('telemetry')
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notifications_phone'))

    op.drop_table('notifications')
    op.drop_table('districts')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letters_station_id'))

    op.drop_table('dead_letters')
    op.drop_table('carriers')
