"""Chaos, short: gateways, the cloud (on PostgreSQL) and the broker SIGKILLed about 20 times, lockers losing
power while the broker is down, against steady traffic; nothing lost, doubled, stranded or phantom."""

from __future__ import annotations

import json

from simulator import runner
from simulator.scenario import load_scenario

SHORT = """
name: chaos-short
seed: 21
stations: 2
controllers_per_station: 2
controllers_per_host: 4
gateways_per_host: 1
database: postgres
start_h: "09:00"
hours: 3
day_seconds: 960           # 3 simulated hours in 120 real seconds
late_s: 10
volume_factor: 2
people:
  pickup_median_h: 0.4
  pickup_sigma: 0.3
  never_p: 0.1
  elderly_p: 0.1
faults:
  - {at: "09:10", kind: gateway_kill, count: 7, every: "8m"}
  - {at: "09:12", kind: cloud_kill, count: 6, every: "9m"}
  - {at: "09:14", kind: broker_kill, count: 7, every: "8m"}
  - {at: "09:20", kind: locker_power_cut, count: 2, repeat: 3, every: "40m", broker_down: 1}
"""


def test_twenty_kills_and_power_cuts_lose_nothing_and_strand_no_parcel(tmp_path, capsys, pg_url):
    path = tmp_path / "chaos.yaml"
    path.write_text(SHORT)
    work = tmp_path / "run"
    code = runner.main([str(path), "--workdir", str(work), "--no-live", "--database-url", pg_url])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    res = json.loads((work / "result.json").read_text())
    assert last["kills"] == {"broker": 7, "cloud": 6, "gateway": 7}
    c = res["counters"]
    assert c["locker_power_cuts"] == 6 and c.get("locker_power_cuts_broker_down", 0) >= 1
    assert res["deposited"] >= 10 and res["picked_up"] >= 3 and res["parcels_inside"] > 0
    assert last["lost"] == last["duplicates"] == last["unexpected"] == last["late"] == 0, res
    assert last["events_sent"] == last["events_in_cloud"] and last["drained"]
    assert (last["stranded_parcels"], last["phantom_parcels"]) == (0, 0), (res["stranded"], res["phantom"])
    assert last["clean"] and code == 0


def test_the_shipped_chaos_scenario_plays_a_hundred_kills_and_eight_power_cuts_on_postgresql():
    sc = load_scenario(runner.REPO / "simulator" / "scenarios" / "chaos.yaml")
    kills = {k: sum(f.count for f in sc.faults if f.kind == k) for k in ("gateway_kill", "cloud_kill", "broker_kill")}
    cuts = sum(f.count * f.repeat for f in sc.faults if f.kind == "locker_power_cut")
    assert sum(kills.values()) >= 100 and all(kills.values()) and cuts >= 8
    assert sc.database == "postgres"
    end = sc.start_h + sc.hours
    for f in sc.faults:  # the kills are spread over the day (jittered around `every`), while people come
        assert f.at + (f.count - 1) * f.every / 3600 < end - 0.5, f
