"""The scheduled faults of a scenario, chaos among them, played by the runner (`FaultPlayer`, mixed into Play).

Field faults (uplink down, broker restarts, power cuts mid-deposit, jams, doors left open, forced doors,
sensor faults, Wi-Fi flapping, clock skew, a full disk, voltage sag) and chaos: `gateway_kill`,
`cloud_kill` and `broker_kill` SIGKILL a process and start it again after a random 0.2-5 s, as systemd's
`Restart=always` would, and `locker_power_cut` cuts a controller's power, on request while the station
broker is down.
"""

from __future__ import annotations

import asyncio
import random
import time

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from simulator.ledger import Window
from simulator.people import Parcel
from simulator.scenario import Fault, Scenario

if TYPE_CHECKING:
    from rich.console import Console

    from simulator.cluster import Cluster
    from simulator.runner import Tally

KILLS = {"gateway_kill": "gateway", "cloud_kill": "cloud", "broker_kill": "broker"}
RESTART_S = (0.2, 5.0)  # systemd restarts a killed service after this long (RestartSec plus start-up)
KILL_JITTER = 0.4  # each interval between kills is `every` times 1 +- this, so the kinds interleave
POWER_CUT_WAIT_S = 4.0  # power_cut: how long it waits for a courier with a door open
CUT_OFF_S = (0.5, 3.0)  # a locker power cut lasts this long
CUT_GAP_S = (1.0, 4.0)  # between the cuts of one locker_power_cut
FAULT_GRACE_S = 20.0  # after a fault ends, reconnects and backoff may still hold events back this long


class FaultPlayer:
    """The fault schedule; expects the runner's Play attributes (sc, cl, rng, t, windows, ...)."""

    # what Play (simulator/runner.py) sets in its __init__ and defines, named here for the type checker
    sc: Scenario
    cl: Cluster
    t: Tally
    console: Console
    t0: float
    wall0: float
    windows: list[Window]
    lockers_of: dict[str, list[str]]
    cut_next: dict[str, float]
    ajar_next: set[str]
    active: dict[str, int]
    until_h: Callable[[float], Awaitable[None]]
    spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task]
    rng: random.Random
    kills: dict[str, int]
    broker_down: asyncio.Event
    stray = 0

    def _now(self) -> float:
        """Wall time of this moment on the ledger's clock."""
        return time.monotonic() - self.t0 + self.wall0

    async def _deposit_with_power_cut(self, p: Parcel, off_s: float) -> None:
        """The controller loses power while the courier has the door open; he finishes anyway."""
        assert p.locker is not None, "a parcel being deposited has its locker"
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            st = await self.cl.ctl(p.locker, "state")
            if st["doors"].get(str(p.c)):
                break
            await asyncio.sleep(0.05)
        await self.cl.ctl(p.locker, "power", on=False)
        self.t.inc("power_cuts")
        await asyncio.sleep(0.3)
        await self.cl.ctl(p.locker, "put", c=p.c, item=p.waybill)
        await self.cl.ctl(p.locker, "door", c=p.c, open=False)
        await asyncio.sleep(max(1.0, off_s))
        await self.cl.ctl(p.locker, "power", on=True)

    async def _plain_power_cut(self, station: str) -> None:
        """No courier came: the power fails at a quiet locker."""
        lk = self.rng.choice(self.lockers_of[station])
        await self.cl.ctl(lk, "power", on=False)
        self.t.inc("power_cuts")
        await asyncio.sleep(2.0)
        await self.cl.ctl(lk, "power", on=True)

    def _stations_for(self, f: Fault) -> list[str]:
        ids = [s.id for s in self.cl.stations]
        if f.stations == "all":
            return ids
        return self.rng.sample(ids, min(len(ids), f.stations))

    async def _faults(self) -> None:
        for f in sorted(self.sc.faults, key=lambda f: f.at):
            await self.until_h(f.at)
            self.spawn(self._fault(f))

    async def _fault(self, f: Fault) -> None:
        sts = self._stations_for(f)
        dur = self.sc.real_s(f.duration)
        now = time.monotonic() - self.t0 + self.wall0
        self.active[f.kind] = self.active.get(f.kind, 0) + 1
        self.t.inc(f"fault_{f.kind}")
        scope = None if f.stations == "all" or f.kind == "broker_restart" else set(sts)
        try:
            if f.kind == "uplink_down":
                self.windows.append(Window(f.kind, scope, now, now + dur))
                await asyncio.gather(*(self.cl.gw(s, "uplink", up=False) for s in sts))
                self.console.log(f"uplink down at {len(sts)} station(s) for {f.duration / 3600:g} h")
                await asyncio.sleep(dur)
                await asyncio.gather(*(self.cl.gw(s, "uplink", up=True) for s in sts))
                self.console.log(f"uplink up again at {len(sts)} station(s)")
            elif f.kind == "broker_restart":
                for i in range(f.count):
                    t = time.monotonic() - self.t0 + self.wall0
                    self.windows.append(Window(f.kind, None, t, t + 5))
                    await asyncio.to_thread(self.cl.restart_broker, kill=bool(i % 2))
                    self.t.inc("broker_restarts")
                    if i + 1 < f.count:
                        await asyncio.sleep(self.sc.real_s(f.every))
            elif f.kind == "disk_full":
                self.windows.append(Window(f.kind, scope, now, now + dur))
                await asyncio.gather(*(self.cl.gw(s, "disk_full", on=True) for s in sts))
                await asyncio.sleep(dur)
                await asyncio.gather(*(self.cl.gw(s, "disk_full", on=False) for s in sts))
            elif f.kind == "power_cut":
                self.windows.append(Window(f.kind, scope, now, now + dur + 30))
                for s in sts:
                    self.cut_next[s] = max(1.0, dur)
                await asyncio.sleep(POWER_CUT_WAIT_S)  # hoping to catch a courier with a door open
                await asyncio.gather(*(self._plain_power_cut(s) for s in sts if self.cut_next.pop(s, None)))
            elif f.kind == "wifi_flap":
                self.windows.append(Window(f.kind, scope, now, now + dur))
                await self._each_locker(sts, "flap", ms=int(dur * 1000), period_ms=int(f.period_s * 1000))
                await asyncio.sleep(dur)
            elif f.kind == "clock_skew":
                await self._each_locker(sts, "skew", s=f.seconds)
            elif f.kind == "voltage_sag":
                await self._each_locker(sts, "sag", v=f.volts, ms=int(max(dur, 1) * 1000))
            elif f.kind == "door_ajar":
                self.ajar_next.update(sts)
            elif f.kind in KILLS:
                await self._kills(f)
            elif f.kind == "locker_power_cut":
                await self._locker_power_cuts(f)
            elif f.kind in ("theft", "stray_parcel"):
                await asyncio.gather(*(self._by_hand(f.kind, s) for s in sts))
            elif f.kind in ("lock_jam", "sensor_fault", "forced_open"):
                await asyncio.gather(*(self._board_fault(f, s, dur) for s in sts))
        finally:
            self.active[f.kind] -= 1

    async def _each_locker(self, sts: list[str], op: str, **kw) -> None:
        await asyncio.gather(*(self.cl.ctl(lk, op, **kw) for s in sts for lk in self.lockers_of[s]))

    async def _board_fault(self, f: Fault, station: str, dur: float) -> None:
        lk = self.rng.choice(self.lockers_of[station])
        st = await self.cl.ctl(lk, "state")
        comps = st.get("comps") or []
        if f.kind == "forced_open":
            c = self.rng.choice(comps)["n"]
            await self.cl.ctl(lk, "door", c=c, open=True)  # a crowbar: the door opens with no lock pulse
            await asyncio.sleep(1.0)
            await self.cl.ctl(lk, "door", c=c, open=False)
            return
        empty = [x["n"] for x in comps if x["st"] == "empty"] or [comps[0]["n"]]
        c = self.rng.choice(empty)
        if f.kind == "lock_jam":
            await self.cl.ctl(lk, "jam", c=c, v=True)
            await asyncio.sleep(max(dur, 1))
            await self.cl.ctl(lk, "jam", c=c, v=False)  # maintenance frees the bolt
        else:
            await self.cl.ctl(lk, "occ", c=c, v=None)
            await asyncio.sleep(max(dur, 1))
            await self.cl.ctl(lk, "occ", c=c, v="real")  # repaired, it reads what is inside

    async def _by_hand(self, kind: str, station: str) -> None:
        """Hands the system never sees: a thief takes a parcel out through a forced door (`theft`), or someone
        pushes a parcel into an empty compartment through a forced door (`stray_parcel`)."""
        for lk in self.rng.sample(self.lockers_of[station], len(self.lockers_of[station])):
            st = await self.cl.ctl(lk, "state")
            if kind == "theft":
                cs = sorted(int(c) for c in st["inside"])
            else:
                cs = [x["n"] for x in st.get("comps") or [] if x["st"] == "empty" and str(x["n"]) not in st["inside"]]
            if not cs:
                continue
            c = self.rng.choice(cs)
            await self.cl.ctl(lk, "door", c=c, open=True)
            await asyncio.sleep(0.5)
            if kind == "theft":
                await self.cl.ctl(lk, "take", c=c)
            else:
                self.stray += 1
                await self.cl.ctl(lk, "put", c=c, item=f"STRAY{self.sc.seed}-{self.stray}")
            await asyncio.sleep(0.5)
            await self.cl.ctl(lk, "door", c=c, open=False)
            self.t.inc(kind)
            return
        self.t.inc(f"{kind}_found_nothing")

    # ---- chaos -----------------------------------------------------------------------------------------
    async def _kills(self, f: Fault) -> None:
        """`count` SIGKILLs of one kind of process, `every` (jittered) apart; each comes back after 0.2-5 s."""
        comp = KILLS[f.kind]
        for i in range(f.count):
            # the next kill is timed from this one's start: a slow restart does not thin out the schedule
            t_next = time.monotonic() + self.sc.real_s(f.every) * self.rng.uniform(1 - KILL_JITTER, 1 + KILL_JITTER)
            await self._kill_once(comp)
            if i + 1 < f.count:
                await asyncio.sleep(max(0.0, t_next - time.monotonic()))

    async def _kill_once(self, comp: str) -> None:
        """One SIGKILL and its restart; the time the process was away is a fault window of the ledger."""
        host = self.rng.randrange(self.cl.gateway_hosts) if comp == "gateway" else 0
        scope = set(self.cl.stations_of_host(host)) if comp == "gateway" else None
        delay = self.rng.uniform(*RESTART_S)
        start = self._now()
        await asyncio.to_thread(self.cl.kill, comp, host)
        self.kills[comp] = self.kills.get(comp, 0) + 1
        if comp == "broker":
            self.broker_down.set()
        try:
            await asyncio.sleep(delay)
        finally:
            # a run that ends while a process is down still restarts it (the restore does it too)
            await asyncio.shield(asyncio.to_thread(self.cl.revive, comp, host))
            if comp == "broker":
                self.broker_down.clear()
            self.windows.append(Window(f"{comp}_kill", scope, start, self._now()))

    async def _locker_power_cuts(self, f: Fault) -> None:
        """`count` times, a random controller loses power `repeat` times in a row; with `broker_down`
        probability the first cut waits (up to `every`) for the station broker to be down."""
        for i in range(f.count):
            every = self.sc.real_s(f.every)
            t_next = time.monotonic() + every
            if self.rng.random() < f.broker_down:
                try:
                    await asyncio.wait_for(self.broker_down.wait(), every)
                except TimeoutError:
                    pass
            station = self.rng.choice([s.id for s in self.cl.stations])
            lk = self.rng.choice(self.lockers_of[station])
            start = self._now()
            for j in range(f.repeat):
                if self.broker_down.is_set():
                    self.t.inc("locker_power_cuts_broker_down")
                await self.cl.ctl(lk, "power", on=False)
                self.t.inc("locker_power_cuts")
                try:
                    await asyncio.sleep(self.rng.uniform(*CUT_OFF_S))
                finally:
                    await asyncio.shield(self.cl.ctl(lk, "power", on=True))
                if j + 1 < f.repeat:
                    await asyncio.sleep(self.rng.uniform(*CUT_GAP_S))
            self.windows.append(Window("locker_power_cut", {station}, start, self._now() + 30))
            if i + 1 < f.count:
                await asyncio.sleep(max(0.0, t_next - time.monotonic()))
