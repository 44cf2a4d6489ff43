"""The App's firmware download: offers, chunk requests and retries, install and reboot into the new set.

A part of `jc.app.App` (mixed into it); `jc.update.Updater` keeps the download's state and checks it.
"""

import asyncio
from jc import const as K
from jc import proto
from jc.update import UpdateError
from jc.mqtt import MQTTError

FW_REQ_TIMEOUT_MS = 3000
FW_REQ_RETRIES = 10
REBOOT_GRACE_MS = 5000  # wait this long for the gateway to take the 'staged' event before rebooting


class FwDownload:
    """Firmware download; state: upd, fw_chunk_ev (set up by App.__init__)."""

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
        # flash now holds the next boot's record (the new set on trial): this boot's own record, still in RAM,
        # must not be written over it by the health checks that may finish before the reboot
        self.bootrec = None
        self.emit(K.T_FW, {"ver": ver, "result": "staged"})
        self._log("app", "firmware", ver, "staged; rebooting into it")
        t0 = self.clock.ms()
        while self.outbox.events() and self.clock.ms() - t0 < REBOOT_GRACE_MS:
            await self.clock.sleep_ms(100)
        self.hal.all_locks_off()
        self.hal.reboot()
