"""The locker application: hardware task (keypad, doors, locks) and network task (events, commands)."""

import asyncio
import binascii
import gc
import json
import os
from jc import const as K
from jc import proto
from jc import store
from jc.clock import Clock
from jc.compartment import Compartment, LockDriver
from jc.vault import Vault, OK, LOCKED
from jc.outbox import Outbox, K_EVT, K_TELE
from jc.link import Link
from jc.mqtt import MQTTError
from jc.hal import HalError
from jc.errors import JcError

HW_TICK_MS = 10
KEY_IDLE_MS = 15000
KEYBUF_MAX = 12
EVT_WINDOW = 16
EACK_RESEND_MS = 20000
MAX_PENDING_ACKS = 16
COMPS_FILE = "comps.bin"


class ConfigError(JcError):
    """config.json is missing a key or has a bad value."""


def _log(*a):
    print(*a)


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
    comps = cfg.get("comps")
    need(type(comps) is list and 1 <= len(comps) <= K.COMP_MAX, "comps")
    seen = set()
    for c in comps:
        need(type(c) is dict and proto.is_comp(c.get("n")) and c["n"] not in seen, "comps[].n")
        need(c.get("size") in K.SIZES, "comps[].size")
        seen.add(c["n"])
    need(type(cfg.get("tele_s", 60)) is int and cfg.get("tele_s", 60) > 0, "tele_s")


class App:
    MAX_IN_PACKET = 2048

    def __init__(self, cfg, hal, log=_log):
        check_config(cfg)
        self.cfg = cfg
        self.hal = hal
        self._log = log
        self.clock = Clock()
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
        self.vault = Vault("vault.bin", binascii.unhexlify(cfg["secret"]), log=log)
        self.outbox = Outbox("outbox", log=log)
        self.session = None
        self.wake = asyncio.Event()
        self.cmd_memory = []  # [(id, ack bytes)], newest last
        self.keybuf = ""
        self.key_at = 0
        self.disp_at = 0
        self.want_birth = False
        self.hw_ready = asyncio.Event()
        self.last_eack_ms = 0
        self.n = {"rejected_payloads": 0, "bad_topics": 0, "dup_cmds": 0, "cmds": 0, "store_errors": 0,
                  "oversize": 0, "evts_sent": 0, "eacks": 0, "tele_sent": 0, "tele_stored": 0, "hal_errors": 0,
                  "handler_errors": 0, "acks_dropped": 0, "unreadable_records": 0}
        self.acks_pending = 0
        self.link = Link(self, cfg["mqtt"], log)
        self.t = {}
        for k in (K.BIRTH, K.STATUS, K.EVT, K.TELE, K.ACK, K.CMD, K.EACK):
            self.t[k] = proto.topic(self.station, self.locker, k)

    # ---- persistence ----
    def _load_comps(self):
        try:
            data = store.read(COMPS_FILE)
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
            store.write(COMPS_FILE, json.dumps(rows).encode())
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
        if etype == K.T_PICKUP:
            self.vault.consume(fields["c"], now)

    # ---- hardware task ----
    async def hw_task(self):
        while True:
            try:
                self._hw_tick()
            except (HalError, OSError) as e:
                self.n["hal_errors"] += 1
                self._log("app", "board error:", e)
            await asyncio.sleep_ms(HW_TICK_MS)

    def _hw_tick(self):
        """One pass over the board: sensors, state machines, lock coils, keypad."""
        now = self.clock.ms()
        self.hal.feed()
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
            self.hal.show("已锁定 %d秒 / Locked %ds" % (left, left), "red")
        else:
            self.hal.show("请输入取件码 / Enter code", "green")

    def _keypad(self, now):
        keys = self.hal.keys()
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
        r = self.vault.try_code(code, now)
        if r[0] == LOCKED:
            self.hal.show("已锁定 %d秒 / Locked %ds" % (r[1], r[1]), "red")
            return
        if r[0] == OK:
            opened = []
            for n in r[1]:
                c = self.comps.get(n)
                if c and c.request("pickup") is None:
                    self.driver.pulse(n)
                    opened.append(n)
            self.emit(K.T_CODE_OK, {"cs": opened or r[1]})
            for n in opened:
                self.emit(K.T_LOCK, {"c": n, "why": "pickup"})
            if opened:
                s = ",".join(str(n) for n in opened)
                self.hal.show("请取件 %s号柜 / Take parcel: %s" % (s, s), "green")
            else:
                self.hal.show("无待取包裹 / Nothing to collect", "amber")
            return
        _, fails, secs, count = r
        self.emit(K.T_CODE_BAD, {"fails": fails})
        if secs:
            self.emit(K.T_LOCKOUT, {"secs": secs, "count": count})
            self.emit(K.T_ALARM, {"kind": K.A_LOCKOUT})
            self.hal.show("已锁定 %d秒 / Locked %ds" % (secs, secs), "red")
        else:
            self.hal.show("取件码错误 / Wrong code", "red")

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

    def _execute(self, o):
        op = o["op"]
        now = self.clock.ms()
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
        if op == K.OP_CODE_DEL:
            self.vault.delete(o["h"], now)
            return None
        if op == K.OP_TIME:
            self.clock.set_wall(o["ts"])
            return None
        if op == K.OP_REBIRTH:
            self.want_birth = True
            self.wake.set()
            return None
        return K.ERR_UNKNOWN_OP

    # ---- network task ----
    def will(self):
        return (self.t[K.STATUS], proto.enc_status_lost(), 1, True)

    def birth(self):
        comps = [self.comps[n].snapshot() for n in self.order]
        return proto.enc_birth(self.boot, self.seq, self.clock.wall(), self.clock.ms(), comps,
                               self.outbox.count(), self.vault.count())

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
            await asyncio.sleep_ms(period)
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
        f = {"up": now // 1000, "heap": gc.mem_free(), "heap_max": gc.mem_free(),
             "outbox": self.outbox.count(), "drops": self.outbox.drops() + self.driver.drops, "errs": self.errs()}
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
                "energised": self.driver.energised(), "counters": self.counters()}

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
        return d

    async def run(self):
        """Start everything; the hardware task never waits on the network."""
        self.hal.all_locks_off()
        now = self.clock.ms()
        self._load_comps()
        self.vault.load(now)
        self.outbox.open()
        self._log("app", "boot", self.boot, "outbox", self.outbox.count(), "vault", self.vault.count())
        self._idle_display(now)
        await self.hal.start(self)
        # any other failure ends run(): on the board the watchdog then resets it, the simulator process exits
        await asyncio.gather(self.hw_task(), self.tele_task(), self._net_task())

    async def _net_task(self):
        try:
            await asyncio.wait_for_ms(self.hw_ready.wait(), 3000)
        except asyncio.TimeoutError:
            self._log("app", "sensors not settled after 3 s; connecting anyway")
        await self.link.run()
