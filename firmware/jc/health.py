"""The App's health: the watchdog fed only while both loops run, the boot judged good, self-test, safe mode.

A part of `jc.app.App` (mixed into it).
"""

from jc import const as K

WDT_CHECK_MS = 1000
HW_STALE_MS = 2000  # the hardware loop must have run this recently for the watchdog to be fed
NET_STALE_MS = 90000  # and the network loop (connecting, waiting or serving) this recently


class Health:
    """Watchdog and boot health; state: hw_beat, net_beat, healthy, safe, bootrec (set up by App.__init__)."""

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
        if b is None:
            return  # a newer set was staged meanwhile: flash holds its record, which goes on trial next boot
        b["trial"] = False
        b["tries"] = 0
        b["fails"] = 0
        self._save_boot()
        self.emit(K.T_FW, {"ver": b["ver"], "result": "ok"})
        self._log("app", "firmware", b["ver"], "passed its self-test")
