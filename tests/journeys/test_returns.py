"""An overdue parcel goes back to its carrier through the locker: the villager's code stops opening it, the
carrier's courier finds it on the terminal's 待退回 tab and takes it out (the calls the tab makes), the
compartment is freed, the villager gets an SMS and the carrier its webhooks."""

from __future__ import annotations

import time

import pytest
from jincun.i18n import STRINGS
from kit_codes import (COURIER_PIN, Phone, Receiver, Terminal, carrier_webhook, cloud_compartment, compartment,
                       notifications, parcel, pg_database, station, sweep)

pytestmark = pytest.mark.micropython

PHONE = "13800000201"
WAYBILL = "YT9200000001"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for url in pg_database():
        s = station(tmp_path_factory.mktemp("returns"), url)
        try:
            yield s
        finally:
            s.stop()


def test_an_overdue_parcel_goes_back_through_the_locker(stack):
    hook = Receiver()
    try:
        _journey(stack, hook)
    finally:
        hook.close()


def _journey(stack, hook: Receiver) -> None:
    carrier_webhook(stack, "YTO", hook.url)
    d = stack.deposit(waybill=WAYBILL, phone=PHONE, carrier="YTO", size="M")
    code = stack.sms_code(phone=PHONE, waybill=WAYBILL)
    stack.wait_drained()

    # a week later nobody came: the sweep starts the return flow
    done = sweep(stack, days=8)
    assert done["overdue"] == 1
    stack.wait(lambda: parcel(stack, WAYBILL)["status"] == "overdue", 10, "overdue in the cloud")
    yto, zto = Terminal(stack, "yto1", COURIER_PIN), Terminal(stack, "zto1", COURIER_PIN)
    stack.wait(lambda: [r["waybill"] for r in yto.get("returns").json()["returns"]] == [WAYBILL], 30,
               "the YTO courier sees the parcel on the 待退回 list")
    assert zto.get("returns").json()["returns"] == [], "another carrier's courier does not see it"
    # the row the 待退回 tab shows: where the parcel is, whose it is (the phone masked), since when
    (row,) = yto.get("returns").json()["returns"]
    assert (row["ref"], row["locker"], row["c"]) == (d["ref"], d["locker"], d["c"])
    assert row["phone"] != PHONE and row["phone"][-4:] == PHONE[-4:] and row["since"] > 0

    # the villager is told, and the code no longer opens the door
    assert any("已退回快递公司" in n["text"] for n in notifications(stack, PHONE))
    phone = Phone(stack, PHONE)
    page = phone.page()
    assert STRINGS["overdue"][0] in page and code not in page
    sim = stack.sims[d["locker"]]
    sim.press(code + "#")
    time.sleep(1.5)
    assert compartment(stack, d["locker"], d["c"])["st"] == "occupied"
    assert not sim.state()["doors"][str(d["c"])]

    # only the parcel's carrier takes it out; the door opens for the YTO courier
    assert zto.post("returns", {"ref": d["ref"]}).status_code == 403
    # the tab's take-out button: the door named in the answer is the one the page tells the courier to open
    r = yto.post("returns", {"ref": row["ref"]})
    assert r.status_code == 200, r.text
    assert (r.json()["locker"], r.json()["c"]) == (d["locker"], d["c"])
    sim.wait_for(lambda s: s["doors"][str(d["c"])], 10)
    sim.set_occupied(d["c"], False)
    sim.close_door(d["c"])

    # the compartment is free everywhere, the parcel is returned everywhere
    stack.wait(lambda: compartment(stack, d["locker"], d["c"]).get("st") == "empty"
               and not compartment(stack, d["locker"], d["c"]).get("ref"), 10, "the gateway frees the compartment")
    assert yto.get("returns").json()["returns"] == []
    stack.wait_drained()
    stack.wait(lambda: parcel(stack, WAYBILL)["status"] == "returned", 20, "returned in the cloud")
    comp = cloud_compartment(stack, d["locker"], d["c"])
    assert comp["state"] == "empty" and comp["ref"] is None
    assert "已退回" in phone.page()
    stack.wait(lambda: {"overdue", "returned"} <= set(hook.statuses(d["ref"])), 30, "the carrier's webhooks")
    phone.close()
    ledger = stack.ledger()
    assert ledger["lost"] == 0 and ledger["duplicates"] == 0
