"""Carriers as codes, fee kinds, extra charges (二次收费) and outbound real-name and collection.

Parcels written with a carrier's name (中通, 顺丰 ...) take the carrier's code from the one table
(jincun/carriers.py), the carriers' display names follow that table, and the pickup-fee ban reads a fee's kind:
a fee whose reason named pickup is marked `pickup`, every other fee `delivery` (inbound) or `postage`
(outbound).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

from jincun import carriers

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('parcels') as batch_op:
        batch_op.add_column(sa.Column('fee_kind', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('sender_id_tail', sa.String(length=4), nullable=True))
        batch_op.add_column(sa.Column('collected_at', sa.Float(), nullable=True))
    op.create_table(
        'charges',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('station_id', sa.String(length=32), nullable=True),
        sa.Column('carrier', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('cents', sa.Integer(), nullable=False),
        sa.Column('parcel_ref', sa.String(length=40), nullable=True),
        sa.Column('waybill', sa.String(length=64), nullable=True),
        sa.Column('phone', sa.String(length=24), nullable=True),
        sa.Column('text', sa.String(length=200), nullable=True),
        sa.Column('source', sa.String(length=8), nullable=False),
        sa.Column('by', sa.String(length=64), nullable=False),
        sa.Column('at', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_charges_station_id_stations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_charges')),
    )
    op.create_index(op.f('ix_charges_station_id'), 'charges', ['station_id'], unique=False)
    op.create_index(op.f('ix_charges_at'), 'charges', ['at'], unique=False)
    conn = op.get_bind()
    for (name,) in conn.execute(sa.text("SELECT DISTINCT carrier FROM parcels WHERE carrier IS NOT NULL")).all():
        code = carriers.code_of(name)
        if code and code != name:
            conn.execute(sa.text("UPDATE parcels SET carrier = :code WHERE carrier = :name"),
                         {"code": code, "name": name})
    for code, zh, en, _ in carriers.TABLE:
        conn.execute(sa.text("UPDATE carriers SET name_zh = :zh, name_en = :en WHERE code = :code"),
                     {"code": code, "zh": zh, "en": en})
    conn.execute(sa.text("UPDATE parcels SET fee_kind = CASE WHEN lower(fee_reason) LIKE '%pickup%' "
                         "OR fee_reason LIKE '%取件%' THEN 'pickup' WHEN direction = 'outbound' THEN 'postage' "
                         "ELSE 'delivery' END WHERE fee_cents > 0"))


def downgrade() -> None:
    op.drop_index(op.f('ix_charges_at'), table_name='charges')
    op.drop_index(op.f('ix_charges_station_id'), table_name='charges')
    op.drop_table('charges')
    with op.batch_alter_table('parcels') as batch_op:
        batch_op.drop_column('collected_at')
        batch_op.drop_column('sender_id_tail')
        batch_op.drop_column('fee_kind')
