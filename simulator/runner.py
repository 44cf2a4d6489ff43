"""`jincun sim run scenario.yaml`: play a scenario against a simulated county and report the ledger.

Live progress with rich; at the end a summary and, as the last line, one JSON object with the ledger's
counts. Exit status 0 when nothing was lost, duplicated, late or unexpected.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console

from jincun import provision
from simulator import intruder
from simulator.demo_carriers import DEMO_ID
from simulator.cluster import AGENT_ID, AGENT_PIN, COURIER_ID, COURIER_PIN, Cluster, ClusterError, StationSpec
from simulator.county import make_county, pick
from simulator.faults import FAULT_GRACE_S, FaultPlayer
from simulator.ledger import Ledger, LedgerError, Window
from simulator.people import Action, Parcel, elderly_phones, make_plan, pickup_hour
from simulator.pgdb import fresh_database
from simulator.physical import settle_physical
from simulator.progress import Progress, summary
from simulator.scenario import Scenario, ScenarioError, load_scenario

log = logging.getLogger("jincun.sim")
REPO = Path(__file__).resolve().parent.parent
DEFAULT_SCENARIO = REPO / "simulator" / "scenarios" / "normal-day.yaml"
CLEAN_KEYS = ("lost", "duplicates", "late", "unexpected", "stranded_parcels", "phantom_parcels")
DEPOSIT_TIMEOUT_S = 20.0
WARMUP_MAX_S = 180.0


@dataclass
class Tally:
    n: dict[str, int] = field(default_factory=dict)

    def inc(self, k: str, by: int = 1) -> None:
        self.n[k] = self.n.get(k, 0) + by


class Play(FaultPlayer, Progress):
    """Plays one scenario against a running cluster."""

    def __init__(self, sc: Scenario, cl: Cluster, plan: list[Action], console: Console, live: bool) -> None:
        self.sc = sc
        self.cl = cl
        self.plan = plan
        self.console = console
        self.live = live
        self.rng = random.Random(sc.seed * 31 + 7)
        self.t = Tally()
        self.ledger = Ledger(cl.db_url, late_s=sc.late_s)
        self.windows: list[Window] = []
        self.parcels: list[Parcel] = []
        self.tasks: set[asyncio.Task] = set()
        self.station_lock: dict[str, asyncio.Lock] = {s.id: asyncio.Lock() for s in cl.stations}
        self.lockers_of = {s.id: s.lockers for s in cl.stations}
        self.cut_next: dict[str, float] = {}
        self.ajar_next: set[str] = set()
        self.agent_tokens: dict[str, str] = {}
        self.desk_tokens: dict[str, str] = {}
        self.active: dict[str, int] = {}
        self.depth = 0
        self.peak_depth = 0
        self.uplinks_down = 0
        self.intrusions: list[dict] = []
        self.kills: dict[str, int] = {}
        self.broker_down = asyncio.Event()
        self.physical: dict = {}
        self.ledger_files = {lk: (self.cl.locker_station[lk], self.cl.locker_dir(lk) / "ledger.jsonl")
                             for lk in self.cl.locker_station}

    # ---- clock -------------------------------------------------------------------------------------------
    def now_h(self) -> float:
        return self.sc.sim_h(time.monotonic() - self.t0)

    async def until_h(self, h: float) -> None:
        delay = self.sc.real_t(h) - (time.monotonic() - self.t0)
        if delay > 0:
            await asyncio.sleep(delay)

    def spawn(self, coro) -> asyncio.Task:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self.t.inc("people_errors")
            log.warning("a simulated person gave up: %s: %s", type(exc).__name__, exc)

    # ---- main --------------------------------------------------------------------------------------------
    async def run(self) -> dict:
        self.http = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200))
        await self.cl.connect()
        await self.cl.wait_online(60 + self.cl.n_controllers * 0.1)
        await self._settle(WARMUP_MAX_S)
        self.t0 = time.monotonic()
        self.wall0 = time.time()
        end = self.sc.run_seconds
        monitor = asyncio.create_task(self._monitor())
        try:
            self.spawn(self._faults())
            for a in self.plan:
                await self.until_h(a.at_h)
                self.spawn(self._act(a))
            while time.monotonic() - self.t0 < end:
                await asyncio.sleep(0.2)
            self.phase = "draining"
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
            await self._restore()
            drained = await self._drain()
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
            await self.http.aclose()
        return await self._result(drained)

    phase = "running"

    async def _settle(self, limit: float) -> None:
        """Let the births of a cold start reach the cloud before the day begins, so the day starts calm."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            depth = sum(g["depth"] for g in (await self.cl.gateways_summary()).values())
            if depth <= max(20, len(self.cl.stations) // 5):
                return
            await asyncio.sleep(1)
        self.console.log(f"gateway outboxes still hold {depth} records after {limit:.0f} s of warm-up")

    async def _act(self, a: Action) -> None:
        if a.kind == "visit":
            await self._visit(a)
        elif a.kind == "outbound":
            await self._outbound(a)
        elif a.kind == "guess":
            await self._guess(a)
        elif a.kind == "impersonate":
            await self._impersonate(a)

    # ---- couriers ----------------------------------------------------------------------------------------
    async def _visit(self, a: Action) -> None:
        async with self.station_lock[a.station]:  # one courier at a time in front of a locker bank
            for p in a.parcels:
                self.parcels.append(p)
                await self._deposit(p)

    async def _deposit(self, p: Parcel) -> None:
        url = self.cl.gateway_url(p.station)
        body = {"waybill": p.waybill, "phone": p.phone, "carrier": p.carrier, "size": p.size, "consent_asked": True}
        try:
            r = await self.http.post(f"{url}/api/v1/deposits", headers=await self._desk(p.station), json=body)
            if r.status_code == 401:
                # the session ended (a restarted gateway forgets sessions): log in again, once
                self.desk_tokens.pop(p.station, None)
                r = await self.http.post(f"{url}/api/v1/deposits", headers=await self._desk(p.station), json=body)
        except httpx.HTTPError as exc:
            p.outcome = "gateway_unreachable"
            self.t.inc("deposits_failed")
            log.warning("gateway %s unreachable: %s", p.station, exc)
            return
        if r.status_code == 409:
            p.outcome = "no_room"
            self.t.inc("deposits_no_room")
            return
        if r.status_code != 201:
            p.outcome = f"refused_{r.status_code}"
            self.t.inc("deposits_refused")
            return
        d = r.json()
        p.ref, p.locker, p.c = d["ref"], d["locker"], d["c"]
        cut = self.cut_next.pop(p.station, None)
        if cut is not None:
            await self._deposit_with_power_cut(p, cut)
        else:
            res = await self.cl.ctl(p.locker, "fill", c=p.c, item=p.waybill, hold_ms=300)
            if not res.get("opened"):
                p.outcome = "door_did_not_open"
                self.t.inc("deposits_jammed")
                return
        state = await self._deposit_state(p)
        if state != "deposited":
            p.outcome = f"deposit_{state}"
            self.t.inc("deposits_unconfirmed")
            return
        p.deposited_h = self.now_h()
        p.outcome = "deposited"
        self.t.inc("deposits_ok")
        if p.pickup_delay_h is not None:
            self.spawn(self._collect(p))
        else:
            self.t.inc("never_collected")

    async def _deposit_state(self, p: Parcel) -> str:
        url = f"{self.cl.gateway_url(p.station)}/api/v1/deposits/{p.ref}"
        deadline = time.monotonic() + DEPOSIT_TIMEOUT_S
        state = "unknown"
        while time.monotonic() < deadline:
            try:
                r = await self.http.get(url)
                state = r.json().get("state", "unknown") if r.status_code == 200 else state
            except (httpx.HTTPError, ValueError):
                pass
            if state in ("deposited", "void"):
                return state
            await asyncio.sleep(0.2)
        return state

    # ---- villagers -----------------------------------------------------------------------------------------
    async def _collect(self, p: Parcel) -> None:
        delay_h = p.pickup_delay_h
        assert delay_h is not None, "only parcels with a pickup delay are collected"
        while (got := self.cl.sms_sink().code(p.ref or "")) is None:
            await asyncio.sleep(0.5)
        p.code = got[0]
        p.sms_h = sms_h = self.sc.sim_h(got[1] - self.wall0)
        self.t.inc("sms_received")
        await self.until_h(pickup_hour(max(sms_h, p.deposited_h or 0), delay_h))
        async with self.station_lock[p.station]:
            if p.elderly:
                await self._door_to_door(p)
            else:
                await self._pickup(p)

    async def _pickup(self, p: Parcel) -> None:
        code, locker = p.code, p.locker
        assert code is not None and locker is not None, "a villager with an SMS code picks up at a locker"
        leave = 0
        if p.leave_open or p.station in self.ajar_next:
            self.ajar_next.discard(p.station)
            leave = (self.sc.firmware_ajar_s + 3) * 1000
            self.t.inc("doors_left_open")
        for attempt in range(4):
            if p.typo and attempt == 0:
                wrong = code[:5] + str((int(code[5]) + 1 + self.rng.randrange(8)) % 10)
                await self.cl.ctl(locker, "keys", keys=wrong + "#", ms_per_key=p.ms_per_key)
                self.t.inc("typos")
                await asyncio.sleep(0.5)
            res = await self.cl.ctl(locker, "collect", keys=code + "#", ms_per_key=p.ms_per_key,
                                    leave_open_ms=leave, timeout=60 + leave / 1000)
            if p.c in res["opened"]:
                p.picked_h = self.now_h()
                p.outcome = "picked_up"
                self.t.inc("pickups_ok")
                return
            st = await self.cl.ctl(locker, "state")
            wait = (st.get("lock_left") or 0) + 2  # a keypad locked out by a guesser: come back later
            self.t.inc("pickup_retries")
            await asyncio.sleep(wait)
        p.outcome = "pickup_failed"
        self.t.inc("pickups_failed")

    async def _desk(self, station: str) -> dict:
        """The station's courier desk, logged in once (a deposit needs a courier's session)."""
        if station not in self.desk_tokens:
            r = await self.http.post(f"{self.cl.gateway_url(station)}/api/v1/terminal/login",
                                     json={"user": COURIER_ID, "pin": COURIER_PIN})
            r.raise_for_status()
            self.desk_tokens[station] = r.json()["token"]
        return {"Authorization": f"Bearer {self.desk_tokens[station]}"}

    async def _agent(self, station: str) -> str:
        if station not in self.agent_tokens:
            r = await self.http.post(f"{self.cl.gateway_url(station)}/api/v1/terminal/login",
                                     json={"user": AGENT_ID, "pin": AGENT_PIN})
            r.raise_for_status()
            self.agent_tokens[station] = r.json()["token"]
        return self.agent_tokens[station]

    async def _door_to_door(self, p: Parcel) -> None:
        """The village agent takes the parcel out for an elderly villager and brings it to the door."""
        try:
            for _ in range(2):  # a restarted gateway forgot the agent's session: log in again
                tok = await self._agent(p.station)
                r = await self.http.post(f"{self.cl.gateway_url(p.station)}/api/v1/terminal/handover",
                                         json={"ref": p.ref}, headers={"Authorization": f"Bearer {tok}"})
                if r.status_code != 401:
                    break
                self.agent_tokens.pop(p.station, None)
        except httpx.HTTPError as exc:  # the gateway is restarting: the parcel stays in the locker
            p.outcome = "handover_unreachable"
            self.t.inc("handovers_failed")
            log.warning("handover at %s: %s", p.station, exc)
            return
        if r.status_code != 200:
            p.outcome = f"handover_{r.status_code}"
            self.t.inc("handovers_failed")
            return
        assert p.locker is not None, "a parcel handed over was in a locker"
        res = await self.cl.ctl(p.locker, "fill", c=p.c, parcel=False, hold_ms=300)
        p.outcome = "door_to_door" if res.get("opened") else "handover_door_stuck"
        p.picked_h = self.now_h()
        self.t.inc("door_to_door" if res.get("opened") else "handovers_failed")

    async def _outbound(self, a: Action) -> None:
        i = a.info
        try:
            tok = await self._agent(a.station)
            r = await self.http.post(f"{self.cl.gateway_url(a.station)}/api/v1/terminal/outbound", json={
                "carrier": i["carrier"], "sender_phone": i["phone"], "sender_name": "示例农户",
                "dest": "示例市农产品市场", "weight_g": i["weight_g"], "produce": i["produce"],
                # the agent saw the sender's ID and looked inside (实名, 验视): the terminal requires both
                "sender_id": DEMO_ID, "inspected": True},
                headers={"Authorization": f"Bearer {tok}"})
        except httpx.HTTPError as exc:
            self.t.inc("outbound_refused")
            log.warning("outbound at %s: %s", a.station, exc)
            return
        self.t.inc("outbound_ok" if r.status_code == 201 else "outbound_refused")

    # ---- bad actors --------------------------------------------------------------------------------------
    async def _guess(self, a: Action) -> None:
        rng = random.Random(a.info["seed"])
        lk = rng.choice(self.lockers_of[a.station])
        for _ in range(a.info["guesses"]):
            await self.cl.ctl(lk, "keys", keys=f"{rng.randrange(10**6):06d}#", ms_per_key=120)
            self.t.inc("codes_guessed")
            await asyncio.sleep(0.3)

    async def _impersonate(self, a: Action) -> None:
        lockers = self.lockers_of[a.station]
        victim = lockers[0]
        cfg = self.cl.station_cfgs[a.station]
        clone = next(lk for lk in cfg["lockers"] if lk["id"] == lockers[-1])
        res = await asyncio.to_thread(intruder.attack, "127.0.0.1", self.cl.mqtt_port, a.station, victim,
                                      (clone["id"], clone["mqtt_password"]))
        self.intrusions.append(res)
        self.t.inc("impersonations")
        self.t.inc("impersonations_refused" if res["guessed_password_refused"] else "impersonations_admitted")

    async def _restore(self) -> None:
        """The run is over: every process runs, every link and disk works again, so what was held back can
        drain."""
        await asyncio.to_thread(self.cl.revive_all)
        for s in self.cl.stations:
            await self.cl.gw(s.id, "uplink", up=True)
        for lk in list(self.cut_next):
            self.cut_next.pop(lk)
        summ = await self.cl.controllers_summary()
        for lk, (on, *_rest) in summ.items():
            if not on:
                await self.cl.ctl(lk, "power", on=True)
        for s in self.cl.stations:
            await self.cl.gw(s.id, "disk_full", on=False)

    async def _drain(self) -> bool:
        """Drained: every outbox empty and every event produced in the cloud, twice in a row a second apart
        with nothing produced between. A controller still finishing what a cancelled visit began (the
        pickup event follows the door's closing by some 0.4 s) records its last event after the run's end,
        and a single clean look could come just before it."""
        deadline = time.monotonic() + self.sc.drain_timeout_s
        clean_at: int | None = None
        while time.monotonic() < deadline:
            await asyncio.gather(*(h.call("flush") for h in self.cl.hosts))
            summ = await self.cl.controllers_summary()
            gws = await self.cl.gateways_summary()
            self.ledger.read_producers(self.ledger_files)
            await asyncio.to_thread(self.ledger.poll_cloud)
            if (all(v[2] == 0 for v in summ.values()) and all(g["depth"] == 0 for g in gws.values())
                    and self.ledger.pending() == 0):
                if clean_at == len(self.ledger.produced):
                    return True
                clean_at = len(self.ledger.produced)
            else:
                clean_at = None
            await asyncio.sleep(1)
        return False

    # ---- result ------------------------------------------------------------------------------------------
    async def _result(self, drained: bool) -> dict:
        self.ledger.read_producers(self.ledger_files)
        await asyncio.to_thread(self.ledger.poll_cloud)
        counts = await asyncio.to_thread(self.ledger.counts, self.windows, FAULT_GRACE_S)
        statuses = await asyncio.to_thread(self.ledger.parcel_statuses)
        phys = await settle_physical(self.cl)
        counts.update(stranded_parcels=phys["stranded_parcels"], phantom_parcels=phys["phantom_parcels"])
        await self.cl.disconnect()
        n = self.t.n
        res = {
            "scenario": self.sc.name, "runtime": self.cl.runtime, "stations": len(self.cl.stations),
            "controllers": self.cl.n_controllers,
            "deposited": n.get("deposits_ok", 0), "picked_up": n.get("pickups_ok", 0),
            **counts, "drained": drained, "clean": drained and all(counts[k] == 0 for k in CLEAN_KEYS),
            "kills": dict(sorted(self.kills.items())), "locker_power_cuts": n.get("locker_power_cuts", 0),
            **self._in_window(),
            "parcels_inside": phys["inside"], "stranded": phys["stranded"], "phantom": phys["phantom"],
            "found_parcels": phys["found"],
            "door_to_door": n.get("door_to_door", 0), "never_collected": n.get("never_collected", 0),
            "no_room": n.get("deposits_no_room", 0), "typos": n.get("typos", 0),
            "codes_guessed": n.get("codes_guessed", 0), "outbound": n.get("outbound_ok", 0),
            "impersonations_refused": n.get("impersonations_refused", 0),
            "impersonations_admitted": n.get("impersonations_admitted", 0),
            "people_errors": n.get("people_errors", 0),
            "sms": self.cl.sms.count if self.cl.sms else 0, "peak_gateway_outbox": self.peak_depth,
            "catch_up": self.ledger.catch_up(self.windows), "cloud_parcels": statuses,
            "counters": dict(sorted(n.items())), "real_seconds": round(time.monotonic() - self.t0, 1),
        }
        res["timeline"] = self.timeline()
        res["cpu_s"] = {**self.cl.cpu_seconds(), "runner": round(sum(os.times()[:2]), 1)}
        self.ledger.close()
        return res

    def _in_window(self) -> dict:
        """What the plan set the run to carry, and the events the lockers produced from its start: within
        the run's real seconds (events_per_s), and with the drain's tail."""
        parcels = [p for a in self.plan for p in a.parcels]
        end = self.wall0 + self.sc.run_seconds
        ats = [at for at, _, _ in self.ledger.produced.values() if at >= self.wall0]
        inside = sum(1 for at in ats if at <= end)
        return {"planned_deposits": len(parcels),
                "planned_pickups": sum(1 for p in parcels if p.pickup_delay_h is not None and not p.elderly),
                "events_since_start": len(ats), "events_in_window": inside,
                "events_per_s": round(inside / self.sc.run_seconds, 2)}

    def timeline(self) -> dict:
        """Per simulated hour: events produced, events reaching the cloud, pickups, alarms by kind."""
        return self.ledger.timeline(lambda at: self.sc.sim_h(at - self.wall0), self.sc.start_h, self.windows)


def build(sc: Scenario, workdir: Path, *, cloud_port: int = 0, database_url: str | None = None
          ) -> tuple[Cluster, list[Action]]:
    """The county slice, its people's plan and an unstarted cluster for a scenario."""
    county = make_county(sc.county_seed)
    villages = pick(county, sc.stations, seed=sc.seed, order=sc.pick)
    per_station = {v.id: v.lockers if sc.controllers_per_station == "auto" else sc.controllers_per_station
                   for v in villages}
    if sc.busy_share:  # a busy hour: parcels for a share of every station's compartments
        n_comps = len(provision.parse_comps(sc.comps))
        stations = [(v.id, math.ceil(per_station[v.id] * n_comps * sc.busy_share)) for v in villages]
    else:
        stations = [(v.id, v.volume) for v in villages]
    plan = make_plan(sc, stations)
    assist = elderly_phones(plan)
    specs = []
    for v in villages:
        m = per_station[v.id]
        specs.append(StationSpec(v.id, v.name, v.town, [f"{v.id}-l{i + 1}" for i in range(m)],
                                 assist.get(v.id, [])))
    cl = Cluster(workdir, specs, runtime=sc.runtime, comps=sc.comps, controllers_per_host=sc.controllers_per_host,
                 gateways_per_host=sc.gateways_per_host, database_url=database_url, cloud_port=cloud_port,
                 tele_s=sc.tele_s, ajar_s=sc.firmware_ajar_s, seed=sc.seed,
                 hw={"jam_p": sc.hardware.jam_p, "occ_fault_p": sc.hardware.occ_fault_p, "rssi": sc.hardware.rssi,
                     "vin": sc.hardware.vin})
    return cl, plan


def run_scenario(sc: Scenario, workdir: Path, *, cloud_port: int = 0, database_url: str | None = None,
                 live: bool = True, console: Console | None = None, keep_db: bool = False) -> dict:
    """Start the county, play the scenario, drain, and return the result (ledger counts and more)."""
    console = console or Console(stderr=True)
    if database_url is None and sc.database == "postgres":
        with fresh_database(sc.name, keep=keep_db) as url:
            console.log(f"cloud database: {url.rsplit('/', 1)[-1]} on PostgreSQL")
            return run_scenario(sc, workdir, cloud_port=cloud_port, database_url=url, live=live, console=console)
    cl, plan = build(sc, workdir, cloud_port=cloud_port, database_url=database_url)
    visits = sum(len(a.parcels) for a in plan if a.kind == "visit")
    console.log(f"{sc.name}: {len(cl.stations)} stations, {cl.n_controllers} controllers ({sc.runtime}), "
                f"{visits} parcels planned, {sc.hours:g} simulated hours in {sc.run_seconds:.0f} s; "
                f"workdir {cl.workdir}")
    cl.start(progress=lambda m: console.log(f"starting {m}"))
    try:
        result = asyncio.run(Play(sc, cl, plan, console, live).run())
    finally:
        cl.stop()
    (cl.workdir / "result.json").write_text(json.dumps(result, ensure_ascii=False, indent=1))
    return result


def main(argv: list[str] | None = None) -> int:
    """Entry point of `jincun sim run`."""
    ap = argparse.ArgumentParser(prog="jincun sim run", description="run a county scenario on this machine")
    ap.add_argument("scenario", nargs="?", default=str(DEFAULT_SCENARIO))
    ap.add_argument("--duration", type=float, help="real seconds for the scenario's simulated hours")
    ap.add_argument("--port", type=int, default=0, help="cloud port (default: a free one)")
    ap.add_argument("--workdir", help="where processes keep their files (default: var/sim-*)")
    ap.add_argument("--runtime", choices=("micropython", "cpython"))
    ap.add_argument("--stations", type=int, help="override the number of stations")
    ap.add_argument("--database-url", help="cloud database (default: SQLite in the workdir)")
    ap.add_argument("--keep-db", action="store_true", help="keep the PostgreSQL database of a postgres scenario")
    ap.add_argument("--no-live", action="store_true", help="no live progress table")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    console = Console(stderr=True)
    try:
        sc = load_scenario(args.scenario, runtime=args.runtime, stations=args.stations)
        if args.duration:
            sc = sc.model_copy(update={"day_seconds": args.duration * 24 / sc.hours})
    except ScenarioError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.workdir:
        workdir = Path(args.workdir)
    else:
        (REPO / "var").mkdir(exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=f"sim-{sc.name}-", dir=REPO / "var"))
    try:
        res = run_scenario(sc, workdir, cloud_port=args.port, database_url=args.database_url,
                           live=not args.no_live and console.is_terminal, console=console, keep_db=args.keep_db)
    except (ClusterError, LedgerError) as exc:
        print(f"simulation failed: {exc}", file=sys.stderr)
        return 1
    summary(res, console)
    keys = ("scenario", "stations", "controllers", "deposited", "picked_up", "events_sent", "events_in_cloud",
            "lost", "duplicates", "late", "delayed_by_faults", "unexpected", "stranded_parcels", "phantom_parcels",
            "kills", "drained", "clean")
    print(json.dumps({k: res[k] for k in keys}, ensure_ascii=False), flush=True)
    return 0 if res["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
