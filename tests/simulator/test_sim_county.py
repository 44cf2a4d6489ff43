"""A small county end to end: real cloud, Mosquitto, gateways and firmware, with people, faults and bad actors."""

from __future__ import annotations

import json

from simulator import runner
from simulator.stack import broker_logins

SCENARIO = """
name: county-e2e
seed: 4
stations: 2
controllers_per_station: 2
controllers_per_host: 4
start_h: "09:00"
hours: 3
day_seconds: 360           # 3 simulated hours in 45 real seconds
late_s: 8
people:
  visits_per_day: 3
  pickup_median_h: 0.4
  pickup_sigma: 0.3
  never_p: 0
  elderly_p: 0.15
  typo_p: 0.3
  produce_per_day: 8
bad_actors:
  code_guessers: 1
  guesses: 6
  impersonators: 1
faults:
  - {at: "09:20", kind: uplink_down, stations: 2, for: "50m"}
  - {at: "10:30", kind: broker_restart, count: 2, every: "10m"}
  - {at: "11:00", kind: power_cut, stations: 1, for: "3m"}
"""


def test_a_small_county_day_with_outage_broker_restarts_and_power_cut_loses_nothing(tmp_path, capsys):
    path = tmp_path / "county.yaml"
    path.write_text(SCENARIO)
    work = tmp_path / "run"
    code = runner.main([str(path), "--workdir", str(work), "--no-live", "--stations", "2"])
    out = capsys.readouterr().out.strip().splitlines()
    last = json.loads(out[-1])
    res = json.loads((work / "result.json").read_text())
    assert code == 0, res
    assert last["clean"] and last["lost"] == 0 and last["duplicates"] == 0 and last["unexpected"] == 0
    assert last["late"] == 0 and last["events_sent"] == last["events_in_cloud"] > 50
    assert res["deposited"] >= 8 and res["picked_up"] >= 3
    # the outage held events back at the stations, and every one of them reached the cloud afterwards
    (cu,) = res["catch_up"]
    assert cu["events_held"] > 0 and cu["arrived"] == cu["events_held"]
    assert res["delayed_by_faults"] > 0
    assert res["counters"]["broker_restarts"] == 2 and res["counters"].get("power_cuts") == 1
    # the code guesser locked a keypad out; the impersonator was refused at the broker
    alarms = {k for h in res["timeline"]["hours"].values() for k in h["alarms"]}
    assert "lockout" in alarms
    assert res["impersonations_refused"] == 1 and res["impersonations_admitted"] == 0
    assert res["people_errors"] == 0
    # every locker reached the broker over TLS only, on its own station's listener (the broker's log says so);
    # the one other login under a locker's name is the impersonator's, with a cloned board's credentials on
    # the gateways' loopback listener
    stations = [st for f in work.glob("gwhost-*.json") for st in json.loads(f.read_text())["stations"]]
    tls_port = {lk["id"]: st["mqtt"]["tls"]["port"] for st in stations for lk in st["lockers"]}
    assert len(set(tls_port.values())) == len(stations) == 2
    logins = [(client, port) for client, port in broker_logins(work / "mosquitto.log") if client in tls_port]
    assert {client for client, port in logins if port == tls_port[client]} == set(tls_port)
    off_tls = [(client, port) for client, port in logins if port != tls_port[client]]
    assert [port for _, port in off_tls] == [stations[0]["mqtt"]["port"]], off_tls


def test_a_bad_scenario_file_exits_2_with_the_problem_named(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("name: ok\nstations: 0\n")
    assert runner.main([str(path), "--workdir", str(tmp_path / "w")]) == 2
    assert "stations" in capsys.readouterr().err
