"""The App's uplink: one broker session (birth, status, the outbox pumped under the eack window), telemetry.

A part of `jc.app.App` (mixed into it); `jc.link.Link` connects and calls `serve` for each session.
"""

import asyncio
import gc
from jc import const as K
from jc import proto
from jc.outbox import K_EVT, K_TELE
from jc.mqtt import MQTTError

EVT_WINDOW = 16
EACK_RESEND_MS = 20000


class Uplink:
    """Publishing; state: session, wake, want_birth, last_eack_ms (set up by App.__init__)."""

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
