"""Controller host: many locker controllers running the real firmware in one interpreter and one event loop.

Runs under the MicroPython unix port (`micropython simulator/fw_host.py spec.json`) and under CPython through
simulator/cpython_rt.py. Each controller gets its own flash folder, simulated board and ledger file. One
JSON-lines control channel per host, each request tagged with `lk` (locker) and `rid` (reply id); every
request runs in its own task so a slow person at one locker never holds up another.
"""

import asyncio
import json
import sys
import time

try:
    from simulator.board_sim import BoardSim
except ImportError:
    from board_sim import BoardSim

from jc.app import App
from jc.hal import HalError

IDLE_TICK_MS = 1000  # an idle board is ticked once a second; any input wakes it at once
WATCH_MS = 250
MAX_LINE = 8192


class SimApp(App):
    """The firmware's App with its flash in a folder of its own and an event-driven hardware tick.

    An idle board (no coil, no open door, no input for a few seconds) is ticked once a second instead of
    every 10 ms, and woken at once by any input: hundreds of boards then fit in one interpreter.
    """

    async def hw_task(self):
        hal = self.hal
        while True:
            try:
                self._hw_tick()
            except (HalError, OSError) as e:
                self.n["hal_errors"] += 1
                self._log("app", "board error:", e)
            if hal.busy():
                await self.clock.sleep_ms(self.tick_ms)
            else:
                hal.wake.clear()
                try:
                    await asyncio.wait_for_ms(hal.wake.wait(), IDLE_TICK_MS)
                except asyncio.TimeoutError:
                    pass


def _hard_close(writer):
    """Drop the TCP connection now. MicroPython's Stream.close() defers the socket's close to wait_closed(),
    so a radio that dies must close the socket itself; CPython's writer.close() already did."""
    sock = getattr(writer, "s", None)
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def _mkdir(path):
    import os
    try:
        os.mkdir(path)
    except OSError:
        pass


class Controller:
    """One controller slot: its board persists across power cuts, its App is rebuilt at every boot."""

    def __init__(self, spec, out):
        self.id = spec["config"]["locker"]
        self.dir = spec["dir"]
        self.flash = self.dir + "/flash"
        _mkdir(self.dir)
        _mkdir(self.flash)
        self.cfg = spec["config"]
        self.out = out
        self.board = BoardSim(self.cfg, self.dir + "/ledger.jsonl", spec.get("hw"), log=self.log)
        self.app = None
        self.task = None
        self.boots = 0

    def log(self, *a):
        self.out(self.id, *a)

    def power_on(self):
        if self.task is not None:
            return
        self.app = SimApp(self.cfg, self.board, self.log, root=self.flash + "/")
        self.boots += 1
        self.task = asyncio.create_task(self.app.run())

    def power_off(self):
        """Power cut: the socket dies without DISCONNECT (the broker sends the will) and nothing is flushed."""
        if self.task is None:
            return
        s = self.app.session
        if s is not None:
            s._fail("power lost")
            _hard_close(s.writer)
            for t in s.tasks:
                t.cancel()
        self.task.cancel()
        self.task = None
        self.board.all_locks_off()
        self.board.flush()

    def drop_session(self, why):
        s = self.app.session if self.app else None
        if s is not None and s.alive:
            s._fail(why)
            _hard_close(s.writer)

    def state(self):
        d = {"id": self.id, "on": self.task is not None, "doors": {}, "occ": {}, "inside": {}, "led": self.board.led,
             "display": self.board.text, "jams": self.board.jams, "occ_faults": self.board.occ_faults}
        for n in self.board.doors:
            d["doors"][str(n)] = self.board.doors[n]
            d["occ"][str(n)] = self.board.occupied[n]
            if self.board.contents.get(n):
                d["inside"][str(n)] = self.board.contents[n]
        if self.app is not None and self.task is not None:
            st = self.app.status()
            for k in ("boot", "seq", "outbox", "comps", "vault", "lock_left", "fails", "connected"):
                d[k] = st[k]
        return d

    def brief(self):
        a = self.app
        on = self.task is not None and a is not None
        return [on, bool(on and a.session is not None and a.session.alive), a.outbox.count() if on else -1,
                a.seq if on else 0, a.boot if on else ""]


class Host:
    def __init__(self, spec):
        self.spec = spec
        self.ctrls = {}
        self.logf = None
        if spec.get("log"):
            self.logf = open(spec["log"], "a")
        for c in spec["controllers"]:
            ctl = Controller(c, self.out)
            self.ctrls[ctl.id] = ctl

    def out(self, lk, *a):
        if self.logf is None:
            return
        self.logf.write(lk + " " + " ".join(str(x) for x in a) + "\n")

    async def run(self):
        for ctl in self.ctrls.values():
            ctl.power_on()
        server = await asyncio.start_server(self._client, "127.0.0.1", self.spec["control_port"])
        print("host ready", len(self.ctrls), "controllers on", self.spec["control_port"])
        try:
            while True:
                await asyncio.sleep_ms(WATCH_MS)
                for ctl in self.ctrls.values():
                    if not ctl.board.wifi_ok():
                        ctl.drop_session("wifi lost")
                    if ctl.board.reboot_wanted:
                        ctl.board.reboot_wanted = False
                        ctl.power_off()
                        ctl.power_on()
                if self.logf is not None:
                    self.logf.flush()
        finally:
            server.close()

    async def _client(self, reader, writer):
        lock = asyncio.Lock()
        try:
            while True:
                line = await reader.readline()
                if not line:
                    break
                if len(line) > MAX_LINE:
                    await self._reply(writer, lock, {"ok": False, "err": "line too long"})
                    continue
                try:
                    req = json.loads(line)
                except ValueError as e:
                    await self._reply(writer, lock, {"ok": False, "err": "bad json: %r" % e})
                    continue
                asyncio.create_task(self._serve(req, writer, lock))
        except OSError as e:
            self.out("host", "control client error:", e)
        finally:
            writer.close()

    async def _reply(self, writer, lock, reply):
        async with lock:
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()

    async def _serve(self, req, writer, lock):
        try:
            reply = await self._op(req)
        except (ValueError, KeyError, TypeError) as e:
            reply = {"ok": False, "err": repr(e)}
        reply["rid"] = req.get("rid")
        try:
            await self._reply(writer, lock, reply)
        except OSError as e:
            self.out("host", "control reply failed:", e)

    async def _op(self, req):
        op = req["op"]
        if op == "summary":
            return {"ok": True, "ctrls": {k: c.brief() for k, c in self.ctrls.items()}}
        if op == "contents":
            return {"ok": True, "inside": {k: {str(n): v for n, v in c.board.contents.items() if v}
                                           for k, c in self.ctrls.items()}}
        if op == "flush":
            for c in self.ctrls.values():
                c.board.flush()
            return {"ok": True}
        if op == "quit":
            for c in self.ctrls.values():
                c.board.flush()
            sys.exit(0)
        ctl = self.ctrls[req["lk"]]
        b = ctl.board
        if op == "state":
            d = ctl.state()
            d["ok"] = True
            return d
        if op == "keys":
            await self._type(b, req["keys"], req.get("ms_per_key", 0))
        elif op == "door":
            b.set_door(int(req["c"]), bool(req["open"]))
        elif op == "occ":
            v = req["v"]
            if v == "real":
                b.sense_again(int(req["c"]))
            else:
                b.set_occ(int(req["c"]), None if v is None else bool(v))
        elif op == "put":
            b.put(int(req["c"]), req["item"])
        elif op == "take":
            return {"ok": True, "taken": b.take(int(req["c"]))}
        elif op == "jam":
            b.jammed[int(req["c"])] = bool(req["v"])
        elif op == "fill":
            return await self._fill(ctl, req)
        elif op == "collect":
            return await self._collect(ctl, req)
        elif op == "power":
            if req["on"]:
                ctl.power_on()
            else:
                ctl.power_off()
        elif op == "wifi":
            b.wifi = bool(req["up"])
        elif op == "flap":
            b.flap(int(req["ms"]), int(req["period_ms"]))
        elif op == "sag":
            b.sag(float(req["v"]), int(req["ms"]))
        elif op == "skew":
            if ctl.app is not None and ctl.app.clock._wall_base:
                ctl.app.clock._wall_base += int(req["s"])
        else:
            return {"ok": False, "err": "unknown op " + str(op)}
        return {"ok": True}

    async def _type(self, b, keys, ms_per_key):
        if not ms_per_key:
            b.add_keys(keys)
            return
        for k in keys:
            b.add_keys(k)
            await asyncio.sleep_ms(ms_per_key)

    async def _wait_door(self, b, cs, timeout_ms):
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < timeout_ms:
            opened = [c for c in cs if b.door(c)]
            if opened:
                return opened
            await asyncio.sleep_ms(20)
        return []

    async def _fill(self, ctl, req):
        """A courier waits for the door to spring, puts parcel `item` in and closes it; with parcel false
        (the agent's handover) he takes out what is inside instead."""
        b = ctl.board
        c = int(req["c"])
        if not await self._wait_door(b, [c], req.get("timeout_ms", 5000)):
            return {"ok": True, "opened": False}
        await asyncio.sleep_ms(req.get("hold_ms", 300))
        taken = []
        if req.get("parcel", True):
            b.put(c, req.get("item") or "?")
        else:
            taken = b.take(c)
        await asyncio.sleep_ms(req.get("leave_open_ms", 0))
        b.set_door(c, False)
        return {"ok": True, "opened": True, "taken": taken}

    async def _collect(self, ctl, req):
        """A villager types a code, takes what is behind every door that opens and closes them."""
        b = ctl.board
        before = [n for n in b.doors if b.doors[n]]
        await self._type(b, req["keys"], req.get("ms_per_key", 0))
        cs = [n for n in b.doors if n not in before]
        opened = await self._wait_door(b, cs, req.get("timeout_ms", 3000))
        if opened:
            await asyncio.sleep_ms(300)  # the other doors of the same code spring within a few ticks
            opened = [n for n in cs if b.doors[n]]
        await asyncio.sleep_ms(req.get("hold_ms", 400))
        taken = []
        for n in opened:
            taken += b.take(n)
        await asyncio.sleep_ms(req.get("leave_open_ms", 0))
        for n in opened:
            b.set_door(n, False)
        return {"ok": True, "opened": opened, "taken": taken}


def main(path):
    with open(path) as f:
        spec = json.load(f)
    asyncio.run(Host(spec).run())


if __name__ == "__main__":
    main(sys.argv[1])
