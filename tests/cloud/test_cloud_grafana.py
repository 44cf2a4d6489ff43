"""The Grafana dashboard's queries run against a real InfluxDB holding what the cloud writes.

Telemetry goes in the production way (an ingest batch, influxdb-client's writer); every InfluxQL query in
cloud/deploy/grafana/jincun-influxdb.json, panels and template variables alike, then runs with Grafana's
macros filled in as Grafana fills them, and must answer series with values.
"""

from __future__ import annotations

import json
import re
import time

from cloudkit import ADMIN, STATION, TestClient, birth, empty_comps, evt, gw, register

from cloud.app import create_app
from cloud.settings import Settings
from tests.conftest import REPO

DASHBOARD = REPO / "cloud" / "deploy" / "grafana" / "jincun-influxdb.json"
KEY = "fengjia-station-key-0001"
INTERVAL = "10m"


def _queries(dash: dict) -> dict[str, str]:
    """Every query of the dashboard, named by its panel (or template variable)."""
    found = {f"var {v['name']}": v["query"] for v in dash["templating"]["list"] if v["type"] == "query"}
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["rawQuery"] and t["datasource"]["uid"] == "${DS_JINCUN_INFLUXDB}", panel["title"]
            found[f"{panel['title']} {t['refId']}"] = t["query"]
    return found


def fill(query: str, *, start: float, end: float, station: str, locker: str) -> str:
    """The query as Grafana sends it: the time range in ms, the interval, the variables' regex values."""
    out = (query.replace("$timeFilter", f"time >= {int(start * 1000)}ms and time <= {int(end * 1000)}ms")
           .replace("$__interval", INTERVAL).replace("$station", station).replace("$locker", locker))
    assert not re.search(r"\$[\w{]", out), f"a macro this test does not know: {out}"  # `$/` ends a regex
    return out


def tele(seq: int, rx: float, **values) -> dict:
    body = {"v": 1, "boot": "5f0c3a9e", "seq": seq, "ts": int(rx), "mono": seq * 1000, "up": seq, "heap": 40000,
            **values}
    return {"src": "l1", "boot": "5f0c3a9e", "seq": seq, "kind": "tele", "rx": rx, "body": body}


def test_every_dashboard_query_answers_series(influx, tmp_path):
    dash = json.loads(DASHBOARD.read_text())
    queries = _queries(dash)
    assert len(queries) >= 12
    settings = Settings(database_url=f"sqlite:///{tmp_path}/c.db", admin_token=ADMIN, influx_url=influx.write_url,
                        influx_query_url=influx.url, influx_bucket="jincun/autogen", influx_flush_ms=100)
    now = time.time()
    with TestClient(create_app(settings)) as client:
        register(client, STATION, KEY, "冯家村便民店", {"l1": 6})
        items = [birth(0, empty_comps(6), item_seq=1, rx=now - 7200)]
        items += [tele(10 + i, now - 3600 + i * 600, rssi=-60 - i, vin=12.0 + i / 10, temp=30.0 + i, outbox=i % 2)
                  for i in range(6)]
        items += [{"src": "l1", "boot": "5f0c3a9e", "seq": 20, "kind": "status", "rx": now - 3000,
                   "body": {"v": 1, "state": "online", "boot": "5f0c3a9e"}},
                  evt(1, "door", c=2, open=True, ts=int(now - 600), rx=now - 600),
                  evt(2, "deposit", c=2, ref="p-g1", ts=int(now - 590), rx=now - 590),
                  evt(3, "door", c=2, open=False, ts=int(now - 580), rx=now - 580),
                  evt(4, "pickup", c=2, ref="p-g1", ts=int(now - 300), rx=now - 300)]
        health = {"outbox_depth": 3, "oldest_unsent_s": 12.5, "uplink": "up", "lockers_online": 1,
                  "lockers_total": 1, "cpu_temp": 48.0, "up_s": 7200, "counters": {}}
        items += [gw(30 + i, "gw_tele", {**health, "outbox_depth": i}, rx=now - 1800 + i * 300) for i in range(4)]
        resp = client.post("/api/v1/gateway/ingest", headers={"Authorization": f"Bearer {KEY}"},
                           json={"station": STATION, "batch": "b-grafana", "items": items})
        assert resp.status_code == 200 and resp.json()["applied"] == len(items), resp.text
        client.app.state.services.ingestor.telemetry.flush()
        deadline = time.monotonic() + 10
        while not influx.query('SELECT count("value") FROM gw_uplink') and time.monotonic() < deadline:
            time.sleep(0.1)

        empty = {}
        for station, locker in ((re.escape(STATION), "l1"), (".*", ".*")):  # one station, and "All"
            for name, q in queries.items():
                sql = fill(q, start=now - 86400, end=now + 60, station=station, locker=locker)
                series = influx.query(sql)
                values = [v for s in series for row in s["values"] for v in row[1:] if v is not None]
                if not values:
                    empty[(name, station)] = sql
        assert empty == {}
        # the variables list what was written
        tags = influx.query(fill(queries["var station"], start=0, end=0, station=".*", locker=".*"))
        assert [v[1] for v in tags[0]["values"]] == [STATION]


def test_an_unknown_field_would_fail_the_check(influx):
    """The check above can fail: a query naming a field the cloud does not write returns no series."""
    import httpx

    now = time.time()
    httpx.post(f"{influx.url}/write", params={"db": "jincun", "precision": "s"},
               content=f"locker_health,locker=l1,station=s1 rssi=-60 {int(now) - 60}").raise_for_status()
    q = 'SELECT mean("%s") FROM "locker_health" WHERE $timeFilter GROUP BY time($__interval)'
    known = fill(q % "rssi", start=now - 3600, end=now, station=".*", locker=".*")
    unknown = fill(q % "rssi_dbm", start=now - 3600, end=now, station=".*", locker=".*")
    assert influx.query(known) and influx.query(unknown) == []
