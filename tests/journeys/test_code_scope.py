"""One pickup code per recipient per station: the same code opens the villager's compartments in every locker of
the station, offline; a replacement code reaches both lockers, and the old code opens nothing any more."""

from __future__ import annotations

import re

import pytest
from kit_codes import Phone, commands, notifications, parcel, pg_database, refused, station

pytestmark = pytest.mark.micropython

PHONE = "13800000101"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for url in pg_database():
        s = station(tmp_path_factory.mktemp("scope"), url, lockers=("l1", "l2"))
        try:
            yield s
        finally:
            s.stop()


def test_one_code_opens_both_lockers_and_a_replacement_reaches_both(stack):
    d1 = stack.deposit(waybill="YT9100000001", phone=PHONE, carrier="YTO", size="S", locker="l1")
    d2 = stack.deposit(waybill="YT9100000002", phone=PHONE, carrier="YTO", size="S", locker="l2")
    d3 = stack.deposit(waybill="YT9100000003", phone=PHONE, carrier="YTO", size="S", locker="l2")
    first = stack.sms_code(phone=PHONE, waybill="YT9100000001")
    assert stack.sms_code(phone=PHONE, waybill="YT9100000002") == first, "one code per recipient per station"
    stack.wait_drained()

    # the villager asks for a new code on the phone page (the SMS was lost): it goes to both lockers
    phone = Phone(stack, PHONE)
    assert first in phone.page()
    r = phone.client.post("/m/code", data={"station": stack.station})
    assert r.status_code == 200 and "new_code_sent" in str(r.url)
    texts = [n["text"] for n in notifications(stack, PHONE)]
    new = next(m.group(1) for t in texts if (m := re.search(r"新取件码\s*(\d{6})", t)))
    assert new != first

    stack.wait(lambda: new in phone.page(), 30, "the phone page shows the new code")
    # the cloud sent it to each locker that holds a parcel of the villager; the station took both
    stack.wait(lambda: {c["locker_id"]: c["status"] for c in commands(stack, "code_sync")} == {"l1": "done",
                                                                                                "l2": "done"},
               30, "both lockers took the replacement code (no CodeClash)")
    assert all(c["ack_ok"] for c in commands(stack, "code_sync"))

    # the old code opens nothing; the new one opens the villager's compartments at each locker, offline
    stack.uplink_down()
    assert refused(stack, "l1", first) and refused(stack, "l2", first)
    assert stack.pickup(new, locker="l1") == [d1["c"]]
    assert sorted(stack.pickup(new, locker="l2")) == sorted([d2["c"], d3["c"]])
    stack.uplink_up()
    stack.wait_drained(60)
    for waybill in ("YT9100000001", "YT9100000002", "YT9100000003"):
        stack.wait(lambda w=waybill: parcel(stack, w)["status"] == "picked_up", 30, f"{waybill} picked up")
    assert phone.page().count("已取件") >= 3
    phone.close()
