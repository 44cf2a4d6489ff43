"""Server-rendered pages show the data, Chinese first, English with ?lang=en."""

from __future__ import annotations

from cloudkit import PASSWORD, add_user, admin_headers, birth, code_record, empty_comps, evt, login, parcel_record


def fill(cloud) -> None:
    comps = empty_comps(6)
    comps[4].update(st="fault")
    resp = cloud.ingest([parcel_record(1, "p-page1", c=2, waybill="ZT5566778899", carrier="ZTO"),
                         birth(0, comps), evt(1, "deposit", c=2, ref="p-page1"),
                         code_record(2, "p-page1", "730518")])
    assert resp.json()["applied"] == 4


def test_overview_page(cloud):
    fill(cloud)
    html = cloud.client.get("/", headers=admin_headers()).text
    assert '<html lang="zh-CN">' in html
    assert "站点总览" in html and "最近包裹" in html and '<meta http-equiv="refresh"' in html
    assert "冯家村便民店" in html and 'id="station-lz-fengjia-01"' in html
    assert 'id="comp-lz-fengjia-01-l1-2"' in html
    assert 'class="comp state-occupied"' in html and 'class="comp state-fault"' in html
    assert "在线" in html and "未知" in html            # l1 after its birth, l2 never heard from
    assert "ZT5566778899" in html and "中通快递" in html and "待取件" in html and "已通知" not in html
    en = cloud.client.get("/?lang=en", headers=admin_headers()).text
    assert '<html lang="en">' in en
    assert "Stations overview" in en and "Recent parcels" in en and "ZTO Express" in en and "waiting for pickup" in en
    assert "站点总览" not in en


def test_sms_page(cloud):
    empty = cloud.client.get("/sms", headers=admin_headers())
    assert empty.status_code == 200 and "还没有短信" in empty.text
    fill(cloud)
    html = cloud.client.get("/sms", headers=admin_headers()).text
    assert "短信" in html and "13800138000" in html and "取件码 730518" in html and "已发送" in html
    en = cloud.client.get("/sms?lang=en", headers=admin_headers()).text
    assert "SMS outbox" in en and "取件码 730518" in en and "sent" in en


def test_overview_and_sms_pages_need_a_staff_login(cloud):
    fill(cloud)
    c = cloud.client
    for path in ("/", "/sms", "/sms?lang=en"):
        # the SMS outbox holds every pickup code: an anonymous visitor is sent to the login page
        resp = c.get(path, follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/login?next=/"), path
        assert "730518" not in c.get(path).text
    add_user(c, "ops-zhao", "maintenance")
    staff = login(c, "ops-zhao", PASSWORD)
    assert "取件码 730518" in c.get("/sms", headers=staff).text
    assert "冯家村便民店" in c.get("/", headers=staff).text


def test_pages_are_open_in_demo_mode(tmp_path):
    from fastapi.testclient import TestClient

    from cloud.app import create_app
    from cloud.settings import Settings
    with TestClient(create_app(Settings(demo=True, database_url=f"sqlite:///{tmp_path}/demo.db"))) as c:
        assert c.get("/", follow_redirects=False).status_code == 200
        assert c.get("/sms", follow_redirects=False).status_code == 200


def test_parcel_page(cloud):
    fill(cloud)
    cloud.ingest([evt(2, "pickup", c=2, ref="p-page1")])
    resp = cloud.client.get("/parcels/p-page1")
    assert resp.status_code == 200
    html = resp.text
    assert "包裹轨迹" in html and "ZT5566778899" in html and "冯家村便民店" in html
    assert "13800138000" not in html and "730518" not in html     # open tracking: no phone, no code
    assert 'class="status status-picked_up">已取件<' in html
    timeline = html[html.index('id="timeline"'):]
    positions = [timeline.find(step) for step in ("快递公司已预报", "已放入快递柜", "已发取件短信", "已取件")]
    assert -1 not in positions and positions == sorted(positions)
    # who moved it on, as people say it: the locker by its number, never its wire address
    assert "1号柜" in timeline and ">l1/" not in timeline and ">p-page1" not in html
    en = cloud.client.get("/parcels/p-page1?lang=en").text
    assert "Parcel timeline" in en and "picked up" in en and "put in the locker" in en and "locker 1" in en
    missing = cloud.client.get("/parcels/p-nothing")
    assert missing.status_code == 404 and "找不到这个包裹" in missing.text


def test_static_css(cloud):
    resp = cloud.client.get("/static/style.css")
    assert resp.status_code == 200 and ".state-occupied" in resp.text


def test_health_chart_breaks_its_line_over_a_silence():
    from cloud.pages_ops import CHART_GAP_S, chart_data
    from cloud.telemetry import SeriesPoint

    t0 = 1_700_000_000.0
    points = [SeriesPoint(at=t0, value=-60.0), SeriesPoint(at=t0 + 900, value=-61.0),
              SeriesPoint(at=t0 + 900 + CHART_GAP_S + 900, value=-62.0)]
    data = chart_data(points, bucket=900)
    # two means 15 minutes apart join; after more than two silent hours comes a gap, then the line again
    assert data == [[int(t0 * 1000), -60.0], [int((t0 + 900) * 1000), -61.0], [int((t0 + 1800) * 1000), None],
                    [int((t0 + 900 + CHART_GAP_S + 900) * 1000), -62.0]]
    assert chart_data([], bucket=900) == []


def _many_stations(cloud, n: int = 300) -> None:
    """n more stations in 12 towns, each in a village of its own."""
    from cloud import crud
    from cloud.schemas import StationCreate

    with cloud.client.app.state.sessionmaker() as session:
        for i in range(n):
            crud.create_station(session, data=StationCreate(
                id=f"t-{i:04d}", name=f"测试站{i:04d}", village=f"测试村{i:04d}", town=f"测试{i % 12:02d}镇",
                api_key=f"test-station-key-{i:08d}"))
        session.commit()


def test_stations_are_searched_and_paged(cloud):
    import re

    _many_stations(cloud)
    c = cloud.client
    first = c.get("/", headers=admin_headers()).text
    shown = re.findall(r'<section class="station" id="station-([^"]+)"', first)
    assert len(shown) == 20 and 'id="station-count">共 302 个站点<' in first
    assert 'id="page-of">第 1 / 16 页<' in first and 'href="/?page=2"' in first and "page-prev" not in first
    page2 = c.get("/?page=2", headers=admin_headers()).text
    second = re.findall(r'<section class="station" id="station-([^"]+)"', page2)
    assert len(second) == 20 and not set(second) & set(shown)
    last = c.get("/?page=999", headers=admin_headers()).text
    assert 'id="page-of">第 16 / 16 页<' in last and len(re.findall(r'<section class="station"', last)) == 2
    # by a station's name, its village or its town, in any case; the search stays in the page links
    assert re.findall(r'<section class="station" id="station-([^"]+)"',
                      c.get("/?q=测试村0123", headers=admin_headers()).text) == ["t-0123"]
    town = c.get("/?q=测试05镇&lang=en", headers=admin_headers()).text
    assert 'id="station-count">25 stations<' in town
    assert 'href="/?q=%E6%B5%8B%E8%AF%9505%E9%95%87&amp;lang=en&amp;page=2"' in town
    assert "No station matches." in c.get("/?q=nowhere&lang=en", headers=admin_headers()).text
    assert len(re.findall(r'<section class="station"', c.get("/?q=T-00", headers=admin_headers()).text)) == 20

    ops = c.get("/ops", headers=admin_headers()).text
    assert len(re.findall(r'class="gateway-row', ops)) == 20 and 'id="page-of">第 1 / 16 页<' in ops
    found = c.get("/ops?q=测试站0042&lang=en", headers=admin_headers()).text
    assert re.findall(r'id="gw-(t-[^"]+)"', found) == ["t-0042"] and "page-of" not in found
    # the state chips keep the search
    assert 'href="/ops?q=%E6%B5%8B%E8%AF%95%E7%AB%990042&amp;gw=unknown&amp;lang=en"' in found


def test_language_and_query_survive_login_and_the_switch(cloud):
    c = cloud.client
    add_user(c, "ops-zhao", "maintenance")
    add_user(c, "county-qian", "county_official")
    # an English page sends to an English login, which comes back to the page with its query
    resp = c.get("/stats?by=carrier&lang=en", follow_redirects=False)
    assert resp.status_code == 303
    login_url = resp.headers["location"]
    assert login_url == "/login?next=/stats%3Fby%3Dcarrier%26lang%3Den&lang=en"
    page = c.get(login_url).text
    assert '<html lang="en">' in page and ">Log in<" in page
    # the language switch keeps where the login leads
    assert 'id="nav-lang"' in page and 'href="/login?next=%2Fstats%3Fby%3Dcarrier%26lang%3Den"' in page
    wrong = c.post("/login?lang=en", data={"username": "county-qian", "password": "nope-nope-nope",
                                           "next": "/stats?by=carrier&lang=en"})
    assert "Wrong user name or password." in wrong.text and 'value="county-qian"' in wrong.text
    ok = c.post("/login?lang=en", data={"username": "county-qian", "password": PASSWORD,
                                        "next": "/stats?by=carrier"}, follow_redirects=False)
    assert ok.headers["location"] == "/stats?by=carrier&lang=en"
    # switched to Chinese on the login page: the page after it is Chinese too
    zh = c.post("/login", data={"username": "county-qian", "password": PASSWORD,
                                "next": "/stats?by=carrier&lang=en"}, follow_redirects=False)
    assert zh.headers["location"] == "/stats?by=carrier"
    stats = c.get("/stats?by=village&period=7&lang=en", headers=login(c, "county-qian", PASSWORD)).text
    # switching language keeps the grouping and the period
    assert '<a href="/stats?by=village&amp;period=7" id="nav-lang" lang="zh-CN">中文</a>' in stats
