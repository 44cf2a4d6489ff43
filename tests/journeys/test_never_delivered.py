"""A parcel the carrier pre-advised that no courier brings to the locker within 48 hours is flagged in the
county's quality table (不送货上门); one the courier deposits is not. The sweep's clock is moved forward."""

from __future__ import annotations

import pytest
from kit_codes import admin, carrier_webhook, parcel, pg_database, station, sweep

pytestmark = pytest.mark.micropython

PHONE = "13800000501"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for url in pg_database():
        s = station(tmp_path_factory.mktemp("never"), url)
        try:
            yield s
        finally:
            s.stop()


def test_a_preadvised_parcel_never_deposited_is_flagged_for_the_county(stack):
    client = carrier_webhook(stack, "YTO", None)
    key = {"Authorization": f"Bearer {client['api_key']}"}
    r = stack.http.post(f"{stack.cloud_url}/api/v1/carrier/manifests", headers=key, json={
        "manifest_id": "yto-0001", "parcels": [
            {"waybill": w, "station": stack.station, "phone": PHONE} for w in ("YT9500000001", "YT9500000002")]})
    assert r.status_code == 200 and r.json()["created"] == 2, r.text
    # the courier brings one of them to the locker; the other never arrives
    stack.deposit(waybill="YT9500000001", phone=PHONE, carrier="YTO", size="S")
    stack.wait_drained()
    stack.wait(lambda: parcel(stack, "YT9500000001")["status"] in ("deposited", "notified"), 20, "adopted")
    assert parcel(stack, "YT9500000002")["status"] == "preadvised"

    assert sweep(stack, days=1)["never_delivered"] == 0          # a day late is not yet 48 hours
    assert sweep(stack, days=2.1)["never_delivered"] == 1
    assert sweep(stack, days=2.2)["never_delivered"] == 0        # flagged once

    flags = stack.http.get(f"{stack.cloud_url}/api/v1/stats/flags", headers=admin(stack)).json()
    never = [f for f in flags if f["kind"] == "never_delivered"]
    assert [(f["waybill"], f["carrier"]) for f in never] == [("YT9500000002", "YTO")]
    # the county's statistics page lists it in the quality table
    page = stack.http.get(f"{stack.cloud_url}/stats", headers=admin(stack))
    assert page.status_code == 200
    rows = page.text.split('<section id="flags">')[1].split("</section>")[0]
    assert "YT9500000002" in rows and "预报未投递" in rows and "YT9500000001" not in rows
