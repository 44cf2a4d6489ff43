"""The station terminal in real headless Chromium: courier deposit with a scanned waybill, the village agent's
lists, door-to-door hand-over, outbound intake and a fault report, all with the cloud unreachable."""

import asyncio
import json
import os
import tty
from pathlib import Path

import pytest

from gateway.consent import FixedConsent
from gateway.lockboard_sim import SimBus
from gateway.terminal import hash_pin
from gwkit import SECRET_L2, RunningGateway, free_port, make_config, until

playwright = pytest.importorskip("playwright.async_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
SHOTS = Path(os.environ.get("JC_SHOTS", "")) if os.environ.get("JC_SHOTS") else None
ASSIST = "13700000007"


@pytest.fixture
async def terminal(station, tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed")
    _, broker = station
    sim = SimBus.single("kr-cu16-ir")
    scan_master, scan_slave = os.openpty()
    tty.setraw(scan_slave)
    port = free_port()
    top = {
        "boards": [{"id": "b1", "port": sim.port, "model": "kr-cu16-ir", "secret": SECRET_L2, "poll_s": 0.05,
                    "comps": [{"n": 1, "size": "S"}, {"n": 2, "size": "M"}, {"n": 3, "size": "L"}]}],
        "scanner": {"port": os.ttyname(scan_slave)},
        "terminal": {"users": [
            {"id": "c-wang", "name": "王师傅", "role": "courier", "carrier": "中通", "pin_hash": hash_pin("246810")},
            {"id": "a-li", "name": "李大姐", "role": "agent", "pin_hash": hash_pin("135790")}],
            "assist_phones": [ASSIST], "fees": {"*": {"first_kg_cents": 800, "extra_kg_cents": 300,
                                                      "produce_discount_pct": 20}}},
    }
    cfg = make_config(tmp_path, broker.port, top=top, http={"port": port})
    rg = RunningGateway(cfg, consent=FixedConsent({"13800000001": ("granted", False)}))
    await rg.start()
    await until(lambda: rg.gw.link.lockers["b1"].birth_at, what="board birth")
    rg.sim, rg.scan_master, rg.url = sim, scan_master, f"http://127.0.0.1:{port}/terminal"
    try:
        yield rg
    finally:
        await rg.close()
        sim.close()
        os.close(scan_master)
        os.close(scan_slave)


async def shot(page, name):
    if SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def deposit_via_page(page, rg, waybill, phone, *, scan=True, ask=False):
    if scan:
        os.write(rg.scan_master, waybill.encode() + b"\r\n")
        await page.wait_for_function(f"document.getElementById('waybill').value === '{waybill}'", timeout=5000)
    else:
        await page.fill("#waybill", waybill)
    await page.fill("#phone", phone)
    await page.click("#f-deposit button[type=submit]")
    if ask:
        await page.wait_for_selector("#consent-box:not(.hidden)")
        await page.check("#consent-asked")
        await page.click("#f-deposit button[type=submit]")
    await page.wait_for_selector("#opening:not(.hidden)")
    b1 = rg.gw.link.lockers["b1"]
    c = next(n for n, comp in b1.comps.items() if comp.st == "deposit")
    await until(lambda: b1.comps[c].door == "open", what="door open")
    rg.sim.close_door(c, occupied=True)
    await page.wait_for_selector("#receipt:not(.hidden)")
    return c


async def test_courier_and_agent_work_offline_in_chromium(terminal):
    rg = terminal
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 900})
            await page.goto(rg.url)
            await page.wait_for_selector("#uplink.down")
            assert await page.text_content("h1") == "驿站终端登录", "Chinese first"
            assert await page.text_content("#uplink") == "离线运行"
            await shot(page, "terminal_login")

            await page.wait_for_selector("#user option[value=c-wang]", state="attached")
            await page.select_option("#user", "c-wang")
            await page.fill("#pin", "111111")
            await page.click("#f-login button")
            await page.wait_for_selector("#login-err:has-text('PIN 码错误')")
            await page.fill("#pin", "246810")
            await page.click("#f-login button")
            await page.wait_for_selector("#v-courier:not(.hidden)")
            assert "王师傅" in await page.text_content("#who")

            # a recipient who consented; the waybill comes from the scanner on its serial port
            await deposit_via_page(page, rg, "ZT7700112233", "13800000001")
            assert await page.text_content("#r-waybill") == "ZT7700112233"
            assert "1号柜 2号格口" in await page.text_content("#r-where")  # board b1, as people say it
            await shot(page, "terminal_receipt")
            # a recipient with no consent on record: the courier must confirm he asked by phone
            await deposit_via_page(page, rg, "ZT7700445566", ASSIST, scan=False, ask=True)

            await page.click("#logout")
            await page.select_option("#user", "a-li")
            await page.fill("#pin", "135790")
            await page.click("#f-login button")
            await page.wait_for_selector("#v-agent:not(.hidden)")
            await page.wait_for_selector("#waiting-rows tr:nth-child(2)")
            assert "ZT7700112233" in await page.text_content("#waiting-rows")
            await page.click("button[data-tab=d2d]")
            rows = await page.text_content("#d2d-rows")
            assert "ZT7700445566" in rows and "ZT7700112233" not in rows, "only villagers who need help"
            await page.click("button.handover")
            await page.wait_for_selector("#d2d-msg:has-text('已记录')")

            await page.click("button[data-tab=outbound]")
            await page.select_option("#ob-carrier", "中国邮政")
            await page.fill("#ob-name", "张大爷")
            await page.fill("#ob-phone", "13600000003")
            await page.fill("#ob-dest", "广州市天河区")
            await page.fill("#ob-weight", "2500")
            await page.fill("#ob-produce", "蜜桔")
            await page.fill("#ob-id", "11010519491231002X")
            await page.check("#ob-inspected")
            await page.click("#t-outbound button[type=submit]")
            await page.wait_for_selector("#ob-fee")
            # 3 kg started: 8.00 + 2 x 3.00 = 14.00, farm produce 20% off = 11.20
            assert (await page.text_content("#ob-fee")).startswith("11.20")

            await page.click("button[data-tab=fault]")
            await page.select_option("#ft-locker", "b1")
            await page.fill("#ft-c", "3")
            await page.fill("#ft-phone", "13500000009")
            await page.fill("#ft-text", "柜门打不开")
            await page.click("#t-fault button[type=submit]")
            await page.wait_for_selector("#ft-msg:has-text('已记录报修')")

            await page.click("#lang")
            assert await page.text_content("button[data-tab=fault]") == "Report fault"
            await page.click("button[data-tab=waiting]")
            await shot(page, "terminal_agent_en")
        finally:
            await browser.close()

    gw = rg.gw
    parcels = {r.body["waybill"]: r.body for r in await rg.outbox_rows("parcel")}
    assert parcels["ZT7700112233"]["consent"] == "recipient"
    assert parcels["ZT7700445566"]["consent"] == "courier_asked"
    assert parcels["ZT7700445566"]["courier"] == "c-wang"
    assert len(await rg.outbox_rows("code")) == 2
    (ho,) = [r.body for r in await rg.outbox_rows("handover")]
    assert ho["by"] == "a-li" and ho["how"] == "door_to_door" and ho["ref"] == parcels["ZT7700445566"]["ref"]
    (ob,) = [r.body for r in await rg.outbox_rows("outbound")]
    assert ob["fee_cents"] == 1120 and ob["weight_g"] == 2500 and ob["produce"] == "蜜桔"
    # the carrier as its code, the sender's ID as its last 4 characters only, the agent's inspection
    assert ob["carrier"] == "EMS" and ob["sender_id_tail"] == "002X" and ob["inspected"] is True
    assert "11010519491231002X" not in json.dumps([r.body for r in await rg.outbox_rows("outbound")])
    (fr,) = [r.body for r in await rg.outbox_rows("fault_report")]
    assert fr["locker"] == "b1" and fr["c"] == 3 and fr["text"] == "柜门打不开"
    assert gw.counters["pin_failures"] == 1 and gw.counters["scans"] == 1


async def test_agent_registers_a_found_parcel_in_chromium(terminal, lockers):
    rg = terminal
    # locker l1 reports a parcel in compartment 2 that nothing accounts for (a forced open left it there)
    l1 = lockers(rg.cfg.mqtt.port, "l1").connect()
    l1.online()
    l1.birth([{"n": 1, "size": "S", "st": "empty", "door": "closed", "occ": False},
              {"n": 2, "size": "M", "st": "fault", "door": "closed", "occ": True, "mm": True},
              {"n": 3, "size": "L", "st": "empty", "door": "closed", "occ": False}])
    await until(lambda: rg.gw.link.lockers["l1"].comps[2].mm, what="found parcel")
    async with playwright.async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 900, "height": 900})
            await page.goto(rg.url)
            await page.wait_for_selector("#user option[value=a-li]", state="attached")
            await page.select_option("#user", "a-li")
            await page.fill("#pin", "135790")
            await page.click("#f-login button")
            await page.wait_for_selector("#v-agent:not(.hidden)")
            await page.wait_for_selector("#tab-found:has-text('发现包裹 (1)')")
            await page.click("button[data-tab=found]")
            await page.click("button.adopt[data-locker=l1][data-c='2']")
            await page.wait_for_selector("#f-found:not(.hidden)")
            os.write(rg.scan_master, b"YT5500778899\r\n")
            await page.wait_for_function("document.getElementById('fd-waybill').value === 'YT5500778899'",
                                         timeout=5000)
            await page.fill("#fd-phone", "13800000001")
            await page.select_option("#fd-carrier", "YTO")
            await shot(page, "terminal_found")
            await page.click("#f-found button[type=submit]")
            await page.wait_for_selector("#found-msg:has-text('已登记')")
            # the locker accepted the adoption and confirms it as a deposit
            cmd = await until(lambda: next((c for c in l1.cmds if c["op"] == "adopt"), None), what="adopt command")
            assert cmd["c"] == 2
            l1.evt("deposit", c=2, ref=cmd["ref"])
            await page.wait_for_selector("#found-rows:has-text('暂无')")
            assert await page.text_content("#tab-found") == "发现包裹"
        finally:
            await browser.close()
    for _ in range(250):
        codes = [r.body for r in await rg.outbox_rows("code") if r.body["ref"] == cmd["ref"]]
        if codes:
            break
        await asyncio.sleep(0.02)
    assert codes and codes[0]["phone"] == "13800000001", "the code goes to the recipient as for a deposit"
    (parcel,) = [r.body for r in await rg.outbox_rows("parcel") if r.body["ref"] == cmd["ref"]]
    assert parcel["found"] is True and parcel["agent"] == "a-li" and parcel["waybill"] == "YT5500778899"
    assert parcel["carrier"] == "YTO" and parcel["consent"] == "recipient"
    assert (parcel["locker"], parcel["c"]) == ("l1", 2)
    assert (await rg.gw.deposits.get(cmd["ref"]))["state"] == "deposited"


async def test_refused_consent_and_pin_lockout(terminal):
    import httpx
    rg = terminal
    rg.gw.consent.answers["13800000004"] = ("refused", False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=rg.gw.app), base_url="http://gw") as http:
        tok = (await http.post("/api/v1/terminal/login", json={"user": "c-wang", "pin": "246810"})).json()["token"]
        h = {"Authorization": f"Bearer {tok}"}
        r = await http.post("/api/v1/terminal/deposit", headers=h, json={
            "waybill": "YT1234567", "phone": "13800000004", "size": "S", "consent_asked": True})
        assert r.status_code == 409 and r.json()["detail"]["error"] == "consent_refused"
        assert not rg.sim.board.opens, "no door opened for a recipient who refused"
        assert (await http.get("/api/v1/terminal/parcels", headers=h)).status_code == 403, "couriers see no list"
        codes = [(await http.post("/api/v1/terminal/login", json={"user": "c-wang", "pin": "000000"})).status_code
                 for _ in range(7)]
        assert codes == [401] * 5 + [429] * 2
        r = await http.post("/api/v1/terminal/login", json={"user": "c-wang", "pin": "246810"})
        assert r.status_code == 429, "even the right PIN waits out the lockout"
        assert (await http.post("/api/v1/terminal/login", json={"user": "a-li", "pin": "135790"})).status_code == 200, \
            "only the guessed user is locked"
    assert await rg.outbox_rows("parcel") == []


async def test_terminal_records_are_taken_by_the_real_cloud(terminal, tmp_path):
    """Everything the station made offline (board events, parcels, codes, hand-over, outbound, fault report,
    gateway telemetry) is applied by the cloud's own ingest route, none rejected."""
    import httpx
    cloud_app = pytest.importorskip("cloud.app")
    try:
        from cloud import migrate
        from cloud.seed import seed_station
        from cloud.settings import Settings
        from cloud.storage import make_engine, make_sessionmaker
    except ImportError as exc:
        pytest.skip(f"cloud package incomplete: {exc}")
    from gateway.config import CloudConfig
    from gateway.counters import Counters
    from gateway.stationdb import Record
    from gateway.uplink import Uplink
    from test_uplink import API_KEY, serve
    rg = terminal
    gw = rg.gw
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw") as http:
        c = (await http.post("/api/v1/terminal/login", json={"user": "c-wang", "pin": "246810"})).json()["token"]
        a = (await http.post("/api/v1/terminal/login", json={"user": "a-li", "pin": "135790"})).json()["token"]
        r = await http.post("/api/v1/terminal/deposit", headers={"Authorization": f"Bearer {c}"},
                            json={"waybill": "ZT5500112233", "phone": ASSIST, "size": "S", "consent_asked": True})
        assert r.status_code == 201, r.text
        b1 = gw.link.lockers["b1"]
        await until(lambda: b1.comps[1].door == "open", what="door open")
        rg.sim.close_door(1, occupied=True)
        await until(lambda: b1.comps[1].st == "occupied", what="deposited")
        ref = r.json()["ref"]
        for _ in range(100):
            if (await http.get(f"/api/v1/terminal/deposit/{ref}", headers={"Authorization": f"Bearer {c}"}
                               )).json()["state"] == "deposited":
                break
            await asyncio.sleep(0.05)
        h = {"Authorization": f"Bearer {a}"}
        assert (await http.post("/api/v1/terminal/handover", headers=h, json={"ref": ref})).status_code == 200
        assert (await http.post("/api/v1/terminal/outbound", headers=h, json={
            "carrier": "中国邮政", "sender_phone": "13600000003", "sender_name": "张大爷", "dest": "广州",
            "weight_g": 1200, "produce": "蜜桔", "sender_id": "11010519491231002X", "inspected": True})
                ).status_code == 201
        assert (await http.post("/api/v1/terminal/fault", headers=h, json={
            "locker": "b1", "c": 2, "phone": "13500000009", "text": "柜门打不开"})).status_code == 201
    await gw.outbox.append(Record(src="gw", kind="gw_tele", body=gw.tele_body(await gw.outbox.stats())))
    await until(lambda: not gw.boards["b1"].unacked, what="board events stored")

    url = f"sqlite:///{tmp_path}/cloud.db"
    engine = make_engine(url)
    migrate.upgrade(engine)
    comps = [{"n": n, "size": s} for n, s in ((1, "S"), (2, "M"), (3, "L"))]
    with make_sessionmaker(engine)() as session:
        seed_station(session, station_id="demo-01", name="示例村服务站", api_key=API_KEY,
                     lockers=[{"id": "b1", "comps": comps}, {"id": "l1", "comps": comps},
                              {"id": "l2", "comps": [{"n": 1, "size": "M"}]}])
    engine.dispose()
    app = cloud_app.create_app(Settings(database_url=url, admin_token="uplink-test-admin-9k2Qx7",
                                        migrate_on_start=False))
    port = free_port()
    kinds = sorted({r.kind for r in await rg.outbox_rows()})
    assert {"evt", "birth", "status", "parcel", "code", "handover", "outbound", "fault_report", "gw_tele"} <= set(kinds)
    counters = Counters()
    async with serve(app, port):
        up = Uplink("demo-01", CloudConfig(url=f"http://127.0.0.1:{port}", api_key=API_KEY, poll_s=0.05,
                                           backoff_min_s=0.05, backoff_max_s=0.2, linger_s=0), gw.outbox, counters)
        task = asyncio.create_task(up.run())
        try:
            await until(lambda: counters["uplink_applied"] + counters["uplink_rejected"] >= 1, timeout=15)
            for _ in range(200):
                if not await rg.outbox_rows():
                    break
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert counters["uplink_rejected"] == 0, "the cloud refused something the station made"
    assert counters["uplink_applied"] >= 12
    assert await rg.outbox_rows() == [] or all(r.kind in ("gw_tele", "evt", "status", "birth")
                                               for r in await rg.outbox_rows()), "records made after the drain"


async def test_a_courier_enrolled_from_the_cloud_logs_in_with_the_clouds_hash():
    """Enrollment copies the cloud's argon2id PIN hash; the terminal's login takes it as it is."""
    from fastapi import HTTPException

    from cloud.auth import hash_secret
    from gateway.config import TerminalConfig
    from gateway.counters import Counters
    from gateway.pins import Sessions

    cfg = TerminalConfig.model_validate({"users": [
        {"id": "c7", "name": "王师傅", "role": "courier", "carrier": "YTO", "pin_hash": hash_secret("482913")},
        {"id": "a-li", "name": "李大姐", "role": "agent", "pin_hash": hash_pin("135790")}]})
    sessions = Sessions(cfg, Counters())
    token, user = await sessions.login("c7", "482913", "10.0.0.2")
    assert (user.id, sessions.user(token).carrier) == ("c7", "YTO")
    assert (await sessions.login("a-li", "135790", "10.0.0.2"))[1].id == "a-li"
    with pytest.raises(HTTPException):
        await sessions.login("c7", "482914", "10.0.0.2")
