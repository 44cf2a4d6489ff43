"""The locker application: hardware task (keypad, doors, locks) and network task (events, commands).

`App` is assembled from one part per concern, each in its own module and sharing the App's state:
`jc.keypad` (codes typed at the locker), `jc.commands` (cmd and eack messages), `jc.uplink` (the broker
session, outbox pump, telemetry), `jc.health` (watchdog, boot health, safe mode) and `jc.fwdownload`
(firmware update). This module keeps the state, the hardware loop, events and start-up.
"""

import asyncio
import binascii
import json
import os
from jc import const as K
from jc import proto
from jc import store
from jc.clock import Clock
from jc.compartment import Compartment, LockDriver
from jc.vault import Vault
from jc.update import Updater, rmtree
from jc import bootstate
from jc.outbox import Outbox
from jc.link import Link, is_der_b64
from jc.hal import HalError
from jc.errors import JcError
from jc.log import log as _log, LEVELS as LOG_LEVELS
from jc.keypad import Keypad
from jc.commands import Commands
from jc.uplink import Uplink
from jc.health import Health
from jc.fwdownload import FwDownload

HW_TICK_MS = 10
COMPS_FILE = "comps.bin"


class ConfigError(JcError):
    """config.json is missing a key or has a bad value."""


def check_config(cfg):
    """Validate config.json at start-up; raise ConfigError naming the bad key."""
    def need(cond, key):
        if not cond:
            raise ConfigError("config.json: bad or missing " + key)
    need(type(cfg) is dict, "top level object")
    need(proto.is_ident(cfg.get("station")), "station")
    need(proto.is_ident(cfg.get("locker")), "locker")
    sec = cfg.get("secret")
    need(type(sec) is str and len(sec) == 64 and proto.is_hash(sec.lower()), "secret (64 hex)")
    m = cfg.get("mqtt")
    need(type(m) is dict, "mqtt")
    need(type(m.get("host")) is str and m["host"], "mqtt.host")
    need(type(m.get("port")) is int and 0 < m["port"] < 65536, "mqtt.port")
    need(type(m.get("client_id")) is str and m["client_id"], "mqtt.client_id")
    need(type(m.get("keepalive", 60)) is int and 0 < m.get("keepalive", 60) <= 3600, "mqtt.keepalive")
    need(m.get("tls", False) in (True, False), "mqtt.tls")
    if m.get("tls"):
        need(is_der_b64(m.get("ca")), "mqtt.ca (the station CA, DER in base64)")
        need(type(m.get("server_hostname", "")) is str, "mqtt.server_hostname")
    comps = cfg.get("comps")
    need(type(comps) is list and 1 <= len(comps) <= K.COMP_MAX, "comps")
    seen = set()
    for c in comps:
        need(type(c) is dict and proto.is_comp(c.get("n")) and c["n"] not in seen, "comps[].n")
        need(c.get("size") in K.SIZES, "comps[].size")
        seen.add(c["n"])
    need(type(cfg.get("tele_s", 60)) is int and cfg.get("tele_s", 60) > 0, "tele_s")
    need(type(cfg.get("pulse_ms", 300)) is int and 50 <= cfg.get("pulse_ms", 300) <= 500, "pulse_ms (50..500)")
    need(type(cfg.get("ajar_s", 120)) is int and cfg.get("ajar_s", 120) > 0, "ajar_s")
    need(type(cfg.get("tick_ms", HW_TICK_MS)) is int and 1 <= cfg.get("tick_ms", HW_TICK_MS) <= 100, "tick_ms")
    need(type(cfg.get("selftest_s", 120)) is int and cfg.get("selftest_s", 120) > 0, "selftest_s")
    need(type(cfg.get("healthy_s", 60)) is int and cfg.get("healthy_s", 60) > 0, "healthy_s")
    disp = cfg.get("display")
    need(disp is None or (type(disp) is dict and type(disp.get("addr", 0x3C)) is int), "display.addr")
    need(cfg.get("log", "info") in LOG_LEVELS, "log (debug|info|warning|error)")
    need(type(cfg.get("console", False)) is bool, "console (true|false)")
    locks = cfg.get("locks")
    if locks is not None:
        need(type(locks) is dict and locks.get("bus") in ("gpio", "rs485"), "locks.bus")


class App(Keypad, Commands, Uplink, Health, FwDownload):
    MAX_IN_PACKET = 2048

    def __init__(self, cfg, hal, log=_log, clock=None, root="", boot=None, safe=False):
        """root: flash folder prefix ("" or "dir/"); boot: the boot record main.py read; safe: safe mode."""
        check_config(cfg)
        self.cfg = cfg
        self.hal = hal
        self._log = log
        self.clock = clock or Clock()
        self.root = root
        self.bootrec = boot
        self.safe = safe
        self.tick_ms = cfg.get("tick_ms", HW_TICK_MS)
        self.station = cfg["station"]
        self.locker = cfg["locker"]
        self.boot = binascii.hexlify(os.urandom(4)).decode()
        self.seq = 0
        self.comps = {}
        self.order = []
        for c in cfg["comps"]:
            self.comps[c["n"]] = Compartment(c["n"], c["size"], cfg.get("ajar_s", 120) * 1000)
            self.order.append(c["n"])
        self.driver = LockDriver(hal, self.comps, cfg.get("pulse_ms", 300))
        secret = binascii.unhexlify(cfg["secret"])
        self.vault = Vault(root + "vault.bin", secret, log=log)
        self.outbox = Outbox(root + "outbox", log=log)
        self.upd = Updater(root, secret, log=log)
        self.fw_chunk_ev = asyncio.Event()
        self.hw_beat = 0
        self.net_beat = 0
        self.healthy = False
        self.session = None
        self.wake = asyncio.Event()
        self.cmd_memory = []  # [(id, ack bytes)], newest last
        self.keybuf = ""
        self.key_at = 0
        self.keys_scanned = -1  # when the keypad was last read
        self.disp_at = 0
        self.want_birth = False
        self.hw_ready = asyncio.Event()
        self.last_eack_ms = 0
        self.n = {"rejected_payloads": 0, "bad_topics": 0, "dup_cmds": 0, "cmds": 0, "store_errors": 0,
                  "oversize": 0, "evts_sent": 0, "eacks": 0, "tele_sent": 0, "tele_stored": 0, "hal_errors": 0,
                  "handler_errors": 0, "acks_dropped": 0, "unreadable_records": 0, "wdt_starved": 0,
                  "fw_stale_chunks": 0, "fw_timeouts": 0, "courier_opens": 0}
        self.acks_pending = 0
        try:
            self.link = Link(self, cfg["mqtt"], log)
        except ValueError as e:  # mbedTLS could not parse the CA
            raise ConfigError("config.json: mqtt.ca is not a usable certificate: %s" % e)
        self.t = {}
        for k in K.KINDS:
            self.t[k] = proto.topic(self.station, self.locker, k)

    # ---- persistence ----
    def _load_comps(self):
        try:
            data = store.read(self.root + COMPS_FILE)
        except store.StoreError as e:
            self.n["store_errors"] += 1
            self._log("app", "compartment file unreadable:", e)
            return
        if data is None:
            return
        try:
            for n, st, ref in json.loads(data):
                c = self.comps.get(n)
                if c and st in K.STATES:
                    c.st = st
                    c.ref = ref
        except (ValueError, TypeError) as e:
            self.n["store_errors"] += 1
            self._log("app", "compartment file bad:", e)

    def _save_comps(self):
        rows = [[n, self.comps[n].st, self.comps[n].ref] for n in self.order]
        try:
            store.write(self.root + COMPS_FILE, json.dumps(rows).encode())
        except store.StoreError as e:
            self.n["store_errors"] += 1
            self._log("app", "compartment save failed:", e)

    # ---- events ----
    def emit(self, etype, fields):
        """Create an event: stored in flash first, then sent by the network task."""
        self.seq += 1
        now = self.clock.ms()
        payload = proto.enc_evt(self.boot, self.seq, self.clock.wall(), now, etype, fields)
        self.outbox.add_evt(self.boot, self.seq, payload)
        rec = {"boot": self.boot, "seq": self.seq, "type": etype}
        for k in fields:
            rec[k] = fields[k]
        self.hal.record(rec)
        self.wake.set()
        if etype == K.T_PICKUP or etype == K.T_STATE and fields.get("st") == K.ST_EMPTY:
            # emptied (a pickup, or staff who took the parcel out): no code opens this compartment any more
            self.vault.consume(fields["c"], now)

    # ---- hardware task ----
    async def hw_task(self):
        while True:
            try:
                self._hw_tick()
            except (HalError, OSError) as e:
                self.n["hal_errors"] += 1
                self._log("app", "board error:", e)
            await self.clock.sleep_ms(self.tick_ms)

    def _hw_tick(self):
        """One pass over the board: sensors, state machines, lock coils, keypad."""
        now = self.clock.ms()
        self.hw_beat = now
        self.hal.sample()
        for n in self.order:
            c = self.comps[n]
            for etype, fields in c.tick(now, self.hal.door(n), self.hal.occ(n)):
                self.emit(etype, fields)
        self.driver.tick(now)
        if any(self.comps[n].dirty for n in self.order):
            for n in self.order:
                self.comps[n].dirty = False
            self._save_comps()
        self._keypad(now)
        if not self.hw_ready.is_set() and all(self.comps[n].ready() for n in self.order):
            self.hw_ready.set()  # the first birth must describe settled sensors

    def running_ver(self):
        return K.FW

    def status(self):
        """Diagnostic snapshot (simulator control channel)."""
        return {"boot": self.boot, "seq": self.seq, "outbox": self.outbox.count(),
                "outbox_events": [[r.boot, r.seq] for r in self.outbox.events()],
                "comps": [self.comps[n].snapshot() for n in self.order],
                "vault": self.vault.count(), "lock_left": self.vault.lock_left_s(self.clock.ms()),
                "fails": self.vault.fails, "connected": self.session is not None and self.session.alive,
                "energised": self.driver.energised(), "counters": self.counters(), "fw": self.running_ver(),
                "safe": self.safe, "healthy": self.healthy,
                "fw_download": self.upd.want() and list(self.upd.want())}

    def counters(self):
        d = dict(self.n)
        d["drops_tele"] = self.outbox.drops_tele
        d["drops_evt"] = self.outbox.drops_evt
        d["torn"] = self.outbox.torn
        d["outbox_write_errors"] = self.outbox.write_errors
        d["connects"] = self.link.connects
        d["connect_failures"] = self.link.failures
        s = self.session
        if s is not None:
            d["oversize"] = self.n["oversize"] + s.dec.oversize
            d["retransmits"] = s.retransmits
        d["lock_cap_hits"] = self.driver.cap_hits
        d["lockouts"] = self.vault.lockouts
        return d

    def start(self):
        """Recover flash state (comps, vault, outbox, boot record reports); no I/O beyond flash."""
        self.hal.all_locks_off()
        now = self.clock.ms()
        self._load_comps()
        self.vault.load(now)
        self.outbox.open()
        self._log("app", "boot", self.boot, "fw", self.running_ver(), "outbox", self.outbox.count(),
                  "vault", self.vault.count(), "safe mode" if self.safe else "")
        b = self.bootrec
        if b is not None:
            if b.get("report"):
                self.emit(K.T_FW, {"ver": b["report"][1], "result": b["report"][0]})
                b["report"] = None
                if b.get("bad"):
                    rmtree(self.root + b["bad"])
                    b["bad"] = ""
                self._save_boot()
        self._idle_display(now)

    def _save_boot(self):
        try:
            bootstate.save(self.root, self.bootrec)
        except OSError as e:
            self.n["store_errors"] += 1
            self._log("app", "boot record not saved:", e)

    async def run(self):
        """Start everything; the hardware task never waits on the network."""
        self.start()
        await self.hal.start(self)
        # any other failure ends run(): on the board the watchdog then resets it, the simulator process exits
        # safe mode runs the hardware loop too: pickups and the door/occupancy logic never stop
        tasks = [self.hw_task(), self.tele_task(), self._net_task(), self.wdt_task(), self.fw_task(),
                 self.health_task()]
        if self.cfg.get("console"):
            from jc import console
            tasks.append(console.run(self, self._log))
        await asyncio.gather(*tasks)

    async def _net_task(self):
        try:
            await asyncio.wait_for_ms(self.hw_ready.wait(), 3000)
        except asyncio.TimeoutError:
            self._log("app", "sensors not settled after 3 s; connecting anyway")
        await self.link.run()
