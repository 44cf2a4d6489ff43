"""The station database: one SQLite file (WAL) holding the durable outbox and every table of the station's
parts beside it (pickup codes, deposits, consent, downlink, roll-outs, locker links, board compartments).

The outbox holds every record the cloud must get, stored once, sent in order, deleted when acked. The
schema is versioned (`PRAGMA user_version`) and built by the migrations in `stationdb_migrations.py`, run at
open. All database work runs on one worker thread that owns the connection, so the event loop never blocks.
Appends are group-committed: whatever is queued when the writer wakes goes into one transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

from . import const as C
from .counters import Counters
from .errors import OutboxError, OutboxFull, Unstorable
from .stationdb_migrations import migrate

log = logging.getLogger("jincun.gateway.stationdb")

GROUP_MAX = 512
TELE_KINDS = ("tele",)
STATE_KINDS = ("birth", "status")


@dataclass
class Record:
    """One outbox item. seq None: the gateway numbers it (boot = gateway epoch)."""

    src: str
    kind: str
    body: dict | None  # None only when read back without decoding (then raw holds it)
    boot: str | None = None
    seq: int | None = None
    rx: float = field(default_factory=time.time)
    id: int | None = None
    auto: bool = False
    raw: str | None = None  # the stored JSON of body, when read without decoding

    def __post_init__(self) -> None:
        if self.seq is None:
            self.auto = True

    def item(self) -> dict:
        """The record as an ingest item (§5.1)."""
        return {"src": self.src, "boot": self.boot, "seq": self.seq, "kind": self.kind,
                "rx": self.rx, "body": self.body}


_ROWS_PER_INSERT = 500  # 3,000 parameters a statement; SQLite takes 32,766 since 3.32


@cache
def _insert_sql(n: int) -> str:
    return "INSERT OR IGNORE INTO outbox (src, boot, seq, kind, rx, body) VALUES " + ",".join(["(?,?,?,?,?,?)"] * n)


def _is_full(exc: sqlite3.Error) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(exc)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction on a connection in autocommit mode: committed when the block ends, rolled back
    when anything at all leaves it (an SQLite error, a value SQLite cannot bind, a bug), so the connection is
    never left inside a transaction that makes every later write on it fail."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextmanager
def savepoint(conn: sqlite3.Connection, name: str) -> Iterator[None]:
    """A savepoint inside the current transaction, released when the block ends, rolled back to (and
    released) when anything leaves it; the transaction itself goes on."""
    conn.execute(f"SAVEPOINT {name}")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
        raise
    conn.execute(f"RELEASE {name}")


def body_text(rec: Record) -> str:
    """The JSON text stored for a record: its raw text as received, else its body written out."""
    if rec.raw is not None:
        return rec.raw
    return json.dumps(rec.body, separators=(",", ":"), ensure_ascii=False)


def escaped(text: str) -> str:
    """JSON text with the characters UTF-8 cannot hold (lone surrogates) written as \\uXXXX escapes: the same
    JSON value in text SQLite can store. Such a character is only valid JSON inside a string, where the
    escape means the same."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


Stage = Callable[[list, list], tuple[Any, Callable[[], None]]]


class _Full(Exception):
    """Raised inside the worker when the database refused a write for lack of space."""


class _Held(Exception):
    """Raised inside a many-row insert when some rows were held already, to undo it and go row by row."""


class StationDB:
    """The station database: the durable outbox, and a writer on which the other parts run their own SQL."""

    def __init__(self, path: str | Path, counters: Counters | None = None, *, max_rows: int = 200_000,
                 tele_max_age_s: float = 3 * 86400, mem_queue_max: int = 10_000, retry_s: float = 1.0,
                 max_pages: int | None = None, epoch: str | None = None) -> None:
        self.path = Path(path)
        self.counters = counters or Counters()
        self.max_rows = max_rows
        self.tele_max_age_s = tele_max_age_s
        self.mem_queue_max = mem_queue_max
        self.retry_s = retry_s
        self.max_pages = max_pages
        self._epoch_cfg = epoch
        self.epoch = ""
        self.schema_version = 0  # the database's PRAGMA user_version, once open
        self.changed = asyncio.Event()
        self.disk_full = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._conn: sqlite3.Connection | None = None
        # the uplink's reads and the health figures on a connection and thread of their own: WAL lets them
        # read the last commit while the writer goes on with the next
        self._rpool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-read")
        self._rconn: sqlite3.Connection | None = None
        self._queue: list[tuple[str, Any, asyncio.Future]] = []
        self._queued = 0  # records and calls waiting in _queue (a submit_many counts its records)
        self.tx_serial = 0  # counts write transactions begun, so a stage can tell one from the next
        self._wake = asyncio.Event()
        self._writer: asyncio.Task | None = None
        self._rows = 0
        self._last_age_sweep = 0.0
        self._schemas: list[str] = []
        self._before_commit: dict[str, Callable[[sqlite3.Connection], None]] = {}

    # ---- lifecycle ----

    def add_schema(self, sql: str) -> None:
        """Run idempotent DDL at open, after the migrations. Every table of the station's own parts is made by
        a migration (stationdb_migrations.py; a test holds that no part calls this); this remains for a
        part's DDL that has not been given a migration yet."""
        self._schemas.append(sql)

    async def open(self) -> None:
        await self._call(self._open_sync)
        self._writer = asyncio.create_task(self._write_loop(), name="outbox-writer")

    def _open_sync(self) -> None:
        try:
            self._open_db()
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"cannot open the station database {self.path}: {exc}") from exc

    def _open_db(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               cached_statements=_ROWS_PER_INSERT + 64)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=5000")
        if self.max_pages:
            conn.execute(f"PRAGMA max_page_count={int(self.max_pages)}")
        try:
            _, self.schema_version = migrate(conn, self.path)
            if self._schemas:
                conn.executescript("".join(self._schemas))
        except BaseException:
            conn.close()
            raise
        row = conn.execute("SELECT value FROM meta WHERE key='epoch'").fetchone()
        if row is None:
            epoch = self._epoch_cfg or secrets.token_hex(4)
            conn.execute("INSERT INTO meta VALUES ('epoch', ?), ('seq', '0')", (epoch,))
        else:
            epoch = row[0]
            if self._epoch_cfg and self._epoch_cfg != epoch:
                log.warning("config epoch %s ignored: the database was created with epoch %s",
                            self._epoch_cfg, epoch)
        self.epoch = epoch
        self._rows = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._conn = conn
        self._rconn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._rconn.execute("PRAGMA busy_timeout=5000")

    async def close(self) -> None:
        if self._writer:
            self._writer.cancel()
            try:
                await self._writer
            except asyncio.CancelledError:
                pass
            self._writer = None
        for _, _, fut in self._queue:
            if not fut.done():
                fut.set_exception(OutboxError("outbox closed"))
        self._queue.clear()
        self._queued = 0
        if self._rconn is not None:
            await asyncio.get_running_loop().run_in_executor(self._rpool, self._rconn.close)
            self._rconn = None
        self._rpool.shutdown(wait=True)
        if self._conn is not None:
            await self._call(self._conn.close)
            self._conn = None
        self._pool.shutdown(wait=True)

    async def _call(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    # ---- writes ----

    def _enqueue(self, op: str, arg: Any, n: int = 1) -> asyncio.Future:
        if self._queued >= self.mem_queue_max:
            self.counters.inc("outbox_refused", n)
            raise OutboxFull(f"outbox overflow queue is full ({self.mem_queue_max})")
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((op, arg, fut))
        self._queued += n
        self._wake.set()
        return fut

    def submit(self, rec: Record) -> asyncio.Future:
        """Queue a record; the future gives True (stored) or False (already held) once durable."""
        return self._enqueue("rec", rec)

    def submit_many(self, recs: list[Record], stage: Stage | None = None) -> asyncio.Future:
        """Queue records to be stored in one transaction, in order; the one future gives a list of
        True/False (as submit) once all are durable. One future per batch instead of one per record.
        The records' `id` is left unset (nothing that submits a batch needs it).

        stage(recs, stored) runs on the writer right after the inserts, in the same transaction; it writes
        nothing itself (before_commit() is for that) and returns (extra, on_commit): the future then gives
        (stored, extra), and on_commit() runs on the writer once that transaction has committed (never after
        a rollback).
        """
        return self._enqueue("many", (recs, stage), len(recs))

    def before_commit(self, key: str, fn: Callable[[sqlite3.Connection], None]) -> None:
        """From a stage, on the writer: run fn(conn) once, last, in the current transaction before it commits.

        For writes that many stages of one transaction would each repeat (the newest value wins): the
        stages record what to write and fn writes it once. An error in fn fails the whole transaction.
        """
        self._before_commit[key] = fn

    async def append(self, rec: Record) -> bool:
        """Store a record durably; False if its (src, boot, seq) is already held."""
        return await self.submit(rec)

    async def run(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run fn(conn) on the writer inside the next group transaction; its result is returned."""
        return await self._enqueue("fn", fn)

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                group: list[tuple[str, Any, asyncio.Future]] = []
                weight = 0
                for entry in self._queue:
                    if group and weight >= GROUP_MAX:
                        break
                    group.append(entry)
                    weight += len(entry[1][0]) if entry[0] == "many" else 1
                try:
                    results = await self._call(self._commit_sync, [(op, arg) for op, arg, _ in group])
                except _Full:
                    if not self.disk_full:
                        log.error("outbox database is full; %d records held in memory until space frees",
                                  len(self._queue))
                    self.disk_full = True
                    self.counters.inc("disk_full")
                    await asyncio.sleep(self.retry_s)
                    continue
                except Exception as exc:  # noqa: BLE001 - the group fails, the writer goes on
                    # not stored, so not acked: the lockers send these again
                    log.error("outbox write of %d records failed: %s", weight, exc)
                    self.counters.inc("outbox_write_errors")
                    err = exc if isinstance(exc, OutboxError) else OutboxError(f"outbox write failed: {exc}")
                    results = [err] * len(group)
                if self.disk_full:
                    log.warning("outbox database has space again")
                self.disk_full = False
                del self._queue[:len(group)]
                self._queued -= weight
                for (_, _, fut), res in zip(group, results):
                    if fut.done():
                        continue
                    if isinstance(res, BaseException):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
                self.changed.set()

    def _commit_sync(self, ops: list[tuple[str, Any]]) -> list[Any]:
        conn = self._conn
        assert conn is not None
        for attempt in range(2):
            try:
                return self._try_commit(conn, ops)
            except sqlite3.Error as exc:
                # rolled back already (transaction())
                if not _is_full(exc):
                    raise OutboxError(f"outbox write failed: {exc}") from exc
                if attempt == 0 and self._make_room(conn):
                    continue
                raise _Full() from exc
        raise _Full()

    def _try_commit(self, conn: sqlite3.Connection, ops: list[tuple[str, Any]]) -> list[Any]:
        results: list[Any] = []
        committed: list[Callable[[], None]] = []
        rows_before = self._rows
        self.tx_serial += 1
        self._before_commit.clear()
        try:
            with transaction(conn):
                self._try_ops(conn, ops, results, committed)
        except BaseException:
            self._rows = rows_before
            raise
        finally:
            self._before_commit.clear()
        for on_commit in committed:
            try:
                on_commit()
            except Exception:  # noqa: BLE001 - the commit stands; a hook bug must not fail it
                log.exception("outbox commit hook failed")
        return results

    def _try_ops(self, conn: sqlite3.Connection, ops: list[tuple[str, Any]], results: list[Any],
                 committed: list[Callable[[], None]]) -> None:
        """The group's writes, in the transaction _try_commit holds; `committed` gets the hooks to run after."""
        added = 0
        i = 0
        while i < len(ops):
            op, arg = ops[i]
            if op == "many":
                # consecutive batches go in together: a few statements for the lot, not several per batch
                # (each statement gives up the GIL and waits to get it back from the event loop)
                j = i
                while j < len(ops) and ops[j][0] == "many":
                    j += 1
                run = [a for _, a in ops[i:j]]
                news = self._insert_many(conn, [r for recs, _ in run for r in recs])
                added += sum(news)
                k = 0
                for recs, stage in run:
                    mine = news[k:k + len(recs)]
                    k += len(recs)
                    if stage is None:
                        results.append(mine)
                        continue
                    try:
                        extra, on_commit = stage(recs, mine)
                        committed.append(on_commit)
                    except Exception:  # noqa: BLE001 - the records are sound; only their extra is lost
                        log.exception("outbox stage failed, records kept")
                        extra = None
                    results.append((mine, extra))
                i = j
                continue
            i += 1
            if op == "rec":
                try:
                    new = self._insert(conn, arg)
                except (TypeError, ValueError, RecursionError) as exc:
                    # the body cannot be written as JSON: this record is refused, the group goes on
                    self.counters.inc("outbox_unwritable")
                    results.append(OutboxError(f"{arg.kind} from {arg.src} cannot be written as JSON: "
                                               f"{type(exc).__name__}"))
                    continue
                added += new
                results.append(new)
            else:
                try:
                    with savepoint(conn, "op"):
                        results.append(arg(conn))
                except sqlite3.Error as exc:
                    if _is_full(exc):
                        raise
                    results.append(OutboxError(str(exc)))
                except UnicodeEncodeError:
                    self.counters.inc("outbox_unstorable")
                    results.append(Unstorable("text holds a character UTF-8 cannot encode (a lone surrogate)"))
                except Exception as exc:  # noqa: BLE001 - handed back to the caller's future, not swallowed
                    results.append(exc)
        self._rows += added
        for fn in list(self._before_commit.values()):
            fn(conn)
        self._enforce_bounds(conn)

    def insert_in_tx(self, conn: sqlite3.Connection, rec: Record) -> bool:
        """Store a record inside a transaction run by run(); False if its key is already held."""
        return self._insert(conn, rec)

    def _insert(self, conn: sqlite3.Connection, rec: Record) -> bool:
        # written out first: a body that cannot be (nested too deep, not JSON) fails before any write
        text = body_text(rec)
        if rec.auto:
            # numbered inside the transaction, so a rolled-back attempt never leaves a gap or a reuse
            conn.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key='seq'")
            rec.seq = int(conn.execute("SELECT value FROM meta WHERE key='seq'").fetchone()[0])
            rec.boot = self.epoch
        sql = "INSERT OR IGNORE INTO outbox (src, boot, seq, kind, rx, body) VALUES (?,?,?,?,?,?)"
        try:
            cur = conn.execute(sql, (rec.src, rec.boot, rec.seq, rec.kind, rec.rx, text))
        except UnicodeEncodeError:
            # text SQLite cannot take as UTF-8 (a lone surrogate): stored escaped, the same JSON value, so the
            # record goes on to the cloud (which keeps a bad one as a dead letter) and holds nothing back
            self.counters.inc("outbox_escaped")
            log.warning("%s %s/%s/%s holds text UTF-8 cannot hold; stored escaped", rec.kind, rec.src, rec.boot,
                        rec.seq)
            cur = conn.execute(sql, (rec.src, rec.boot, rec.seq, rec.kind, rec.rx, escaped(text)))
        if cur.rowcount == 0:
            self.counters.inc("outbox_duplicates")
            return False
        rec.id = cur.lastrowid
        return True

    def _insert_many(self, conn: sqlite3.Connection, recs: list[Record]) -> list[bool]:
        """Insert records a few hundred per statement: per-row execute() calls were most of the writer's time,
        and every call hands the GIL to the event loop and waits to get it back. A batch holding a record
        already stored (a re-send) is undone and inserted row by row, to learn which rows were new."""
        if any(r.auto for r in recs):
            return [self._insert(conn, r) for r in recs]
        before = conn.total_changes
        dumps = json.dumps
        try:
            with savepoint(conn, "many"):
                for i in range(0, len(recs), _ROWS_PER_INSERT):
                    chunk = recs[i:i + _ROWS_PER_INSERT]
                    args: list[Any] = []
                    for r in chunk:
                        args += (r.src, r.boot, r.seq, r.kind, r.rx,
                                 r.raw if r.raw is not None else dumps(r.body, separators=(",", ":"),
                                                                       ensure_ascii=False))
                    conn.execute(_insert_sql(len(chunk)), args)
                if conn.total_changes - before != len(recs):
                    raise _Held()
            return [True] * len(recs)
        except (_Held, UnicodeEncodeError):
            # undone: row by row tells which rows were new, and stores a record with text UTF-8 cannot hold
            # escaped, without holding back the others
            return [self._insert(conn, r) for r in recs]

    def _drop(self, conn: sqlite3.Connection, kinds: tuple[str, ...] | None, n: int, counter: str,
              older_than: float | None = None) -> int:
        where = []
        args: list[Any] = []
        if kinds is not None:
            # our own constants, written inline so the planner can use the partial index
            where.append(f"kind IN ({','.join(repr(k) for k in kinds)})")
        if older_than is not None:
            where.append("rx < ?")
            args.append(older_than)
        cond = ("WHERE " + " AND ".join(where)) if where else ""
        cur = conn.execute(f"DELETE FROM outbox WHERE id IN (SELECT id FROM outbox {cond} ORDER BY id LIMIT ?)",
                           (*args, n))
        if cur.rowcount:
            self._rows -= cur.rowcount
            self.counters.inc(counter, cur.rowcount)
            log.warning("outbox bound: dropped %d rows (%s)", cur.rowcount, counter)
        return cur.rowcount

    def _enforce_bounds(self, conn: sqlite3.Connection) -> None:
        # Policy: telemetry goes first, then superseded state snapshots; events and the gateway's own
        # records only when nothing else is left, because the locker has already deleted them.
        now = time.time()
        if now - self._last_age_sweep > 60:
            self._last_age_sweep = now
            self._drop(conn, TELE_KINDS, 1_000_000, "dropped_tele", older_than=now - self.tele_max_age_s)
        over = self._rows - self.max_rows
        if over > 0:
            over -= self._drop(conn, TELE_KINDS, over, "dropped_tele")
        if over > 0:
            over -= self._drop(conn, STATE_KINDS, over, "dropped_state")
        if over > 0:
            self._drop(conn, None, over, "dropped_events")

    def _make_room(self, conn: sqlite3.Connection) -> bool:
        """On a full database free pages by dropping telemetry, then state snapshots; never events."""
        try:
            with transaction(conn):
                freed = self._drop(conn, TELE_KINDS, 1000, "dropped_tele")
                if not freed:
                    freed = self._drop(conn, STATE_KINDS, 1000, "dropped_state")
            return freed > 0
        except sqlite3.Error as exc:
            log.error("outbox could not make room: %s", exc)
            return False

    # ---- reads and acks ----

    async def read_batch(self, limit: int, max_bytes: int = C.INGEST_MAX_BYTES, *, decode: bool = True
                         ) -> list[Record]:
        """The oldest records in order, at most `limit` of them and about `max_bytes` of JSON.

        decode=False leaves body None and the stored JSON in raw, for the uplink to send as it is. Reads run on
        a connection of their own and see what is committed: a write still queued may not be seen yet (await
        `run(lambda conn: None)` first to read after everything queued so far).
        """
        return await asyncio.get_running_loop().run_in_executor(self._rpool, self._read_sync, limit, max_bytes,
                                                                decode)

    def _read_sync(self, limit: int, max_bytes: int, decode: bool = True) -> list[Record]:
        assert self._rconn is not None
        out: list[Record] = []
        size = 0
        for rid, src, boot, seq, kind, rx, body in self._rconn.execute(
                "SELECT id, src, boot, seq, kind, rx, body FROM outbox ORDER BY id LIMIT ?", (limit,)):
            size += len(body) + 100
            if out and size > max_bytes:
                break
            out.append(Record(src=src, kind=kind, body=json.loads(body) if decode else None, boot=boot, seq=seq,
                              rx=rx, id=rid, raw=None if decode else body))
        return out

    async def delete(self, ids: list[int]) -> int:
        """Delete acked records by id; returns how many were deleted."""
        if not ids:
            return 0
        return await self._call(self._delete_sync, list(ids))

    def _delete_sync(self, ids: list[int]) -> int:
        assert self._conn is not None
        n = 0
        conn = self._conn
        try:
            with transaction(conn):
                n = self._delete_ids(conn, ids)
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox delete failed: {exc}") from exc
        self._rows -= n
        return n

    @staticmethod
    def _delete_ids(conn: sqlite3.Connection, ids: list[int]) -> int:
        lo, hi = min(ids), max(ids)
        if hi - lo + 1 == len(ids) and len(set(ids)) == len(ids):
            # a whole batch read from the head, all acked (the usual case): a range, no id list. Ids only
            # grow, so nothing written since the batch was read lies inside it.
            return conn.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (lo, hi)).rowcount
        n = 0
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            n += conn.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(chunk))})", chunk).rowcount
        return n

    async def stats(self) -> dict:
        """depth (rows held), oldest_rx (receive time of the oldest, or None), pending (in memory)."""
        conn = self._rconn
        assert conn is not None
        depth, oldest = await asyncio.get_running_loop().run_in_executor(
            self._rpool, lambda: conn.execute("SELECT COUNT(*), MIN(rx) FROM outbox").fetchone())
        return {"depth": depth, "oldest_rx": oldest, "pending": self._queued}

    async def query(self, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run a read-only fn(conn) on the worker thread."""
        return await self._call(fn, self._conn)


# the name the station's parts hold the database by: what they use of it is the outbox's API
Outbox = StationDB
