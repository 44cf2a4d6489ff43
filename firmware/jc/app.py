"""The locker application: hardware task (keypad, doors, locks) and network task (events, commands)."""

import asyncio
import binascii
import gc
import json
import os
from jc import const as K
from jc import msgs as M
from jc import proto
from jc import store
from jc.clock import Clock
from jc.compartment import Compartment, LockDriver
from jc.vault import Vault, OK, COURIER, LOCKED
from jc.update import Updater, UpdateError, rmtree
from jc import bootstate
from jc.outbox import Outbox, K_EVT, K_TELE
from jc.link import Link, is_der_b64
from jc.mqtt import MQTTError
from jc.hal import HalError
from jc.errors import JcError
from jc.log import log as _log, LEVELS as LOG_LEVELS

HW_TICK_MS = 10
KEY_IDLE_MS = 15000
KEYBUF_MAX = 12
EVT_WINDOW = 16
EACK_RESEND_MS = 20000
MAX_PENDING_ACKS = 16
COMPS_FILE = "comps.bin"
WDT_CHECK_MS = 1000
HW_STALE_MS = 2000  # the hardware loop must have run this recently for the watchdog to be fed
NET_STALE_MS = 90000  # and the network loop (connecting, waiting or serving) this recently
FW_REQ_TIMEOUT_MS = 3000
FW_REQ_RETRIES = 10
REBOOT_GRACE_MS = 5000  # wait this long for the gateway to take the 'staged' event before rebooting
# what safe mode refuses: updates, and remote commands that move a lock or change a compartment; the vault
# still takes and drops codes, so pickups go on
SAFE_REFUSED = (K.OP_FW_OFFER, K.OP_DEPOSIT, K.OP_OPEN, K.OP_DISABLE, K.OP_ENABLE, K.OP_COURIER_PUT,
                K.OP_ADOPT)


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


class App:
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

    def _idle_display(self, now):
        left = self.vault.lock_left_s(now)
        if left:
            self.hal.show(M.LOCKED % (left, left), "red")
        elif self.safe:
            self.hal.show(M.SAFE_ENTER_CODE, "amber")
        else:
            self.hal.show(M.ENTER_CODE, "green")

    def _keypad(self, now):
        keys = self.hal.keys()
        self.keys_scanned = now
        if not keys:
            if self.keybuf and now - self.key_at > KEY_IDLE_MS:
                self.keybuf = ""
                self._idle_display(now)
            elif not self.keybuf and now - self.key_at > 1000 and now - self.disp_at >= 1000:
                self.disp_at = now  # count a lockout down, then return to the prompt
                self._idle_display(now)
            return
        for k in keys:
            self.key_at = now
            if k == "*":
                self.keybuf = ""
                self._idle_display(now)
            elif k == "#":
                code = self.keybuf
                self.keybuf = ""
                if code:
                    self._code(code, now)
            elif "0" <= k <= "9":
                if len(self.keybuf) < KEYBUF_MAX:
                    self.keybuf += k
                self.hal.show("*" * len(self.keybuf), "green")

    def _code(self, code, now):
        # decide and queue the lock pulse first; persist before any feedback, so a power cut timed on
        # the display cannot skip a wrong-code count
        r = self.vault.check(code, now)
        opened = []
        if r[0] == OK:
            for n in r[1]:
                c = self.comps.get(n)
                if c and c.request("pickup") is None:
                    self.driver.pulse(n)
                    opened.append(n)
        self.vault.commit(now)
        if r[0] == LOCKED:
            self.hal.show(M.LOCKED % (r[1], r[1]), "red")
            return
        if r[0] == COURIER:
            self._courier(r[1])
            return
        if r[0] == OK:
            self.emit(K.T_CODE_OK, {"cs": opened or r[1]})
            for n in opened:
                self.emit(K.T_LOCK, {"c": n, "why": "pickup"})
            if opened:
                s = ",".join(str(n) for n in opened)
                self.hal.show(M.TAKE_PARCEL % (s, s), "green")
            else:
                self.hal.show(M.NOTHING_TO_COLLECT, "amber")
            return
        _, fails, secs, count = r
        self.emit(K.T_CODE_BAD, {"fails": fails})
        if secs:
            self.emit(K.T_LOCKOUT, {"secs": secs, "count": count})
            self.emit(K.T_ALARM, {"kind": K.A_LOCKOUT})
            self.hal.show(M.LOCKED % (secs, secs), "red")
        else:
            self.hal.show(M.WRONG_CODE, "red")

    def _courier(self, deps):
        """A courier PIN: open a deposit for every compartment the gateway assigned to it."""
        opened = []
        for n, ref in deps:
            c = self.comps.get(n)
            if c and c.request("deposit", ref) is None:
                self.driver.pulse(n)
                opened.append(n)
        self.n["courier_opens"] += len(opened)
        self.emit(K.T_COURIER, {"cs": opened or [d[0] for d in deps]})
        for n in opened:
            self.emit(K.T_LOCK, {"c": n, "why": "courier"})
        if opened:
            s = ",".join(str(n) for n in opened)
            self.hal.show(M.DEPOSIT_IN % (s, s), "green")
        else:
            self.hal.show(M.NONE_FREE, "amber")

    # ---- commands ----
    def on_message(self, topic, payload):
        try:
            self._dispatch(topic, payload)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            # a handler bug must not take the receive loop down with it
            self.n["handler_errors"] += 1
            self._log("app", "message handler failed:", repr(e))

    def _dispatch(self, topic, payload):
        try:
            _, _, kind = proto.parse_topic(topic)
        except proto.ProtoError:
            self.n["bad_topics"] += 1
            self._log("app", "message on unexpected topic dropped")
            return
        if kind == K.EACK:
            self._on_eack(payload)
        elif kind == K.CMD:
            self._on_cmd(payload)
        else:
            self.n["bad_topics"] += 1

    def _reject(self, kind, payload, e):
        self.n["rejected_payloads"] += 1
        self._log("app", "rejected", kind, "payload:", e.code, e.detail, "(%d bytes)" % len(payload))

    def _on_eack(self, payload):
        try:
            o = proto.validate(K.EACK, payload)
        except proto.ProtoError as e:
            self._reject(K.EACK, payload, e)
            return
        self.n["eacks"] += 1
        if self.outbox.ack(o["boot"], o["seq"]):
            self.last_eack_ms = self.clock.ms()
        self.wake.set()

    def _remembered(self, cid):
        for i, a in self.cmd_memory:
            if i == cid:
                return a
        return None

    def _on_cmd(self, payload):
        try:
            o = proto.validate(K.CMD, payload)
        except proto.ProtoError as e:
            self._reject(K.CMD, payload, e)
            self._answer_bad(payload, e)
            return
        if o["op"] == K.OP_FW_CHUNK:
            if self.safe:
                self.n["fw_stale_chunks"] += 1  # safe mode takes no update
                return
            self._on_chunk(o)  # answered by the next fwreq, not by an ack; not remembered
            return
        cid = o["id"]
        prev = self._remembered(cid)
        if prev is not None:
            self.n["dup_cmds"] += 1
            self._send_ack(prev)
            return
        self.n["cmds"] += 1
        err = self._execute(o)
        ack = proto.enc_ack(cid, err is None, err)
        self.cmd_memory.append((cid, ack))
        if len(self.cmd_memory) > K.CMD_MEMORY:
            self.cmd_memory.pop(0)
        self._send_ack(ack)

    def _answer_bad(self, payload, e):
        """A rejected command that still names a usable id gets a negative ack so the sender is not left waiting."""
        if e.code != K.E_BAD_FIELD:
            return
        try:
            o = json.loads(payload)
        except ValueError:
            return
        cid = o.get("id")
        if proto.is_cmd_id(cid):
            err = K.ERR_UNKNOWN_OP if o.get("op") not in K.OPS else K.ERR_BAD_REQUEST
            self._send_ack(proto.enc_ack(cid, False, err))

    def _send_ack(self, ack):
        s = self.session
        if s is None or not s.alive:
            return
        if self.acks_pending >= MAX_PENDING_ACKS:
            self.n["acks_dropped"] += 1  # the sender retries; a repeated id is answered from memory
            return
        self.acks_pending += 1
        asyncio.create_task(self._publish_ack(s, ack))

    async def _publish_ack(self, s, ack):
        try:
            await s.publish(self.t[K.ACK], ack, 1)
        except MQTTError as e:
            self._log("app", "ack not sent:", e)
        finally:
            self.acks_pending -= 1

    def _on_chunk(self, o):
        try:
            took = self.upd.chunk(o)
        except UpdateError as e:
            self._fw_failed(o["ver"], e)
            return
        except OSError as e:
            self._fw_failed(o["ver"], UpdateError("no_space", str(e)))
            return
        if took:
            self.fw_chunk_ev.set()
        else:
            self.n["fw_stale_chunks"] += 1

    def _fw_failed(self, ver, e):
        self._log("app", "firmware update", ver, "failed:", e)
        self.upd.abort()
        self.emit(K.T_FW, {"ver": ver, "result": e.result})

    def _fw_offer(self, o):
        if o["ver"] == self.running_ver() and not self.upd.active:
            return None  # already running it
        try:
            self.upd.offer(o)
        except UpdateError as e:
            self._fw_failed(o["ver"], e)
            return K.ERR_BAD_MAC if e.result == "bad_mac" else K.ERR_NO_SPACE
        except OSError as e:
            self._fw_failed(o["ver"], UpdateError("no_space", str(e)))
            return K.ERR_NO_SPACE
        self.fw_chunk_ev.set()
        return None

    def running_ver(self):
        return K.FW

    def _execute(self, o):
        op = o["op"]
        now = self.clock.ms()
        if self.safe and op in SAFE_REFUSED:
            return K.ERR_BUSY  # safe mode: no update, nothing that moves a lock or changes a compartment
        if op == K.OP_FW_OFFER:
            return self._fw_offer(o)
        if op == K.OP_FW_ABORT:
            self.upd.abort(o["ver"])
            return None
        if op == K.OP_ADOPT:
            c = self.comps.get(o["c"])
            if c is None:
                return K.ERR_NO_SUCH_COMP
            err = c.adopt(o["ref"])
            if err:
                return err
            self.emit(K.T_DEPOSIT, {"c": c.n, "ref": c.ref})  # confirmed by the sensor, as a deposit is
            return None
        if op in (K.OP_DEPOSIT, K.OP_OPEN, K.OP_DISABLE, K.OP_ENABLE):
            c = self.comps.get(o["c"])
            if c is None:
                return K.ERR_NO_SUCH_COMP
            if op == K.OP_DEPOSIT or op == K.OP_OPEN:
                why = "deposit" if op == K.OP_DEPOSIT else "remote"
                err = c.request(why, o.get("ref"))
                if err:
                    return err
                self.driver.pulse(c.n)
                self.emit(K.T_LOCK, {"c": c.n, "why": why})
                if op == K.OP_OPEN:
                    self._log("app", "remote open of", c.n, "by", o["by"], "why", o["why"])
                return None
            err = c.disable() if op == K.OP_DISABLE else c.enable()
            if err:
                return err
            self.emit(K.T_STATE, {"c": c.n, "st": c.st})
            return None
        if op == K.OP_CODE_PUT:
            for n in o["cs"]:
                if n not in self.comps:
                    return K.ERR_NO_SUCH_COMP
            return self.vault.put(o["h"], o["cs"], o["exp"], now)
        if op == K.OP_COURIER_PUT:
            deps = [[d["c"], d["ref"]] for d in o["deps"]]
            for n, _ in deps:
                if n not in self.comps:
                    return K.ERR_NO_SUCH_COMP
            return self.vault.put_courier(o["h"], deps, o["exp"], now)
        if op == K.OP_CODE_DEL:
            self.vault.delete(o["h"], now)
            return None
        if op == K.OP_TIME:
            self.clock.set_wall(o["ts"])
            return None
        if op == K.OP_REBIRTH:
            self.want_birth = True
            # the gateway asks after a seq gap: send every unacknowledged event again, oldest first, now
            for r in self.outbox.recs:
                r.sent = False
            self.last_eack_ms = self.clock.ms()
            self.wake.set()
            return None
        return K.ERR_UNKNOWN_OP

    # ---- network task ----
    def will(self):
        return (self.t[K.STATUS], proto.enc_status_lost(), 1, True)

    def birth(self):
        comps = [self.comps[n].snapshot() for n in self.order]
        return proto.enc_birth(self.boot, self.seq, self.clock.wall(), self.clock.ms(), comps,
                               self.outbox.count(), self.vault.count(), self.safe)

    async def serve(self, s):
        """Run one connected session: subscribe, birth, status, then pump the outbox until it drops."""
        self.session = s  # set first: a command may arrive as soon as the subscription is granted
        await s.subscribe([(self.t[K.CMD], 1), (self.t[K.EACK], 1)])
        await s.publish(self.t[K.BIRTH], self.birth(), 1)
        await s.publish(self.t[K.STATUS], proto.enc_status_online(self.boot), 1, retain=True)
        for r in self.outbox.recs:
            r.sent = False
        self.last_eack_ms = self.clock.ms()
        try:
            while s.alive:
                self.net_beat = self.clock.ms()
                if self.want_birth:
                    self.want_birth = False
                    await s.publish(self.t[K.BIRTH], self.birth(), 1)
                await self._pump(s)
                self.wake.clear()
                try:
                    await asyncio.wait_for_ms(self.wake.wait(), 1000)
                except asyncio.TimeoutError:
                    pass
        finally:
            self.n["oversize"] += s.dec.oversize

    async def _pump(self, s):
        outstanding = 0
        for r in list(self.outbox.recs):
            if r.kind == K_EVT and r.sent:
                outstanding += 1
        if outstanding and self.clock.ms() - self.last_eack_ms > EACK_RESEND_MS:
            self._log("app", "no eack for", outstanding, "events: sending again")
            for r in self.outbox.recs:
                r.sent = False
            outstanding = 0
            self.last_eack_ms = self.clock.ms()
        for r in list(self.outbox.recs):
            if not s.alive:
                return
            if r.sent or (r.kind == K_EVT and outstanding >= EVT_WINDOW):
                continue
            try:
                payload = self.outbox.read(r)
            except OSError as e:
                # an unreadable record would block every later one: drop it, counted
                self.n["unreadable_records"] += 1
                self._log("app", "outbox record unreadable, dropped:", r.boot, r.seq, e)
                self.outbox.remove(r)
                continue
            if r.kind == K_EVT:
                await s.publish(self.t[K.EVT], payload, 1)
                r.sent = True
                outstanding += 1
                self.n["evts_sent"] += 1
                if outstanding == 1:
                    self.last_eack_ms = self.clock.ms()
            elif r.kind == K_TELE:
                await s.publish(self.t[K.TELE], payload, 0)
                self.outbox.remove(r)
                self.n["tele_sent"] += 1

    async def tele_task(self):
        period = self.cfg.get("tele_s", 60) * 1000
        while True:
            await self.clock.sleep_ms(period)
            payload = self.tele()
            s = self.session
            if s is not None and s.alive:
                try:
                    await s.publish(self.t[K.TELE], payload, 0)
                    self.n["tele_sent"] += 1
                    continue
                except MQTTError as e:
                    self._log("app", "tele not sent:", e)
            self.outbox.add_tele(payload)
            self.n["tele_stored"] += 1

    def errs(self):
        return (self.n["rejected_payloads"] + self.n["bad_topics"] + self.n["store_errors"] + self.n["hal_errors"]
                + self.n["handler_errors"] + self.n["unreadable_records"]
                + self.outbox.write_errors + self.outbox.torn + self.vault.corrupt + self.vault.save_errors)

    def tele(self):
        gc.collect()
        now = self.clock.ms()
        free = gc.mem_free()
        f = {"up": now // 1000, "heap": free, "heap_max": self.hal.heap_max(free),
             "outbox": self.outbox.count(), "drops": self.outbox.drops() + self.driver.drops, "errs": self.errs(),
             "drops_evt": self.outbox.drops_evt, "drops_tele": self.outbox.drops_tele,
             "lockouts": self.vault.lockouts, "lock_cap_hits": self.driver.cap_hits,
             "wdt_starved": self.n["wdt_starved"], "reconnects": self.link.connects,
             "hal_errs": self.n["hal_errors"], "store_errs": self.n["store_errors"] + self.vault.save_errors,
             "rejected": self.n["rejected_payloads"]}
        if self.safe:
            f["safe"] = True
        h = self.hal.health()
        for k in h:
            f[k] = h[k]
        return proto.enc_tele(self.boot, self.clock.wall(), now, f)

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

    # ---- watchdog, boot health, self-test ----
    def loops_healthy(self, now):
        """Both loops ran recently."""
        return now - self.hw_beat <= HW_STALE_MS and now - self.net_beat <= NET_STALE_MS

    def locally_healthy(self, now):
        """The hardware loop is ticking with settled sensors and the keypad is being read (no network needed)."""
        return (self.hw_ready.is_set() and now - self.hw_beat <= HW_STALE_MS
                and 0 <= now - self.keys_scanned <= HW_STALE_MS)

    def flash_healthy(self):
        """The vault reads back and the outbox folder takes a write (checked once, when the boot is judged)."""
        ok = self.vault.readable() and self.outbox.writable()
        if not ok:
            self.n["store_errors"] += 1
        return ok

    async def wdt_task(self):
        """Feed the watchdog only while the main loops are alive, so a hung loop resets the board."""
        starving = False
        while True:
            now = self.clock.ms()
            if self.loops_healthy(now):
                self.hal.feed()
                starving = False
            else:
                self.n["wdt_starved"] += 1
                if not starving:
                    self._log("app", "a main loop stalled: watchdog no longer fed")
                starving = True
            await self.clock.sleep_ms(WDT_CHECK_MS)

    async def health_task(self):
        """Mark the boot good by local health after healthy_s; a set on trial must also reach the broker.

        A boot is good once the hardware loop, the keypad, the vault and the outbox have worked for healthy_s:
        the broker does not count, so power cuts while the station's network is down never start safe mode.
        Only a set on trial after an update needs a broker session within selftest_s (its rollback depends on
        it: an image that cannot reach the gateway could never be replaced).
        """
        t0 = self.clock.ms()
        need = self.cfg.get("healthy_s", 60) * 1000
        trial = self.bootrec is not None and self.bootrec.get("trial")
        deadline = t0 + self.cfg.get("selftest_s", 120) * 1000
        local_since = None
        while True:
            now = self.clock.ms()
            if trial:
                s = self.session
                if s is not None and s.alive and self.loops_healthy(now):
                    trial = False
                    self._passed_selftest()
                elif now >= deadline:
                    self._log("app", "new firmware failed its self-test: rebooting into the previous set")
                    self.hal.reboot()
                    return
            if self.locally_healthy(now):
                if local_since is None:
                    local_since = now
            else:
                local_since = None
            if not trial and local_since is not None and now - local_since >= need:
                if self.flash_healthy():
                    self._boot_good()
                    return
                local_since = None
                self._log("app", "vault or outbox flash failing: boot not marked good")
            await self.clock.sleep_ms(500)

    def _boot_good(self):
        self.healthy = True
        b = self.bootrec
        if b is not None and b.get("fails"):
            b["fails"] = 0
            self._save_boot()
        if self.safe:
            # the same loops have run well for healthy_s: take commands and updates again, no restart needed
            self.safe = False
            self.want_birth = True
            self.wake.set()
            self._idle_display(self.clock.ms())
            self._log("app", "healthy: leaving safe mode")

    def _passed_selftest(self):
        b = self.bootrec
        b["trial"] = False
        b["tries"] = 0
        b["fails"] = 0
        self._save_boot()
        self.emit(K.T_FW, {"ver": b["ver"], "result": "ok"})
        self._log("app", "firmware", b["ver"], "passed its self-test")

    # ---- firmware download ----
    async def fw_task(self):
        """Request the missing chunks one at a time while connected; retry a lost one."""
        tries = 0
        while True:
            w = None if self.safe else self.upd.want()  # safe mode takes no update
            s = self.session
            if w is None or s is None or not s.alive:
                if self.upd.done and not self.safe:
                    await self._install()
                tries = 0
                self.fw_chunk_ev.clear()
                try:
                    # an offer sets the event; the timeout notices a session coming back mid-download
                    await asyncio.wait_for_ms(self.fw_chunk_ev.wait(), 1000 if self.upd.active else 5000)
                except asyncio.TimeoutError:
                    pass
                continue
            self.fw_chunk_ev.clear()
            try:
                await s.publish(self.t[K.FWREQ], proto.enc_fwreq(self.upd.ver, w[0], w[1], w[2]), 0)
            except MQTTError as e:
                self._log("app", "fwreq not sent:", e)
                continue
            try:
                await asyncio.wait_for_ms(self.fw_chunk_ev.wait(), FW_REQ_TIMEOUT_MS)
                tries = 0
            except asyncio.TimeoutError:
                tries += 1
                if tries >= FW_REQ_RETRIES:
                    self.n["fw_timeouts"] += 1
                    self._fw_failed(self.upd.ver, UpdateError("timeout", "no chunk for %s" % w[0]))
                    tries = 0

    async def _install(self):
        try:
            ver = self.upd.install(self.running_ver())
        except OSError as e:
            self._fw_failed(self.upd.ver, UpdateError("no_space", str(e)))
            return
        self.emit(K.T_FW, {"ver": ver, "result": "staged"})
        self._log("app", "firmware", ver, "staged; rebooting into it")
        t0 = self.clock.ms()
        while self.outbox.events() and self.clock.ms() - t0 < REBOOT_GRACE_MS:
            await self.clock.sleep_ms(100)
        self.hal.all_locks_off()
        self.hal.reboot()
