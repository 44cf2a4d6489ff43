-- A version-1 station database (the first versioned schema), with the rows of v0_all_parts.sql migrated
-- (dumped with sqlite3's iterdump; the PRAGMA at the end sets its version).
BEGIN TRANSACTION;
CREATE TABLE board_comps (
    locker TEXT NOT NULL, n INTEGER NOT NULL, st TEXT NOT NULL, ref TEXT,
    PRIMARY KEY (locker, n)
);
INSERT INTO "board_comps" VALUES('b1',1,'occupied','P-0001');
CREATE TABLE codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    locker TEXT NOT NULL, phone TEXT NOT NULL,
    code TEXT,                -- plain code, wiped when the code is retired
    h TEXT NOT NULL, cs TEXT NOT NULL, exp_ts REAL NOT NULL,
    state TEXT NOT NULL,      -- active | retired
    synced INTEGER NOT NULL DEFAULT 0
);
INSERT INTO "codes" VALUES(1,'l1','13800138000','730518','h0','cs0',1765000000.0,'active',1);
CREATE TABLE consent_cache (
    phone TEXT PRIMARY KEY, consent TEXT NOT NULL, door_help INTEGER NOT NULL, at REAL NOT NULL
);
INSERT INTO "consent_cache" VALUES('13800138000','locker',1,1764900000.0);
CREATE TABLE downlink (
    id TEXT PRIMARY KEY, op TEXT NOT NULL, ok INTEGER NOT NULL, err TEXT, at REAL NOT NULL,
    executed INTEGER NOT NULL, acked INTEGER NOT NULL DEFAULT 0
);
INSERT INTO "downlink" VALUES('cmd-1','open',1,NULL,1764900000.0,1,0);
CREATE TABLE fw_rollouts (
    id TEXT PRIMARY KEY, version TEXT NOT NULL, url TEXT NOT NULL, sha256 TEXT NOT NULL, lockers TEXT NOT NULL,
    results TEXT NOT NULL DEFAULT '{}', done INTEGER NOT NULL DEFAULT 0, at REAL NOT NULL
);
INSERT INTO "fw_rollouts" VALUES('ro-1','1.4.0','http://gw/fw.tar','ab00','["l1"]','{}',0,1764900000.0);
CREATE TABLE links (locker TEXT PRIMARY KEY, boot TEXT NOT NULL, acked INTEGER NOT NULL);
INSERT INTO "links" VALUES('l1','5f0c3a9e',2);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('epoch','0badc0de');
INSERT INTO "meta" VALUES('seq','1');
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    src TEXT NOT NULL, boot TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, rx REAL NOT NULL, body TEXT NOT NULL,
    UNIQUE (src, boot, seq)
);
INSERT INTO "outbox" VALUES(1,'l1','5f0c3a9e',1,'evt',1764900000.0,'{"ev":"door_closed","c":2}');
INSERT INTO "outbox" VALUES(2,'l1','5f0c3a9e',2,'tele',1764900001.0,'{"heap":51200}');
INSERT INTO "outbox" VALUES(3,'gw','0badc0de',1,'status',1764900002.0,'{"up":true}');
CREATE TABLE parcels (
    ref TEXT PRIMARY KEY, waybill TEXT NOT NULL, phone TEXT NOT NULL, carrier TEXT NOT NULL,
    size TEXT NOT NULL, locker TEXT NOT NULL, c INTEGER NOT NULL,
    state TEXT NOT NULL,  -- opening | deposited | void | picked
    created REAL NOT NULL, updated REAL NOT NULL
);
INSERT INTO "parcels" VALUES('P-0001','YT123456789','13800138000','YTO','M','l1',2,'deposited',1764900000.0,1764900005.0);
CREATE TABLE remote_opens (at REAL NOT NULL, by TEXT NOT NULL, locker TEXT NOT NULL, c INTEGER NOT NULL);
INSERT INTO "remote_opens" VALUES(1764900000.0,'ops-li','l1',3);
CREATE TABLE uplink_refused (id INTEGER PRIMARY KEY AUTOINCREMENT, src TEXT NOT NULL, boot TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, rx REAL NOT NULL, body TEXT NOT NULL, status INTEGER NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL, UNIQUE (src, boot, seq));
INSERT INTO "uplink_refused" VALUES(1,'l2','a1b2c3d4',7,'evt',1764890000.0,'{"ev":"x"}',422,'refused',1764890010.0);
CREATE INDEX outbox_droppable ON outbox (kind, id) WHERE kind IN ('tele', 'birth', 'status');
CREATE INDEX codes_active ON codes (state, locker, phone);
CREATE INDEX parcels_open ON parcels (state, locker);
CREATE INDEX downlink_open ON downlink (op, executed, at);
CREATE INDEX remote_opens_at ON remote_opens (at);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('outbox',3);
INSERT INTO "sqlite_sequence" VALUES('uplink_refused',1);
INSERT INTO "sqlite_sequence" VALUES('codes',1);
COMMIT;
PRAGMA user_version = 1;
