"""Firmware roll-out from a cloud command to the real firmware (MicroPython), through the real gateway and broker."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import uvicorn
from fastapi import Response

from gateway.fwrollout import RolloutError, pack_set, unpack_set
from gwkit import OBSERVER, SECRET_L1, SECRET_L2, STATION, RunningGateway, free_port, make_config, outbox_rows, until
from test_downlink import CommandQueue

pytestmark = pytest.mark.micropython

sim_mod = pytest.importorskip("simulator.locker")
COMPS = {"l1": [{"n": 1, "size": "S"}, {"n": 2, "size": "M"}, {"n": 3, "size": "L"}], "l2": [{"n": 1, "size": "M"}]}
SECRETS = {"l1": SECRET_L1, "l2": SECRET_L2}


def app_folder(tmp_path: Path, ver: str, app_tail: str = "") -> Path:
    """This firmware's app files as version `ver` (app_tail appended to jc/app.py)."""
    root = tmp_path / f"set-{ver}"
    shutil.copytree(sim_mod.FIRMWARE / "jc", root / "jc", ignore=shutil.ignore_patterns("__pycache__"))
    const = root / "jc" / "const.py"
    text = const.read_text()
    assert 'FW = "0.1.0"' in text
    const.write_text(text.replace('FW = "0.1.0"', f'FW = "{ver}"'))
    if app_tail:
        with (root / "jc" / "app.py").open("a") as f:
            f.write(app_tail)
    return root


class Observer:
    """Watches the station's commands and events as they cross the broker (a read-only user of its own)."""

    def __init__(self, port: int) -> None:
        self.seen: list[tuple[float, str, str, dict]] = []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=OBSERVER[0])
        self.c.username_pw_set(*OBSERVER)
        self.c.on_message = lambda c, u, m: self.seen.append(
            (time.monotonic(), m.topic.split("/")[3], m.topic.split("/")[4], json.loads(m.payload)))
        self.c.connect("127.0.0.1", port)
        self.c.subscribe([(f"jc/v1/{STATION}/+/cmd", 1), (f"jc/v1/{STATION}/+/evt", 1)])
        self.c.loop_start()

    def cmds(self, locker: str, op: str) -> list[tuple[float, dict]]:
        return [(t, b) for t, lk, k, b in self.seen if lk == locker and k == "cmd" and b["op"] == op]

    def fw(self, locker: str) -> list[tuple[float, str, str]]:
        return [(t, b["ver"], b["result"]) for t, lk, k, b in self.seen
                if lk == locker and k == "evt" and b["type"] == "fw"]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
async def rollout_station(station, tmp_path):
    """(queue, gateway, start_locker, observer, serve): a cloud command queue that also serves archives."""
    cfg0, broker = station
    q = CommandQueue()
    archives: dict[str, bytes] = {}
    q.downloads = []

    @q.app.get("/fw/{name}")
    async def archive(name: str):
        q.downloads.append(name)
        if name not in archives:
            return Response(status_code=404)
        return Response(archives[name], media_type="application/gzip")

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(q.app, host="127.0.0.1", port=port, log_level="warning"))
    srv = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    cfg = make_config(tmp_path, broker.port, cloud_url=f"http://127.0.0.1:{port}", cloud={"downlink_wait_s": 1},
                      firmware={"parallel": 1, "locker_timeout_s": 90})
    rg = RunningGateway(cfg)
    gw = await rg.start()
    obs = Observer(broker.port)
    sims = []

    async def start_locker(locker: str, secret: str | None = None):
        lc = sim_mod.make_locker_config(
            STATION, locker, mqtt_host="127.0.0.1", mqtt_port=broker.port, password=f"{locker}-pass-1234",
            secret=secret or SECRETS[locker], comps=COMPS[locker], tele_s=30)
        lc["mqtt"]["backoff_max_ms"] = 1000
        lc.update(healthy_s=1, selftest_s=20)
        sim = sim_mod.SimLocker(tmp_path / locker, lc)
        await asyncio.to_thread(sim.start)
        sims.append(sim)
        await until(lambda: gw.link.lockers[locker].birth_at, timeout=15, what=f"{locker} birth")
        return sim

    def serve(folder: Path, ver: str) -> tuple[str, str]:
        """Publish an archive; returns (url, sha256)."""
        data = pack_set(folder)
        archives[f"{ver}.tar.gz"] = data
        return f"http://127.0.0.1:{port}/fw/{ver}.tar.gz", hashlib.sha256(data).hexdigest()

    q.gateway = rg  # for a test that restarts it
    try:
        yield q, gw, start_locker, obs, serve
    finally:
        obs.close()
        await rg.close()
        for sim in sims:
            await asyncio.to_thread(sim.stop)
        server.should_exit = True
        await asyncio.wait_for(srv, 10)


async def test_rollout_updates_lockers_one_at_a_time(rollout_station, tmp_path):
    q, gw, start_locker, obs, serve = rollout_station
    l1, l2 = await start_locker("l1"), await start_locker("l2")
    url, sha = serve(app_folder(tmp_path, "0.2.0"), "0.2.0")
    q.add("r-1", "fw_rollout", version="0.2.0", url=url, sha256=sha, lockers=["l1", "l2"])
    await until(lambda: "r-1" in q.acks, timeout=80, what="roll-out ack")
    ack = q.acks["r-1"][0]
    assert ack["ok"] is True and "err" not in ack
    assert ack["results"] == {"l1": "ok", "l2": "ok"}
    # each locker reports the new version in its birth, and its parcels' compartments are still there
    assert gw.link.lockers["l1"].fw == "0.2.0" and gw.link.lockers["l2"].fw == "0.2.0"
    assert l1.state()["fw"] == "0.2.0" and l2.state()["fw"] == "0.2.0"
    assert l1.reboots == 1 and l2.reboots == 1
    # never two lockers at once: l2 got its offer only after l1 reported ok
    (l1_ok,) = [t for t, ver, res in obs.fw("l1") if res == "ok"]
    (l2_offer,) = [t for t, _ in obs.cmds("l2", "fw_offer")]
    assert l2_offer > l1_ok
    assert [r for _, _, r in obs.fw("l1")] == ["staged", "ok"]
    # the fw events reached the outbox like every other event
    kinds = [(r.src, r.body["result"]) for r in await outbox_rows(gw.outbox, "evt") if r.body.get("type") == "fw"]
    assert ("l1", "ok") in kinds and ("l2", "ok") in kinds
    assert gw.counters["fw_chunks_sent"] > 0
    # the same command delivered again is answered from the stored result, nothing is offered again
    offers = len(obs.cmds("l1", "fw_offer"))
    q.add("r-1", "fw_rollout", version="0.2.0", url=url, sha256=sha, lockers=["l1", "l2"])
    await until(lambda: len(q.acks["r-1"]) == 2, timeout=10, what="second ack")
    assert q.acks["r-1"][1]["results"] == {"l1": "ok", "l2": "ok"}
    assert len(obs.cmds("l1", "fw_offer")) == offers


async def test_rollout_stops_at_a_locker_that_rolls_back(rollout_station, tmp_path):
    q, gw, start_locker, obs, serve = rollout_station
    l1, l2 = await start_locker("l1"), await start_locker("l2")
    url, sha = serve(app_folder(tmp_path, "0.3.0", '\nraise ImportError("broken build")\n'), "0.3.0")
    q.add("r-2", "fw_rollout", version="0.3.0", url=url, sha256=sha, lockers=["l1", "l2"])
    await until(lambda: "r-2" in q.acks, timeout=80, what="roll-out ack")
    ack = q.acks["r-2"][0]
    assert ack["ok"] is False and ack["err"] == "busy"
    assert ack["results"] == {"l1": "rolled_back", "l2": "skipped"}
    assert [r for _, _, r in obs.fw("l1")] == ["staged", "rolled_back"]
    await until(lambda: gw.link.lockers["l1"].fw == "0.1.0", timeout=10, what="birth of the old set")
    assert l1.state()["fw"] == "0.1.0" and l1.reboots == 2
    assert obs.cmds("l2", "fw_offer") == [] and l2.reboots == 0, "the roll-out stopped before l2"
    assert gw.counters["fw_rollouts_failed"] == 1


async def test_tampered_or_missigned_sets_are_refused(rollout_station, tmp_path):
    q, gw, start_locker, obs, serve = rollout_station
    # l1 was provisioned with another secret than the one the station holds for it: the offer's MAC is wrong
    l1 = await start_locker("l1", secret="11" * 32)
    folder = app_folder(tmp_path, "0.4.0")
    url, sha = serve(folder, "0.4.0")
    q.add("r-3", "fw_rollout", version="0.4.0", url=url, sha256=sha, lockers=["l1"])
    await until(lambda: "r-3" in q.acks, timeout=40, what="roll-out ack")
    assert q.acks["r-3"][0]["ok"] is False
    assert q.acks["r-3"][0]["results"] == {"l1": "bad_mac"}
    assert l1.reboots == 0 and l1.state()["fw"] == "0.1.0"
    assert not (l1.flash / "app1").exists()
    # only the manifest was fetched, no file
    assert {b["file"] for _, _, k, b in obs.seen if k == "cmd" and b["op"] == "fw_chunk"} <= {"@manifest"}

    # an archive changed after the cloud hashed it is refused at the station: nothing is offered
    _, sha2 = serve(folder, "0.4.1")
    (folder / "jc" / "vault.py").write_text("MAX_ENTRIES = 1\n")
    url2, _ = serve(folder, "0.4.1")
    q.add("r-4", "fw_rollout", version="0.4.1", url=url2, sha256=sha2, lockers=["l1"])
    await until(lambda: "r-4" in q.acks, timeout=10, what="roll-out ack")
    assert q.acks["r-4"][0] == {"ok": False, "err": "bad_command", "at": q.acks["r-4"][0]["at"],
                                "results": {"l1": "not_offered"}}
    assert [b["ver"] for _, b in obs.cmds("l1", "fw_offer")] == ["0.4.0"]
    assert gw.counters["fw_archive_bad_sha256"] == 1
    assert not (gw.cfg.gateway.firmware.dir / f"{sha2}.tar.gz").exists()
    assert (gw.cfg.gateway.firmware.dir / f"{sha}.tar.gz").exists(), "the good archive is kept by its hash"


async def test_rollout_survives_a_gateway_restart_mid_download(rollout_station, tmp_path):
    q, gw, start_locker, obs, serve = rollout_station
    l1 = await start_locker("l1")
    # a set of some 1,500 chunks (comment lines pad app.py), so that the download is still under way when
    # the gateway stops, however quick the machine: a set of 260 chunks was sometimes done by then
    padding = "".join(f"# padding {i:05d} {'x' * 60}\n" for i in range(8000))
    url, sha = serve(app_folder(tmp_path, "0.6.0", app_tail=padding), "0.6.0")
    q.add("r-5", "fw_rollout", version="0.6.0", url=url, sha256=sha, lockers=["l1"])
    await until(lambda: len(obs.cmds("l1", "fw_chunk")) >= 3, timeout=20, what="download under way")
    await q.gateway.close()
    await q.gateway.start()
    await until(lambda: "r-5" in q.acks, timeout=60, what="roll-out ack after the restart")
    assert q.acks["r-5"][0]["ok"] is True and q.acks["r-5"][0]["results"] == {"l1": "ok"}
    assert len(obs.cmds("l1", "fw_offer")) == 2, "the restarted gateway offered the set again"
    assert q.gateway.gw.link.lockers["l1"].fw == "0.6.0" and l1.reboots == 1
    assert q.downloads == ["0.6.0.tar.gz"], "after the restart the archive kept by its hash was used"


def test_archive_unpacking_refuses_what_is_not_an_app_set(tmp_path):
    folder = app_folder(tmp_path, "0.5.0")
    (folder / "main.py").write_text("loader\n")  # never part of a set
    fwset = unpack_set(pack_set(folder), "0.5.0", 1 << 22)
    assert "main.py" not in fwset.files and "jc/app.py" in fwset.files
    with pytest.raises(RolloutError) as exc:
        unpack_set(b"not a tar.gz", "0.5.0", 1 << 22)
    assert exc.value.code == "bad_command"
    with pytest.raises(RolloutError):
        unpack_set(pack_set(folder), "0.5.0", 1000)  # over the size limit


async def test_fwreq_is_answered_with_chunks_and_bad_requests_are_counted(gateway, lockers, tmp_path):
    import base64

    from gateway.fwserve import FirmwareSet, FwServe
    fwset = FirmwareSet("0.9.0", {"jc/a.py": bytes(range(256)) * 3, "jc/b.py": b"x = 1\n"})
    gw = gateway.gw
    gw.link.fw_servers["l1"] = FwServe(fwset)
    l1 = lockers(gateway.broker.port, "l1").connect()
    l2 = lockers(gateway.broker.port, "l2").connect()
    for lk in (l1, l2):
        lk.online()
        lk.birth([{"n": 1, "size": "M", "st": "empty", "door": "closed", "occ": False}] if lk is l2 else None)
    await until(lambda: gw.link.lockers["l1"].birth_at and gw.link.lockers["l2"].birth_at)

    def chunks():
        return [c for c in l1.cmds if c["op"] == "fw_chunk"]
    got = b""
    for off in (0, 512):
        l1.pub("fwreq", {"v": 1, "ver": "0.9.0", "file": "jc/a.py", "off": off, "len": 512}, qos=0)
        await until(lambda off=off: len(chunks()) == off // 512 + 1, what=f"chunk at {off}")
        ch = chunks()[-1]
        assert (ch["ver"], ch["file"], ch["off"]) == ("0.9.0", "jc/a.py", off)
        got += base64.b64decode(ch["data"])
    assert got == fwset.files["jc/a.py"].data
    assert not [c for c in l1.cmds if c["op"] != "fw_chunk" and c["op"] != "time"], "chunks are not acked"

    c = gw.counters
    l1.pub("fwreq", {"v": 1, "ver": "0.9.0", "file": "jc/none.py", "off": 0, "len": 10}, qos=0)  # no such file
    l1.pub("fwreq", {"v": 1, "ver": "0.8.0", "file": "jc/a.py", "off": 0, "len": 10}, qos=0)  # other version
    l2.pub("fwreq", {"v": 1, "ver": "0.9.0", "file": "jc/a.py", "off": 0, "len": 10}, qos=0)  # nothing on offer
    l1.pub("fwreq", {"v": 1, "ver": "0.9.0", "file": "../boot.py", "off": 0, "len": 10}, qos=0)
    l1.pub("fwreq", {"v": 1, "ver": "0.9.0", "file": "jc/a.py", "off": 0, "len": 1, "pad": "x" * 600}, qos=0)
    # a locker cannot ask on another's topic (the ACL drops it silently)
    l1.pub("fwreq", {"v": 1, "ver": "0.9.0", "file": "jc/b.py", "off": 0, "len": 6}, qos=0,
           topic=f"jc/v1/{STATION}/l2/fwreq")
    await until(lambda: c["fwreq_refused"] == 3 and c["rejected_payloads"] == 2, what="refusals counted")
    await asyncio.sleep(0.3)
    assert c["fwreq_refused"] == 3 and len(chunks()) == 2
    assert not [m for m in l2.cmds if m["op"] == "fw_chunk"]
