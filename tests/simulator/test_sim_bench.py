"""`jincun bench sim`: each step plays a busy hour, reports events per second, and fails below its load."""

from __future__ import annotations

import json
import math

from bench import sim
from simulator.runner import build
from simulator.scenario import parse_scenario


def test_a_step_with_fewer_events_than_its_load_fails_even_with_a_clean_ledger():
    res = {"lost": 0, "duplicates": 0, "late": 0, "unexpected": 0, "stranded_parcels": 0, "phantom_parcels": 0,
           "drained": True, "counters": {}, "planned_deposits": 10, "planned_pickups": 4}
    assert sim.load_events(res) == 10 * sim.EVENTS_PER_DEPOSIT + 4 * sim.EVENTS_PER_PICKUP
    ok, why = sim.passed({**res, "events_since_start": sim.load_events(res) - 1})
    assert not ok and "events" in why
    assert sim.passed({**res, "events_since_start": sim.load_events(res)}) == (True, "clean")
    ok, why = sim.passed({**res, "events_since_start": 999, "stranded_parcels": 1})
    assert not ok and "stranded_parcels=1" in why


def test_every_step_plans_parcels_for_a_third_of_every_stations_compartments(tmp_path):
    sc = parse_scenario(sim.step_scenario("cpython", 40, 60, 10))
    _, plan = build(sc, tmp_path)
    comps = 12 * sim.PER_STATION
    per: dict[str, int] = {}
    for a in plan:
        per[a.station] = per.get(a.station, 0) + len(a.parcels)
    assert len(per) == 10 and set(per.values()) == {math.ceil(comps / 3)}


def test_a_small_busy_step_carries_its_load_and_reports_events_per_second(tmp_path, capsys):
    code = sim.main(["--micropython", "8", "--cpython", "", "--window", "45", "--workdir", str(tmp_path)])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (step,) = last["steps"]
    assert code == 0 and step["passed"], step
    assert step["deposited"] == step["planned_deposits"] == 2 * math.ceil(12 * sim.PER_STATION / 3)
    assert step["picked_up"] == step["planned_pickups"] > 0
    assert step["events"] >= step["load_events"] > 0
    assert step["events_per_s"] == round(step["events_in_window"] / 45, 2) and step["events_per_s"] > 1
    assert last["controllers_realtime_micropython"] == 8
