"""Gateway process: wires the parts together and keeps every task running under a supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Awaitable, Callable

import httpx
import uvicorn

from .api import create_app
from .codes import Codes
from .config import StationConfig, load_config
from .counters import Counters
from .deposits import Deposits
from .downlink import Downlink
from .errors import GatewayError
from .lockerlink import LockerLink
from .outbox import Outbox
from .uplink import Uplink

log = logging.getLogger("jincun.gateway")

HEALTH_COUNTERS = ("rejected_payloads", "rejected_topics", "unknown_lockers", "seq_gaps", "lockers_lost",
                   "dropped_tele", "dropped_state", "dropped_events", "disk_full", "outbox_refused",
                   "evt_not_stored", "uplink_failures", "task_restarts", "cmd_timeouts")
STABLE_S = 60.0


class Gateway:
    """All parts of one station gateway, sharing one outbox and one set of counters."""

    def __init__(self, cfg: StationConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.cfg = cfg
        self.counters = Counters()
        for name in HEALTH_COUNTERS:
            self.counters.inc(name, 0)
        lim = cfg.gateway.outbox
        max_pages = int(lim.max_db_mb * 1024 * 1024 / 4096) if lim.max_db_mb else None
        self.outbox = Outbox(cfg.gateway.db, self.counters, max_rows=lim.max_rows, tele_max_age_s=lim.tele_max_age_s,
                             mem_queue_max=lim.mem_queue_max, retry_s=lim.retry_s, max_pages=max_pages,
                             epoch=cfg.gateway.epoch)
        self.link = LockerLink(cfg, self.outbox, self.counters)
        self.codes = Codes(cfg, self.outbox, self.link, self.counters)
        self.deposits = Deposits(self.outbox, self.link, self.codes, self.counters)
        self.link.event_handlers += [self.deposits.on_event, self.codes.on_event]
        self.link.birth_handlers += [self.deposits.on_birth, self.codes.on_birth]
        self.uplink = Uplink(cfg.station, cfg.cloud, self.outbox, self.counters, transport=transport)
        self.downlink = Downlink(cfg, self.outbox, self.link, self.codes, self.counters, transport=transport)
        self.app = create_app(self)

    async def open(self) -> None:
        await self.outbox.open()
        await self.link.load()

    async def close(self) -> None:
        await self.link.drain()
        await self.outbox.close()

    async def health(self) -> dict:
        st = await self.outbox.stats()
        oldest = None if st["oldest_rx"] is None else max(0.0, round(time.time() - st["oldest_rx"], 1))
        return {
            "ok": self.link.connected.is_set() and not self.outbox.disk_full,
            "station": self.cfg.station,
            "epoch": self.outbox.epoch,
            "broker": "up" if self.link.connected.is_set() else "down",
            "lockers_online": self.link.online_count(),
            "outbox_depth": st["depth"],
            "outbox_pending": st["pending"],
            "oldest_unsent_s": oldest,
            "uplink": "up" if self.uplink.up else "down",
            "uplink_last_ok": self.uplink.last_ok,
            "uplink_error": self.uplink.last_error,
            "downlink_error": self.downlink.last_error,
            "counters": self.counters.snapshot(),
        }


async def supervise(name: str, factory: Callable[[], Awaitable[None]], counters: Counters,
                    backoff_max_s: float = 30.0, finished: Callable[[], bool] = lambda: False) -> None:
    """Run factory() until finished(): a task that ends or dies is logged, counted and restarted with backoff."""
    failures = 0
    while True:
        started = time.monotonic()
        try:
            await factory()
            if finished():
                return
            log.warning("task %s ended; restarting", name)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the supervisor is the edge: log, count, restart
            log.error("task %s died: %s: %s", name, type(exc).__name__, exc,
                      exc_info=not isinstance(exc, (ConnectionError,)) and log.isEnabledFor(logging.DEBUG))
        counters.inc("task_restarts")
        if time.monotonic() - started > STABLE_S:
            failures = 0
        failures += 1
        await asyncio.sleep(min(backoff_max_s, 0.2 * 2 ** min(failures, 10)))


class _Server(uvicorn.Server):
    """uvicorn inside our loop: signals belong to the gateway, not to the HTTP server."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def run(cfg: StationConfig, *, transport: httpx.AsyncBaseTransport | None = None,
              stop: asyncio.Event | None = None, started: Callable[[Gateway], None] | None = None) -> None:
    """Run the gateway until `stop` is set or SIGTERM/SIGINT arrives, then shut down cleanly."""
    gw = Gateway(cfg, transport=transport)
    await gw.open()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
            signals.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):
            log.debug("no handler for %s outside the main thread", sig)
    server = _Server(uvicorn.Config(gw.app, host=cfg.gateway.http.host, port=cfg.gateway.http.port,
                                    log_level="warning", lifespan="off", access_log=False))
    tasks = [asyncio.create_task(supervise(n, f, gw.counters), name=n) for n, f in (
        ("lockerlink", gw.link.run), ("uplink", gw.uplink.run), ("codes-sync", gw.codes.sync_loop))]
    if cfg.cloud.downlink:
        tasks.append(asyncio.create_task(supervise("downlink", gw.downlink.run, gw.counters), name="downlink"))

    async def serve_http() -> None:
        try:
            await server.serve()
        except SystemExit:
            # uvicorn exits when it cannot bind; the lockers and the uplink must keep running meanwhile
            raise GatewayError(f"local HTTP API cannot listen on {cfg.gateway.http.host}:{cfg.gateway.http.port}"
                               ) from None
    tasks.append(asyncio.create_task(supervise("http", serve_http, gw.counters,
                                               finished=lambda: server.should_exit), name="http"))
    log.info("gateway %s up (epoch %s)", cfg.station, gw.outbox.epoch)
    if started:
        started(gw)
    try:
        await stop.wait()
    finally:
        log.info("gateway %s stopping", cfg.station)
        server.should_exit = True
        if server.started:
            await asyncio.wait([tasks[-1]], timeout=5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await gw.close()
        for sig in signals:
            loop.remove_signal_handler(sig)


def run_gateway(config_path: str) -> None:
    """Entry point: load station.json and run until a signal."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run(load_config(config_path)))
