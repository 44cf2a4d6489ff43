"""Every SMS fits one segment as the carriers count it, names the place as people say it, keeps the code whole."""

from __future__ import annotations

import re
import time

import pytest
from cloudkit import (STATION, STATION_KEY, Cloud, TestClient, add_user, birth, code_record, empty_comps, evt,
                      login, make_settings, parcel_record, register)

from cloud import lifecycle
from cloud.app import create_app
from cloud.sms_text import KINDS, PARAMS, Style, box, provider_template, segments, shorten_station, units

STYLE = Style(signature="进村", public_url="https://jc.example.cn")
LONG_NAMES = ["冯家村便民店", "临泽镇冯家村党群服务中心", "甘肃省张掖市临泽县沙河镇冯家村党群服务中心便民快递服务站",
              "新疆维吾尔自治区伊犁哈萨克自治州霍城县清水河镇上海村村民委员会快递服务点",
              "𠀀𠀁𠀂村便民店𠀃𠀄𠀅𠀆𠀇𠀈𠀉𠀊𠀋", "Fengjia Village Convenience Store and Parcel Point"]


def test_units_and_segments_as_the_carriers_count():
    assert units("取件码 123456") == 10 and units("𠀀") == 2          # beyond the BMP: a surrogate pair
    assert segments("冯" * 70) == 1 and segments("冯" * 71) == 2 and segments("冯" * 134) == 2
    assert segments("冯" * 135) == 3


def test_places_as_people_say_them():
    assert box("l3", 12) == "3号柜 12号格口" and box("locker-07", None) == "7号柜" and box(None, 5) == "5号格口"
    assert shorten_station("冯家村便民店", 12) == "冯家村便民店"
    assert shorten_station("临泽县沙河镇冯家村党群服务中心", 12) == "沙河镇冯家村党群服务中心"
    assert shorten_station("临泽县沙河镇冯家村党群服务中心", 10) == "冯家村党群服务中心"
    assert shorten_station("冯家村党群服务中心", 7) == "冯家村党群中心"
    assert shorten_station("冯家村便民店隔壁的小卖部", 8) == "冯家村便民店隔…"


@pytest.mark.parametrize("station", LONG_NAMES)
def test_every_kind_fits_one_segment_and_keeps_the_code(station):
    code = "73051894"
    for msg in (STYLE.pickup(carrier="中国邮政EMS", station=station, locker="l12", c=120, code=code),
                STYLE.reminder(carrier="京东物流", station=station, locker="l12", c=120, hours=48),
                STYLE.recode(station=station, code=code), STYLE.otp(code=code, minutes=10)):
        assert units(msg.text) <= 70, msg.text
        assert msg.text.startswith("【进村】")
        if "code" in msg.params:
            assert f" {code}" in msg.text and msg.params["code"] == code
        if msg.kind != "otp":
            assert msg.text.endswith("https://jc.example.cn/m")
        # the parameters carry the same facts: the provider's template filled in gives the same text
        template = provider_template(msg.kind, numbered=True, public_url=STYLE.public_url)
        values = [msg.params[k] for k in PARAMS[msg.kind]]
        assert "【进村】" + re.sub(r"\{(\d)\}", lambda g, values=values: values[int(g.group(1)) - 1], template) == msg.text
        assert all(len(v) <= 12 for v in values)   # Tencent Cloud's limit on one parameter


def test_no_link_in_a_parameter():
    for kind in KINDS:
        assert "link" not in PARAMS[kind]
        assert "{link}" not in provider_template(kind, numbered=False, public_url=STYLE.public_url)


def test_every_text_the_cloud_sends_fits_one_segment(db_url):
    """Pickup, reminders, a replacement code and a login code, for a station with a long name."""
    settings = make_settings(db_url, public_url="https://jc.example.cn")
    long_name = "甘肃省张掖市临泽县沙河镇冯家村党群服务中心便民快递服务站"
    with TestClient(create_app(settings)) as client:
        register(client, STATION, STATION_KEY, long_name, {"l1": 24})
        cloud = Cloud(client=client, settings=settings)
        t0 = time.time()
        resp = cloud.ingest([parcel_record(1, "p-long", c=17, carrier="EMS"), birth(0, empty_comps(24)),
                             evt(1, "deposit", c=17, ref="p-long", ts=int(t0)), code_record(2, "p-long", "246810")])
        assert resp.json()["applied"] == 4
        with client.app.state.sessionmaker() as session:
            assert lifecycle.sweep(session, settings, now=t0 + 25 * 3600)["reminders"] == 1
            assert lifecycle.sweep(session, settings, now=t0 + 49 * 3600)["reminders"] == 1
            session.commit()
        add_user(client, "agent-zhao", "station_agent", station_id=STATION)
        resp = client.post("/api/v1/codes/resend", json={"station": STATION, "phone": "13800138000",
                                                          "reason": "code leaked"}, headers=login(client, "agent-zhao"))
        assert resp.status_code == 201, resp.text
        assert client.post("/m/otp", data={"phone": "13800138000"}).status_code == 200
        outbox = cloud.admin_get("/api/v1/notifications")
    texts = [n["text"] for n in outbox]
    assert len(texts) == 5
    for text in texts:
        assert units(text) <= 70, text
    assert any(re.search(r"中国邮政包裹已到冯家村.* 1号柜 17号格口，取件码 246810，查件 https://jc.example.cn/m$", t)
               for t in texts)
    assert sum("已放24小时" in t for t in texts) == 1 and sum("已放48小时" in t for t in texts) == 1
    assert any("新取件码 " in t for t in texts) and any(re.search(r"验证码 \d{6}，5分钟内有效", t) for t in texts)
    assert not any("l1" in t for t in texts)   # no internal locker id
