"""The station database's schema, as numbered migrations recorded in `PRAGMA user_version`.

Every table of the station database is created here and nowhere else: the outbox and its meta, and the
tables of the parts beside it (pickup codes, courier deposits, the consent cache, the downlink's ledger and
remote opens, firmware roll-outs, locker links, RS-485 board compartments, the uplink's refused records, the
terminal's sessions).

Version 0 is the unversioned database that gateways wrote before the schema was versioned: each part created
its own tables at open, so a version-0 database holds the tables of the parts that ran. Migration 1 brings
any of them to the full schema. A migration is appended, never edited; each runs in one transaction with the
new `user_version`, so a failed one leaves the database at the version before it. The tests build a database
of every earlier version (`tests/gateway/stationdb/`) and migrate it.
"""

from __future__ import annotations

import logging
import sqlite3

from .errors import OutboxError

log = logging.getLogger("jincun.gateway.stationdb")

_V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    src TEXT NOT NULL, boot TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, rx REAL NOT NULL, body TEXT NOT NULL,
    UNIQUE (src, boot, seq)
);
-- Only the kinds the bounds may drop are indexed by kind (a partial index): events, the bulk of the rows,
-- pay for no index beyond their key, and a drop by kind still finds its rows without a scan. The first
-- gateways indexed every row by kind (outbox_kind).
DROP INDEX IF EXISTS outbox_kind;
CREATE INDEX IF NOT EXISTS outbox_droppable ON outbox (kind, id) WHERE kind IN ('tele', 'birth', 'status');

-- pickup codes (codes.py)
CREATE TABLE IF NOT EXISTS codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    locker TEXT NOT NULL, phone TEXT NOT NULL,
    code TEXT,                -- plain code, wiped when the code is retired
    h TEXT NOT NULL, cs TEXT NOT NULL, exp_ts REAL NOT NULL,
    state TEXT NOT NULL,      -- active | retired
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS codes_active ON codes (state, locker, phone);

-- the recipients' consent as the cloud last answered (consent.py)
CREATE TABLE IF NOT EXISTS consent_cache (
    phone TEXT PRIMARY KEY, consent TEXT NOT NULL, door_help INTEGER NOT NULL, at REAL NOT NULL
);

-- courier deposits (deposits.py)
CREATE TABLE IF NOT EXISTS parcels (
    ref TEXT PRIMARY KEY, waybill TEXT NOT NULL, phone TEXT NOT NULL, carrier TEXT NOT NULL,
    size TEXT NOT NULL, locker TEXT NOT NULL, c INTEGER NOT NULL,
    state TEXT NOT NULL,  -- opening | deposited | void | picked
    created REAL NOT NULL, updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS parcels_open ON parcels (state, locker);

-- cloud commands executed once, and the remote opens they made (downlink.py)
CREATE TABLE IF NOT EXISTS downlink (
    id TEXT PRIMARY KEY, op TEXT NOT NULL, ok INTEGER NOT NULL, err TEXT, at REAL NOT NULL,
    executed INTEGER NOT NULL, acked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS downlink_open ON downlink (op, executed, at);
CREATE TABLE IF NOT EXISTS remote_opens (at REAL NOT NULL, by TEXT NOT NULL, locker TEXT NOT NULL, c INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS remote_opens_at ON remote_opens (at);

-- firmware roll-outs (fwrollout.py)
CREATE TABLE IF NOT EXISTS fw_rollouts (
    id TEXT PRIMARY KEY, version TEXT NOT NULL, url TEXT NOT NULL, sha256 TEXT NOT NULL, lockers TEXT NOT NULL,
    results TEXT NOT NULL DEFAULT '{}', done INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL
);

-- each locker's boot and the last sequence number acked to it (lockerlink.py)
CREATE TABLE IF NOT EXISTS links (locker TEXT PRIMARY KEY, boot TEXT NOT NULL, acked INTEGER NOT NULL);

-- compartments of RS-485 lock boards driven by the gateway (boardlocker.py)
CREATE TABLE IF NOT EXISTS board_comps (
    locker TEXT NOT NULL, n INTEGER NOT NULL, st TEXT NOT NULL, ref TEXT,
    PRIMARY KEY (locker, n)
);

-- records the cloud refused even alone, set aside (uplink.py)
CREATE TABLE IF NOT EXISTS uplink_refused (id INTEGER PRIMARY KEY AUTOINCREMENT, src TEXT NOT NULL, boot TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, rx REAL NOT NULL, body TEXT NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL, UNIQUE (src, boot, seq));
"""

# 2: the door-to-door list as the villagers chose it on their phones (assist.py), kept for offline days
_V2 = """
CREATE TABLE IF NOT EXISTS assist (phone TEXT PRIMARY KEY, door_help INTEGER NOT NULL, at REAL NOT NULL);
"""

_V3 = """
-- the couriers and station agents the county manages, as the cloud last sent them (staff.py); the terminal
-- checks their PINs offline from here
CREATE TABLE IF NOT EXISTS staff_users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, carrier TEXT NOT NULL, pin_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS staff_sync (one INTEGER PRIMARY KEY CHECK (one = 1), at REAL NOT NULL);
"""

# 4: outbound parcels (寄件) from taken in to collected by the carrier's courier (outbound.py); the sender's
# name and ID tail travel only in the outbox's `outbound` record
_V4 = """
CREATE TABLE IF NOT EXISTS outbound (
    ref TEXT PRIMARY KEY, carrier TEXT NOT NULL, dest TEXT NOT NULL, weight_g INTEGER NOT NULL,
    taken_by TEXT NOT NULL, taken REAL NOT NULL,
    state TEXT NOT NULL,  -- taken_in | collected
    collected_by TEXT, collected REAL, waybill TEXT
);
CREATE INDEX IF NOT EXISTS outbound_waiting ON outbound (state, carrier);
"""

# 5: the station terminal's sessions (pins.py), so a restart logs no one out: the sha256 of each token (never the
# token), its user, the login time and the expiry (wall-clock seconds)
_V5 = """
CREATE TABLE IF NOT EXISTS terminal_sessions (
    h TEXT PRIMARY KEY, user_id TEXT NOT NULL, at REAL NOT NULL, exp REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS terminal_sessions_user ON terminal_sessions (user_id);
"""

# MIGRATIONS[n] takes a database from version n to version n + 1
MIGRATIONS: list[str] = [
    _V1,  # 1: the full schema over whatever a version-0 (unversioned) database holds
    _V2,  # 2: the door-to-door choices the cloud sent (assist)
    _V3,  # 3: the cloud's couriers and station agents, cached for offline logins
    _V4,  # 4: the outbound book
    _V5,  # 5: the terminal's sessions, by the hash of their token
]


def latest() -> int:
    """The schema version this gateway writes."""
    return len(MIGRATIONS)


def version(conn: sqlite3.Connection) -> int:
    """The schema version of an open database (0: unversioned, or new and empty)."""
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection, path: object = "") -> tuple[int, int]:
    """Bring a database (a connection in autocommit mode) to the latest version; (from, to).

    A database newer than this gateway is refused untouched: an older gateway cannot know what a newer one's
    tables mean, and writing into them could lose records.
    """
    start, head = version(conn), latest()
    if start > head:
        raise OutboxError(f"the station database {path} has schema version {start}, newer than this gateway's "
                          f"{head}: run the newer gateway, or restore a backup made for this one")
    for n in range(start, head):
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{MIGRATIONS[n]}\nPRAGMA user_version = {n + 1};\nCOMMIT;")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        log.info("station database %s migrated from version %d to %d", path, n, n + 1)
    return start, head
