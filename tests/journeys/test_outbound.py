"""Journey: outbound (寄件). The agent takes in a villager's parcel with the sender's real name and ID number
(kept as its last 4 characters) after inspecting it; the carrier's courier collects it at the terminal; the
carrier hears it by webhook; the county's produce statistics count it only once collected."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from kit_carriers import Terminal, WebhookReceiver, carrier_client, county, station

pytestmark = pytest.mark.micropython

ID_NUMBER = "11010519491231002X"  # a well-formed resident ID (check digit X), no one's
WAYBILL = "SF1234567890"


def test_outbound_taken_in_with_real_name_and_collected_by_the_carrier(tmp_path, pg_url):
    hook = WebhookReceiver()
    try:
        with station(tmp_path, pg_url) as stack:
            sf = carrier_client(stack, "SF", hook)
            agent = Terminal(stack, "a-li")
            parcel = {"carrier": "SF", "sender_name": "张大爷", "sender_phone": "13600000003", "dest": "广州市天河区",
                      "weight_g": 2500, "produce": "蜜桔", "sender_id": ID_NUMBER}
            # no inspection tick, or an ID number that is not one: refused, and the number is not echoed
            r = agent.post("/outbound", {**parcel, "inspected": False})
            assert r.status_code == 422 and r.json()["detail"]["error"] == "inspection_required"
            r = agent.post("/outbound", {**parcel, "inspected": True, "sender_id": "110105194912310021"})
            assert r.status_code == 422 and r.json()["detail"]["error"] == "bad_id" and "1101051949" not in r.text
            r = agent.post("/outbound", {**parcel, "inspected": True})
            assert r.status_code == 201, r.text
            taken = r.json()
            ref = taken["ref"]
            assert taken["sender_id_tail"] == "002X" and ID_NUMBER not in r.text and taken["carrier_name"] == "顺丰速运"

            # in the cloud: taken in, not yet sent; the produce statistics do not count it
            stack.wait(lambda: bool(_by_ref(stack, ref)), 30, "outbound in the cloud")
            assert _by_ref(stack, ref)["status"] == "taken_in"
            assert county(stack, "produce") == []

            # another carrier's courier neither sees it nor can take it
            zto = Terminal(stack, "c-zto")
            assert zto.get("/outbound").json()["outbound"] == []
            assert zto.post(f"/outbound/{ref}/collect", {}).status_code == 409
            # the SF courier sees it and collects it, scanning SF's own waybill
            courier = Terminal(stack, "c-sf")
            assert [o["ref"] for o in courier.get("/outbound").json()["outbound"]] == [ref]
            r = courier.post(f"/outbound/{ref}/collect", {"waybill": WAYBILL})
            assert r.status_code == 200 and r.json()["by"] == "c-sf", r.text
            assert courier.post(f"/outbound/{ref}/collect", {}).status_code == 409, "collected once"
            assert courier.get("/outbound").json()["outbound"] == []

            # the carrier's system hears it, and finds it by its own waybill
            stack.wait(lambda: "collected" in hook.statuses(WAYBILL), 30, "the carrier's webhook")
            assert hook.bad == 0
            mine = stack.http.get(f"{stack.cloud_url}/api/v1/carrier/parcels/{WAYBILL}", headers=sf).json()
            assert mine["status"] == "collected" and mine["direction"] == "outbound"
            assert [t["status"] for t in mine["timeline"]] == ["taken_in", "collected"]
            # the county: the produce sent, with its carrier
            rows = county(stack, "produce")
            assert [(r["carrier"], r["parcels"], r["weight_kg"]) for r in rows] == [("SF", 1, 2.5)]

            # the real-name record: the ID's last 4 characters and the agent who inspected; the full number
            # is nowhere, not in the cloud's rows, the station's database or any log
            engine = create_engine(pg_url)
            try:
                with engine.connect() as conn:
                    row = conn.execute(text("SELECT sender_name, sender_id_tail, status FROM parcels WHERE ref=:r"),
                                       {"r": ref}).one()
                    assert tuple(row) == ("张大爷", "002X", "collected")
                    dump = " ".join(str(v) for t in ("parcels", "events", "dead_letters", "audit_log")
                                    for r in conn.execute(text(f"SELECT * FROM {t}")) for v in r)
                    assert ID_NUMBER not in dump
            finally:
                engine.dispose()
            stack.wait_drained()
        for f in stack.workdir.iterdir():
            if f.is_file():
                assert ID_NUMBER.encode() not in f.read_bytes(), f.name
    finally:
        hook.close()


def _by_ref(stack, ref: str) -> dict:
    r = stack.http.get(f"{stack.cloud_url}/api/v1/parcels/{ref}",
                       headers={"Authorization": f"Bearer {stack.admin_token}"})
    return r.json() if r.status_code == 200 else {}
