"""The station terminal's sessions outlive a gateway restart (a power cut at the shop): a logged-in courier goes on
with the same token, a logged-out or expired one stays refused, and the database holds only the token's hash."""

from __future__ import annotations

import sqlite3
import time

import httpx
from gwkit import COURIER, COURIER_PIN, RunningGateway

from gateway.pins import token_hash

API = "/api/v1/terminal"


def http(gw) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw")


def bearer(tok: str) -> dict:
    return {"Authorization": f"Bearer {tok}"}


async def login(gw) -> str:
    async with http(gw) as c:
        r = await c.post(f"{API}/login", json={"user": COURIER["id"], "pin": COURIER_PIN})
        assert r.status_code == 200
        return r.json()["token"]


async def scans(gw, tok: str) -> int:
    async with http(gw) as c:
        return (await c.get(f"{API}/scans", headers=bearer(tok))).status_code


def stored(cfg) -> list[tuple]:
    conn = sqlite3.connect(cfg.gateway.db)
    try:
        return conn.execute("SELECT h, user_id, at, exp FROM terminal_sessions ORDER BY at").fetchall()
    finally:
        conn.close()


async def test_a_session_survives_a_gateway_restart(station):
    cfg, _ = station
    rg = RunningGateway(cfg)
    gw = await rg.start()
    try:
        kept, gone, stale = await login(gw), await login(gw), await login(gw)
        assert {await scans(gw, t) for t in (kept, gone, stale)} == {200}
        async with http(gw) as c:
            assert (await c.post(f"{API}/logout", headers=bearer(gone))).status_code == 200
        assert await scans(gw, gone) == 401
    finally:
        await rg.close()

    rows = stored(cfg)
    assert {r[0] for r in rows} == {token_hash(kept), token_hash(stale)}, "logout deleted its row"
    assert all(r[1] == COURIER["id"] and r[3] - r[2] == cfg.terminal.session_s for r in rows)
    raw = b"".join(p.read_bytes() for p in cfg.gateway.db.parent.glob(cfg.gateway.db.name + "*"))
    for tok in (kept, gone, stale):
        assert tok.encode() not in raw, "no token in clear in the station database"
    # the power stays out past one session's expiry
    conn = sqlite3.connect(cfg.gateway.db)
    conn.execute("UPDATE terminal_sessions SET exp = ? WHERE h = ?", (time.time() - 1, token_hash(stale)))
    conn.commit()
    conn.close()

    gw = await rg.start()
    try:
        assert await scans(gw, kept) == 200, "the courier goes on after the restart"
        assert await scans(gw, gone) == 401, "a logged-out token stays refused"
        assert await scans(gw, stale) == 401, "an expired token is refused"
        assert [r[0] for r in stored(cfg)] == [token_hash(kept)], "the expired row is purged"
        async with http(gw) as c:
            assert (await c.post(f"{API}/logout", headers=bearer(kept))).status_code == 200
        assert await scans(gw, kept) == 401 and stored(cfg) == []
    finally:
        await rg.close()
