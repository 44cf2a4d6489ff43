"""A deposit the terminal cancels (the door closed on an empty compartment) vanishes from the villager's phone
page and from the pre-advised parcels on the overview; staff still see it, marked 已取消."""

from __future__ import annotations

import re

import pytest
from jincun.i18n import STRINGS
from kit_codes import Phone, cloud_compartment, notifications, parcel, pg_database, station

pytestmark = pytest.mark.micropython

PHONE = "13800000401"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for url in pg_database():
        s = station(tmp_path_factory.mktemp("cancel"), url)
        try:
            yield s
        finally:
            s.stop()


def _overview_status(stack, ref: str) -> str:
    """The status the staff overview shows on a parcel's row."""
    html = stack.http.get(f"{stack.cloud_url}/").text
    m = re.search(rf'<tr class="parcel status-(\w+)" data-ref="{ref}">.*?<span class="status">([^<]*)</span>', html,
                  re.S)
    assert m, f"{ref} is on the overview"
    return m.group(2)


def test_a_cancelled_deposit_vanishes_for_the_villager_and_shows_cancelled_to_staff(stack):
    kept = stack.deposit(waybill="JT9400000001", phone=PHONE, carrier="JT", size="S")
    gone = stack.deposit(waybill="JT9400000002", phone=PHONE, carrier="JT", size="S", occupied=False)
    assert stack.sms_code(phone=PHONE, waybill="JT9400000001")
    stack.wait_drained()
    stack.wait(lambda: parcel(stack, "JT9400000002")["status"] == "cancelled", 20, "cancelled in the cloud")
    p = parcel(stack, "JT9400000002")
    assert [t["status"] for t in p["timeline"]][-1] == "cancelled"
    # no SMS for it, and its compartment is free in the cloud's view
    assert not any(n.get("ref") == gone["ref"] for n in notifications(stack, PHONE))
    comp = cloud_compartment(stack, gone["locker"], gone["c"])
    assert comp["state"] == "empty" and comp["ref"] is None

    # the villager's page shows the parcel in the locker, not the cancelled one
    phone = Phone(stack, PHONE)
    page = phone.page()
    assert "JT9400000001" in page and "JT9400000002" not in page and STRINGS["preadvised"][0] not in page
    phone.close()

    # staff see it marked 已取消, not 已预报
    assert _overview_status(stack, gone["ref"]) == "已取消"
    assert _overview_status(stack, kept["ref"]) in (STRINGS["deposited"][0], STRINGS["notified"][0])
    r = stack.http.get(f"{stack.cloud_url}/parcels/{gone['ref']}")
    assert r.status_code == 200 and "已取消" in r.text
