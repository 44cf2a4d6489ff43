"""The terminal page's 待退回 tab in a real browser at phone width: a courier sees only their carrier's overdue
parcels and takes one out with the tab's button, which opens its door."""

from pathlib import Path

import pytest
from gwkit import COURIER, COURIER_PIN, RunningGateway, courier_api, free_port, make_config
from test_deposits import ready_locker, wait_state

from jincun.i18n import STRINGS
from jincun.pins import hash_pin

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
YTO = {"id": "yto-wang", "name": "圆通小王", "role": "courier", "carrier": "YTO",
       "pin_hash": hash_pin(COURIER_PIN, iterations=1000)}


async def test_a_courier_takes_an_overdue_parcel_out_from_the_returns_tab(station, lockers, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.async_api")
    _, broker = station
    port = free_port()
    rg = RunningGateway(make_config(tmp_path, broker.port, http={"port": port},
                                    top={"terminal": {"users": [COURIER, YTO]}}))
    await rg.start()
    rg.broker = broker
    try:
        l1 = await ready_locker(rg, lockers)
        refs = {}
        async with courier_api(rg.gw) as http:
            for waybill, carrier in (("YT300000001", "YTO"), ("ZT300000002", "ZTO")):
                r = await http.post("/api/v1/deposits", json={"waybill": waybill, "phone": "13800000301",
                                                             "carrier": carrier, "size": "S", "consent_asked": True})
                assert r.status_code == 201, r.text
                d = r.json()
                l1.evt("deposit", c=d["c"], ref=d["ref"])
                await wait_state(http, d["ref"], "deposited")
                assert await rg.gw.deposits.to_return("l1", d["c"], d["ref"])
                refs[waybill] = d
        yto = refs["YT300000001"]
        async with playwright.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                await page.goto(f"http://127.0.0.1:{port}/terminal")
                await page.wait_for_selector(f"#user option[value={YTO['id']}]", state="attached")
                await page.select_option("#user", YTO["id"])
                await page.fill("#pin", COURIER_PIN)
                await page.click("#f-login button")
                await page.wait_for_selector("#v-courier:not(.hidden)")
                assert await page.text_content("#tab-returns") == STRINGS["term.tab_returns"][0] + " (1)"
                await page.click("button[data-tab=returns]")
                await page.wait_for_selector("#returns-rows button.take-out")
                rows = await page.text_content("#returns-rows")
                assert "YT300000001" in rows and "ZT300000002" not in rows, "only the courier's own carrier"
                assert "13800000301" not in rows and "0301" in rows, "the phone is masked"
                assert await page.is_hidden("#t-deposit")
                assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")

                await page.click("#returns-rows button.take-out")
                await page.wait_for_function("document.getElementById('returns-msg').textContent.length > 0")
                msg = await page.text_content("#returns-msg")
                assert msg.startswith(STRINGS["term.taken_out"][0]) and f"{yto['c']}号格口" in msg, msg
                opens = [c for c in l1.cmds if c["op"] == "open"]
                assert [(c["c"], c["why"]) for c in opens] == [(yto["c"], "return")]
                await page.wait_for_function(
                    "!document.querySelector('#returns-rows button.take-out')")
                assert await page.text_content("#tab-returns") == STRINGS["term.tab_returns"][0]
                await page.click("#lang")
                assert await page.text_content("button[data-tab=returns]") == "Returns"
            finally:
                await browser.close()
        assert (await rg.gw.deposits.get(yto["ref"]))["state"] == "returned"
        assert (await rg.gw.deposits.get(refs["ZT300000002"]["ref"]))["state"] == "returning"
        handovers = [r.body for r in await rg.outbox_rows("handover")]
        assert [(h["ref"], h["by"], h["how"]) for h in handovers] == [(yto["ref"], YTO["id"], "return")]
    finally:
        await rg.close()
