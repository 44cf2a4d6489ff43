"""The text columns of the events ledger's unique key compare in byte order ("C") on PostgreSQL.

Each probe of the key's index compared text through the C library's locale code; the ids in the key are
ASCII, so the order is the same. Measured ad hoc on this schema, 500-row ledger inserts cost the server
4-15 % less CPU. SQLite compares bytes already: nothing changes there.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TEXT_KEY = {'station_id': 32, 'src': 32, 'boot': 32, 'kind': 16}


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # on the partitioned table: each statement applies to every partition, and the unique index is rebuilt
    for name, length in TEXT_KEY.items():
        op.execute(f'ALTER TABLE events ALTER COLUMN {name} TYPE varchar({length}) COLLATE "{collation}"')


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate("default")
