"""Telemetry into a real InfluxDB 1.6 through influxdb-client's batching writer; history read in InfluxQL."""

from __future__ import annotations

import html
import json
import re
import time

from cloudkit import ADMIN, STATION, Cloud, TestClient, birth, empty_comps, evt, register

from cloud.app import create_app
from cloud.settings import Settings


def tele(seq: int, rx: float, **values) -> dict:
    body = {"v": 1, "boot": "5f0c3a9e", "ts": int(rx), "mono": seq * 1000, "up": seq, "heap": 40000, **values}
    return {"src": "l1", "boot": "a1b2c3d4", "seq": seq, "kind": "tele", "rx": rx, "body": body}


def status(seq: int, rx: float, state: str) -> dict:
    return {"src": "l1", "boot": "a1b2c3d4", "seq": seq, "kind": "status", "rx": rx,
            "body": {"v": 1, "state": state, "boot": "5f0c3a9e"}}


def test_telemetry_goes_to_influxdb_and_pages_read_it_back(influx, tmp_path):
    settings = Settings(database_url=f"sqlite:///{tmp_path}/c.db", admin_token=ADMIN, influx_url=influx.write_url,
                        influx_query_url=influx.url, influx_bucket="jincun/autogen", influx_flush_ms=100)
    now = time.time()
    with TestClient(create_app(settings)) as client:
        register(client, STATION, "fengjia-station-key-0001", "冯家村便民店", {"l1": 6})
        cloud = Cloud(client=client, settings=settings)
        items = [birth(0, empty_comps(6), item_seq=1, rx=now - 7200)]
        items += [tele(10 + i, now - 3600 + i * 600, rssi=-60 - i, vin=12.0 + i / 10, temp=30.0 + i)
                  for i in range(6)]
        items += [evt(1, "door", c=2, open=True, ts=int(now - 100), rx=now - 100),
                  evt(2, "door", c=2, open=False, ts=int(now - 90), rx=now - 90),
                  evt(3, "deposit", c=2, ref="p-x", ts=int(now - 90), rx=now - 90), status(30, now - 50, "lost")]
        resp = cloud.ingest(items)
        assert resp.json()["applied"] == len(items)
        store = client.app.state.services.ingestor.telemetry
        store.flush()
        deadline = time.monotonic() + 10
        while not influx.query('SELECT count("rssi") FROM locker_health') and time.monotonic() < deadline:
            time.sleep(0.1)
        # the points are in the real server, under the right tags and times
        rows = influx.query("SELECT rssi, vin, temp FROM locker_health WHERE station = 'lz-fengjia-01' "
                            "AND locker = 'l1'")[0]["values"]
        assert [r[1] for r in rows] == [-60, -61, -62, -63, -64, -65]
        assert abs(rows[0][0] - (now - 3600)) < 1
        doors = influx.query("SELECT value FROM door WHERE c = '2'")[0]["values"]
        assert [r[1] for r in doors] == [1, 0]
        assert influx.query("SELECT value FROM occupancy")[0]["values"][0][1] == 1
        assert influx.query("SELECT value FROM link")[0]["values"][0][1] == 0

        # history through the port (InfluxQL over /query) and on the locker page
        history = store.history(None, station_id=STATION, locker_id="l1")
        assert [h.rssi for h in history] == [-60, -61, -62, -63, -64, -65] and history[-1].temp == 35.0
        series = store.series(None, station_id=STATION, locker_id="l1", field="temp", since=now - 86400,
                              bucket=600)
        assert [p.value for p in series] == [30.0, 31.0, 32.0, 33.0, 34.0, 35.0]
        # a replayed batch writes the same points again: InfluxDB keeps one per series and time
        assert cloud.ingest(items).json()["duplicate"] == len(items)
        store.flush()
        time.sleep(0.3)
        assert influx.query('SELECT count("rssi") FROM locker_health')[0]["values"][0][1] == 6
        page = client.get(f"/ops/{STATION}/l1", headers={"Authorization": f"Bearer {ADMIN}"})
        # signal, voltage and temperature over 24 h and 7 days come from InfluxDB; no outbox depth was sent
        assert page.status_code == 200 and page.text.count("data-chart=") == 6
        assert page.text.count("数据不足") == 2 and 'id="chart-health_24h-outbox"' in page.text
        rssi_24h = re.search(r'id="chart-health_24h-rssi".*?data-chart=\'([^\']*)\'', page.text, re.S).group(1)
        # six samples 10 minutes apart in 15-minute means: the line runs from -60 to -65 dBm (where the
        # quarter-hours fall, the first or last mean may take two samples: -60.5, -64.5)
        values = [v for _, v in json.loads(html.unescape(rssi_24h))["points"]]
        assert values[0] in (-60, -60.5) and values[-1] in (-65, -64.5) and len(values) in (4, 5)
        assert None not in values
