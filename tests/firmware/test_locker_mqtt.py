"""The real firmware (MicroPython) on simulated hardware, talking to a real Mosquitto with passwords and ACLs."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "firmware"))

from gateway_double import Gateway  # noqa: E402
from refhash import code_h  # noqa: E402
from simulator.locker import SimError, SimLocker, make_locker_config  # noqa: E402

STATION, LOCKER = "lz-fengjia-01", "l1"
SECRET = "9fd687cc5e1918da74cb849b2370293069abc311a49d4f4b7772006b898ad859"
LOCKER_PW, GW_PW = "l1-pass-Zq8", "gw-pass-Xr4"
BASE = f"jc/v1/{STATION}/{LOCKER}"


@pytest.fixture
def broker(mosquitto_factory, tmp_path):
    """Mosquitto with the production auth layout: a password per locker and an ACL per topic."""
    auth = tmp_path / "auth"
    auth.mkdir()
    pw = auth / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), LOCKER, LOCKER_PW], check=True, capture_output=True)
    subprocess.run(["mosquitto_passwd", "-b", str(pw), "gateway", GW_PW], check=True, capture_output=True)
    acl = auth / "acl"
    acl.write_text(
        "user gateway\ntopic readwrite jc/v1/#\n"
        f"user {LOCKER}\n"
        + "".join(f"topic write {BASE}/{k}\n" for k in ("birth", "status", "evt", "tele", "ack", "fwreq"))
        + "".join(f"topic read {BASE}/{k}\n" for k in ("cmd", "eack"))
    )
    return mosquitto_factory(
        f"user root\npersistence true\nset_tcp_nodelay true\nallow_anonymous false\npassword_file {pw}\nacl_file {acl}\n")


def _config(broker, **extra):
    cfg = make_locker_config(STATION, LOCKER, mqtt_host=broker.host, mqtt_port=broker.port,
                             password=LOCKER_PW, secret=SECRET)
    cfg["mqtt"]["backoff_max_ms"] = 1000
    cfg.update(extra)
    return cfg


@pytest.fixture
def gw(broker):
    g = Gateway(broker.host, broker.port, STATION, LOCKER, user="gateway", password=GW_PW)
    yield g
    g.close()
    assert g.contract_violations() == []  # every birth, status, evt, tele and ack the locker sent is valid


@pytest.fixture
def locker(broker, tmp_path):
    sim = SimLocker(tmp_path / "locker", _config(broker))
    sim.start()
    yield sim
    sim.stop()


def comp(state: dict, c: int) -> dict:
    return next(x for x in state["comps"] if x["n"] == c)


def door_open(sim, c):
    sim.wait_for(lambda s: comp(s, c)["door"] == "open")


def deposit(gw, sim, c, ref, cid):
    assert gw.cmd(cid, "deposit", c=c, ref=ref) == {"v": 1, "id": cid, "ok": True}
    door_open(sim, c)
    sim.set_occupied(c, True)
    sim.close_door(c)
    return gw.evt("deposit", c=c, ref=ref)


def test_birth_and_retained_status_then_last_will(gw, locker, broker):
    birth = gw.wait("birth")
    st = locker.state()
    assert birth["boot"] == st["boot"] and birth["seq"] == 0 and birth["fw"]
    assert [c["n"] for c in birth["comps"]] == list(range(1, 13))
    assert {c["size"] for c in birth["comps"]} == {"S", "M", "L"}
    assert all(c["st"] == "empty" and c["door"] == "closed" and c["occ"] is False for c in birth["comps"])
    # a gateway connecting later still learns the locker is online (retained)
    late = Gateway(broker.host, broker.port, STATION, LOCKER, user="gateway", password=GW_PW, client_id="late",
                   clean_session=True)
    try:
        o = late.wait("status")
        assert o == {"v": 1, "state": "online", "boot": st["boot"]}
        assert late.msgs[0].retain
    finally:
        late.close()
    locker.kill()  # power cut: the broker publishes the last will
    assert gw.wait("status", lambda o: o["state"] == "lost", timeout=60) == {"v": 1, "state": "lost"}


def test_deposit_then_pickup_with_code(gw, locker):
    gw.wait("birth")
    dep = deposit(gw, locker, 2, "p-7f3a1c", "c-1")
    assert dep["boot"] == locker.state()["boot"]
    assert comp(locker.state(), 2)["st"] == "occupied"
    h = code_h(SECRET, "424242")
    assert gw.cmd("c-2", "code_put", h=h, cs=[2], exp=3600)["ok"] is True
    assert locker.state()["vault"] == 1
    locker.press("99*424242#")  # a slip, cleared with *, then the code
    door_open(locker, 2)
    assert comp(locker.state(), 2)["st"] == "pickup"
    gw.evt("code_ok", cs=[2])
    locker.set_occupied(2, False)
    locker.close_door(2)
    gw.evt("pickup", c=2, ref="p-7f3a1c")
    s = locker.wait_for(lambda s: comp(s, 2)["st"] == "empty")
    assert s["vault"] == 0  # single use: the code is gone once its compartment is empty
    start = gw.mark()
    locker.press("424242#")
    assert gw.evt("code_bad", start=start)["fails"] == 1
    # every event sent so far, in order, with no gap
    evts = gw.of("evt")
    seqs = sorted({e["seq"] for e in evts})
    assert seqs == list(range(1, max(seqs) + 1))
    # eack removes them from flash
    assert locker.state()["outbox"] > 0
    gw.eack(s["boot"], max(seqs))
    locker.wait_for(lambda s: s["outbox"] == 0)


def test_fake_sign_off_is_voided(gw, locker):
    gw.wait("birth")
    assert gw.cmd("c-1", "deposit", c=5, ref="p-5")["ok"]
    door_open(locker, 5)
    locker.close_door(5)  # courier closed the door without putting anything in
    gw.evt("deposit_void", c=5, ref="p-5")
    gw.evt("alarm", kind="occupancy_mismatch", c=5)
    assert comp(locker.state(), 5)["st"] == "empty"


def test_five_wrong_codes_lock_the_keypad(gw, locker):
    gw.wait("birth")
    gw.cmd("c-1", "code_put", h=code_h(SECRET, "111111"), cs=[1], exp=600)
    for i in range(5):
        locker.press(f"99999{i}#")
    lock = gw.evt("lockout")
    assert lock["secs"] == 30 and lock["count"] == 1
    gw.evt("alarm", kind="lockout")
    bad = [e["fails"] for e in gw.of("evt") if e["type"] == "code_bad"]
    assert bad == [1, 2, 3, 4, 5]
    s = locker.state()
    assert s["lock_left"] > 0 and "30" in s["display"]
    # even the right code does nothing while locked out, and is not counted
    locker.press("111111#")
    time.sleep(0.5)
    s = locker.state()
    assert s["fails"] == 5 and s["coils"] == [] and s["energised"] is None
    assert not [e for e in gw.of("evt") if e["type"] == "code_ok"]


def test_replayed_command_is_answered_not_executed(gw, locker):
    gw.wait("birth")
    a1 = gw.cmd("c-77", "deposit", c=3, ref="p-3")
    door_open(locker, 3)
    a2 = gw.cmd("c-77", "deposit", c=3, ref="p-3")
    assert a1 == a2 == {"v": 1, "id": "c-77", "ok": True}
    assert gw.cmd("c-78", "deposit", c=3, ref="p-3") == {"v": 1, "id": "c-78", "ok": False, "err": "busy"}
    time.sleep(0.3)
    locks = [e for e in locker.ledger() if e["type"] == "lock"]
    assert len(locks) == 1
    assert locker.state()["counters"]["dup_cmds"] == 1


def test_bad_commands_are_counted_and_harmless(gw, locker):
    gw.wait("birth")
    gw.publish("cmd", "{not json")
    gw.publish("cmd", json.dumps({"v": 1, "id": "c-1", "op": "open", "c": 3, "by": "x", "why": "y" * 1100}))
    gw.publish("cmd", b"\xff\xfe\x00")
    gw.publish("cmd", "z" * 5000)  # over the firmware's packet limit: dropped before parsing
    assert gw.cmd("c-2", "explode") == {"v": 1, "id": "c-2", "ok": False, "err": "unknown_op"}
    assert gw.cmd("c-3", "deposit", c=99, ref="p-1")["err"] == "bad_request"
    assert gw.cmd("c-4", "deposit", c=20, ref="p-1") == {"v": 1, "id": "c-4", "ok": False,
                                                         "err": "no_such_compartment"}
    s = locker.state()
    assert s["counters"]["rejected_payloads"] == 5
    assert s["counters"]["oversize"] == 1
    assert s["counters"]["connects"] == 1  # still the first session: nothing crashed
    assert all(c["st"] == "empty" for c in s["comps"]) and s["seq"] == 0
    start = gw.mark()
    assert gw.cmd("c-5", "rebirth")["ok"]
    assert gw.wait("birth", start=start)["boot"] == s["boot"]


def test_unacked_events_survive_power_loss(gw, locker):
    gw.wait("birth")
    deposit(gw, locker, 4, "p-44", "c-1")
    before = locker.state()
    old_boot, evts = before["boot"], before["outbox_events"]
    assert len(evts) >= 4 and all(b == old_boot for b, _ in evts)
    locker.kill()  # power lost before the gateway acknowledged anything
    start = gw.mark()
    locker.start()
    birth = gw.wait("birth", start=start, timeout=20)
    assert birth["boot"] != old_boot and birth["seq"] == 0 and birth["outbox"] == len(evts)
    assert comp(birth, 4)["st"] == "occupied" and comp(birth, 4)["ref"] == "p-44"
    resent = gw.evt("deposit", start=start, c=4, ref="p-44")
    assert resent["boot"] == old_boot  # original identity kept, so the gateway can deduplicate
    orig = [e for e in gw.of("evt")[: len(evts)]]
    gw.wait("evt", lambda o: (o["boot"], o["seq"]) == tuple(evts[-1]), start=start)
    again = [m.json() for m in gw.msgs[start:] if m.kind == "evt"]
    assert [(e["boot"], e["seq"]) for e in again[: len(evts)]] == [tuple(x) for x in evts]
    assert {json.dumps(e, sort_keys=True) for e in orig} <= {json.dumps(e, sort_keys=True) for e in again}
    gw.eack(old_boot, evts[-1][1])
    locker.wait_for(lambda s: s["outbox"] == 0)
    locker.kill()
    locker.start()
    assert locker.state()["outbox"] == 0


def test_broker_restart_reconnects_with_birth(gw, locker, broker):
    gw.wait("birth")
    start = gw.mark()
    broker.restart()
    birth = gw.wait("birth", start=start, timeout=30)
    assert birth["boot"] == locker.state()["boot"]
    gw.wait("status", lambda o: o["state"] == "online", start=start)
    assert gw.cmd("c-9", "rebirth", timeout=15)["ok"]


def test_pickup_works_without_broker(gw, locker, broker):
    gw.wait("birth")
    deposit(gw, locker, 7, "p-77", "c-1")
    gw.cmd("c-2", "code_put", h=code_h(SECRET, "123456"), cs=[7], exp=3600)
    s = locker.state()
    gw.eack(s["boot"], s["seq"])
    locker.wait_for(lambda s: s["outbox"] == 0)
    broker.stop()
    locker.wait_for(lambda s: not s["connected"])
    locker.press("123456#")
    door_open(locker, 7)
    locker.set_occupied(7, False)
    locker.close_door(7)
    s = locker.wait_for(lambda s: comp(s, 7)["st"] == "empty")
    assert s["outbox"] >= 4  # code_ok, lock, door open/closed, pickup all kept in flash
    start = gw.mark()
    broker.start()
    gw.evt("pickup", start=start, c=7, ref="p-77", timeout=30)


def test_jam_forced_open_and_telemetry(broker, gw, tmp_path):
    sim = SimLocker(tmp_path / "locker", _config(broker, tele_s=1))
    sim.start()
    try:
        gw.wait("birth")
        sim.jam(9, True)
        assert gw.cmd("c-1", "deposit", c=9, ref="p-9")["ok"]
        gw.evt("alarm", kind="lock_jam", c=9, timeout=10)
        assert comp(sim.state(), 9)["st"] == "fault"
        sim.open_door(10)  # somebody pried a locked door
        gw.evt("alarm", kind="forced_open", c=10)
        t = gw.wait("tele", timeout=10)
        assert t["boot"] == sim.state()["boot"] and t["outbox"] >= 0 and "heap" in t
        for k in ("up", "heap", "heap_max", "rssi", "vin", "temp", "reset", "outbox", "drops", "drops_evt",
                  "drops_tele", "errs", "lockouts", "wdt_starved", "fw"):
            assert k in t, k
        assert t["reset"] == "power" and t["fw"] == "0.1.0" and len(json.dumps(t)) <= 1024
        st = sim.state()
        assert st["max_coils"] == 1
    finally:
        sim.stop()


def test_bad_config_stops_at_start(tmp_path):
    cfg = make_locker_config(STATION, LOCKER, mqtt_host="127.0.0.1", mqtt_port=1, password="x", secret="abc")
    sim = SimLocker(tmp_path / "bad", cfg)
    with pytest.raises(SimError):
        sim.start()
    assert "secret" in sim.log_text()


def test_flash_loss_keeps_the_ledger(gw, locker):
    """The simulator's ledger lives outside flash, so a wiped flash still shows what was produced."""
    gw.wait("birth")
    deposit(gw, locker, 1, "p-1", "c-1")
    produced = [(e["boot"], e["seq"]) for e in locker.ledger()]
    assert len(produced) >= 4
    locker.kill()
    for p in (locker.flash / "outbox").iterdir():
        p.unlink()
    (locker.flash / "comps.bin").unlink()
    start = gw.mark()
    locker.start()
    birth = gw.wait("birth", start=start)
    assert birth["outbox"] == 0 and comp(birth, 1)["st"] == "empty"
    assert [(e["boot"], e["seq"]) for e in locker.ledger()][: len(produced)] == produced


def test_keepalive_pings_hold_an_idle_session(broker, gw, tmp_path):
    """With a 2 s keepalive the broker drops a silent client after 3 s; PINGREQs keep ours connected."""
    cfg = _config(broker)
    cfg["mqtt"]["keepalive"] = 2
    sim = SimLocker(tmp_path / "locker", cfg)
    sim.start()
    try:
        gw.wait("birth")
        time.sleep(5)
        s = sim.state()
        assert s["connected"] and s["counters"]["connects"] == 1
        assert len(gw.of("birth")) == 1
    finally:
        sim.stop()


def test_offline_telemetry_is_kept_then_sent(broker, gw, tmp_path):
    sim = SimLocker(tmp_path / "locker", _config(broker, tele_s=1))
    sim.start()
    try:
        gw.wait("tele")
        broker.stop()
        sim.wait_for(lambda s: s["counters"]["tele_stored"] >= 2, timeout=10)
        stored_at = sim.state()
        start = gw.mark()
        broker.start()
        gw.wait("birth", start=start, timeout=20)
        # the readings taken while the broker was down are kept in flash and sent after the reconnect
        first = gw.wait("tele", start=start, timeout=10)
        assert first["boot"] == stored_at["boot"]
        s = sim.wait_for(lambda s: s["counters"]["tele_sent"] >= 1 + stored_at["counters"]["tele_stored"])
        assert s["outbox"] == 0 and s["counters"]["drops_tele"] == 0
    finally:
        sim.stop()


def test_maintenance_commands(gw, locker):
    gw.wait("birth")
    assert gw.cmd("c-1", "time", ts=1764355200)["ok"]
    assert gw.cmd("c-2", "disable", c=6)["ok"]
    st = gw.evt("state", c=6, st="disabled")
    assert 1764355200 <= st["ts"] < 1764355200 + 60  # the wall clock now runs from the time command
    assert gw.cmd("c-3", "deposit", c=6, ref="p-6")["err"] == "busy"
    assert gw.cmd("c-4", "enable", c=6)["ok"]
    gw.evt("state", c=6, st="empty")
    assert gw.cmd("c-5", "open", c=6, by="ops-li", why="door stuck")["ok"]
    gw.evt("lock", c=6, why="remote")
    door_open(locker, 6)
    locker.close_door(6)
    gw.evt("door", c=6, open=False)
    time.sleep(0.6)
    kinds = [e.get("kind") for e in gw.of("evt") if e["type"] == "alarm"]
    assert "forced_open" not in kinds  # an opening the controller asked for is not an intrusion
    assert comp(locker.state(), 6)["st"] == "empty"


def test_courier_pin_opens_the_assigned_compartment(gw, locker):
    import hashlib
    import hmac
    gw.wait("birth")
    h = hmac.new(bytes.fromhex(SECRET), b"courier:87654321", hashlib.sha256).hexdigest()
    assert gw.cmd("c-1", "courier_put", h=h, deps=[{"c": 8, "ref": "p-8"}], exp=3600)["ok"]
    assert locker.state()["vault"] == 1
    locker.press("87654321#")
    assert gw.evt("courier")["cs"] == [8]
    gw.evt("lock", c=8, why="courier")
    door_open(locker, 8)
    assert comp(locker.state(), 8)["st"] == "deposit"
    locker.set_occupied(8, True)
    locker.close_door(8)
    gw.evt("deposit", c=8, ref="p-8")
    s = locker.wait_for(lambda s: comp(s, 8)["st"] == "occupied")
    assert s["vault"] == 0  # single use


def test_gateway_down_during_a_pickup(broker, gw, locker):
    """The gateway process is gone (the broker is up): the pickup works and its events wait for the gateway."""
    gw.wait("birth")
    deposit(gw, locker, 7, "p-77", "c-1")
    gw.cmd("c-2", "code_put", h=code_h(SECRET, "123456"), cs=[7], exp=3600)
    s = locker.state()
    gw.eack(s["boot"], s["seq"])
    locker.wait_for(lambda s: s["outbox"] == 0)
    gw.close()
    locker.press("123456#")
    door_open(locker, 7)
    locker.set_occupied(7, False)
    locker.close_door(7)
    s = locker.wait_for(lambda s: comp(s, 7)["st"] == "empty")
    assert s["outbox"] >= 4 and s["connected"]
    back = Gateway(broker.host, broker.port, STATION, LOCKER, user="gateway", password=GW_PW)
    try:
        got = back.evt("pickup", c=7, ref="p-77", timeout=30)
        back.eack(got["boot"], s["seq"])
        locker.wait_for(lambda s: s["outbox"] == 0)
        assert back.contract_violations() == []
    finally:
        back.close()


def test_wifi_loss_keeps_the_keypad_working_and_reconnects(gw, locker):
    gw.wait("birth")
    deposit(gw, locker, 2, "p-2", "c-1")
    gw.cmd("c-2", "code_put", h=code_h(SECRET, "222222"), cs=[2], exp=3600)
    locker.set_wifi(False)
    locker.wait_for(lambda s: not s["connected"])
    locker.press("222222#")
    door_open(locker, 2)
    locker.set_occupied(2, False)
    locker.close_door(2)
    locker.wait_for(lambda s: comp(s, 2)["st"] == "empty")
    time.sleep(1.5)
    s = locker.state()
    assert s["counters"]["connects"] == 1 and s["feeds"] > 0 and s["counters"]["wdt_starved"] == 0
    start = gw.mark()
    locker.set_wifi(True)
    gw.wait("birth", start=start, timeout=20)
    gw.evt("pickup", c=2, ref="p-2", start=start, timeout=20)


def test_repeated_failed_boots_start_safe_mode(broker, gw, tmp_path):
    sim = SimLocker(tmp_path / "locker", _config(broker, healthy_s=2))
    # three boots in a row that never got healthy (as a crash loop leaves the boot record)
    (sim.flash / "boot.json").write_text(json.dumps({"set": "", "ver": "0.1.0", "fails": 3}))
    sim.start()
    try:
        birth = gw.wait("birth")
        assert birth["safe"] is True
        assert gw.cmd("c-1", "deposit", c=1, ref="p-1") == {"v": 1, "id": "c-1", "ok": False, "err": "busy"}
        assert gw.cmd("c-2", "time", ts=1764355200)["ok"]
        # the keypad still works in safe mode: a wrong code is checked and counted
        sim.press("123456#")
        assert gw.evt("code_bad")["fails"] == 1
        # once the loops, keypad and flash have been healthy for healthy_s it leaves safe mode in place
        start = gw.mark()
        full = gw.wait("birth", lambda o: "safe" not in o, start=start, timeout=20)
        assert full["boot"] == birth["boot"] and sim.reboots == 0
        assert json.loads((sim.flash / "boot.json").read_text())["fails"] == 0
        assert gw.cmd("c-3", "deposit", c=1, ref="p-1")["ok"]
    finally:
        sim.stop()


def test_power_cuts_with_the_broker_down_then_a_code_opens(broker, gw, tmp_path):
    sim = SimLocker(tmp_path / "locker", _config(broker, healthy_s=600))
    sim.start()
    try:
        gw.wait("birth")
        deposit(gw, sim, 2, "p-2", "c-1")
        assert gw.cmd("c-2", "code_put", h=code_h(SECRET, "424242"), cs=[2], exp=3600)["ok"]
        broker.stop()  # the station's broker is down from here on
        # the power is cut again and again, each time before the boot could be judged good
        for _ in range(3):
            sim.kill()
            sim.start()
            sim.set_occupied(2, True)  # the parcel is still inside
            sim.wait_for(lambda s: comp(s, 2)["occ"] is True)
        s = sim.state()
        assert s["safe"] is True and not s["connected"]
        assert json.loads((sim.flash / "boot.json").read_text())["fails"] == 4
        assert comp(s, 2)["st"] == "occupied"
        sim.press("424242#")
        door_open(sim, 2)
        sim.set_occupied(2, False)
        sim.close_door(2)
        s = sim.wait_for(lambda s: comp(s, 2)["st"] == "empty")
        assert s["vault"] == 0
        assert [(e["c"], e["ref"]) for e in sim.ledger() if e["type"] == "pickup"] == [(2, "p-2")]
    finally:
        sim.stop()
