-- A version-4 station database: the door-to-door list (version 2), the cloud's couriers and station agents
-- cached at the station (version 3) and the outbound book (version 4), before the terminal's sessions were
-- stored (version 5).
PRAGMA user_version = 4;
BEGIN TRANSACTION;
CREATE TABLE board_comps (
    locker TEXT NOT NULL, n INTEGER NOT NULL, st TEXT NOT NULL, ref TEXT,
    PRIMARY KEY (locker, n)
);
CREATE TABLE codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    locker TEXT NOT NULL, phone TEXT NOT NULL,
    code TEXT,                -- plain code, wiped when the code is retired
    h TEXT NOT NULL, cs TEXT NOT NULL, exp_ts REAL NOT NULL,
    state TEXT NOT NULL,      -- active | retired
    synced INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE consent_cache (
    phone TEXT PRIMARY KEY, consent TEXT NOT NULL, door_help INTEGER NOT NULL, at REAL NOT NULL
);
CREATE TABLE downlink (
    id TEXT PRIMARY KEY, op TEXT NOT NULL, ok INTEGER NOT NULL, err TEXT, at REAL NOT NULL,
    executed INTEGER NOT NULL, acked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE fw_rollouts (
    id TEXT PRIMARY KEY, version TEXT NOT NULL, url TEXT NOT NULL, sha256 TEXT NOT NULL, lockers TEXT NOT NULL,
    results TEXT NOT NULL DEFAULT '{}', done INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL
);
CREATE TABLE links (locker TEXT PRIMARY KEY, boot TEXT NOT NULL, acked INTEGER NOT NULL);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('epoch','2f3e4d5c');
INSERT INTO "meta" VALUES('seq','12');
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    src TEXT NOT NULL, boot TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, rx REAL NOT NULL, body TEXT NOT NULL,
    UNIQUE (src, boot, seq)
);
INSERT INTO "outbox" VALUES(1,'l1','6b5a4c3d',3,'evt',1764000000.25,'{"ev":"deposit","c":2}');
INSERT INTO "outbox" VALUES(2,'gw','2f3e4d5c',12,'parcel',1764000001.0,'{"ref":"p-0a1b2c3d4e5f"}');
CREATE TABLE parcels (
    ref TEXT PRIMARY KEY, waybill TEXT NOT NULL, phone TEXT NOT NULL, carrier TEXT NOT NULL,
    size TEXT NOT NULL, locker TEXT NOT NULL, c INTEGER NOT NULL,
    state TEXT NOT NULL,  -- opening | deposited | void | picked
    created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE remote_opens (at REAL NOT NULL, by TEXT NOT NULL, locker TEXT NOT NULL, c INTEGER NOT NULL);
CREATE TABLE uplink_refused (id INTEGER PRIMARY KEY AUTOINCREMENT, src TEXT NOT NULL, boot TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, rx REAL NOT NULL, body TEXT NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL, UNIQUE (src, boot, seq));
CREATE INDEX outbox_droppable ON outbox (kind, id) WHERE kind IN ('tele', 'birth', 'status');
CREATE INDEX codes_active ON codes (state, locker, phone);
CREATE INDEX parcels_open ON parcels (state, locker);
CREATE INDEX downlink_open ON downlink (op, executed, at);
CREATE INDEX remote_opens_at ON remote_opens (at);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('outbox',2);
COMMIT;
CREATE TABLE assist (phone TEXT PRIMARY KEY, door_help INTEGER NOT NULL, at REAL NOT NULL);
INSERT INTO assist VALUES ('13800000009', 1, 1764355300.0);
CREATE TABLE staff_users (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL, carrier TEXT NOT NULL, pin_hash TEXT NOT NULL
);
CREATE TABLE staff_sync (one INTEGER PRIMARY KEY CHECK (one = 1), at REAL NOT NULL);
INSERT INTO staff_users VALUES ('c1', '王师傅', 'courier', 'ZTO', 'pbkdf2_sha256$100000$00112233445566778899aabbccddeeff$0000000000000000000000000000000000000000000000000000000000000000');
INSERT INTO staff_sync VALUES (1, 1764355300.0);
CREATE TABLE outbound (
    ref TEXT PRIMARY KEY, carrier TEXT NOT NULL, dest TEXT NOT NULL, weight_g INTEGER NOT NULL,
    taken_by TEXT NOT NULL, taken REAL NOT NULL,
    state TEXT NOT NULL,  -- taken_in | collected
    collected_by TEXT, collected REAL, waybill TEXT
);
CREATE INDEX outbound_waiting ON outbound (state, carrier);
INSERT INTO outbound VALUES ('O1A2B3', 'ZTO', '杭州市', 1200, 'a1', 1764355400.0, 'taken_in', NULL, NULL, NULL);
