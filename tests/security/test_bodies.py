"""Outsider: oversized, deeply nested and echo-baiting bodies against the real gateway and cloud servers."""

import json

import httpx
import pytest
from seckit import raw_post

from gateway.api import BODY_MAX
from gwkit import RunningGateway, free_port, make_config
from jincun.httpedge import MAX_DEPTH, too_deep

MB = 1024 * 1024


def fifty_mb(piece: bytes = b"9" * 65536):
    for _ in range(50 * MB // len(piece)):
        yield piece


@pytest.fixture
async def gw_http(station, tmp_path):
    _, broker = station
    port = free_port()
    rg = RunningGateway(make_config(tmp_path, broker.port, http={"port": port}))
    await rg.start()
    rg.port = port
    try:
        yield rg
    finally:
        await rg.close()


def deep(n: int) -> bytes:
    return b'{"pin": ' + b"[" * n + b"1" + b"]" * n + b"}"


async def test_gateway_refuses_big_bodies_before_parsing_and_never_echoes(gw_http):
    import asyncio
    port = gw_http.port
    for path in ("/api/v1/deposits", "/api/v1/terminal/login", "/api/v1/terminal/pickup"):
        st, body = await asyncio.to_thread(raw_post, port, path, declared=50 * MB, chunks=fifty_mb())
        assert st == 413 and len(body) < 200, (path, st, body[:200])
        st, body = await asyncio.to_thread(raw_post, port, path, declared=None, chunks=fifty_mb())
        assert st == 413 and len(body) < 200, (path, st, body[:200])
    assert gw_http.gw.counters.snapshot()["body_too_large"] == 6
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        bait = "7" * (BODY_MAX - 100)
        r = await http.post("/api/v1/terminal/login", json={"user": "k-desk", "pin": bait})
        assert r.status_code == 422 and bait[:20] not in r.text and len(r.content) < 1000
        assert r.json()["detail"][0]["loc"] == ["body", "pin"], "the answer still says what is wrong"
        r = await http.post("/api/v1/terminal/login", content=deep(1100), headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        r = await http.post("/api/v1/terminal/login", content=deep(MAX_DEPTH + 1),
                            headers={"Content-Type": "application/json"})
        assert r.status_code == 400
        r = await http.get("/api/v1/deposits/p-" + "x" * 300)
        assert r.status_code == 404 and "xxxxxxxx" not in r.text


def test_cloud_refuses_big_bodies_before_parsing_and_never_echoes(cloud_proc):
    port = cloud_proc.port
    for path in ("/api/v1/commands", "/api/v1/gateway/ingest", "/api/v1/auth/login", "/login",
                 "/api/v1/carrier/manifests"):
        st, body = raw_post(port, path, declared=50 * MB, chunks=fifty_mb())
        assert st == 413 and len(body) < 200, (path, st, body[:200])
        st, body = raw_post(port, path, declared=None, chunks=fifty_mb())
        assert st == 413 and len(body) < 200, (path, st, body[:200])
    with httpx.Client(base_url=cloud_proc.url, headers=cloud_proc.admin(), timeout=30) as http:
        bait = "Q" * 60_000
        r = http.post("/api/v1/commands", json={"station": bait, "locker": "l1", "op": "open", "c": 1})
        assert r.status_code == 422 and bait[:20] not in r.text and len(r.content) < 2000, r.text[:300]
        # a nested ingest batch: small ones are caught at the edge, big ones by the parser's guard; both 400
        small = b'{"station": "s", "batch": "b", "items": ' + b"[" * 1100 + b"]" * 1100 + b"}"
        r = http.post("/api/v1/gateway/ingest", content=small, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text[:200]
        big = (b'{"pad": "' + b"p" * 200_000 + b'", "station": "s", "batch": "b", "items": '
               + b"[" * 1100 + b"]" * 1100 + b"}")
        r = http.post("/api/v1/gateway/ingest", content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text[:200]
        health = http.get("/api/v1/health").json()
    assert health["counters"]["body_too_large"] == 10
    assert b"Traceback" not in cloud_proc.log.read_bytes()


def test_depth_scan_skips_strings_and_escapes():
    assert too_deep(b"[" * 40 + b"]" * 40) and not too_deep(b"[" * 32 + b"]" * 32)
    assert not too_deep(json.dumps({"a": "[" * 100, "b": '\\"' + "{" * 100}).encode())
    assert too_deep(json.dumps({"a": [[{"b": "]]]]"}]]}).encode(), 3)
    assert not too_deep(json.dumps([[1], [2], [[3]]] * 1000).encode(), 3)
