"""The admin's staff page in real headless Chromium on a 390 px phone: it fits, and its forms work."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from cloudkit import ADMIN, PASSWORD, STATION, STATION_KEY

from simulator.net import free_port, wait_port
from simulator.procs import stop_process

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


@pytest.fixture
def served(tmp_path):
    """A uvicorn cloud with one station, its locker, a courier and an admin account."""
    port = free_port()
    env = dict(os.environ, JINCUN_ADMIN_TOKEN=ADMIN, JINCUN_DATABASE_URL=f"sqlite:///{tmp_path}/c.db",
               PYTHONPATH=str(REPO), JINCUN_LOG_LEVEL="WARNING")
    proc = subprocess.Popen([sys.executable, "-c", f"import cloud; cloud.serve('127.0.0.1', {port})"],
                            cwd=tmp_path, env=env, stdout=(tmp_path / "cloud.log").open("wb"),
                            stderr=subprocess.STDOUT)
    try:
        wait_port("127.0.0.1", port, timeout=30)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30) as c:
            for path, body in (
                    ("/api/v1/admin/stations", {"id": STATION, "name": "冯家村便民店", "village": "冯家村",
                                                "town": "临泽镇", "api_key": STATION_KEY}),
                    (f"/api/v1/admin/stations/{STATION}/lockers",
                     {"id": "l1", "comps": [{"n": i, "size": "SML"[(i - 1) % 3]} for i in range(1, 13)]}),
                    ("/api/v1/carriers/ZTO/couriers", {"name": "王师傅", "phone": "13900000001", "pin": "482913",
                                                       "stations": [STATION]}),
                    ("/api/v1/users", {"username": "county-admin", "display_name": "县管理员", "password": PASSWORD,
                                       "role": "admin"})):
                assert c.post(path, json=body).status_code == 201, path
        yield base
    finally:
        stop_process(proc)


def test_admin_page_on_a_phone(served, tmp_path):
    if not shutil.which(CHROMIUM):
        pytest.fail("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            page.goto(f"{served}/admin")
            assert "/login" in page.url
            page.fill("#username", "county-admin")
            page.fill("#password", PASSWORD)
            page.click("#login-submit")
            page.wait_for_url("**/admin*")
            assert page.inner_text("#page-title").startswith("人员与站点管理")
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth"), "fits 390 px"

            # add a courier through the form, then retire them
            page.click("#couriers details summary")
            page.select_option("#add-courier select[name=carrier]", "YTO")
            page.fill("#add-courier input[name=name]", "赵师傅")
            page.fill("#add-courier input[name=phone]", "13900000002")
            page.fill("#add-courier input[name=pin]", "771204")
            page.fill("#add-courier input[name=stations]", STATION)
            page.click("#add-courier button[type=submit]")
            page.wait_for_selector("#admin-ok")
            assert page.get_attribute("#courier-13900000002", "data-active") == "yes"
            page.fill("#courier-13900000002 input[name=reason]", "调走")
            page.click("#courier-13900000002 button[type=submit]")
            page.wait_for_selector("#admin-ok")
            assert page.get_attribute("#courier-13900000002", "data-active") == "no"
            assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(tmp_path / "admin-phone.png"), full_page=True)

            # a locker by the one compartment spec
            page.click(f"#station-{STATION} details summary")
            page.fill(f"#add-locker-{STATION} input[name=id]", "l2")
            page.fill(f"#add-locker-{STATION} input[name=comps]", "4S,2M,1L")
            page.click(f"#add-locker-{STATION} button[type=submit]")
            page.wait_for_selector("#admin-ok")
            assert "7" in page.inner_text(f"#locker-{STATION}-l2")

            page.goto(f"{served}/admin?lang=en")
            assert page.inner_text("#page-title").startswith("Staff and stations")
            # nothing is fetched from another host
            hosts = set()
            page.on("request", lambda r: hosts.add(r.url.split("/")[2]))
            page.reload()
            assert hosts == {served.split("/")[2]}
        finally:
            browser.close()
