"""The App's keypad: typed digits, the code check, courier PINs, and the idle prompt on the display.

A part of `jc.app.App` (mixed into it): it works on the App's vault, compartments, lock driver and board.
"""

from jc import const as K
from jc import msgs as M
from jc.vault import OK, COURIER, LOCKED

KEY_IDLE_MS = 15000
KEYBUF_MAX = 12


class Keypad:
    """Keypad handling; state: keybuf, key_at, keys_scanned, disp_at (set up by App.__init__)."""

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
