-- A version-0 station database of the first gateways: the outbox and its meta only (no other part had run),
-- with the outbox indexed by kind on every row (outbox_kind), before the partial index.
BEGIN TRANSACTION;
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
INSERT INTO "meta" VALUES('epoch','1e2d3c4b');
INSERT INTO "meta" VALUES('seq','7');
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    src TEXT NOT NULL, boot TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, rx REAL NOT NULL, body TEXT NOT NULL,
    UNIQUE (src, boot, seq)
);
INSERT INTO "outbox" VALUES(5,'l3','9a8b7c6d',41,'evt',1760000000.5,'{"ev":"pickup","c":4}');
INSERT INTO "outbox" VALUES(6,'gw','1e2d3c4b',7,'status',1760000001.0,'{"up":false}');
CREATE INDEX outbox_kind ON outbox (kind);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('outbox',6);
COMMIT;
