"""The gateway's `/metrics`: a Prometheus scrape shows the station's counters and request times."""

from __future__ import annotations

import httpx
from gwkit import until
from prometheus_client.parser import text_string_to_metric_families


def api(gw):
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw")


async def scrape(http) -> dict[tuple[str, tuple], float]:
    r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


async def test_gateway_metrics_follow_its_counters(gateway, lockers):
    l1 = lockers(gateway.broker.port, "l1").connect()
    l1.online()
    l1.birth(None)
    await until(lambda: gateway.gw.link.lockers["l1"].birth_at, what="birth")
    async with api(gateway.gw) as http:
        assert (await http.get("/health")).status_code == 200
        got = await scrape(http)
        # every counter is there; background tasks may count on between the scrape and this look
        for name, value in gateway.gw.counters.snapshot().items():
            assert got[(f"jincun_gateway_{name}_total", ())] <= value, name
        health = ("jincun_gateway_http_request_duration_seconds_count",
                  (("method", "GET"), ("route", "/health"), ("status", "2xx")))
        assert got[health] == 1
        assert (await http.get("/no/such/page")).status_code == 404
        got = await scrape(http)
        assert got[("jincun_gateway_http_request_duration_seconds_count",
                    (("method", "GET"), ("route", "unmatched"), ("status", "4xx")))] == 1
