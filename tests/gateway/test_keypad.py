"""Keypad bookings: compartments held for a courier's one-time PIN (courier_put), confirmed by the locker's
deposit events like any deposit, and freed again when the PIN expires."""

import re
import time
from pathlib import Path

import pytest
from gwkit import COURIER, COURIER_PIN, SECRET_L1, RunningGateway, courier_api, free_port, make_config, until
from test_deposits import ready_locker, wait_state

from gateway.consent import FixedConsent
from gateway.protocol import courier_hash

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]


async def test_a_booking_holds_its_compartments_and_the_locker_gets_only_the_pin_hash(gateway, lockers):
    l1 = await ready_locker(gateway, lockers)
    async with courier_api(gateway.gw) as http:
        r = await http.post("/api/v1/terminal/keypad", json={"parcels": [
            {"waybill": "ZT100000001", "phone": "13800000001", "size": "S", "consent_asked": True, "carrier": "ZTO"},
            {"waybill": "ZT100000002", "phone": "13800000002", "size": "M", "consent_asked": True, "carrier": "ZTO"}]})
        assert r.status_code == 201, r.text
        b = r.json()
        pin, deps = b["pin"], b["deposits"]
        assert len(pin) == 8 and pin.isdigit() and b["locker"] == "l1" and b["exp_s"] == 1800
        assert sorted((d["c"], d["size"]) for d in deps) == [(1, "S"), (2, "M")]
        put = [c for c in l1.cmds if c["op"] == "courier_put"][-1]
        assert put["h"] == courier_hash(SECRET_L1, pin) and put["exp"] == 1800 and pin not in str(put)
        assert sorted((x["c"], x["ref"]) for x in put["deps"]) == sorted((d["c"], d["ref"]) for d in deps)
        parcels = {p.body["ref"]: p.body for p in await gateway.outbox_rows("parcel")}
        assert {parcels[d["ref"]]["waybill"] for d in deps} == {"ZT100000001", "ZT100000002"}
        assert all(parcels[d["ref"]]["courier"] == COURIER["id"] for d in deps)
        for d in deps:
            await wait_state(http, d["ref"], "keypad")

        # one courier holds at most 8 compartments for the keypad at a time
        r = await http.post("/api/v1/terminal/keypad", json={"parcels": [
            {"waybill": f"ZT10000001{i}", "phone": "13800000001", "size": "S", "consent_asked": True, "carrier": "ZTO"}
            for i in range(7)]})
        assert r.status_code == 409 and r.json()["detail"] == {"error": "locker_refused", "detail": "keypad_limit"}

        # a deposit at the terminal meanwhile gets neither held compartment
        r = await http.post("/api/v1/deposits", json={"waybill": "SF100", "phone": "13800000003", "carrier": "SF",
                                                     "size": "S", "consent_asked": True})
        assert r.status_code == 201 and r.json()["c"] == 3, r.text
        r = await http.post("/api/v1/terminal/keypad", json={"parcels": [
            {"waybill": "ZT100000004", "phone": "13800000004", "size": "S", "consent_asked": True, "carrier": "ZTO"}]})
        assert r.status_code == 409 and r.json()["detail"]["error"] == "no_compartment"

        # the courier typed the PIN: the locker's deposit event confirms it, the code goes out, the hold ends
        first = next(d for d in deps if d["c"] == 1)
        l1.evt("deposit", c=1, ref=first["ref"])
        await wait_state(http, first["ref"], "deposited")
        await until(lambda: any(c["op"] == "code_put" for c in l1.cmds), what="code_put")
        assert (("l1", 1) not in gateway.gw.deposits._held) and ("l1", 2) in gateway.gw.deposits._held

        # the other booking expires unused: its parcel is void and its compartment free again
        second = next(d for d in deps if d["c"] == 2)
        # just past the PIN's 30 minutes the locker may still take it: the booking holds for a grace minute
        just = time.time() - 1800 - 10
        await gateway.gw.outbox.run(lambda conn: conn.execute("UPDATE parcels SET updated=? WHERE ref=?",
                                                              (just, second["ref"])))
        gateway.gw.deposits._held[("l1", 2)] = (second["ref"], just + 1800, COURIER["id"])
        await gateway.gw.deposits._expire_keypad()
        await wait_state(http, second["ref"], "keypad")
        assert ("l1", 2) in gateway.gw.deposits._held
        old = time.time() - 2000
        await gateway.gw.outbox.run(lambda conn: conn.execute("UPDATE parcels SET updated=? WHERE ref=?",
                                                              (old, second["ref"])))
        gateway.gw.deposits._held[("l1", 2)] = (second["ref"], old, COURIER["id"])
        await gateway.gw.deposits._expire_keypad()
        await wait_state(http, second["ref"], "void")
        assert ("l1", 2) not in gateway.gw.deposits._held
        # the cloud is told to cancel it (a parcel record with `void`), once; the used booking is left alone
        voids = [p.body for p in await gateway.outbox_rows("parcel") if p.body.get("void")]
        assert voids == [{"ref": second["ref"], "locker": "l1", "c": 2, "void": "keypad_expired"}]
        await gateway.gw.deposits._expire_keypad()
        assert len([p for p in await gateway.outbox_rows("parcel") if p.body.get("void")]) == 1


async def test_a_locker_that_refuses_the_pin_voids_the_booking(gateway, lockers):
    l1 = await ready_locker(gateway, lockers)
    l1.ack_result["courier_put"] = {"ok": False, "err": "full"}
    async with courier_api(gateway.gw) as http:
        r = await http.post("/api/v1/terminal/keypad", json={"parcels": [
            {"waybill": "ZT100000005", "phone": "13800000005", "size": "M", "consent_asked": True, "carrier": "ZTO"}]})
        assert r.status_code == 409 and r.json()["detail"] == {"error": "locker_refused", "detail": "full"}
        (parcel,) = [p.body for p in await gateway.outbox_rows("parcel")]
        await wait_state(http, parcel["ref"], "void")
        assert not gateway.gw.deposits._held


async def test_the_terminal_page_books_the_keypad_and_shows_the_pin_once(station, lockers, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.async_api")
    _, broker = station
    port = free_port()
    rg = RunningGateway(make_config(tmp_path, broker.port, http={"port": port}),
                        consent=FixedConsent({"13800000001": ("granted", False), "13800000002": ("granted", False)}))
    await rg.start()
    rg.broker = broker
    try:
        l1 = await ready_locker(rg, lockers)
        async with playwright.async_playwright() as p:
            browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            try:
                page = await browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                await page.goto(f"http://127.0.0.1:{port}/terminal")
                await page.wait_for_selector(f"#user option[value={COURIER['id']}]", state="attached")
                await page.select_option("#user", COURIER["id"])
                await page.fill("#pin", COURIER_PIN)
                await page.click("#f-login button")
                await page.wait_for_selector("#v-courier:not(.hidden)")
                # the desk has no carrier: with the cloud unreachable nobody knows the first parcel's, so the
                # booking is refused and the parcel comes back into the form with the carrier to choose
                await page.fill("#waybill", "ZT200000001")
                await page.fill("#phone", "13800000001")
                await page.click("#keypad-add")
                await page.click("#keypad-go")
                await page.wait_for_selector("#carrier-box:not(.hidden)")
                assert "请选择快递公司" in await page.inner_text("#deposit-err")
                assert await page.is_hidden("#keypad") and await page.input_value("#waybill") == "ZT200000001"
                names = await page.eval_on_selector_all("#d-carrier option", "os => os.map((o) => o.textContent)")
                assert "中通快递 · ZTO Express" in names, "Chinese first, with English, from the one table"
                await page.select_option("#d-carrier", "ZTO")
                await page.click("#keypad-add")
                await page.fill("#waybill", "ZT200000002")
                await page.fill("#phone", "13800000002")
                await page.select_option("#d-carrier", "ZTO")
                await page.click("#keypad-add")
                assert (await page.text_content("#keypad-list")).count("ZT20000000") == 2
                await page.click("#keypad-go")
                await page.wait_for_selector("#keypad-pin-digits")
                pin = await page.text_content("#keypad-pin-digits")
                assert re.fullmatch(r"\d{8}", pin) and "柜上投递码" not in pin
                assert await page.is_hidden("#keypad"), "the list is spent"
                put = [c for c in l1.cmds if c["op"] == "courier_put"][-1]
                assert put["h"] == courier_hash(SECRET_L1, pin) and len(put["deps"]) == 2
                booked = {p.body["waybill"]: p.body["carrier"] for p in await rg.outbox_rows("parcel")}
                assert booked == {"ZT200000001": "ZTO", "ZT200000002": "ZTO"}
                # a deposit with the door opening at once: the carrier the desk picks, the form still asking
                await page.fill("#waybill", "YD300000003")
                await page.fill("#phone", "13800000001")
                await page.select_option("#d-carrier", "YUNDA")
                await page.check("input[name=size][value=S]")  # the booking holds the M and the L
                await page.click("#f-deposit button[type=submit]")
                await page.wait_for_selector("#opening:not(.hidden)")
                booked = {p.body["waybill"]: p.body["carrier"] for p in await rg.outbox_rows("parcel")}
                assert booked["YD300000003"] == "YUNDA"
                assert await page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
            finally:
                await browser.close()
    finally:
        await rg.close()
