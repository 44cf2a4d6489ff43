"""Index pickup codes by station and code and by phone and station: the ingest reads a recipient's live
codes at a station, look-ups find a code at a station, and both used to read every code the station ever
issued.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_pickup_codes_station_code', 'pickup_codes', ['station_id', 'code'])
    op.create_index('ix_pickup_codes_phone_station', 'pickup_codes', ['phone', 'station_id'])
    op.drop_index('ix_pickup_codes_station_id', table_name='pickup_codes')


def downgrade() -> None:
    op.create_index('ix_pickup_codes_station_id', 'pickup_codes', ['station_id'])
    op.drop_index('ix_pickup_codes_phone_station', table_name='pickup_codes')
    op.drop_index('ix_pickup_codes_station_code', table_name='pickup_codes')
