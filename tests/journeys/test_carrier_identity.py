"""Journey: carrier identity. A carrier is one code everywhere: the courier deposits at the terminal (whose
station file still names carriers in Chinese), the parcel adopts the carrier's pre-advice, the carrier's
webhook fires, and the county sees one row for the carrier, by name."""

from __future__ import annotations

import pytest

from kit_carriers import Terminal, WebhookReceiver, admin, carrier_client, county, station

pytestmark = pytest.mark.micropython

WAYBILL = "ZT8800000001"
PHONE = "13800001111"


def test_terminal_deposit_adopts_the_manifest_and_fires_the_carriers_webhook(tmp_path, pg_url):
    hook = WebhookReceiver()
    try:
        with station(tmp_path, pg_url) as stack:
            zto = carrier_client(stack, "ZTO", hook)
            # the carrier pre-advises the parcel for this station
            r = stack.http.post(f"{stack.cloud_url}/api/v1/carrier/manifests", headers=zto, json={
                "manifest_id": "zto-0001", "parcels": [{"waybill": WAYBILL, "station": stack.station,
                                                         "phone": PHONE, "name": "王大妈"}]})
            assert r.status_code == 200 and r.json()["created"] == 1, r.text

            # the terminal offers carriers by name and sends their codes, whatever the station file wrote
            courier = Terminal(stack, "c-zto")
            info = courier.get("/info").json()
            assert [(c["code"], c["zh"]) for c in info["carriers"]] == [
                ("EMS", "中国邮政"), ("SF", "顺丰速运"), ("ZTO", "中通快递"), ("YTO", "圆通速递")]
            d = courier.deposit(waybill=WAYBILL, phone=PHONE)
            # a second courier's desk deposit naming the carrier the old way
            stack.deposit(waybill="ZT8800000002", phone="13800002222", carrier="中通", size="S")

            # the cloud holds one parcel for the waybill: the pre-advised one, now at the locker
            def adopted() -> bool:
                found = stack.parcels(waybill=WAYBILL)
                return len(found) == 1 and found[0]["ref"] == d["ref"] and found[0]["status"] in (
                    "deposited", "notified")
            stack.wait(adopted, 30, "the deposit adopts the pre-advice")
            (parcel,) = stack.parcels(waybill=WAYBILL)
            assert parcel["carrier"] == "ZTO"
            assert [t["status"] for t in parcel["timeline"]][:2] == ["preadvised", "deposited"]

            # the carrier's system hears it (signed webhook) and sees it through its own API
            stack.wait(lambda: "deposited" in hook.statuses(WAYBILL), 30, "the carrier's webhook")
            assert hook.bad == 0
            mine = stack.http.get(f"{stack.cloud_url}/api/v1/carrier/parcels/{WAYBILL}", headers=zto).json()
            assert mine["status"] in ("deposited", "notified") and mine["station_id"] == stack.station
            # the SMS names the carrier by its name
            sms = stack.http.get(f"{stack.cloud_url}/api/v1/notifications", params={"phone": PHONE},
                                 headers=admin(stack)).json()
            assert any("中通快递" in n["text"] for n in sms), sms

            # the county office: one row for the carrier, with its name
            stack.wait(lambda: len(stack.parcels(waybill="ZT8800000002")) == 1, 30, "second deposit")
            rows = county(stack, "volumes", by="carrier", days=1)
            assert {(r["carrier"], r["name"]) for r in rows} == {("ZTO", "中通快递")}
            assert sum(r["inbound"] for r in rows) == 2
    finally:
        hook.close()
