"""`/metrics`: what a Prometheus scrape of the cloud shows after real traffic, and who may scrape it."""

from __future__ import annotations

from cloudkit import ADMIN, add_user, evt, login
from prometheus_client.parser import text_string_to_metric_families


def scrape(cloud) -> dict[tuple[str, tuple], float]:
    r = cloud.client.get("/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_metrics_show_the_counters_and_request_times(cloud):
    before = scrape(cloud)
    assert cloud.ingest([evt(1, "door", c=1, open=True), evt(2, "door", c=1, open=False)]).status_code == 200
    assert cloud.client.get("/parcels/p-none").status_code in (200, 404)
    after = scrape(cloud)
    health = cloud.counters()
    # every counter on /health is a Prometheus counter (background loops may count on after the scrape)
    for name, value in health.items():
        assert after[(f"jincun_cloud_{name}_total", ())] <= value, name
    applied = ("jincun_cloud_ingest_applied_total", ())
    assert after[applied] - before.get(applied, 0) == 2
    ingest = ("jincun_cloud_http_request_duration_seconds_count",
              (("method", "POST"), ("route", "/api/v1/gateway/ingest"), ("status", "2xx")))
    assert after[ingest] - before.get(ingest, 0) == 1
    # a path's ids never become labels: the route template stands for them
    routes = {dict(labels).get("route") for (_, labels) in after}
    assert "/parcels/{ref}" in routes
    assert not any(r and "p-none" in r for r in routes)


def test_metrics_need_the_admin_token_or_a_maintenance_login(cloud):
    assert cloud.client.get("/metrics").status_code == 401
    assert cloud.client.get("/metrics", headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    add_user(cloud.client, "ops-li", "maintenance")
    assert cloud.client.get("/metrics", headers=login(cloud.client, "ops-li")).status_code == 200
    add_user(cloud.client, "county-wang", "county_official")
    assert cloud.client.get("/metrics", headers=login(cloud.client, "county-wang")).status_code == 403
