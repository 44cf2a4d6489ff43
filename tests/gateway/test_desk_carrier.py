"""The desk's deposits (a terminal user with no carrier of their own): the carrier comes from the waybill's
pre-advice in the cloud or from the agent's choice, or the deposit is refused; the parcel record the cloud
gets names a carrier code, and the cloud refuses one that names no carrier. Real cloud (SQLite, over HTTP),
real Mosquitto, a paho locker."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from gateway.consent import FixedConsent
from gwkit import COURIER, RunningGateway, courier_api, free_port, make_config, until
from jincun import carriers
from test_uplink import API_KEY, real_cloud, serve

PHONE = "13800000001"
PRE = "ZT7700001"  # pre-advised by ZTO's manifest
OTHER = "XX5500002"  # nobody pre-advised it
T = "/api/v1/terminal"


def cloud_db(tmp_path):
    from cloud.storage import make_engine, make_sessionmaker
    engine = make_engine(f"sqlite:///{tmp_path}/cloud.db")
    return engine, make_sessionmaker(engine)


def preadvise(tmp_path) -> None:
    from cloud.manifests import preadvise as cloud_preadvise
    from cloud.schemas import Manifest
    from cloud.settings import Settings
    engine, sessions = cloud_db(tmp_path)
    settings = Settings(database_url=f"sqlite:///{tmp_path}/cloud.db", admin_token="uplink-test-admin-9k2Qx7")
    with sessions() as session:
        cloud_preadvise(session, settings, carrier="ZTO", data=Manifest(manifest_id="zto-m1", parcels=[
            {"waybill": PRE, "station": "demo-01", "phone": PHONE}]))
        session.commit()
    engine.dispose()


def cloud_parcels(tmp_path) -> dict[str, tuple]:
    from cloud.models import Parcel
    engine, sessions = cloud_db(tmp_path)
    with sessions() as session:
        rows = session.execute(select(Parcel.waybill, Parcel.ref, Parcel.carrier, Parcel.status)).all()
    engine.dispose()
    return {w: (ref, carrier, status) for w, ref, carrier, status in rows}


async def test_a_desk_deposit_takes_the_preadvice_or_the_chosen_carrier_or_is_refused(station, lockers, tmp_path):
    _, broker = station
    app = real_cloud(tmp_path)
    preadvise(tmp_path)
    port = free_port()
    async with serve(app, port):
        # a short long-poll, so the cloud stops promptly after the gateway
        cfg = make_config(tmp_path, broker.port, f"http://127.0.0.1:{port}", cloud={"downlink_wait_s": 1})
        rg = RunningGateway(cfg, consent=FixedConsent({PHONE: ("granted", False)}))
        gw = await rg.start()
        try:
            l1 = lockers(broker.port, "l1").connect()
            l1.online()
            l1.birth()
            await until(lambda: gw.link.lockers["l1"].birth_at, what="birth")
            assert not gw.sessions.users[COURIER["id"]].carrier, "the desk has no carrier of its own"
            async with courier_api(gw) as desk:
                # a pre-advised waybill: the carrier of the manifest that announced it
                r = await desk.post(f"{T}/deposit", json={"waybill": PRE, "phone": PHONE, "size": "M"})
                assert r.status_code == 201, r.text
                pre_ref = r.json()["ref"]
                l1.evt("deposit", c=r.json()["c"], ref=pre_ref)

                # neither pre-advised nor chosen: refused with the message, no door, no record
                opened = len([c for c in l1.cmds if c["op"] == "deposit"])
                r = await desk.post(f"{T}/deposit", json={"waybill": OTHER, "phone": PHONE, "size": "S"})
                assert r.status_code == 409 and r.json()["detail"] == {"error": "carrier_needed", "waybill": OTHER}
                assert len([c for c in l1.cmds if c["op"] == "deposit"]) == opened
                words = (await desk.get("/terminal/words.json")).json()
                assert words["zh"]["carrier_needed"].endswith("请选择快递公司")
                assert words["en"]["carrier_needed"].endswith("choose the carrier")

                # a carrier the station does not have is refused as well
                r = await desk.post(f"{T}/deposit", json={"waybill": OTHER, "phone": PHONE, "size": "S",
                                                          "carrier": "NOSUCH"})
                assert r.status_code == 422 and r.json()["detail"]["error"] == "carrier_unknown"

                # the carrier the agent picks (a name people write maps to its code)
                r = await desk.post(f"{T}/deposit", json={"waybill": OTHER, "phone": PHONE, "size": "S",
                                                          "carrier": "韵达"})
                assert r.status_code == 201, r.text
                other_ref = r.json()["ref"]
                l1.evt("deposit", c=r.json()["c"], ref=other_ref)

                # the station's record of each, as the terminal shows it
                assert (await desk.get(f"{T}/deposit/{pre_ref}")).json()["carrier"] == "ZTO"
                assert (await desk.get(f"{T}/deposit/{other_ref}")).json()["carrier"] == "YUNDA"
            kept = await gw.outbox.query(lambda conn: conn.execute("SELECT waybill, carrier FROM parcels").fetchall())
            assert sorted(kept) == [(OTHER, "YUNDA"), (PRE, "ZTO")], "the refused deposits recorded nothing"

            # the cloud gets both as carrier codes; the pre-advised parcel takes the station's ref
            await until(lambda: (got := cloud_parcels(tmp_path)).get(PRE, ("",))[0] == pre_ref and OTHER in got,
                        timeout=15, what="the parcel records in the cloud")
            got = cloud_parcels(tmp_path)
            assert got[PRE][:2] == (pre_ref, "ZTO")
            assert got[OTHER][:2] == (other_ref, "YUNDA")
            assert {c for _, c, _ in got.values()} <= set(carriers.CODES)
        finally:
            await rg.close()

        # a parcel record naming no carrier (an older gateway's desk wrote its user's name) is refused on its
        # own and kept as a dead letter: no carrier "投递台" in the statistics or webhooks
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                     headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            bad = {"ref": "p-00000000dead", "waybill": "XX9900003", "carrier": "投递台", "phone": PHONE,
                   "locker": "l1", "c": 1, "size": "S"}
            good = {**bad, "ref": "p-00000000beef", "waybill": "XX9900004", "carrier": "中通"}
            items = [{"src": "gw", "boot": "0badca11", "seq": n, "kind": "parcel", "rx": 1764355262.0 + n, "body": b}
                     for n, b in ((1, bad), (2, good))]
            r = await http.post("/api/v1/gateway/ingest", json={"station": "demo-01", "batch": "b1", "items": items})
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert results[0]["status"] == "rejected" and results[0]["error"].startswith("unknown_carrier")
            assert results[1]["status"] == "applied"
    got = cloud_parcels(tmp_path)
    assert "XX9900003" not in got and got["XX9900004"][1] == "ZTO"
    from cloud.models import DeadLetter
    engine, sessions = cloud_db(tmp_path)
    with sessions() as session:
        dead = session.scalars(select(DeadLetter.raw)).all()
    engine.dispose()
    assert [d["body"]["carrier"] for d in dead] == ["投递台"]
