"""Outsider on the station network: the machine deposit API opens no door without a courier's login and consent."""

import httpx

from gateway.consent import FixedConsent
from gwkit import COURIER, COURIER_PIN, RunningGateway, free_port, make_config, until


async def test_deposit_api_needs_a_courier_and_the_recipients_consent(station, tmp_path, lockers):
    _, broker = station
    port = free_port()
    top = {"terminal": {"users": [COURIER, {**COURIER, "id": "a-li", "name": "李大姐", "role": "agent"}]}}
    rg = RunningGateway(make_config(tmp_path, broker.port, top=top, http={"port": port}),
                        consent=FixedConsent({"13800000004": ("refused", False), "13800000001": ("granted", False)}))
    await rg.start()
    try:
        l1 = lockers(broker.port, "l1").connect()
        l1.online()
        l1.birth()
        await until(lambda: rg.gw.link.lockers["l1"].birth_at, what="birth")
        body = {"waybill": "SF100", "phone": "13800000001", "carrier": "顺丰", "size": "M"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            assert (await http.post("/api/v1/deposits", json=body)).status_code == 401
            bad = {"Authorization": "Bearer not-a-session"}
            assert (await http.post("/api/v1/deposits", json=body, headers=bad)).status_code == 401
            agent = (await http.post("/api/v1/terminal/login", json={"user": "a-li", "pin": COURIER_PIN})).json()
            h = {"Authorization": f"Bearer {agent['token']}"}
            r = await http.post("/api/v1/deposits", json=body, headers=h)
            assert r.status_code == 403, "agents do not deposit"
            tok = (await http.post("/api/v1/terminal/login", json={"user": COURIER["id"], "pin": COURIER_PIN})).json()
            h = {"Authorization": f"Bearer {tok['token']}"}
            r = await http.post("/api/v1/deposits", json={**body, "phone": "13800000004", "consent_asked": True},
                                headers=h)
            assert r.status_code == 409 and r.json()["detail"]["error"] == "consent_refused"
            r = await http.post("/api/v1/deposits", json={**body, "phone": "13900000009"}, headers=h)
            assert r.status_code == 409 and r.json()["detail"]["error"] == "consent_unknown"
            assert not [c for c in l1.cmds if c["op"] == "deposit"], "no door opened so far"
            r = await http.post("/api/v1/deposits", json=body, headers=h)
            assert r.status_code == 201, r.text
        (parcel,) = [x.body for x in await rg.outbox_rows("parcel")]
        assert parcel["courier"] == COURIER["id"] and parcel["consent"] == "recipient"
        assert [c["op"] for c in l1.cmds].count("deposit") == 1
    finally:
        await rg.close()
