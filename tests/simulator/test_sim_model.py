"""The sample county, scenario files and the people's plan: shapes, validation and determinism."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.county import MAX_VOLUME, MIN_VOLUME, make_county, pick
from simulator.people import BUSY_DEPOSITS, make_plan, pickup_hour
from simulator.scenario import ScenarioError, load_scenario, parse_scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "simulator" / "scenarios"
SHIPPED = ("normal-day", "double-11", "outage-24h", "broker-storm", "bad-actors", "chaos")


def test_sample_county_has_a_hub_twelve_towns_and_about_400_villages_with_marked_example_names():
    c = make_county()
    assert "example" in c.hub and len(c.towns) == 12 and len(c.villages) == 400
    assert all(v.name.startswith("示例") and v.town.startswith("示例") for v in c.villages)
    vols = [v.volume for v in c.villages]
    assert min(vols) >= MIN_VOLUME and max(vols) <= MAX_VOLUME
    assert max(vols) > 150 and sorted(vols)[200] < 60  # a few busy villages, most small
    assert len({v.id for v in c.villages}) == 400


def test_the_county_and_the_plan_are_the_same_for_the_same_seed_and_differ_for_another():
    assert make_county(7) == make_county(7) and make_county(7) != make_county(8)
    sc = parse_scenario({"name": "x", "seed": 5, "stations": 3})
    sts = [(v.id, v.volume) for v in pick(make_county(), 3, seed=5)]
    a, b = make_plan(sc, sts), make_plan(sc, sts)
    assert [(x.at_h, x.kind, [p.waybill for p in x.parcels]) for x in a] == \
           [(x.at_h, x.kind, [p.waybill for p in x.parcels]) for x in b]
    c = make_plan(parse_scenario({"name": "x", "seed": 6, "stations": 3}), sts)
    assert [x.at_h for x in a] != [x.at_h for x in c]


def test_five_hundred_stations_come_from_400_villages_with_second_stations_at_the_busiest():
    vs = pick(make_county(), 500, seed=1)
    assert len(vs) == 500 and len({v.id for v in vs}) == 500
    assert sum(1 for v in vs if v.id.endswith("b")) == 100


def test_double_11_plans_about_five_times_the_parcels_of_a_normal_day():
    sts = [(v.id, v.volume) for v in pick(make_county(), 6, seed=2)]
    base = {"name": "x", "seed": 3, "stations": 6, "start_h": 0, "hours": 24}
    normal = sum(len(a.parcels) for a in make_plan(parse_scenario(base), sts))
    peak = sum(len(a.parcels) for a in make_plan(parse_scenario({**base, "volume_factor": 5}), sts))
    assert 4 * normal < peak < 6 * normal


def test_couriers_come_by_day_and_villagers_never_at_night():
    sc = parse_scenario({"name": "x", "seed": 9, "stations": 4, "start_h": 0, "hours": 24})
    plan = make_plan(sc, [(v.id, v.volume) for v in pick(make_county(), 4, seed=9)])
    assert all(7 <= a.at_h % 24 <= 19.5 for a in plan if a.kind == "visit")
    assert 7 <= pickup_hour(22.0, 1.0) % 24 <= 8  # wants to come at 23:00: comes next morning
    assert pickup_hour(10.0, 2.0) == 12.0


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_scenario_is_valid(name):
    sc = load_scenario(SCENARIOS / f"{name}.yaml")
    assert sc.name == name and sc.run_seconds <= 900


def test_the_outage_scenario_cuts_the_uplink_for_24_hours():
    sc = load_scenario(SCENARIOS / "outage-24h.yaml")
    assert any(f.kind == "uplink_down" and f.duration == 24 * 3600 for f in sc.faults)


def test_a_bad_scenario_names_each_problem(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: Bad Name\nfaults:\n  - {at: '25:99', kind: meteor}\n")
    with pytest.raises(ScenarioError) as e:
        load_scenario(p)
    text = str(e.value)
    assert "name" in text and "faults.0" in text
    p.write_text("- just a list\n")
    with pytest.raises(ScenarioError, match="mapping"):
        load_scenario(p)
    with pytest.raises(ScenarioError, match="outside the run"):
        parse_scenario({"name": "x", "start_h": 8, "hours": 2, "faults": [{"at": "11:00", "kind": "disk_full"}]})


@pytest.mark.parametrize("n", [50, 250, 399, 400, 450])
def test_picked_stations_never_repeat(n):
    assert len({v.id for v in pick(make_county(), n, seed=42)}) == n


def test_a_busy_hour_deposits_every_parcel_early_and_collects_its_share_before_the_end():
    sc = parse_scenario({"name": "x", "seed": 4, "stations": 3, "start_h": 9.5, "hours": 60 / 3600,
                         "day_seconds": 86400, "busy_share": 1 / 3, "busy_collect": 0.5})
    plan = make_plan(sc, [("a", 16), ("b", 16), ("c", 5)])
    per = {}
    for a in plan:
        assert a.kind == "visit" and sc.start_h <= a.at_h <= sc.start_h + sc.hours * BUSY_DEPOSITS
        per[a.station] = per.get(a.station, 0) + len(a.parcels)
        for p in a.parcels:  # a villager who comes, comes before the end even if the SMS is late by a third
            assert p.pickup_delay_h is None or a.at_h + p.pickup_delay_h < sc.start_h + sc.hours * 0.7
    assert per == {"a": 16, "b": 16, "c": 5}
    collected = sum(1 for a in plan for p in a.parcels if p.pickup_delay_h is not None)
    assert 0.3 * 37 < collected < 0.7 * 37
