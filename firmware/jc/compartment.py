"""Compartment state machine and lock driver (sans-IO: callers pass time and sensor readings)."""

from jc import const as K

DOOR_DEBOUNCE_MS = 40
OCC_DEBOUNCE_MS = 200
PULSE_MS = 300
PULSE_MAX_MS = 500
PULSE_HARD_CAP_MS = 1000
OPEN_GRACE_MS = 2000  # door may spring open this long after the pulse ends
AJAR_MS = 120000
SETTLE_MS = 400  # after a door closes, let the occupancy reading settle before judging
SETTLE_MAX_MS = 2000  # an occupancy reading still changing this long after the close counts as unreadable


class Debounce:
    """A reading becomes the stable value only after it held for `ms`."""

    def __init__(self, ms):
        self.ms = ms
        self.value = None
        self.ready = False
        self.cand = None
        self.since = None

    def feed(self, raw, now):
        """Return True when the stable value changed (the first stable value is not a change)."""
        if self.since is None or raw != self.cand:
            self.cand = raw
            self.since = now
            return False
        if now - self.since >= self.ms and (not self.ready or raw != self.value):
            first = not self.ready
            self.ready = True
            self.value = raw
            return not first
        return False

    def steady(self, now):
        """The stable value is also what the input has read, unchanged, for the last `ms`."""
        return self.ready and self.cand == self.value and now - self.since >= self.ms


class Compartment:
    def __init__(self, n, size, ajar_ms=AJAR_MS):
        self.n = n
        self.size = size
        self.st = K.ST_EMPTY
        self.ref = None
        self.door = Debounce(DOOR_DEBOUNCE_MS)
        self.occ = Debounce(OCC_DEBOUNCE_MS)
        self.ajar_ms = ajar_ms
        self.expect_until = -1  # door opening before this is expected
        self.jam_check_at = -1
        self.opening = None  # why of the open in progress
        self.open_since = 0
        self.ajar_sent = False
        self.sensor_fault = False
        self.resumed = False
        self.opening_done = None
        self.settle_at = -1
        self.settle_until = -1
        # every accepted request (and disable/enable) starts a new generation; a settle remembers the
        # generation and state it was armed for and judges nothing else
        self.gen = 0
        self.settle_gen = -1
        self.settle_st = None
        self.dirty = False  # persistent fields changed

    def _set(self, st, ref=False):
        self.st = st
        if ref is not False:
            self.ref = ref
        self.dirty = True

    def snapshot(self):
        d = {"n": self.n, "size": self.size, "st": self.st,
             "door": "open" if self.door.value else "closed", "occ": bool(self.occ.value)}
        if self.ref:
            d["ref"] = self.ref
        if self.found():
            d["mm"] = True
        return d

    def found(self):
        """The door is shut on a steady full reading that no parcel of this compartment accounts for."""
        return (not self.door.value and self.opening is None and not self.ref and self.occ.value is True
                and self.occ.cand is True and self.st in (K.ST_EMPTY, K.ST_FAULT))

    def ready(self):
        """Both sensors have a stable first reading."""
        return self.door.ready and self.occ.ready

    def is_open(self):
        return bool(self.door.value)

    # ---- requests ----
    def request(self, why, ref=None):
        """Ask to open for 'deposit', 'pickup', 'remote' or 'courier'; return an ack error or None."""
        if self.opening is not None or self.is_open() or self.st in (K.ST_DEPOSIT, K.ST_PICKUP):
            return K.ERR_BUSY  # a deposit or pickup is judged by its own door cycle before anything else
        if why == "deposit":
            # a steady full reading means something is inside already: never hand it to a courier
            if self.st != K.ST_EMPTY or self.occ.value is not False:
                return K.ERR_BUSY
            self._rearm()
            self._set(K.ST_DEPOSIT, ref)
        elif why == "pickup":
            if self.st != K.ST_OCCUPIED:
                return K.ERR_BUSY
            self._rearm()
            self._set(K.ST_PICKUP)
        else:
            self._rearm()
        self.opening = why
        return None

    def adopt(self, ref):
        """Register a found parcel as parcel `ref`, without opening: the sensor already reads it inside."""
        if not self.found():
            return K.ERR_BUSY
        self._rearm()
        self._set(K.ST_OCCUPIED, ref)
        return None

    def _rearm(self):
        """A new request: the timers armed before it (settle, jam check, ajar) belong to an older state."""
        self.gen += 1
        self.settle_at = -1
        self.jam_check_at = -1
        self.expect_until = -1
        self.ajar_sent = False  # armed again when the door opens

    def pulse_started(self, now, pulse_ms):
        self.expect_until = now + pulse_ms + OPEN_GRACE_MS
        self.jam_check_at = now + pulse_ms + OPEN_GRACE_MS

    def disable(self):
        if self.st in (K.ST_DEPOSIT, K.ST_PICKUP) or self.opening is not None:
            return K.ERR_BUSY
        self._rearm()
        self._set(K.ST_DISABLED)
        return None

    def enable(self):
        if self.st != K.ST_DISABLED:
            return K.ERR_BUSY
        self._rearm()
        occ = self.occ.value
        if occ and self.ref:
            self._set(K.ST_OCCUPIED)
        elif occ:
            self._set(K.ST_FAULT, None)  # a parcel nobody accounts for: it stays out of service
        else:
            self._set(K.ST_EMPTY, None)
        return None

    # ---- periodic ----
    def tick(self, now, door_raw, occ_raw):
        """Feed readings; return a list of (event_type, fields)."""
        ev = []
        self.occ.feed(occ_raw, now)
        if self.occ.ready and self.occ.value is None:
            if not self.sensor_fault:
                self.sensor_fault = True
                ev.append((K.T_ALARM, {"kind": K.A_SENSOR_FAULT, "c": self.n}))
        else:
            self.sensor_fault = False
        if self.door.feed(door_raw, now):
            self.settle_at = -1
            if self.door.value:
                ev.extend(self._opened(now))
            else:
                ev.extend(self._closed(now, True))
        elif not self.resumed and self.door.ready and self.occ.ready:
            self.resumed = True
            if not self.door.value and self.opening is None and (
                    self.st in (K.ST_DEPOSIT, K.ST_PICKUP) or self.st == K.ST_EMPTY and self.occ.value):
                # we rebooted while it was open, or something is inside an empty one: judge it now it is closed
                ev.extend(self._closed(now, False))
        if self.settle_at >= 0 and now >= self.settle_at and not self.door.value:
            if self.settle_gen != self.gen or self.settle_st != self.st:
                self.settle_at = -1  # armed for an earlier request or state: nothing to judge
            elif self.occ.steady(now):
                self.settle_at = -1
                ev.extend(self._judge(self.occ.value))
            elif now >= self.settle_until:
                self.settle_at = -1
                ev.extend(self._judge(None))  # the reading never held still: unreadable
        if self.opening is not None and self.jam_check_at >= 0 and now >= self.jam_check_at:
            # pulsed, but the door never opened
            self.opening = None
            self.jam_check_at = -1
            self._set(K.ST_FAULT)
            ev.append((K.T_ALARM, {"kind": K.A_LOCK_JAM, "c": self.n}))
        if self.door.value and not self.ajar_sent and now - self.open_since >= self.ajar_ms:
            self.ajar_sent = True
            ev.append((K.T_ALARM, {"kind": K.A_DOOR_AJAR, "c": self.n}))
        return ev

    def _opened(self, now):
        ev = [(K.T_DOOR, {"c": self.n, "open": True})]
        self.open_since = now
        self.ajar_sent = False
        if self.opening is not None and now <= self.expect_until:
            self.jam_check_at = -1
            self.opening_done = self.opening
        else:
            self.opening_done = None
            ev.append((K.T_ALARM, {"kind": K.A_FORCED_OPEN, "c": self.n}))
        self.opening = None
        return ev

    def _closed(self, now, real):
        ev = [(K.T_DOOR, {"c": self.n, "open": False})] if real else []
        self.resumed = True
        self.settle_at = now + SETTLE_MS
        self.settle_until = now + SETTLE_MAX_MS
        self.settle_gen = self.gen
        self.settle_st = self.st
        return ev

    def _mismatch(self, occ):
        return (K.T_ALARM, {"kind": K.A_OCC_MISMATCH, "c": self.n, "occ": occ})

    def _judge(self, occ):
        """The door has been closed for SETTLE_MS and the reading `occ` held: decide what happened inside."""
        ev = []
        if self.st == K.ST_DEPOSIT:
            if occ is None:
                self._set(K.ST_FAULT)
                ev.append((K.T_ALARM, {"kind": K.A_SENSOR_FAULT, "c": self.n}))
            elif occ:
                self._set(K.ST_OCCUPIED)
                ev.append((K.T_DEPOSIT, {"c": self.n, "ref": self.ref}))
            else:
                ref = self.ref
                self._set(K.ST_EMPTY, None)
                ev.append((K.T_DEPOSIT_VOID, {"c": self.n, "ref": ref}))
                ev.append(self._mismatch(False))
        elif self.st == K.ST_PICKUP:
            if occ is False:
                ref = self.ref
                self._set(K.ST_EMPTY, None)
                ev.append((K.T_PICKUP, {"c": self.n, "ref": ref}))
            else:
                self._set(K.ST_OCCUPIED)  # parcel still inside: the code stays valid
        elif self.opening_done == "remote" and self.st == K.ST_FAULT:
            if occ and not self.ref:
                ev.append(self._mismatch(True))  # the unaccounted parcel was left inside: still out of service
            else:
                self._set(K.ST_OCCUPIED if (occ and self.ref) else K.ST_EMPTY, self.ref if occ else None)
        elif self.opening_done == "remote" and self.st == K.ST_OCCUPIED and occ is False:
            # staff opened it and took the parcel out (door-to-door delivery, return): a release, not a mismatch
            self._set(K.ST_EMPTY, None)
            ev.append((K.T_STATE, {"c": self.n, "st": K.ST_EMPTY}))
        elif self.st == K.ST_OCCUPIED and occ is False:
            ev.append(self._mismatch(False))
        elif self.st == K.ST_EMPTY and occ:
            # a parcel nobody registered (a forced or staff open, a courier's slip): an empty compartment
            # must never be handed out with something inside, so it leaves service until someone looks
            self._set(K.ST_FAULT, None)
            ev.append((K.T_STATE, {"c": self.n, "st": K.ST_FAULT}))
            ev.append(self._mismatch(True))
        self.opening_done = None
        return ev


class LockDriver:
    """Pulses lock coils one at a time, each at most PULSE_MAX_MS, never over the hard cap."""

    MAX_QUEUE = 32

    def __init__(self, hal, comps, pulse_ms=PULSE_MS):
        self.hal = hal
        self.comps = comps  # n -> Compartment
        self.pulse_ms = min(pulse_ms, PULSE_MAX_MS)
        self.queue = []
        self.active = None  # (n, started)
        self.drops = 0
        self.cap_hits = 0

    def pulse(self, n):
        if len(self.queue) >= self.MAX_QUEUE:
            self.drops += 1
            return False
        self.queue.append(n)
        return True

    def energised(self):
        return self.active[0] if self.active else None

    def tick(self, now):
        if self.active:
            n, t0 = self.active
            elapsed = now - t0
            if elapsed >= PULSE_HARD_CAP_MS:
                self.cap_hits += 1  # the loop stalled past the cap: counted so telemetry shows it
            if elapsed >= self.pulse_ms or self.comps[n].is_open() and elapsed >= 50:
                self.hal.lock(n, False)
                self.active = None
        if self.active is None and self.queue:
            n = self.queue.pop(0)
            self.hal.all_locks_off()
            self.hal.lock(n, True)
            self.active = (n, now)
            self.comps[n].pulse_started(now, self.pulse_ms)
