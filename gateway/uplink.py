"""Uplink: forwards the outbox to the cloud in ordered, idempotent batches (§5.1)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from typing import cast

import httpx
import orjson

from . import const as C
from .cloudhttp import cloud_client
from .config import CloudConfig
from .counters import Counters
from .errors import UplinkError
from .stationdb import Outbox, Record

log = logging.getLogger("jincun.gateway.uplink")

# answers that refuse a batch for what it holds (a malformed body, too large, too deep), not for who sent it or
# for the cloud's own state: the same batch would be refused forever, so the uplink narrows it down
REFUSED_STATUSES = (400, 413, 422)
# records the cloud refused even alone, set aside in the station database (the newest kept)
REFUSED_MAX_ROWS = 1000


def batch_id(records: list[Record]) -> str:
    """Stable id for a batch, so a re-send of the same items carries the same id."""
    h = hashlib.sha256()
    for r in records:
        h.update(f"{r.src}/{r.boot}/{r.seq};".encode())
    return h.hexdigest()[:32]


def encode_batch(station: str, batch: str, records: list[Record]) -> bytes:
    """The ingest request body, splicing each record's stored JSON in as it is (no decode and re-encode).

    The few distinct sources, boots and kinds of a batch are quoted once each. The records are read back
    from the outbox, so each is numbered (seq set).
    """
    d = json.dumps
    quoted: dict[str | None, str] = {}

    def q(s: str | None) -> str:
        v = quoted.get(s)
        if v is None:
            v = quoted[s] = d(s)
        return v

    items = ",".join(
        '{"src":%s,"boot":%s,"seq":%d,"kind":%s,"rx":%s,"body":%s}' % (
            q(r.src), q(r.boot), cast(int, r.seq), q(r.kind),
            d(r.rx) if type(r.rx) is not float else float.__repr__(r.rx),
            r.raw if r.raw is not None else d(r.body, separators=(",", ":"), ensure_ascii=False))
        for r in records)
    return ('{"station":%s,"batch":%s,"items":[%s]}' % (d(station), d(batch), items)).encode("utf-8")


def settle(records: list[Record], response: dict) -> tuple[list[int], dict[str, int]]:
    """Map a 2xx ingest response to the outbox ids that may be deleted and a count per status."""
    done: dict[tuple, str] = {}
    results = response.get("results")
    if not isinstance(results, list):
        raise UplinkError("ingest response has no results list")
    for res in results:
        if isinstance(res, dict) and res.get("status") in C.RESULT_DONE:
            done[(res.get("src"), res.get("boot"), res.get("seq"))] = res["status"]
    ids: list[int] = []
    tally = {s: 0 for s in C.RESULT_DONE}
    for r in records:
        st = done.get((r.src, r.boot, r.seq))
        if st is not None:
            assert r.id is not None  # records read back from the outbox carry their row id
            ids.append(r.id)
            tally[st] += 1
    return ids, tally


class Uplink:
    """Reads the outbox in order and posts it to the cloud until every item is acked."""

    def __init__(self, station: str, cfg: CloudConfig, outbox: Outbox, counters: Counters,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.station = station
        self.cfg = cfg
        self.outbox = outbox
        self.counters = counters
        self.transport = transport
        self.up = False
        self.last_ok: float | None = None
        self.last_error: str | None = None
        self._delay = cfg.backoff_min_s
        # how many records the next batch may hold: halved while the cloud refuses batches whole
        self._narrow = cfg.batch_max

    def state(self) -> dict:
        return {"up": self.up, "last_ok": self.last_ok, "last_error": self.last_error}

    async def run(self) -> None:
        """Forward forever; a failing cloud only delays, never loses or reorders."""
        async with cloud_client(self.cfg, self.transport) as client:
            while True:
                self.outbox.changed.clear()
                records = await self.outbox.read_batch(self._narrow, C.INGEST_MAX_BYTES - 4096, decode=False)
                if not records:
                    try:
                        await asyncio.wait_for(self.outbox.changed.wait(), self.cfg.poll_s)
                        # let a burst gather into one batch instead of one request per commit
                        await asyncio.sleep(self.cfg.linger_s)
                    except TimeoutError:
                        pass
                    continue
                try:
                    t0 = time.monotonic()
                    if await self.send(client, records):
                        # catch-up after an outage is paced, so a day's backlog does not swamp the 4G link
                        # or the cloud; live traffic is far below this rate and never waits
                        pause = len(records) / self.cfg.catchup_per_s - (time.monotonic() - t0)
                        if pause > 0:
                            self.counters.inc("uplink_paced")
                            await asyncio.sleep(pause)
                        elif len(records) < self._narrow:
                            # a steady stream gathers too: a batch that was not full is followed by the next
                            # only once the linger has passed since it left, not by one request per commit
                            await asyncio.sleep(max(0.0, self.cfg.linger_s - (time.monotonic() - t0)))
                        continue
                except UplinkError as exc:
                    if exc.status in REFUSED_STATUSES and await self._narrow_down(client, records, exc):
                        continue
                    self._down(str(exc))
                # a failed or fruitless batch: wait with jitter, then send the same items again
                await asyncio.sleep(self._delay * random.uniform(0.5, 1.0))
                self._delay = min(self._delay * 2, self.cfg.backoff_max_s)

    async def _narrow_down(self, client: httpx.AsyncClient, records: list[Record], exc: UplinkError) -> bool:
        """The cloud refused a batch for what it holds: send half as many records, down to one; a record refused
        alone, while an empty batch is taken, is set aside so that the records behind it flow. True when the
        uplink should go on at once."""
        if len(records) > 1:
            self.counters.inc("uplink_batches_narrowed")
            self._narrow = max(1, len(records) // 2)
            log.warning("cloud refused a batch of %d records (%s); sending %d at a time", len(records), exc,
                        self._narrow)
            return True
        try:
            # an empty batch tests the envelope (station, key, id): refused too, the fault is not the record's
            await self.send(client, [])
        except UplinkError:
            return False
        rec = records[0]
        assert rec.id is not None  # read back from the outbox
        reason = str(exc)[:500]

        def keep(conn) -> None:
            conn.execute("INSERT OR IGNORE INTO uplink_refused (src, boot, seq, kind, rx, body, status, reason, at) "
                         "SELECT src, boot, seq, kind, rx, body, ?, ?, ? FROM outbox WHERE id = ?",
                         (exc.status, reason, time.time(), rec.id))
            conn.execute("DELETE FROM uplink_refused WHERE id <= (SELECT MAX(id) FROM uplink_refused) - ?",
                         (REFUSED_MAX_ROWS,))
        try:
            await self.outbox.run(keep)
            await self.outbox.delete([rec.id])
        except Exception as exc2:  # noqa: BLE001 - the record stays in the outbox and is tried again
            log.error("could not set aside %s/%s/%s: %s", rec.src, rec.boot, rec.seq, exc2)
            return False
        self.counters.inc("uplink_refused_items")
        log.error("cloud refused %s %s/%s/%s even alone (%s): set aside in uplink_refused", rec.kind, rec.src,
                  rec.boot, rec.seq, reason)
        self._narrow = self.cfg.batch_max
        return True

    def _down(self, why: str) -> None:
        if self.up or self.last_error is None:
            log.warning("uplink down: %s", why)
        self.up = False
        self.last_error = why
        self.counters.inc("uplink_failures")

    def _encode(self, records: list[Record]) -> tuple[str, bytes]:
        batch = batch_id(records)
        return batch, encode_batch(self.station, batch, records)

    async def send(self, client: httpx.AsyncClient, records: list[Record]) -> int:
        """Post one batch; delete what the cloud settled; returns how many were deleted."""
        # built on a worker thread: hundreds of items at once would hold the event loop (and every locker's
        # message behind it) for milliseconds; there the interpreter switches between the two every 0.5 ms
        batch, content = await asyncio.get_running_loop().run_in_executor(None, self._encode, records)
        try:
            resp = await client.post(C.INGEST_PATH, content=content, headers={"Content-Type": "application/json"})
        except httpx.HTTPError as exc:
            raise UplinkError(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code // 100 != 2:
            raise UplinkError(f"HTTP {resp.status_code}: {resp.text[:200]}", resp.status_code)
        try:
            data = orjson.loads(resp.content)
        except orjson.JSONDecodeError as exc:
            raise UplinkError("ingest response is not JSON") from exc
        ids, tally = settle(records, data if isinstance(data, dict) else {})
        deleted = await self.outbox.delete(ids)
        for st, n in tally.items():
            if n:
                self.counters.inc(f"uplink_{st}", n)
        if tally["rejected"]:
            log.error("cloud rejected %d items of batch %s (kept in its dead-letter table)",
                      tally["rejected"], batch)
        if len(ids) < len(records):
            self.counters.inc("uplink_unsettled", len(records) - len(ids))
            log.warning("cloud settled %d of %d items; the rest is re-sent", len(ids), len(records))
        if records and len(ids) == len(records):
            self._narrow = self.cfg.batch_max
        if not self.up:
            log.info("uplink up")
        self.up = True
        self.last_ok = time.time()
        self.last_error = None
        self._delay = self.cfg.backoff_min_s
        return deleted
