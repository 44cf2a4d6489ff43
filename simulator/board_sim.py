"""Simulated controller board with the faults of the field; runs under MicroPython and CPython alike.

Coils jam with a probability, doors spring open and are closed (or left open) by people, occupancy
sensors can read out of range, the keypad receives keys at a typing speed, the supply voltage sags and
the Wi-Fi signal flaps. The board also knows what is physically inside each compartment (`contents`: the
parcels people put in and took out), which the physical ledger compares with what the cloud and the
villagers were told. Everything random comes from a per-board xorshift generator seeded by the
scenario, so a run is repeatable.
"""

import asyncio
import json
import time

try:
    from jc.hal_sim import SimBoard
except ImportError:  # imported by a CPython tool without the firmware on the path
    SimBoard = object

BUSY_MS = 3000  # after any input change the board is ticked fast until debounce and settle are over
LEDGER_FLUSH = 32


class Rng:
    """xorshift32: the same sequence on MicroPython and CPython for the same seed."""

    def __init__(self, seed):
        self.s = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def u32(self):
        x = self.s
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.s = x
        return x

    def random(self):
        return self.u32() / 4294967296.0


def wall():
    """Host wall time in seconds (float) for the ledger."""
    try:
        return time.time_ns() / 1e9
    except AttributeError:
        return time.time()


class BoardSim(SimBoard):
    """One simulated board. `hw` holds the fault model: jam_p, occ_fault_p, vin, rssi."""

    def __init__(self, cfg, ledger_path, hw=None, log=None):
        super().__init__(cfg)
        hw = hw or {}
        self.rng = Rng(hw.get("seed", 1))
        self.jam_p = hw.get("jam_p", 0.0)
        self.occ_fault_p = hw.get("occ_fault_p", 0.0)
        self.vin_nominal = hw.get("vin", 12.0)
        self.sag_until = 0
        self.sag_v = 0.0
        self.wifi = True
        self.flap_until = 0
        self.flap_period_ms = 0
        self.rssi_base = hw.get("rssi", -60)
        self.ledger_path = ledger_path
        self._pending = []
        self.changed_at = time.ticks_ms()
        self.wake = asyncio.Event()
        self.jams = 0
        self.occ_faults = 0
        self.reboot_wanted = False
        self.contents = {}  # compartment -> ids of the parcels physically inside (a power cut keeps them)
        self._log = log or (lambda *a: None)

    # ---- the Hal port ----
    async def start(self, app):
        self.app = app

    def _sticks(self, n):
        if self.jam_p and self.rng.random() < self.jam_p:
            self.jams += 1
            return True
        return False

    async def net_up(self):
        return self.wifi_ok()

    def health(self):
        now = time.ticks_ms()
        vin = self.vin_nominal - (self.sag_v if time.ticks_diff(self.sag_until, now) > 0 else 0.0)
        rssi = self.rssi_base - int(self.rng.random() * 8)
        if not self.wifi_ok():
            rssi = -95
        return {"rssi": rssi, "vin": round(vin, 2), "temp": 35.0, "reset": "power"}

    def reboot(self):
        """The firmware asks for a reset (after an update or a failed self-test): the host power-cycles it."""
        self.all_locks_off()
        self.reboot_wanted = True

    def record(self, evt):
        evt["at"] = wall()
        self._pending.append(json.dumps(evt))
        if len(self._pending) >= LEDGER_FLUSH or evt.get("type") != "door":
            self.flush()

    # ---- simulator side ----
    def flush(self):
        """Append recorded events to the ledger file, which lies outside the flash and survives power loss."""
        if not self._pending:
            return
        try:
            with open(self.ledger_path, "a") as f:
                f.write("\n".join(self._pending) + "\n")
            self._pending = []
        except OSError as e:
            self._log("sim", "ledger write failed:", e)

    def _touch(self):
        self.changed_at = time.ticks_ms()
        self.wake.set()

    def busy(self):
        """True while something needs the firmware's fast tick: coils, open doors, pending keys, recent changes."""
        if self.keybuf or self.spring_at or self.close_at:
            return True
        for n in self.coils:
            if self.coils[n] or self.doors[n]:
                return True
        return time.ticks_diff(time.ticks_ms(), self.changed_at) < BUSY_MS

    def set_occ(self, n, v):
        """A person puts in or takes out a parcel; the sensor may fault with occ_fault_p (reads None)."""
        if v is not None and self.occ_fault_p and self.rng.random() < self.occ_fault_p:
            v = None
            self.occ_faults += 1
        self.occupied[n] = v
        self._touch()

    def put(self, n, item):
        """A person puts parcel `item` into compartment n: it is inside, and the sensor reads it."""
        self.contents.setdefault(n, []).append(item)
        self.set_occ(n, True)

    def take(self, n):
        """A person takes out whatever is inside n; returns the parcels taken."""
        items = self.contents.pop(n, [])
        self.set_occ(n, False)
        return items

    def sense_again(self, n):
        """A faulty sensor works again: it reads what is physically inside."""
        self.occupied[n] = bool(self.contents.get(n))
        self._touch()

    def add_keys(self, keys):
        self.keybuf += keys
        self._touch()

    def sag(self, volts, ms):
        self.sag_v = volts
        self.sag_until = time.ticks_add(time.ticks_ms(), ms)

    def flap(self, ms, period_ms):
        """Wi-Fi comes and goes every period_ms for ms."""
        self.flap_until = time.ticks_add(time.ticks_ms(), ms)
        self.flap_period_ms = period_ms

    def wifi_ok(self):
        if not self.wifi:
            return False
        now = time.ticks_ms()
        if self.flap_period_ms and time.ticks_diff(self.flap_until, now) > 0:
            return (now // self.flap_period_ms) % 2 == 0
        return True
