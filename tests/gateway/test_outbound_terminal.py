"""Outbound at the station terminal, offline: taken in with the sender's real name and the inspection, kept in
the station's book, collected once by the carrier's own courier; extra charges recorded by the agent."""

from __future__ import annotations

import json

import httpx
import pytest

from gateway.terminal import hash_pin
from gwkit import RunningGateway, make_config

ID_NUMBER = "11010519491231002X"


@pytest.fixture
async def offline(station, tmp_path):
    """A running gateway whose cloud is unreachable, with an agent and couriers of two carriers."""
    _, broker = station
    users = [{"id": "a-li", "name": "李", "role": "agent"}, {"id": "c-sf", "name": "赵", "role": "courier",
                                                             "carrier": "顺丰"},
             {"id": "c-zto", "name": "王", "role": "courier", "carrier": "ZTO"},
             {"id": "desk", "name": "投递台", "role": "courier"}]
    top = {"terminal": {"users": [{**u, "pin_hash": hash_pin("135790", iterations=1000)} for u in users]}}
    rg = RunningGateway(make_config(tmp_path, broker.port, top=top))
    await rg.start()
    yield rg
    await rg.close()


def as_user(gw, user: str) -> httpx.AsyncClient:
    tok = gw.sessions.open(gw.sessions.users[user])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw",
                             headers={"Authorization": f"Bearer {tok}"})


async def test_outbound_is_collected_once_by_its_carriers_courier(offline, tmp_path):
    gw = offline.gw
    p = "/api/v1/terminal"
    body = {"carrier": "顺丰", "sender_name": "张大爷", "sender_phone": "13600000003", "dest": "广州",
            "weight_g": 1200, "produce": "", "sender_id": ID_NUMBER, "inspected": True}
    async with as_user(gw, "a-li") as agent, as_user(gw, "c-sf") as sf, as_user(gw, "c-zto") as zto, \
            as_user(gw, "desk") as desk:
        assert (await agent.post(f"{p}/outbound", json={**body, "inspected": False})).status_code == 422
        r = await agent.post(f"{p}/outbound", json={**body, "sender_id": "11010519491231002"})
        assert r.status_code == 422 and r.json()["detail"]["error"] == "bad_id"
        assert (await sf.post(f"{p}/outbound", json=body)).status_code == 403, "couriers do not take parcels in"
        r = await agent.post(f"{p}/outbound", json=body)
        assert r.status_code == 201
        ref = r.json()["ref"]
        assert r.json()["carrier"] == "SF" and r.json()["sender_id_tail"] == "002X"

        assert (await zto.get(f"{p}/outbound")).json()["outbound"] == []
        assert [o["ref"] for o in (await sf.get(f"{p}/outbound")).json()["outbound"]] == [ref]
        assert (await zto.post(f"{p}/outbound/{ref}/collect", json={})).status_code == 409
        assert (await desk.post(f"{p}/outbound/{ref}/collect", json={})).status_code == 403, "no carrier"
        assert (await sf.post(f"{p}/outbound/nope-1/collect", json={})).status_code == 404
        r = await sf.post(f"{p}/outbound/{ref}/collect", json={"waybill": "SF1234567890"})
        assert r.status_code == 200 and r.json()["carrier"] == "SF"
        assert (await sf.post(f"{p}/outbound/{ref}/collect", json={})).status_code == 409
        assert (await sf.get(f"{p}/outbound")).json()["outbound"] == []

        r = await agent.post(f"{p}/charge", json={"carrier": "中通", "kind": "pickup", "cents": 200,
                                                  "phone": "13800000001"})
        assert r.status_code == 201 and r.json()["phone"] == "138****0001"
        assert (await sf.post(f"{p}/charge", json={"carrier": "SF", "cents": 200})).status_code == 403

    # the uplink is down: everything waits in the outbox, in the order it happened
    rows = [(r.kind, r.body) for r in await offline.outbox_rows() if r.kind in ("outbound", "collected", "charge")]
    assert [k for k, _ in rows] == ["outbound", "collected", "charge"]
    assert rows[0][1]["sender_id_tail"] == "002X" and rows[0][1]["inspected"] is True and rows[0][1]["by"] == "a-li"
    assert rows[1][1] | {"at": 0} == {"ref": ref, "carrier": "SF", "by": "c-sf", "waybill": "SF1234567890", "at": 0}
    assert rows[2][1]["carrier"] == "ZTO" and rows[2][1]["by"] == "a-li"
    assert ID_NUMBER not in json.dumps([b for _, b in rows])
    assert gw.counters["outbound_collected"] == 1 and gw.counters["charges_recorded"] == 1
    await offline.close()
    for f in tmp_path.iterdir():
        if f.is_file():
            assert ID_NUMBER.encode() not in f.read_bytes(), f.name
