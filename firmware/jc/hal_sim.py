"""Simulated board for the unix port, driven over a JSON-lines TCP control channel on 127.0.0.1."""

import asyncio
import json
import time
from jc.hal import Hal

SPRING_MS = 30  # an unjammed door springs open this long after its coil is energised
MIN_OPEN_MS = 200  # nobody closes a door faster than this; an earlier close request waits
MAX_LINE = 4096
REBOOT_EXIT = 75  # simulator/locker.py restarts the process on this exit status
RESET_FILE = "sim_reset"  # the simulator writes why the process (re)started


def _reset_cause():
    try:
        with open(RESET_FILE) as f:
            return f.read().strip() or "power"
    except OSError:
        return "power"


class SimBoard(Hal):
    """Compartment physics shared by the simulated boards: a coil springs its door open, people close it."""

    def __init__(self, cfg):
        ns = [c["n"] for c in cfg["comps"]]
        self.coils = {n: False for n in ns}
        self.doors = {n: False for n in ns}
        self.occupied = {n: False for n in ns}
        self.jammed = {n: False for n in ns}
        self.spring_at = {}
        self.opened_at = {}
        self.close_at = {}
        self.keybuf = ""
        self.text = ""
        self.led = "off"
        self.app = None
        self.max_coils = 0

    def _touch(self):
        """Called on every input change; a board that ticks slowly when idle wakes here."""

    def _sticks(self, n):
        """Whether the bolt of n jams as it is energised; a fault model overrides this."""
        return False

    def lock(self, n, on):
        self.coils[n] = on
        self._touch()
        if on:
            energised = sum(1 for v in self.coils.values() if v)
            if energised > self.max_coils:
                self.max_coils = energised
            if not self.jammed[n] and self._sticks(n):
                self.jammed[n] = True  # the bolt sticks; it stays stuck until maintenance clears it
            if not self.jammed[n]:
                self.spring_at[n] = time.ticks_add(time.ticks_ms(), SPRING_MS)

    def all_locks_off(self):
        for n in self.coils:
            self.coils[n] = False

    def set_door(self, n, is_open):
        """A person opens or closes door n; a close sooner than MIN_OPEN_MS after opening waits for it."""
        now = time.ticks_ms()
        self._touch()
        if is_open:
            self.close_at.pop(n, None)
            if not self.doors[n]:
                self.doors[n] = True
                self.opened_at[n] = now
        elif self.doors[n]:
            t = time.ticks_add(self.opened_at.get(n, now), MIN_OPEN_MS)
            if time.ticks_diff(now, t) >= 0:
                self.doors[n] = False
            else:
                self.close_at[n] = t

    def door(self, n):
        now = time.ticks_ms()
        t = self.spring_at.get(n)
        if t is not None and time.ticks_diff(now, t) >= 0:
            del self.spring_at[n]
            self.set_door(n, True)
        t = self.close_at.get(n)
        if t is not None and time.ticks_diff(now, t) >= 0:
            del self.close_at[n]
            self.doors[n] = False
        return self.doors[n]

    def occ(self, n):
        return self.occupied[n]

    def keys(self):
        k = self.keybuf
        self.keybuf = ""
        return k

    def show(self, text, led):
        self.text = text
        self.led = led


class SimHal(SimBoard):
    def __init__(self, cfg, log=None):
        super().__init__(cfg)
        sim = cfg.get("sim") or {}
        self.port = sim.get("port", 0)
        self.ledger_path = sim.get("ledger", "../ledger.jsonl")
        self.server = None
        self.wifi = True
        self.feeds = 0
        self.reset = _reset_cause()
        self._log = log or (lambda *a: None)

    async def start(self, app):
        self.app = app
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self._log("sim", "control channel on port", self.port)

    def health(self):
        return {"rssi": -55 if self.wifi else -100, "vin": 12.0, "temp": 35.0, "reset": self.reset}

    def feed(self):
        self.feeds += 1

    async def net_up(self):
        return self.wifi

    def reboot(self):
        self.all_locks_off()
        self._log("sim", "reboot")
        raise SystemExit(REBOOT_EXIT)

    def record(self, evt):
        try:
            with open(self.ledger_path, "a") as f:
                f.write(json.dumps(evt) + "\n")
        except OSError as e:
            self._log("sim", "ledger write failed:", e)

    # ---- control channel ----
    async def _client(self, reader, writer):
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if len(line) > MAX_LINE:
                    reply = {"ok": False, "err": "line too long"}
                else:
                    try:
                        reply = self._op(json.loads(line))
                    except (ValueError, KeyError, TypeError) as e:
                        reply = {"ok": False, "err": repr(e)}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except OSError as e:
            self._log("sim", "control client error:", e)
        finally:
            writer.close()

    def _op(self, req):
        op = req["op"]
        if op == "keys":
            self.keybuf += str(req["keys"])
        elif op == "door":
            self.set_door(int(req["c"]), bool(req["open"]))
        elif op == "occ":
            v = req["v"]
            self.occupied[int(req["c"])] = None if v is None else bool(v)
        elif op == "jam":
            self.jammed[int(req["c"])] = bool(req["v"])
        elif op == "wifi":
            self.wifi = bool(req["up"])
            if not self.wifi and self.app is not None and self.app.session is not None:
                self.app.session._fail("wifi lost")
        elif op == "state":
            return self._state()
        elif op == "ledger":
            return {"ok": True, "ledger": self._ledger()}
        else:
            return {"ok": False, "err": "unknown op"}
        return {"ok": True}

    def _ledger(self):
        out = []
        try:
            with open(self.ledger_path) as f:
                for line in f:
                    out.append(json.loads(line))
        except OSError:
            pass
        return out

    def _state(self):
        d = {"ok": True, "coils": [n for n in self.coils if self.coils[n]], "max_coils": self.max_coils,
             "doors": {str(n): v for n, v in self.doors.items()},
             "occ": {str(n): v for n, v in self.occupied.items()},
             "led": self.led, "display": self.text, "wifi": self.wifi, "feeds": self.feeds,
             "reset": self.reset}
        if self.app:
            d.update(self.app.status())
        return d
