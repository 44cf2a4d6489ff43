"""Firmware update end to end: a paho-mqtt 'gateway' serving gateway/fwserve.py, the real firmware on MicroPython."""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway.fwserve import FirmwareSet, FwServe, FwServeError  # noqa: E402
from simulator.locker import FIRMWARE, SimLocker  # noqa: E402
from test_locker_mqtt import SECRET, _config, broker, comp, deposit, gw  # noqa: E402,F401

OTHER_SECRET = "11" * 32


def make_set(tmp_path: Path, ver: str, app_tail: str = "") -> FirmwareSet:
    """A copy of this firmware's app files as version `ver` (app_tail appended to jc/app.py)."""
    root = tmp_path / f"set-{ver}"
    shutil.copytree(FIRMWARE / "jc", root / "jc", ignore=shutil.ignore_patterns("__pycache__"))
    const = root / "jc" / "const.py"
    text = const.read_text()
    assert 'FW = "0.1.0"' in text
    const.write_text(text.replace('FW = "0.1.0"', f'FW = "{ver}"'))
    if app_tail:
        with (root / "jc" / "app.py").open("a") as f:
            f.write(app_tail)
    return FirmwareSet.load(root, ver)


def serve(gw, srv: FwServe):
    """Answer every fwreq on the gateway's network thread, as the gateway's locker link will."""
    def hook(client, msg):
        if msg.kind != "fwreq":
            return
        try:
            client.publish(f"{gw.base}/cmd", srv.answer(msg.payload), qos=1)
        except FwServeError:
            pass  # counted in srv.refused; the locker asks again
    gw.hooks.append(hook)


@pytest.fixture
def locker(broker, tmp_path):
    sim = SimLocker(tmp_path / "locker", _config(broker, healthy_s=1, selftest_s=20))
    sim.start()
    yield sim
    sim.stop()


def fw_events(gw) -> list[tuple[str, str]]:
    return [(e["ver"], e["result"]) for e in gw.of("evt") if e["type"] == "fw"]


def test_update_to_new_set_passes_self_test(gw, locker, tmp_path):
    birth = gw.wait("birth")
    assert birth["fw"] == "0.1.0"
    deposit(gw, locker, 3, "p-3", "c-1")  # a parcel inside must survive the update
    fwset = make_set(tmp_path, "0.2.0")
    srv = FwServe(fwset)
    offer = srv.offer("u-1", SECRET)
    assert len(offer) <= 1024
    serve(gw, srv)
    start = gw.mark()
    gw.publish("cmd", offer)
    assert gw.wait("ack", lambda o: o["id"] == "u-1", start=start) == {"v": 1, "id": "u-1", "ok": True}
    gw.evt("fw", ver="0.2.0", result="staged", start=start, timeout=60)
    new_birth = gw.wait("birth", lambda o: o["fw"] == "0.2.0", start=start, timeout=30)
    assert new_birth["boot"] != birth["boot"]
    assert comp(new_birth, 3)["st"] == "occupied" and comp(new_birth, 3)["ref"] == "p-3"
    gw.evt("fw", ver="0.2.0", result="ok", start=start, timeout=30)
    s = locker.state()
    assert s["fw"] == "0.2.0" and s["reset"] == "soft" and locker.reboots == 1
    assert srv.served_bytes >= fwset.total_bytes()
    staged = locker.flash / "app1"
    assert {p.relative_to(staged).as_posix() for p in staged.rglob("*.py")} == set(fwset.files)
    for path, f in fwset.files.items():
        assert (staged / path).read_bytes() == f.data
    # the new set runs the locker: a pickup code still opens the door
    assert gw.cmd("c-9", "deposit", c=4, ref="p-4")["ok"]


def test_set_that_fails_to_start_is_rolled_back(gw, locker, tmp_path):
    gw.wait("birth")
    srv = FwServe(make_set(tmp_path, "0.3.0", app_tail='\nraise ImportError("broken build")\n'))
    serve(gw, srv)
    start = gw.mark()
    gw.publish("cmd", srv.offer("u-1", SECRET))
    gw.evt("fw", ver="0.3.0", result="staged", start=start, timeout=60)
    gw.evt("fw", ver="0.3.0", result="rolled_back", start=start, timeout=30)
    birth = gw.wait("birth", lambda o: o["fw"] == "0.1.0", start=start)
    assert locker.reboots == 2  # into the new set, then back
    assert locker.state()["fw"] == "0.1.0"
    assert not (locker.flash / "app1").exists()  # the bad set is deleted, the factory set kept
    assert ("0.3.0", "ok") not in fw_events(gw)
    assert "broken build" in locker.log_text()
    assert birth["comps"]


def test_offer_with_wrong_mac_is_refused(gw, locker, tmp_path):
    gw.wait("birth")
    srv = FwServe(make_set(tmp_path, "0.4.0"))
    serve(gw, srv)
    start = gw.mark()
    gw.publish("cmd", srv.offer("u-1", OTHER_SECRET))  # signed for another device
    gw.evt("fw", ver="0.4.0", result="bad_mac", start=start)
    time.sleep(1)
    # only the manifest was fetched (the file list is too long to go inline); no file was asked for
    manifest_chunks = -(-len(srv.set.manifest()) // 512)
    assert srv.served_chunks == manifest_chunks and locker.reboots == 0
    reqs = [m.json()["file"] for m in gw.msgs[start:] if m.kind == "fwreq"]
    assert set(reqs) == {"@manifest"}
    assert not (locker.flash / "fw.stage").exists() and not (locker.flash / "app1").exists()


def test_tampered_file_fails_its_hash(gw, locker, tmp_path):
    gw.wait("birth")
    good = make_set(tmp_path, "0.5.0")
    files = {p: f.data for p, f in good.files.items()}
    files["jc/vault.py"] = files["jc/vault.py"].replace(b"MAX_ENTRIES = 64", b"MAX_ENTRIES = 99")
    real, evil = FwServe(good), FwServe(FirmwareSet("0.5.0", files))

    def hook(client, msg):  # the offer and manifest come from the real set, one file from a tampered copy
        if msg.kind == "fwreq":
            srv = real if msg.json()["file"] == "@manifest" else evil
            client.publish(f"{gw.base}/cmd", srv.answer(msg.payload), qos=1)
    gw.hooks.append(hook)
    start = gw.mark()
    gw.publish("cmd", real.offer("u-1", SECRET))
    gw.evt("fw", ver="0.5.0", result="bad_hash", start=start, timeout=60)
    time.sleep(0.5)
    assert locker.reboots == 0 and locker.state()["fw"] == "0.1.0"
    assert not (locker.flash / "app1").exists()
