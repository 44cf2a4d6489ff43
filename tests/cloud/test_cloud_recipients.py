"""Recipients: consent for the gateway, the phone page (SMS one-time code), one code per recipient per
station, replacement codes going down as code_sync, and "not received" reports."""

from __future__ import annotations

import re
import time

from cloudkit import (OTHER_KEY, STATION, add_user, admin_headers, birth, code_record, empty_comps, evt,
                      gw_headers, login, parcel_record)

PHONE = "13800138000"


def last_sms(cloud, phone: str = PHONE) -> str:
    return cloud.admin_get("/api/v1/notifications", phone=phone)[0]["text"]


def phone_login(cloud, phone: str = PHONE):
    c = cloud.client
    page = c.post("/m/otp", data={"phone": phone})
    assert page.status_code == 200 and 'id="code-sent"' in page.text
    code = re.search(r"验证码 (\d{6})", last_sms(cloud, phone)).group(1)
    resp = c.post("/m/login", data={"phone": phone, "code": code}, follow_redirects=False)
    assert resp.status_code == 303
    return resp


def deposit_two(cloud):
    resp = cloud.ingest([parcel_record(1, "p-a", c=2), parcel_record(2, "p-b", c=4, waybill="SF1234567890",
                                                                     carrier="SF"),
                         birth(0, empty_comps(6), item_seq=0), evt(1, "deposit", c=2, ref="p-a"),
                         evt(2, "deposit", c=4, ref="p-b"), code_record(3, "p-a", "482913"),
                         code_record(4, "p-b", "482913")])
    assert resp.json()["applied"] == 7, resp.text


def test_consent_for_the_gateway_and_from_the_phone_page(cloud):
    c = cloud.client
    url = f"/api/v1/gateway/recipients/{PHONE}/consent"
    assert c.get(url, headers=gw_headers()).json() == {"phone": PHONE, "consent": "unknown", "locker_allowed": False,
                                                       "door_help": False, "at": None}
    assert c.get(url).status_code == 401
    assert c.get(url, headers={"Authorization": "Bearer wrong-key-wrong-key"}).status_code == 401
    assert c.get("/api/v1/gateway/recipients/not-a-phone/consent", headers=gw_headers()).status_code == 422

    # the villager logs in with an SMS code and agrees; the gateway then may use the locker
    assert c.get("/m").status_code == 200
    phone_login(cloud)
    page = c.get("/m")
    assert "我的包裹" in page.text and "未选择" in page.text
    c.post("/m/consent", data={"consent": "granted"})
    got = c.get(url, headers=gw_headers(OTHER_KEY)).json()
    assert (got["consent"], got["locker_allowed"], got["door_help"]) == ("granted", True, False)
    # door-to-door help is a setting of its own: turning it on leaves the consent, and a consent leaves it
    page = c.post("/m/door-help", data={"door_help": "on"}).text
    assert 'id="door-help-state">已开启：包裹会送到家<' in page and 'id="consent-state">已同意<' in page
    assert c.get(url, headers=gw_headers()).json()["door_help"] is True
    c.post("/m/consent", data={"consent": "refused"})
    got = c.get(url, headers=gw_headers()).json()
    assert got["locker_allowed"] is False and got["door_help"] is True
    # the consent form has no door-to-door box among its buttons
    consent = page[page.index('id="consent"'):page.index('id="door-help"')]
    assert "door_help" not in consent
    audit = c.get("/api/v1/audit", headers=admin_headers()).json()
    assert [a["detail"]["after"] for a in audit if a["action"] == "consent"] == ["refused", "granted"]


def test_phone_login_refuses_wrong_codes_and_limits_requests(cloud):
    c = cloud.client
    c.post("/m/otp", data={"phone": PHONE})
    bad = c.post("/m/login", data={"phone": PHONE, "code": "000000"}, follow_redirects=False)
    assert bad.status_code == 401 and "验证码错误" in bad.text
    assert "我的包裹" not in c.get("/m").text
    for _ in range(4):
        c.post("/m/otp", data={"phone": PHONE})
    assert c.post("/m/otp", data={"phone": PHONE}).status_code == 429
    assert c.post("/m/otp", data={"phone": "x' or 1=1"}).status_code == 422


def test_one_code_per_recipient_per_station(cloud):
    deposit_two(cloud)
    from sqlalchemy import select

    from cloud.models import PickupCode
    with cloud.client.app.state.sessionmaker() as session:
        codes = session.scalars(select(PickupCode).where(PickupCode.used.is_(False))).all()
    assert [(k.code, sorted(k.refs)) for k in codes] == [("482913", ["p-a", "p-b"])]
    phone_login(cloud)
    page = cloud.client.get("/m").text
    assert page.count("482913") == 2 and "SF1234567890" in page


def test_replacement_code_goes_down_as_code_sync(cloud):
    c = cloud.client
    deposit_two(cloud)
    add_user(c, "agent-zhao", "station_agent", station_id=STATION)
    agent = login(c, "agent-zhao")
    resp = c.post("/api/v1/codes/resend", json={"station": STATION, "phone": PHONE, "reason": "code leaked"},
                  headers=agent)
    assert resp.status_code == 201, resp.text
    cmd = c.get("/api/v1/gateway/commands", headers=gw_headers()).json()["commands"][0]
    assert (cmd["op"], cmd["locker"], cmd["phone"], sorted(cmd["refs"]), cmd["cs"]) == \
        ("code_sync", "l1", PHONE, ["p-a", "p-b"], [2, 4])
    assert re.fullmatch(r"\d{6}", cmd["code"]) and cmd["exp_ts"] > cmd["issued_at"]
    assert f"新取件码 {cmd['code']}" in last_sms(cloud)
    c.post(f"/api/v1/gateway/commands/{cmd['id']}/ack", json={"ok": True}, headers=gw_headers())
    phone_login(cloud)
    page = c.get("/m").text
    assert cmd["code"] in page and "482913" not in page
    # no waiting parcel: nothing to replace
    assert c.post("/api/v1/codes/resend", json={"station": STATION, "phone": "13900000000", "reason": "x"},
                  headers=agent).status_code == 404
    # an agent acts only on their own station
    assert c.post("/api/v1/codes/resend", json={"station": "lz-dongcun-02", "phone": PHONE, "reason": "x"},
                  headers=agent).status_code == 403


def test_phone_page_new_code_and_not_received(cloud):
    c = cloud.client
    deposit_two(cloud)
    cloud.ingest([evt(3, "code_ok", cs=[2, 4]), evt(4, "door", c=2, open=True), evt(5, "pickup", c=2, ref="p-a")])
    phone_login(cloud)
    resp = c.post("/m/code", data={"station": STATION})
    assert "新取件码已通过短信发送" in resp.text
    cmd = c.get("/api/v1/gateway/commands", headers=gw_headers()).json()["commands"][0]
    assert cmd["refs"] == ["p-b"] and cmd["cs"] == [4]
    # "I did not receive it" asks once more before it is sent
    before = c.get("/m").text
    card = before[before.index('id="parcel-p-a"'):].split('class="parcel-card')[0]
    assert "确定没有收到这个包裹吗" in card and 'class="not-received-yes"' in card
    resp = c.post("/m/parcels/p-a/not-received")
    assert "已记录" in resp.text
    # once reported, the card says so instead of offering the button again
    card = resp.text[resp.text.index('id="parcel-p-a"'):].split('class="parcel-card')[0]
    assert "已报告没有收到，工作人员核查中" in card and "not-received-yes" not in card
    flags = c.get("/api/v1/flags", headers=admin_headers()).json()
    assert len(flags) == 1 and flags[0]["kind"] == "not_received" and flags[0]["ref"] == "p-a"
    ev = flags[0]["evidence"]
    # the locker shows a deposit and a pickup by code: the evidence is there for staff to judge
    assert ev["missing"] == [] and [e["seq"] for e in ev["pickup"]] == [5] and ev["code_ok"][0]["cs"] == [2, 4]
    assert ev["reported_by"] == PHONE
    # someone else's parcel cannot be reported
    assert "没有待取" in c.post("/m/parcels/p-zzz/not-received").text


def test_phone_login_page_carries_the_one_phone_rule(cloud):
    import html
    import re

    from jincun.phone import MOBILE_BODY

    page = cloud.client.get("/m").text
    (pattern,) = re.findall(r'<input name="phone"[^>]* pattern="([^"]*)"', page)
    assert html.unescape(pattern) == MOBILE_BODY


def test_a_wrong_phone_number_is_told_plainly_and_kept(cloud):
    c = cloud.client
    for typed in ("abc12345678", "1380013800", "+8613800138000", "23800138000"):
        page = c.post("/m/otp", data={"phone": typed})
        assert page.status_code == 422
        assert "请输入11位手机号，以1开头" in page.text and "验证码错误" not in page.text, typed
        assert f'value="{typed}"' in page.text, "the form keeps what was typed"
    en = c.post("/m/otp?lang=en", data={"phone": "hello"}).text
    assert "11-digit mainland mobile number" in en
    assert cloud.admin_get("/api/v1/notifications") == []


def test_phone_page_shows_when_and_where(cloud):
    from datetime import datetime

    from cloud.wording import CST
    from cloud.models import Station

    with cloud.client.app.state.sessionmaker() as session:
        st = session.get(Station, STATION)
        st.address, st.phone, st.hours = "冯家村村委会东侧", "057512345678", "08:00–20:00"
        session.commit()
    at = int(time.time()) - 3600
    cloud.ingest([parcel_record(1, "p-w", c=2), birth(0, empty_comps(6), item_seq=0),
                  evt(1, "deposit", c=2, ref="p-w", ts=at, rx=at), code_record(2, "p-w", "482913")])
    phone_login(cloud)
    page = cloud.client.get("/m").text
    card = page[page.index('id="parcel-p-w"'):].split('class="parcel-card')[0]
    deposited = datetime.fromtimestamp(at, CST)
    assert f'class="deposited-at">{deposited:%Y-%m-%d %H:%M}<' in card
    deadline = datetime.fromtimestamp(at + cloud.settings.overdue_days * 86400, CST)
    assert f'class="pickup-by">{deadline:%Y-%m-%d %H:%M}<' in card
    assert "冯家村村委会东侧" in card and 'href="tel:057512345678"' in card and "08:00–20:00" in card
    assert 'class="parcel-status">待取件<' in card and "1号柜 2号格口" in card
