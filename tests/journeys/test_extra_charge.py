"""Journey: extra charges (二次收费). A villager who was charged says so on /m; the station agent records
another at the terminal while the uplink is down; the county's fees statistics show both with the carrier,
the pickup fee marked banned. A carrier cannot pre-advise a pickup fee: the rule reads the fee's kind."""

from __future__ import annotations

import pytest

from kit_carriers import Terminal, carrier_client, county, phone, station

pytestmark = pytest.mark.micropython

VILLAGER = "13800003333"


def test_villager_and_agent_report_charges_the_county_sees(tmp_path, pg_url):
    with station(tmp_path, pg_url) as stack:
        d = Terminal(stack, "c-zto").deposit(waybill="ZT8800000101", phone=VILLAGER)
        stack.wait(lambda: bool(stack.parcels(waybill="ZT8800000101")), 30, "the parcel in the cloud")

        # the villager, charged 2 yuan at pickup, reports it from the phone page
        m = phone(stack, VILLAGER)
        page = m.get("/m").text
        assert 'id="charge-form"' in page and 'value="ZTO"' in page and "中通快递" in page
        assert f'value="{d["ref"]}"' in page, "their parcel can be named"
        r = m.post("/m/charges", data={"amount": "2", "carrier": "ZTO", "kind": "pickup", "ref": d["ref"],
                                       "text": "取件时收了两元"}, follow_redirects=False)
        assert r.status_code == 303 and "msg=charge_reported" in r.headers["location"]
        page = m.get("/m").text
        assert 'id="my-charges"' in page and "中通快递 · 取件费 · 2.00" in page
        # someone else's parcel cannot be named
        r = m.post("/m/charges", data={"amount": "1", "carrier": "ZTO", "ref": "p-notmine"}, follow_redirects=False)
        assert "msg=charge_bad" in r.headers["location"]

        # the agent records another villager's complaint at the terminal while the uplink is down
        stack.uplink_down()
        agent = Terminal(stack, "a-li")
        r = agent.post("/charge", {"carrier": "中通", "kind": "remote_surcharge", "cents": 300,
                                   "phone": "13800004444", "text": "送到村口加收三元"})
        assert r.status_code == 201, r.text
        assert r.json()["carrier"] == "ZTO" and r.json()["phone"] == "138****4444"
        assert agent.post("/charge", {"carrier": "ZTO", "kind": "tea", "cents": 300}).status_code == 422

        def charges() -> list[dict]:
            return [row for row in county(stack, "fees") if row["source"] in ("villager", "agent")]
        assert [row["source"] for row in charges()] == ["villager"], "the agent's record waits for the uplink"
        stack.uplink_up()
        stack.wait_drained(60)
        stack.wait(lambda: len(charges()) == 2, 30, "the agent's charge in the county's table")
        got = {(row["source"], row["kind"], row["carriers"], row["total_yuan"], row["banned"], row["station_id"])
               for row in charges()}
        assert got == {("villager", "pickup", "ZTO", 2.0, True, stack.station),
                       ("agent", "remote_surcharge", "ZTO", 3.0, False, stack.station)}
        # the county office's page: the charges in the fees table and in the extra-charges figure at the top
        page = stack.http.get(f"{stack.cloud_url}/stats", params={"period": "7"},
                              headers={"Authorization": f"Bearer {stack.admin_token}"})
        assert page.status_code == 200
        assert '<td class="fee-reason warn">取件费 · 村民举报</td>' in page.text
        assert "偏远加收 · 代办员记录" in page.text and "¥5.00" in page.text

        # the pickup-fee ban is a field: a carrier's manifest with a pickup fee is refused whatever its reason says
        zto = carrier_client(stack, "ZTO")
        bad = {"manifest_id": "zto-fee", "parcels": [{"waybill": "ZT8800000199", "station": stack.station,
                                                      "phone": VILLAGER, "fee_cents": 200, "fee_kind": "pickup",
                                                      "fee_reason": "服务费"}]}
        r = stack.http.post(f"{stack.cloud_url}/api/v1/carrier/manifests", headers=zto, json=bad)
        assert r.status_code == 422 and "pickup is free" in r.text
        bad["parcels"][0]["fee_kind"] = "delivery"
        r = stack.http.post(f"{stack.cloud_url}/api/v1/carrier/manifests", headers=zto, json=bad)
        assert r.status_code == 200
        rows = [row for row in county(stack, "fees") if row["source"] == "carrier"]
        assert [(row["kind"], row["carriers"], row["total_yuan"], row["banned"]) for row in rows] == [
            ("delivery", "ZTO", 2.0, False)]
