"""Extra charges (二次收费): a villager's report on /m, an agent's `charge` record, both in the fees table."""

from __future__ import annotations

import re
import time

from cloudkit import STATION, admin_headers, gw, parcel_record

PHONE = "13800138000"


def _login(cloud, phone: str = PHONE) -> None:
    c = cloud.client
    assert c.post("/m/otp", data={"phone": phone}).status_code == 200
    text = cloud.admin_get("/api/v1/notifications", phone=phone)[0]["text"]
    code = re.search(r"验证码 (\d{6})", text).group(1)
    assert c.post("/m/login", data={"phone": phone, "code": code}, follow_redirects=False).status_code == 303


def _charges(cloud) -> list[dict]:
    rows = cloud.client.get("/api/v1/stats/fees", headers=admin_headers()).json()
    return [r for r in rows if r["source"] in ("villager", "agent")]


def test_villager_reports_a_charge_on_the_phone_page(cloud):
    resp = cloud.ingest([parcel_record(1, "p-a", c=2, waybill="ZT1234567890", carrier="中通", phone=PHONE)])
    assert [r["status"] for r in resp.json()["results"]] == ["applied"]
    assert cloud.admin_get("/api/v1/parcels/p-a")["carrier"] == "ZTO", "a carrier is its code"
    _login(cloud)
    c = cloud.client
    for amount, want in (("2.5", "charge_reported"), ("abc", "charge_bad"), ("0", "charge_bad"),
                         ("1.234", "charge_bad"), ("99999999", "charge_bad")):
        r = c.post("/m/charges", data={"amount": amount, "carrier": "中通", "kind": "pickup", "ref": "p-a"},
                   follow_redirects=False)
        assert r.status_code == 303 and f"msg={want}" in r.headers["location"], (amount, r.headers)
    # another's parcel, an unknown kind, postage (what a sender pays): refused
    for data in ({"ref": "p-none"}, {"kind": "tea"}, {"kind": "postage"}):
        r = c.post("/m/charges", data={"amount": "1", "carrier": "ZTO", **data}, follow_redirects=False)
        assert "msg=charge_bad" in r.headers["location"], data
    (row,) = _charges(cloud)
    assert (row["carriers"], row["kind"], row["total_yuan"], row["banned"], row["station_id"]) == (
        "ZTO", "pickup", 2.5, True, STATION)
    page = c.get("/m").text
    assert "中通快递 · 取件费 · 2.50" in page
    # a day's reports are bounded per phone
    for _ in range(4):
        c.post("/m/charges", data={"amount": "1", "carrier": "SF"}, follow_redirects=False)
    r = c.post("/m/charges", data={"amount": "1", "carrier": "SF"}, follow_redirects=False)
    assert "msg=too_many" in r.headers["location"]
    # not logged in: back to the login page, nothing recorded
    c.cookies.clear()
    assert c.post("/m/charges", data={"amount": "1", "carrier": "SF"}, follow_redirects=False).headers[
        "location"] == "/m"
    assert sum(r["parcels"] for r in _charges(cloud)) == 5


def test_agents_charge_record_lands_in_the_fees_table_once(cloud):
    body = {"carrier": "中通", "kind": "remote_surcharge", "cents": 300, "phone": "13800004444",
            "text": "送到村口加收三元", "by": "a-li", "at": int(time.time())}
    resp = cloud.ingest([gw(1, "charge", body)])
    assert [r["status"] for r in resp.json()["results"]] == ["applied"]
    assert [r["status"] for r in cloud.ingest([gw(1, "charge", body)]).json()["results"]] == ["duplicate"]
    bad = cloud.ingest([gw(2, "charge", {**body, "kind": "tea"}), gw(3, "charge", {**body, "cents": 0})])
    assert [r["status"] for r in bad.json()["results"]] == ["rejected", "rejected"]
    rows = cloud.client.get("/api/v1/stats/fees", headers=admin_headers()).json()
    got = [(r["source"], r["kind"], r["carriers"], r["parcels"], r["total_yuan"], r["banned"]) for r in rows
           if r["source"] == "agent"]
    assert got == [("agent", "remote_surcharge", "ZTO", 1, 3.0, False)]


def test_agents_charge_naming_no_carrier_is_refused_on_its_own(cloud):
    """An agent's charge naming no carrier of the cloud is a dead letter, never a row of the fees table."""
    from sqlalchemy import select

    from cloud.models import DeadLetter
    body = {"kind": "pickup", "cents": 200, "by": "a-li", "at": int(time.time())}
    resp = cloud.ingest([gw(1, "charge", {**body, "carrier": "投递台"}), gw(2, "charge", {**body, "carrier": "中通"})])
    results = resp.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "applied"]
    assert results[0]["error"].startswith("unknown_carrier")
    assert [(r["carriers"], r["total_yuan"]) for r in _charges(cloud)] == [("ZTO", 2.0)]
    with cloud.client.app.state.sessionmaker() as session:
        assert [d.reason[:15] for d in session.scalars(select(DeadLetter))] == ["unknown_carrier"]
