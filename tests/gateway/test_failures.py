"""The issue's failure list, end to end: kill -9 of the gateway mid-stream, a Mosquitto restart mid-stream, the
cloud down for a day on a simulated clock, and a locker publishing as another one. In each case nothing
recorded is lost and nothing is applied twice."""

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from gateway.broker import broker_body, write_auth_files
from gateway.config import CloudConfig
from gateway.counters import Counters
from gateway.stationdb import Outbox, Record
from gwkit import RUN_AS, PahoLocker, RunningGateway, free_port, make_config, until
from test_uplink import API_KEY, Sink, serve

REPO = Path(__file__).resolve().parents[2]
N_EVENTS = 400


class ResendingLocker(PahoLocker):
    """A locker that keeps every event until it is eacked and re-sends the unacked ones, as the firmware does."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.bodies: dict[int, dict] = {}
        self.lock = threading.Lock()

    def make(self, n: int) -> None:
        for _ in range(n):
            self.seq += 1
            self.bodies[self.seq] = {"v": 1, "boot": self.boot, "seq": self.seq, "ts": int(time.time()),
                                     "mono": self.seq, "type": "door", "c": 1, "open": self.seq % 2 == 0}

    def send(self, seqs) -> None:
        for s in seqs:
            self.c.publish(f"{self.base}/evt", json.dumps(self.bodies[s]), qos=1)

    def unacked(self) -> list[int]:
        return [s for s in sorted(self.bodies) if s > self.acked()]


def start_gateway(conf: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "gateway", str(conf)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=open(conf.with_suffix(".log"), "a"), text=True)


async def wait_health(port: int, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as http:
        while time.monotonic() < deadline:
            try:
                r = await http.get(f"http://127.0.0.1:{port}/health", timeout=1)
                if r.status_code == 200 and r.json()["broker"] == "up":
                    return r.json()
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("gateway did not come up")


@pytest.mark.parametrize("fault", ["kill-9", "broker-restart"])
async def test_nothing_lost_or_applied_twice_through_a_crash_mid_stream(station, tmp_path, fault):
    cfg, broker = station
    sink = Sink()
    cloud_port, http_port = free_port(), free_port()
    data = json.loads(make_config(tmp_path, broker.port, cloud_url=f"http://127.0.0.1:{cloud_port}",
                                  cloud={"downlink": False, "linger_s": 0.0}).model_dump_json())
    data["gateway"]["http"]["port"] = http_port
    conf = tmp_path / "station.json"
    conf.write_text(json.dumps(data))
    proc = start_gateway(conf)
    l1 = ResendingLocker(broker.port, "l1")
    try:
        async with serve(sink.app, cloud_port):
            await wait_health(http_port)
            l1.connect()
            l1.online()
            l1.birth()
            l1.make(N_EVENTS)
            sender = asyncio.create_task(asyncio.to_thread(
                lambda: [l1.send([s]) or time.sleep(0.002) for s in range(1, N_EVENTS + 1)]))
            await until(lambda: l1.acked() >= 100, timeout=15, what="first eacks")
            if fault == "kill-9":
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                await sender
                proc = start_gateway(conf)
            else:
                broker.restart()
                await sender
            await wait_health(http_port, 30)
            # the locker re-sends whatever is not eacked, as often as it takes
            deadline = time.monotonic() + 30
            while l1.unacked() and time.monotonic() < deadline:
                if l1.rc is not None and not l1.rc.is_failure:
                    l1.send(l1.unacked()[:200])
                await asyncio.sleep(1.0)
            assert not l1.unacked(), "every event eacked"
            want = {("demo-01", "l1", l1.boot, s) for s in range(1, N_EVENTS + 1)}
            await until(lambda: want <= set(sink.applied), timeout=20, what="every event at the cloud")
        evts = [k for k in sink.applied if k[1] == "l1" and k[2] == l1.boot]
        assert len(evts) == len(set(evts)) == N_EVENTS, "each event applied exactly once"
        assert [k[3] for k in evts] == sorted(k[3] for k in evts), "in order"
    finally:
        l1.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


async def test_cloud_down_for_a_day_on_a_simulated_clock(tmp_path, monkeypatch):
    from gateway import stationdb as outbox_mod
    from gateway.uplink import Uplink
    clock = [1_800_000_000.0]
    monkeypatch.setattr(outbox_mod.time, "time", lambda: clock[0])
    counters = Counters()
    box = Outbox(tmp_path / "gw.db", counters, max_rows=2500, tele_max_age_s=12 * 3600)
    await box.open()
    port = free_port()
    cfg = CloudConfig(url=f"http://127.0.0.1:{port}", api_key=API_KEY, poll_s=0.01, backoff_min_s=0.01,
                      backoff_max_s=0.02, timeout_s=1, linger_s=0.0, catchup_per_s=100000)
    up = Uplink("demo-01", cfg, box, counters)
    task = asyncio.create_task(up.run())
    try:
        boot = "5f0c3a9e"
        seq = 0
        # a simulated day with the uplink down: telemetry every minute from two lockers, an event every
        # ten minutes, a courier's parcel every hour
        for minute in range(24 * 60):
            clock[0] += 60
            for lk in ("l1", "l2"):
                await box.append(Record(src=lk, kind="tele", body={"v": 1, "up": minute}, rx=clock[0]))
            if minute % 10 == 0:
                seq += 1
                await box.append(Record(src="l1", kind="evt", boot=boot, seq=seq,
                                        body={"v": 1, "boot": boot, "seq": seq, "type": "door"}, rx=clock[0]))
            if minute % 60 == 0:
                await box.append(Record(src="gw", kind="parcel", body={"ref": f"p-{minute}"}, rx=clock[0]))
            if minute % 120 == 0:
                await asyncio.sleep(0.05)  # let the uplink try and fail
        assert counters["uplink_failures"] >= 5 and not up.up
        assert counters["dropped_events"] == 0
        assert counters["dropped_tele"] > 0, "old and surplus telemetry went first"
        st = await box.stats()
        assert st["depth"] <= 2500
        sink = Sink()
        async with serve(sink.app, port):
            await until(lambda: up.up and counters["uplink_applied"] >= st["depth"], timeout=30, what="drained")
        evts = [k[3] for k in sink.applied if k[1] == "l1" and k[2] == boot]
        assert evts == list(range(1, seq + 1)), "every event of the day, once, in order"
        assert len([k for k in sink.applied if k[1] == "gw"]) == 24
        tele_left = len([k for k in sink.applied if k[1] in ("l1", "l2") and k[2] != boot])
        assert tele_left + counters["dropped_tele"] == 2 * 24 * 60, "every telemetry record sent or counted"
        assert sink.duplicates == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await box.close()


async def test_a_locker_publishing_as_another_is_refused_and_logged(tmp_path, mosquitto_factory, lockers):
    audit = tmp_path / "broker.log"
    cfg = make_config(tmp_path, top={}, http={"port": 0})
    cfg.mqtt.audit_log = audit
    auth = tmp_path / "auth"
    write_auth_files(cfg, auth)
    broker = mosquitto_factory(broker_body(cfg, auth, run_as=RUN_AS), name="audited")
    cfg.mqtt.port = broker.port
    rg = RunningGateway(cfg)
    gw = await rg.start()
    try:
        l1 = lockers(broker.port, "l1").connect()
        l1.online()
        l1.birth()
        await until(lambda: gw.link.lockers["l1"].birth_at, what="l1 birth")
        await asyncio.sleep(0.3)  # the gateway follows the log from where it was at start-up
        fake = {"v": 1, "boot": "00000000", "seq": 1, "ts": 0, "mono": 1, "type": "pickup", "c": 1, "ref": "p-x"}
        l1.pub("evt", fake, topic="jc/v1/demo-01/l2/evt")
        l1.evt("door", c=1, open=True)
        await until(lambda: gw.counters["acl_denied_publish"] == 1, timeout=5, what="refusal seen in the log")
        await until(lambda: l1.acked() == 1, what="l1's own event still taken")
        h = await gw.health()
        (ref,) = h["acl_refusals"]
        assert ref["locker"] == "l1" and ref["topic"] == "jc/v1/demo-01/l2/evt"
        assert gw.link.lockers["l2"].last_seen is None, "nothing reached the gateway as l2"
        assert [r.src for r in await rg.outbox_rows("evt")] == ["l1"]
    finally:
        await rg.close()
