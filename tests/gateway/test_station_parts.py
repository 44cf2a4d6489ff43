"""Smaller station parts: barcode scanner over a pty, consent cache, gateway telemetry, paced catch-up,
broker TLS and audit lines, PIN hashes and outbound fees."""

import asyncio
import os
import tty
from pathlib import Path

import pytest
from fastapi import FastAPI, HTTPException

from gateway.broker import write_broker_config
from gateway.broker_audit import parse_line
from gateway.config import CloudConfig, FeeRule, TerminalConfig
from gateway.consent import CloudConsent
from gateway.counters import Counters
from gateway.errors import ConfigError
from gateway.stationdb import Outbox, Record
from gateway.scanner_serial import Scanner, parse_line as parse_scan
from gateway.terminal import fee_cents, hash_pin, verify_pin
from gwkit import free_port, make_config, until
from test_uplink import API_KEY, Sink, serve


async def test_scanner_reads_waybills_line_by_line_and_drops_junk():
    master, slave = os.openpty()
    tty.setraw(slave)
    counters = Counters()
    sc = Scanner(os.ttyname(slave), counters)
    task = asyncio.create_task(sc.run())
    try:
        # pyserial flushes the input when it opens the port: scan only once the gateway listens
        await until(lambda: sc._port is not None, what="scanner port open")
        os.write(master, b"SF1234567890\r\n")
        os.write(master, b"\x1b[junk!!\r\n")
        os.write(master, b"YT99")  # a line that arrives in pieces
        await asyncio.sleep(0.1)
        os.write(master, b"88776655\n")
        await until(lambda: sc.n == 2, what="two scans")
        assert [s["waybill"] for s in sc.since(0)] == ["SF1234567890", "YT9988776655"]
        assert sc.since(1) == [{"n": 2, "waybill": "YT9988776655"}]
        assert counters["scans_rejected"] == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await sc.close()
        os.close(master)
        os.close(slave)
    assert parse_scan(b"JD0001112223\r") == "JD0001112223" and parse_scan(b"a b") is None


async def test_consent_is_cached_for_when_the_cloud_is_down(tmp_path):
    app = FastAPI()
    answers = {"13800000001": "granted", "13800000002": "refused"}

    @app.get("/api/v1/gateway/recipients/{phone}/consent")
    async def consent(phone: str):
        if phone not in answers:
            raise HTTPException(500)
        return {"phone": phone, "consent": answers[phone], "locker_allowed": answers[phone] == "granted",
                "door_help": phone.endswith("2"), "at": None}
    box = Outbox(tmp_path / "gw.db")
    counters = Counters()
    port = free_port()
    cfg = CloudConfig(url=f"http://127.0.0.1:{port}", api_key=API_KEY)
    cc = CloudConsent(cfg, box, counters, cache_s=3600, timeout_s=1)
    await box.open()
    try:
        async with serve(app, port):
            got = await cc.check("13800000001")
            assert (got.consent, got.source) == ("granted", "cloud")
            got = await cc.check("13800000002")
            assert (got.consent, got.door_help) == ("refused", True)
        # the cloud is gone: the cached answers stand, a phone never asked is unknown
        assert (await cc.check("13800000001")).source == "cache"
        assert (await cc.check("13800000002")).consent == "refused"
        assert (await cc.check("13800000009")).consent == "unknown"
        cc.cache_s = 0.0001
        await asyncio.sleep(0.01)
        assert (await cc.check("13800000001")).consent == "unknown", "a stale answer is not used"
        assert counters["consent_cloud_failures"] == 4
    finally:
        await box.close()


async def test_gateway_health_goes_up_as_gw_tele(station, lockers, tmp_path):
    from gwkit import RunningGateway
    cfg0, broker = station
    rg = RunningGateway(make_config(tmp_path, broker.port, tele_s=0.2))
    gw = await rg.start()
    try:
        l1 = lockers(broker.port, "l1").connect()
        l1.online()
        l1.birth()
        await until(lambda: gw.link.lockers["l1"].birth_at)
        rows = []

        async def tele():
            rows[:] = await rg.outbox_rows("gw_tele")
            return [r for r in rows if r.body["lockers_online"] == 1]
        for _ in range(100):
            if await tele():
                break
            await asyncio.sleep(0.05)
        body = (await tele())[-1].body
        assert body["lockers_total"] == 2 and body["uplink"] == "down" and body["broker"] == "up"
        assert body["outbox_depth"] >= 1 and body["oldest_unsent_s"] >= 0
        assert "cpu_temp" in body and "dropped_events" in body["counters"]
        assert all(r.src == "gw" and r.boot == gw.outbox.epoch for r in rows)
    finally:
        await rg.close()


async def test_catch_up_after_an_outage_is_paced(tmp_path):
    from gateway.uplink import Uplink
    box = Outbox(tmp_path / "gw.db")
    await box.open()
    counters = Counters()
    port = free_port()
    cfg = CloudConfig(url=f"http://127.0.0.1:{port}", api_key=API_KEY, poll_s=0.02, backoff_min_s=0.02,
                      backoff_max_s=0.05, batch_max=100, catchup_per_s=1000, linger_s=0)
    for s in range(1, 501):
        await box.append(Record(src="l1", kind="evt", boot="5f0c3a9e", seq=s, body={"v": 1, "seq": s}))
    up = Uplink("demo-01", cfg, box, counters)
    task = asyncio.create_task(up.run())
    try:
        sink = Sink()
        async with serve(sink.app, port):
            await until(lambda: counters["uplink_applied"] == 500, timeout=20, what="drained")
        assert sink.requests == 5 and counters["uplink_paced"] >= 4, "each full batch waited its turn"
        assert [k[3] for k in sink.applied] == list(range(1, 501))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await box.close()


def test_broker_config_with_tls_and_audit(tmp_path):
    cfg = make_config(tmp_path)
    cfg.mqtt.audit_log = tmp_path / "run" / "mosquitto.log"
    from gateway.config import TlsConfig
    cfg.mqtt.tls = TlsConfig(cafile=tmp_path / "ca.crt", certfile=tmp_path / "s.crt", keyfile=tmp_path / "s.key")
    text = write_broker_config(cfg, tmp_path / "b", run_as=None).read_text()
    assert "listener 1883 127.0.0.1" in text, "the plain listener is the gateway's own, on loopback"
    assert "listener 8883\n" in text and f"cafile {tmp_path / 'ca.crt'}" in text
    assert f"log_dest file {cfg.mqtt.audit_log}" in text and "log_type debug" in text
    assert "max_queued_messages 200000" in text and "autosave_interval 30" in text
    r = parse_line("1795903615: Denied PUBLISH from demo-01-l1 (d0, q1, r0, m1, 'jc/v1/demo-01/l2/evt', ... (2 bytes))")
    assert (r.what, r.client, r.topic) == ("publish", "demo-01-l1", "jc/v1/demo-01/l2/evt")
    assert parse_line("1795903615: Received PUBLISH from demo-01-l1 (d0, q1, r0, m1, 'x', ... (2 bytes))") is None


def test_pins_and_fees():
    h = hash_pin("246810", iterations=1000)
    assert verify_pin("246810", h) and not verify_pin("246811", h) and "246810" not in h
    cfg = TerminalConfig(fees={"顺丰": FeeRule(first_kg_cents=1200, extra_kg_cents=500)})
    assert fee_cents(cfg, "顺丰", 1000, "") == (1200, "1 kg: 1200 + 0 x 500")
    assert fee_cents(cfg, "顺丰", 1001, "")[0] == 1700
    assert fee_cents(cfg, "中通", 300, "蜜桔")[0] == 800, "the default rule, no discount configured"
    with pytest.raises(ConfigError, match="pin_hash"):
        make_config(Path("/tmp"), top={"terminal": {"users": [
            {"id": "c1", "name": "x", "role": "courier", "pin_hash": "1234"}]}})
