"""Gateway process: wires the parts together and keeps every task running under a supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable

import httpx
import uvicorn

from jincun import logmask

from . import const as C
from . import protocol
from .api import create_app
from .boardlocker import BoardLocker
from .broker_audit import BrokerAudit
from .consent import CloudConsent, ConsentPort
from .preadvice import CloudPreadvice
from .codes import Codes
from .config import StationConfig, load_config
from .counters import Counters
from .deposits import Deposits
from .downlink import Downlink
from .errors import GatewayError
from .lockerlink import LockerLink
from .stationdb import Outbox, Record
from .scanner_serial import Scanner
from .pins import Sessions
from .staff import StaffSync
from .services import HttpServices
from .uplink import Uplink

log = logging.getLogger("jincun.gateway")

HEALTH_COUNTERS = ("rejected_payloads", "rejected_topics", "unknown_lockers", "seq_gaps", "lockers_lost",
                   "dropped_tele", "dropped_state", "dropped_events", "disk_full", "outbox_refused",
                   "evt_not_stored", "uplink_failures", "task_restarts", "cmd_timeouts", "retained_ignored")
STABLE_S = 60.0
GC_THRESHOLDS = (20_000, 20, 50)  # young collections every 20,000 net allocations instead of 700


class Gateway:
    """All parts of one station gateway, sharing one outbox and one set of counters."""

    def __init__(self, cfg: StationConfig, *, transport: httpx.AsyncBaseTransport | None = None,
                 consent: ConsentPort | None = None) -> None:
        self.cfg = cfg
        self.started = time.time()
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
        self.link.handled_types = {"deposit", "deposit_void", "pickup", "state", "fw"}
        self.link.birth_handlers += [self.deposits.on_birth, self.codes.on_birth]
        self.uplink = Uplink(cfg.station, cfg.cloud, self.outbox, self.counters, transport=transport)
        self.downlink = Downlink(cfg, self.outbox, self.link, self.codes, self.counters, transport=transport)
        self.downlink.on_return = self.deposits.to_return
        self.boards = {b.id: BoardLocker(b, self.link, self.outbox, self.counters) for b in cfg.boards}
        self.link.local.update(self.boards)
        self.audit = (BrokerAudit(cfg.mqtt.audit_log, cfg.station, self.counters)
                      if cfg.mqtt.audit_log else None)
        self.scanner = Scanner(cfg.scanner.port, self.counters, baud=cfg.scanner.baud) if cfg.scanner else None
        self.consent: ConsentPort = consent or CloudConsent(cfg.cloud, self.outbox, self.counters,
                                                            cache_s=cfg.terminal.consent_cache_s, transport=transport)
        self.sessions = Sessions(cfg.terminal, self.counters, db=self.outbox)
        self.staff = StaffSync(cfg, self.outbox, self.sessions, self.counters, transport=transport, link=self.link)
        self.app = create_app(HttpServices(
            cfg=cfg, counters=self.counters, outbox=self.outbox, deposits=self.deposits, consent=self.consent,
            preadvice=CloudPreadvice(cfg.cloud, self.counters, transport=transport),
            link=self.link, uplink=self.uplink, boards=self.boards, scanner=self.scanner, health=self.health,
            sessions=self.sessions))

    async def open(self) -> None:
        db = self.cfg.gateway.db
        if not db.exists():
            # parcels, phones and codes: readable by the gateway's user only (SQLite gives its -wal and -shm
            # files the database file's mode)
            db.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(db, os.O_WRONLY | os.O_CREAT, 0o600))
        await self.outbox.open()
        await self.link.load()
        await self.staff.load()
        await self.sessions.load()  # after the staff list: a user no longer allowed keeps no session
        await self.deposits.load()
        await self.downlink.load_overrides()
        await self.downlink.rollouts.resume()

    async def close(self) -> None:
        await self.downlink.rollouts.close()
        await self.link.drain()
        for b in self.boards.values():
            await b.close()
        if self.scanner:
            await self.scanner.close()
        if self.audit:
            self.audit.close()
        await self.outbox.close()

    def tele_body(self, st: dict) -> dict:
        """The gateway's own health as a gw_tele record body (§5.1)."""
        oldest = None if st["oldest_rx"] is None else max(0.0, round(time.time() - st["oldest_rx"], 1))
        keep = ("rejected_payloads", "unknown_lockers", "seq_gaps", "lockers_lost", "dropped_tele", "dropped_state",
                "dropped_events", "disk_full", "outbox_refused", "uplink_failures", "task_restarts", "cmd_timeouts",
                "downlink_rate_limited", "pin_failures", "board_poll_failures", "fwreq_refused", "retained_ignored",
                "handovers_refused", "handovers_rate_limited", "body_too_large", "body_too_deep",
                "fw_rollouts_failed")
        snap = self.counters.snapshot()
        # a locker retired in the cloud is not counted: the cloud shows these figures as the station's in service
        online, total = self.link.in_service()
        return {"outbox_depth": st["depth"], "oldest_unsent_s": oldest, "uplink": "up" if self.uplink.up else "down",
                "broker": "up" if self.link.connected.is_set() else "down",
                "lockers_online": online, "lockers_total": total,
                "cpu_temp": cpu_temp(), "up_s": int(time.time() - self.started),
                "counters": {k: snap.get(k, 0) for k in keep}}

    async def tele_loop(self) -> None:
        """Put the gateway's own health into the outbox every gateway.tele_s seconds."""
        while True:
            await asyncio.sleep(self.cfg.gateway.tele_s)
            body = self.tele_body(await self.outbox.stats())
            try:
                protocol.check_record(C.KIND_GW_TELE, body)
                await self.outbox.append(Record(src=C.SRC_GATEWAY, kind=C.KIND_GW_TELE, body=body))
            except GatewayError as exc:
                self.counters.inc("dropped_gw_tele")
                log.warning("gateway telemetry not stored: %s", exc)

    async def time_loop(self) -> None:
        """Give every online locker the time again every gateway.time_s seconds (births get it at once)."""
        while True:
            await asyncio.sleep(self.cfg.gateway.time_s)
            for ls in list(self.link.lockers.values()):
                if ls.online and ls.id not in self.boards:
                    try:
                        await self.link.send_command(ls.id, "time", ts=int(time.time()), wait=False)
                    except GatewayError as exc:
                        log.warning("time to %s not sent: %s", ls.id, exc)

    async def health(self) -> dict:
        st = await self.outbox.stats()
        oldest = None if st["oldest_rx"] is None else max(0.0, round(time.time() - st["oldest_rx"], 1))
        return {
            "ok": self.link.connected.is_set() and not self.outbox.disk_full,
            "station": self.cfg.station,
            "epoch": self.outbox.epoch,
            "db_schema": self.outbox.schema_version,
            "broker": "up" if self.link.connected.is_set() else "down",
            "lockers_online": self.link.online_count(),
            "outbox_depth": st["depth"],
            "outbox_pending": st["pending"],
            "oldest_unsent_s": oldest,
            "uplink": "up" if self.uplink.up else "down",
            "uplink_last_ok": self.uplink.last_ok,
            "uplink_error": self.uplink.last_error,
            "downlink_error": self.downlink.last_error,
            "lockers_total": len(self.link.lockers),
            "lockers_retired": self.link.retired(),
            "cpu_temp": cpu_temp(),
            "boards": {b.id: b.online for b in self.boards.values()},
            "acl_refusals": list(self.audit.recent)[-10:] if self.audit else None,
            "counters": self.counters.snapshot(),
        }


def cpu_temp(path: str = "/sys/class/thermal/thermal_zone0/temp") -> float | None:
    """The SoC temperature in degrees C (Raspberry Pi thermal zone), None where there is none."""
    try:
        with open(path, encoding="ascii") as f:
            return round(int(f.read().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


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
              stop: asyncio.Event | None = None, started: Callable[[Gateway], None] | None = None,
              consent: ConsentPort | None = None, tune_gc: bool = False) -> None:
    """Run the gateway until `stop` is set or SIGTERM/SIGINT arrives, then shut down cleanly.

    tune_gc: the process is the gateway's own (run_gateway), so its garbage collector may be tuned.
    """
    gw = Gateway(cfg, transport=transport, consent=consent)
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
        ("lockerlink", gw.link.run), ("uplink", gw.uplink.run), ("codes-sync", gw.codes.sync_loop),
        ("gw-tele", gw.tele_loop), ("time", gw.time_loop), ("keypad-expiry", gw.deposits.expiry_loop))]
    tasks += [asyncio.create_task(supervise(f"board-{b.id}", b.run, gw.counters), name=f"board-{b.id}")
              for b in gw.boards.values()]
    if gw.audit:
        tasks.append(asyncio.create_task(supervise("broker-audit", gw.audit.run, gw.counters), name="broker-audit"))
    if gw.scanner:
        tasks.append(asyncio.create_task(supervise("scanner", gw.scanner.run, gw.counters), name="scanner"))
    if cfg.cloud.downlink:
        tasks.append(asyncio.create_task(supervise("downlink", gw.downlink.run, gw.counters), name="downlink"))
        tasks.append(asyncio.create_task(supervise("staff-sync", gw.staff.run, gw.counters), name="staff-sync"))

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
    if tune_gc:
        # What start-up made lives as long as the process: out of the collector's way. Events in flight
        # are freed by reference counting, so young collections can be rarer (docs/gateway.md).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
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
    os.umask(0o027)  # files the station makes: group-readable at most
    cfg = load_config(config_path)
    if not cfg.demo:
        logmask.install()
    # The outbox writer thread needs the GIL back after every SQLite call; with the default 5 ms switch
    # interval it waits behind a busy event loop up to 5 ms each time (p99 publish-to-durable at 8,000
    # events/s: 789 ms with 5 ms, 397 ms with 0.5 ms; docs/gateway.md)
    sys.setswitchinterval(0.0005)
    asyncio.run(run(cfg, tune_gc=True))
