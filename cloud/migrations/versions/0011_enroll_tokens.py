"""One-time enrollment tokens: a station's gateway trades one for its identity and a fresh API key.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'enroll_tokens',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('station_id', sa.String(length=32), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('issued_by', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.Float(), nullable=False),
        sa.Column('expires_at', sa.Float(), nullable=False),
        sa.Column('used_at', sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_enroll_tokens_station_id_stations')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_enroll_tokens')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_enroll_tokens_token_hash')),
    )
    op.create_index(op.f('ix_enroll_tokens_station_id'), 'enroll_tokens', ['station_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_enroll_tokens_station_id'), table_name='enroll_tokens')
    op.drop_table('enroll_tokens')
