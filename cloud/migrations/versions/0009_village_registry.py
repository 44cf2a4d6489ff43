"""The village registry: 统计用区划代码 on districts, towns and villages, coordinates on villages and
stations, and the town of a station outside any village (a town co-delivery station).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('districts', 'towns', 'villages'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column('code', sa.String(length=12), nullable=True))
            batch_op.create_unique_constraint(f'uq_{table}_code', ['code'])
    with op.batch_alter_table('villages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lat', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('lon', sa.Float(), nullable=True))
    with op.batch_alter_table('stations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('town_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('lat', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('lon', sa.Float(), nullable=True))
        batch_op.create_foreign_key('fk_stations_town_id_towns', 'towns', ['town_id'], ['id'])


def downgrade() -> None:
    with op.batch_alter_table('stations', schema=None) as batch_op:
        batch_op.drop_constraint('fk_stations_town_id_towns', type_='foreignkey')
        batch_op.drop_column('lon')
        batch_op.drop_column('lat')
        batch_op.drop_column('town_id')
    with op.batch_alter_table('villages', schema=None) as batch_op:
        batch_op.drop_column('lon')
        batch_op.drop_column('lat')
    for table in ('villages', 'towns', 'districts'):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f'uq_{table}_code', type_='unique')
            batch_op.drop_column('code')
