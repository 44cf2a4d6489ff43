"""`jincun bench sim`: how many locker controllers this machine runs in real time, per firmware runtime.

For each runtime the benchmark runs steps of growing size (four controllers to a station, every station
with its own gateway, one broker, one cloud), each for a window of real time: the simulated clock is the
wall clock, the firmware's timers run at their real values, and every station plays a busy hour (the peak
of Double-11): parcels for a third of its compartments are deposited early in the window, half of them are
collected before it ends, each with its door opened and closed. A step passes when every controller came
online, every deposit was confirmed by the locker within its timeout, every pickup opened its door, the
lockers produced at least the events that load must make, and the ledger is clean: nothing lost,
duplicated, unexpected, stranded or phantom, and no event reached the cloud later than `late_s` after the
firmware created it. The figure is the largest passing step. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console

from simulator.cluster import ClusterError
from simulator.ledger import LedgerError
from simulator.runner import REPO, run_scenario
from simulator.scenario import parse_scenario

STEPS = {"micropython": (50, 100, 200, 300, 400), "cpython": (100, 200, 500, 1000, 2000)}
PER_STATION = 4
BUSY_SHARE = 1 / 3  # of every station's compartments get a parcel within the window
BUSY_COLLECT = 0.5  # of those parcels are collected within the window
# the fewest events the firmware makes (protocol §3): a deposit is lock, door open, door closed, deposit; a
# pickup is code_ok, lock, door open, door closed, pickup
EVENTS_PER_DEPOSIT = 4
EVENTS_PER_PICKUP = 5


def step_scenario(runtime: str, controllers: int, window_s: float, late_s: float) -> dict:
    """A steady-traffic scenario of `controllers` controllers, four to a station."""
    stations = max(1, controllers // PER_STATION)
    per_host = 25 if runtime == "micropython" else 500
    return {
        "name": f"bench-{runtime}-{controllers}", "seed": 42, "runtime": runtime, "stations": stations,
        "pick": "spread", "controllers_per_station": PER_STATION, "controllers_per_host": per_host,
        "gateways_per_host": 25 if stations <= 100 else 125,
        "start_h": 9.5, "day_seconds": 86400.0, "hours": window_s / 3600, "late_s": late_s,
        "busy_share": BUSY_SHARE, "busy_collect": BUSY_COLLECT, "drain_timeout_s": 120,
        "people": {"never_p": 0, "elderly_p": 0, "typo_p": 0.1, "leave_open_p": 0, "ms_per_key": (150, 350)},
    }


def load_events(res: dict) -> int:
    """The events the step's planned deposits and pickups must make at the least."""
    return EVENTS_PER_DEPOSIT * res.get("planned_deposits", 0) + EVENTS_PER_PICKUP * res.get("planned_pickups", 0)


def passed(res: dict) -> tuple[bool, str]:
    c = res.get("counters", {})
    bad = {k: res[k] for k in ("lost", "duplicates", "late", "unexpected", "stranded_parcels", "phantom_parcels")
           if res.get(k)}
    if res.get("events_since_start", 0) < load_events(res):
        bad["events"] = f"{res.get('events_since_start', 0)} < load {load_events(res)}"
    for k in ("deposits_unconfirmed", "deposits_failed", "deposits_jammed", "pickups_failed", "people_errors"):
        if c.get(k):
            bad[k] = c[k]
    if not res.get("drained"):
        bad["drained"] = False
    return (not bad, ", ".join(f"{k}={v}" for k, v in bad.items()) or "clean")


def run_step(runtime: str, n: int, args, console: Console) -> dict:
    sc = parse_scenario(step_scenario(runtime, n, args.window, args.late))
    work = Path(tempfile.mkdtemp(prefix=f"bench-sim-{runtime}-{n}-", dir=args.workdir))
    t0 = time.monotonic()
    cpu0 = os.times()
    try:
        res = run_scenario(sc, work, live=False, console=console)
        ok, why = passed(res)
    except (ClusterError, LedgerError, TimeoutError) as exc:
        res, ok, why = {}, False, f"failed: {exc}"
    cpu = os.times()
    row = {"runtime": runtime, "controllers": n, "passed": ok, "why": why,
           "deposited": res.get("deposited"), "planned_deposits": res.get("planned_deposits"),
           "picked_up": res.get("picked_up"), "planned_pickups": res.get("planned_pickups"),
           "events": res.get("events_since_start"), "load_events": load_events(res) if res else None,
           "events_in_window": res.get("events_in_window"), "events_per_s": res.get("events_per_s"),
           "late": res.get("late"),
           "seconds": round(time.monotonic() - t0, 1), "cpu_s": res.get("cpu_s"),
           "children_cpu_s": round(cpu.children_user + cpu.children_system - cpu0.children_user - cpu0.children_system, 1)}
    console.log(f"[bold]{runtime} {n}: {'PASS' if ok else 'FAIL'}[/] {why}; {row['events']} events "
                f"(load {row['load_events']}), {row['events_per_s']} events/s in the window")
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return row


def main(argv: list[str] | None = None) -> int:
    """Entry point of `jincun bench sim`."""
    ap = argparse.ArgumentParser(prog="jincun bench sim", description=__doc__.splitlines()[0])
    ap.add_argument("--micropython", default=",".join(map(str, STEPS["micropython"])),
                    help="controller counts to try with the MicroPython runtime ('' to skip)")
    ap.add_argument("--cpython", default=",".join(map(str, STEPS["cpython"])),
                    help="controller counts to try with the CPython runtime ('' to skip)")
    ap.add_argument("--window", type=float, default=60, help="real seconds of traffic per step")
    ap.add_argument("--late", type=float, default=10, help="an event later than this (s) fails the step")
    ap.add_argument("--workdir", default=None, help="where steps keep their files (default: var/)")
    ap.add_argument("--keep", action="store_true", help="keep the files of passing steps")
    args = ap.parse_args(argv)
    if args.workdir is None:
        (REPO / "var").mkdir(exist_ok=True)
        args.workdir = str(REPO / "var")
    console = Console(stderr=True)
    result: dict = {"cores": os.cpu_count(), "window_s": args.window, "late_s": args.late, "steps": []}
    for runtime in ("micropython", "cpython"):
        best = 0
        counts = [int(x) for x in getattr(args, runtime).split(",") if x.strip()]
        for n in sorted(counts):
            row = run_step(runtime, n, args, console)
            result["steps"].append(row)
            if not row["passed"]:
                break
            best = n
        result[f"controllers_realtime_{runtime}"] = best
    last = {"controllers_realtime_micropython": result["controllers_realtime_micropython"],
            "controllers_realtime_cpython": result["controllers_realtime_cpython"], **result}
    print(json.dumps(last, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
