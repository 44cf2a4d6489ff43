"""The pages in real headless Chromium: maintenance dashboard, locker detail, statistics, phone page."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cloudkit import ADMIN, PASSWORD, STATION, STATION_KEY, birth, empty_comps, evt, parcel_record, code_record

from simulator.net import free_port, wait_port
from simulator.procs import stop_process

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
SHOTS = Path(os.environ.get("JINCUN_SCREENSHOTS", "")) if os.environ.get("JINCUN_SCREENSHOTS") else None


@pytest.fixture
def served(tmp_path):
    """A uvicorn cloud with a county, a station with live lockers, staff and a parcel."""
    port = free_port()
    env = dict(os.environ, JINCUN_ADMIN_TOKEN=ADMIN, JINCUN_DATABASE_URL=f"sqlite:///{tmp_path}/c.db",
               PYTHONPATH=str(REPO), JINCUN_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-c", f"import cloud; cloud.serve('127.0.0.1', {port})"],
                            cwd=tmp_path, env=env, stdout=(tmp_path / "cloud.log").open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        fill(base, tmp_path)
        yield base
    finally:
        stop_process(proc)


def fill(base: str, tmp_path: Path) -> None:
    h = {"Authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=base, headers=h, timeout=30) as c:
        c.post("/api/v1/admin/stations", json={"id": STATION, "name": "冯家村便民店", "kind": "village_shop",
                                               "village": "冯家村", "town": "临泽镇", "api_key": STATION_KEY})
        for lid in ("l1", "l2"):
            c.post(f"/api/v1/admin/stations/{STATION}/lockers",
                   json={"id": lid, "comps": [{"n": i, "size": "SML"[(i - 1) % 3]} for i in range(1, 13)]})
        for user, role in (("ops-li", "maintenance"), ("county-wang", "county_official")):
            c.post("/api/v1/users", json={"username": user, "display_name": user, "password": PASSWORD, "role": role})
        now = time.time()
        comps = empty_comps(12)
        comps[6].update(st="disabled")
        comps[9].update(st="fault")
        items = [birth(0, comps, item_seq=1, rx=now - 3 * 86400), parcel_record(1, "p-web1", c=2)]
        items += [{"src": "l1", "boot": "a1b2c3d4", "seq": 100 + i, "kind": "tele", "rx": now - 3 * 86400 + i * 3600,
                   "body": {"v": 1, "boot": "5f0c3a9e", "ts": 0, "mono": i, "rssi": -55 - (i % 12),
                            "vin": round(12.2 - (i % 24) / 40, 2), "temp": 18 + (i % 24) / 2, "outbox": i % 3,
                            "fw": "0.1.0"}} for i in range(72)]
        items += [evt(1, "deposit", c=2, ref="p-web1", ts=int(now - 3600), rx=now - 3600),
                  code_record(2, "p-web1", "482913"), evt(2, "alarm", kind="door_ajar", c=5, ts=int(now - 600)),
                  evt(3, "alarm", kind="lock_jam", c=10, ts=int(now - 300), rx=now - 300),
                  {"src": "l1", "boot": "a1b2c3d4", "seq": 999, "kind": "tele", "rx": time.time(),
                   "body": {"v": 1, "boot": "5f0c3a9e", "ts": 0, "mono": 1, "rssi": -58, "vin": 12.1, "temp": 21.5,
                            "outbox": 0, "fw": "0.1.0"}}]
        r = c.post("/api/v1/gateway/ingest", json={"station": STATION, "batch": "w1", "items": items},
                   headers={"Authorization": f"Bearer {STATION_KEY}"})
        assert r.json()["rejected"] == 0, r.text
    # a small example county for the statistics page
    from cloud.seed import seed_county
    from cloud.storage import make_engine, make_sessionmaker
    engine = make_engine(f"sqlite:///{tmp_path}/c.db")
    with make_sessionmaker(engine)() as session:
        seed_county(session, towns=12, villages=400, parcels_per_station_day=0.5, days=30)
    engine.dispose()


def shot(page, name: str, tmp_path: Path) -> Path:
    path = (SHOTS or tmp_path) / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000
    return path


@pytest.fixture
def browser():
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def staff_login(page, base: str, user: str, next_path: str) -> None:
    page.goto(f"{base}{next_path}")
    assert "/login" in page.url
    page.fill("#username", user)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_load_state()


def test_maintenance_dashboard_in_chromium(served, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    # a county of 300 stations: the operator searches for the one at hand
    staff_login(page, served, "ops-li", "/ops?q=冯家村")
    assert "/ops?q=" in page.url and page.locator("#station-count").inner_text() == "共 1 个站点"
    assert page.locator("#page-title").inner_text().startswith("运维看板")
    assert page.locator("tr.alarm").count() == 2
    assert page.locator("tr.alarm-lock_jam").inner_text().count("锁卡住") == 1
    assert "柜门未关" in page.locator("tr.alarm-door_ajar").inner_text()
    assert "冯家村便民店" in page.locator("tr.alarm-door_ajar").inner_text()
    row = page.locator(f"#row-{STATION}-l1")
    assert row.get_attribute("data-health") == "online" and "0.1.0" in row.inner_text()
    assert page.locator(f"#row-{STATION}-l2").get_attribute("data-health") == "unknown"
    shot(page, "ops-dashboard-zh", tmp_path)
    # the chips filter the locker table by state (l1 online, l2 never heard from)
    assert page.locator("#locker-filter-online b").inner_text() == "1"
    page.click("#locker-filter-online")
    page.wait_for_load_state()
    assert page.locator("tr.locker-row").count() == 1 and page.locator(f"#row-{STATION}-l1").count() == 1
    assert "on" in page.locator("#locker-filter-online").get_attribute("class")
    page.click("#locker-filter-all")
    page.wait_for_load_state()
    assert page.locator("tr.locker-row").count() == 2
    page.locator("tr.alarm .ack-btn").first.click()
    page.wait_for_load_state()
    assert page.locator("tr.alarm").count() == 1

    page.click(f"#row-{STATION}-l1 a.details")
    page.wait_for_load_state()
    assert page.locator("#comp-2").get_attribute("data-state") == "occupied"
    assert page.locator("#comp-7").get_attribute("data-state") == "disabled"
    assert page.locator("#charts-health_24h .chart[data-drawn]").count() == 4
    assert page.locator("#charts-health_7d .chart[data-drawn]").count() == 4
    page.select_option("#op", "open")
    page.select_option("#c", "5")
    page.fill("#reason", "门卡住了")
    page.click("#action-send")
    page.wait_for_load_state()
    # the command's id stays out of sight: the page says what happened in words
    assert re.fullmatch(r"k-[0-9a-f]{16}", page.locator("#cmd-ok").get_attribute("data-cmd"))
    assert page.locator("#cmd-ok").inner_text() == "命令已发出，网关上线后执行。"
    assert page.locator("#commands tr.command .op").first.inner_text() == "远程开门"
    shot(page, "ops-locker-zh", tmp_path)
    page.select_option("#op", "open")
    page.select_option("#c", "7")
    page.fill("#reason", "")
    page.click("#action-send")
    page.wait_for_load_state()
    # in the page's language, and the form keeps what was chosen
    assert page.locator("#cmd-err").inner_text() == "远程开门需要填写原因。"
    assert page.locator("#op").input_value() == "open" and page.locator("#c").input_value() == "7"

    page.goto(f"{served}/ops/{STATION}/l1?lang=en")
    assert "Remote open" in page.content() and "Last 7 days" in page.content()
    shot(page, "ops-locker-en", tmp_path)


CHART_STATE = """() => [...document.querySelectorAll('[data-chart]')].map(el => {
    const inst = echarts.getInstanceByDom(el);
    const canvas = el.querySelector('canvas');
    const ctx = canvas.getContext('2d');
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let inked = 0;
    for (let i = 3; i < px.length; i += 4) { if (px[i] > 0) inked++; }
    const opt = inst.getOption();
    return {id: el.parentElement.id, points: opt.series[0].data.filter(p => p[1] !== null).length,
            axis: opt.xAxis[0].type, unit: opt.yAxis[0].name, inked: inked};
})"""


def test_locker_health_charts_draw_from_local_echarts(served, browser, tmp_path):
    """Signal, voltage, temperature and outbox over 24 h and 7 days, drawn by the vendored ECharts."""
    outside: list[str] = []

    def only_local(route):
        if route.request.url.startswith(served):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    for width, height, name in ((1280, 900, "cloud-ops-locker"), (390, 844, "cloud-ops-locker-phone")):
        page = browser.new_page(viewport={"width": width, "height": height})
        page.route("**/*", only_local)
        errors: list[str] = []
        page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
        staff_login(page, served, "ops-li", f"/ops/{STATION}/l1")
        page.wait_for_selector("#charts-health_7d .chart[data-drawn] canvas")
        charts = page.evaluate(CHART_STATE)
        assert len(charts) == 8, charts
        for ch in charts:
            # the fixture sends 72 hourly samples over the last 3 days: about 24 in the last day, all in the week
            assert ch["axis"] == "time" and ch["inked"] > 500, ch
            assert ch["points"] >= (20 if "24h" in ch["id"] else 24), ch
        units = {ch["id"]: ch["unit"] for ch in charts}
        assert units["chart-health_24h-rssi"] == "dBm" and units["chart-health_7d-vin"] == "V"
        assert units["chart-health_24h-temp"] == "°C" and units["chart-health_7d-outbox"] == "条"
        assert "信号 (dBm)" in page.locator("#chart-health_24h-rssi strong").inner_text()
        assert page.locator(".chart-empty").count() == 0
        assert errors == []
        # the charts fit the screen: no sideways scrolling on a phone
        assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        shot(page, name, tmp_path)
        page.close()

    # a locker that never sent telemetry says so instead of drawing nothing
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.route("**/*", only_local)
    staff_login(page, served, "ops-li", f"/ops/{STATION}/l2")
    assert page.locator(".chart-empty").count() == 8
    assert page.locator(".chart-empty").first.inner_text() == "数据不足"
    assert page.locator("[data-chart]").count() == 0
    page.goto(f"{served}/ops/{STATION}/l2?lang=en")
    assert page.locator(".chart-empty").first.inner_text() == "not enough data"
    assert outside == []
    lib = httpx.get(f"{served}/static/vendor/echarts/echarts.min.js", timeout=10)
    assert lib.status_code == 200 and (REPO / "cloud/static/vendor/echarts/echarts.min.js").read_bytes() == lib.content


def test_statistics_and_phone_page_in_chromium(served, browser, tmp_path):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    staff_login(page, served, "county-wang", "/stats")
    # the county at a glance comes first, above the tables
    assert page.locator("#summary .kpi").count() == 6
    assert page.locator("#summary").bounding_box()["y"] < page.locator("#coverage").bounding_box()["y"]
    assert re.fullmatch(r"\d+/\d+ 个村", page.locator("#kpi-coverage small").inner_text())
    assert page.locator("tr.coverage-row").count() >= 12
    assert page.locator("tr.subsidy-row").count() == 20
    assert page.locator("#fees tr.fee-inbound").count() >= 1
    assert page.locator("#door-help tr.door-waiting").count() >= 1
    assert "偏远村派送费" in page.locator("#fees tr.fee-row").first.inner_text()
    # a period of 7 days: the chip is on, the tables and their export links cover 7 days
    page.click("#period-7")
    page.wait_for_load_state()
    assert "on" in page.locator("#period-7").get_attribute("class")
    assert "days=7" in page.locator("#fees h2 a", has_text="CSV").get_attribute("href")
    overdue_7 = httpx.get(f"{served}/api/v1/stats/overdue", params={"days": 7},
                          headers={"Authorization": f"Bearer {ADMIN}"}).json()[-1]
    assert page.locator("#overdue tbody tr").last.inner_text().split("\t")[1:3] == [
        str(overdue_7["deposited"]), str(overdue_7["overdue"])]
    page.click("#period-30")
    page.wait_for_load_state()
    # the export links work with the page's login cookie
    csv = page.request.get(served + page.locator("#fees h2 a", has_text="CSV").get_attribute("href"))
    assert csv.status == 200 and "偏远村派送费" in csv.text() and csv.text().startswith("\ufeff乡镇,站点,站点编号,方向")
    shot(page, "stats-zh", tmp_path)
    with page.expect_download() as dl:
        page.click("#coverage a:has-text('XLSX')")
    assert dl.value.suggested_filename == "coverage.xlsx"
    page.goto(f"{served}/stats?lang=en&by=carrier")
    assert "Village coverage" in page.content() and "SF Express" in page.content()
    # a maintenance login may not see statistics
    other = browser.new_page()
    staff_login(other, served, "ops-li", "/stats")
    assert "/login" in other.url

    phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone.goto(f"{served}/m")
    phone.fill("#phone", "13800138000")
    phone.click("#otp-send")
    phone.wait_for_load_state()
    sms = httpx.get(f"{served}/api/v1/notifications", params={"phone": "13800138000"},
                    headers={"Authorization": f"Bearer {ADMIN}"}).json()[0]["text"]
    phone.fill("#code", re.search(r"验证码 (\d{6})", sms).group(1))
    phone.click("#code-submit")
    phone.wait_for_load_state()
    assert phone.locator("#parcel-p-web1 .big-code").inner_text() == "482913"
    assert phone.locator("#parcel-p-web1 .station-name").inner_text() == "冯家村便民店"
    # a villager's page has no links to the staff pages, only the language switch
    assert phone.locator("#nav a").count() == 1 and phone.locator("#nav-lang").count() == 1
    phone.click("#consent-grant")
    phone.wait_for_load_state()
    assert phone.locator("#consent-state").inner_text() == "已同意"
    # an extra charge reported from the phone, listed back; the page still fits the phone's width
    phone.fill("#charge-form input[name=amount]", "2")
    phone.select_option("#charge-form select[name=kind]", "pickup")
    phone.click("#charge-submit")
    phone.wait_for_load_state()
    assert "取件费 · 2.00" in phone.locator("#my-charges").inner_text()
    assert phone.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    shot(phone, "phone-zh", tmp_path)


def test_api_docs_and_pages_load_nothing_from_outside(served, browser):
    """Swagger UI and the pages come from the cloud itself: a county network with no CDN still shows them."""
    page = browser.new_page()
    outside: list[str] = []
    failed: list[str] = []

    def only_local(route):
        if route.request.url.startswith(served):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(f"{served}/docs")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "jincun cloud" in page.inner_text(".swagger-ui .info .title")
    page.wait_for_selector(".opblock-summary-path")
    assert page.locator(".opblock-summary-path", has_text="/api/v1/gateway/ingest").count() >= 1
    page.goto(f"{served}/m")
    page.wait_for_load_state("networkidle")
    assert page.locator("link[rel=icon]").get_attribute("href") == "/static/favicon.svg"
    assert outside == []
    assert failed == []
    icon = httpx.get(f"{served}/favicon.ico", timeout=10)
    assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg+xml")
    assert httpx.get(f"{served}/redoc", timeout=10).status_code == 404
