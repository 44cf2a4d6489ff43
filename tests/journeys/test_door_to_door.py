"""Door-to-door help: a villager's choice on the phone page reaches the station's list within a minute, the
list holds with the uplink cut and the gateway restarted, and a handover closes the parcel everywhere and frees
its compartment."""

from __future__ import annotations

import time

import pytest
from kit_codes import (AGENT_PIN, Phone, Terminal, cloud_compartment, compartment, parcel, pg_database, refused,
                       station)

pytestmark = pytest.mark.micropython

PHONE = "13800000301"
WAYBILL = "ZT9300000001"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for url in pg_database():
        s = station(tmp_path_factory.mktemp("door"), url)
        try:
            yield s
        finally:
            s.stop()


def _listed(agent: Terminal) -> list[str]:
    return [p["waybill"] for p in agent.get("parcels").json()["door_to_door"]]


def test_door_to_door_choice_reaches_the_station_and_a_handover_frees_the_compartment(stack):
    d = stack.deposit(waybill=WAYBILL, phone=PHONE, carrier="ZTO", size="S")
    code = stack.sms_code(phone=PHONE, waybill=WAYBILL)
    agent = Terminal(stack, "agent1", AGENT_PIN)
    assert _listed(agent) == []
    assert agent.post("handover", {"ref": d["ref"]}).status_code == 403

    # the villager asks for door-to-door help on the phone page
    phone = Phone(stack, PHONE)
    t0 = time.monotonic()
    phone.choose(door_help=True)
    stack.wait(lambda: _listed(agent) == [WAYBILL], 60, "the station's door-to-door list shows the parcel")
    assert time.monotonic() - t0 < 60

    # the list is the station's own: it holds with the uplink cut and the gateway restarted
    stack.uplink_down()
    stack.restart_gateway(kill=True)
    agent = Terminal(stack, "agent1", AGENT_PIN)
    assert _listed(agent) == [WAYBILL]

    # the agent hands the parcel over at the door: the locker opens, the parcel leaves, the door closes
    r = agent.post("handover", {"ref": d["ref"]})
    assert r.status_code == 200, r.text
    sim = stack.sims[d["locker"]]
    sim.wait_for(lambda s: s["doors"][str(d["c"])], 10)
    sim.set_occupied(d["c"], False)
    sim.close_door(d["c"])
    stack.wait(lambda: compartment(stack, d["locker"], d["c"]).get("st") == "empty"
               and not compartment(stack, d["locker"], d["c"]).get("ref"), 10, "the gateway frees the compartment")
    assert _listed(agent) == [] and WAYBILL not in [p["waybill"] for p in agent.get("parcels").json()["parcels"]]
    # the freed compartment takes the next parcel, and the old code does not open it
    nxt = stack.deposit(waybill="ZT9300000002", phone="13800000302", carrier="ZTO", size="S")
    assert (nxt["locker"], nxt["c"]) == (d["locker"], d["c"])
    assert refused(stack, d["locker"], code)

    # back online: the cloud closes the parcel and frees the compartment too; the villager sees it delivered
    stack.uplink_up()
    stack.wait_drained(60)
    stack.wait(lambda: parcel(stack, WAYBILL)["status"] == "delivered_door", 20, "delivered_door in the cloud")
    comp = cloud_compartment(stack, d["locker"], d["c"])
    assert comp["state"] == "occupied" and comp["ref"] == nxt["ref"], "the compartment holds the next parcel only"
    assert "已送货上门" in phone.page()
    phone.close()
    ledger = stack.ledger()
    assert ledger["lost"] == 0 and ledger["duplicates"] == 0
