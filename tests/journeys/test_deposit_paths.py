"""Every way to put a parcel in a locker needs a logged-in courier and the recipient's consent: a deposit with no
login, or for a villager who refused locker delivery, opens no door and leaves nothing in the cloud; one the
courier asked about by phone goes in, and the villager gets the code."""

from __future__ import annotations

import time

import pytest

from simulator.stack import _door
from kit_codes import COURIER_PIN, Terminal, admin, notifications, parcel, pg_database, station

pytestmark = pytest.mark.micropython

REFUSED = "13800000601"
UNKNOWN = "13800000602"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    for url in pg_database():
        s = station(tmp_path_factory.mktemp("paths"), url)
        try:
            yield s
        finally:
            s.stop()


def _doors_closed(stack) -> bool:
    """No door of the locker open, and no compartment holding or expecting a parcel."""
    state = stack.sims["l1"].state()
    return all(not _door(state, c["n"]) and c.get("st") == "empty" for c in state["comps"])


def test_no_deposit_without_a_courier_or_against_the_villagers_choice(stack):
    # the villager refused locker delivery (signed at the station): the agent records it in the cloud
    r = stack.http.put(f"{stack.cloud_url}/api/v1/recipients/{REFUSED}", headers=admin(stack),
                       json={"consent": "refused"})
    assert r.status_code == 200, r.text

    body = {"waybill": "YT9600000001", "phone": REFUSED, "carrier": "YTO", "size": "S", "consent_asked": True}
    # no login: neither the API nor the terminal's own route opens a door
    assert stack.http.post(f"{stack.gateway_url}/api/v1/deposits", json=body).status_code == 401
    assert stack.http.post(f"{stack.gateway_url}/api/v1/terminal/deposit", json=body).status_code == 401
    # a wrong PIN gets no session
    bad = stack.http.post(f"{stack.gateway_url}/api/v1/terminal/login", json={"user": "yto1", "pin": "000000"})
    assert bad.status_code == 401

    courier = Terminal(stack, "yto1", COURIER_PIN)
    # the villager said no: even a courier who says they asked gets no door
    r = courier.post("deposit", body)
    assert r.status_code == 409 and r.json()["detail"]["error"] == "consent_refused"
    # consent not known and the courier did not ask: no door either
    r = courier.post("deposit", {**body, "waybill": "YT9600000002", "phone": UNKNOWN, "consent_asked": False})
    assert r.status_code == 409 and r.json()["detail"]["error"] == "consent_unknown"

    time.sleep(1.0)
    assert _doors_closed(stack), "a refused deposit opened a door"
    stack.wait_drained()
    assert parcel(stack, "YT9600000001") == {} and parcel(stack, "YT9600000002") == {}
    assert notifications(stack, REFUSED) == []

    # the courier asked the villager by phone and they agreed: the door opens, the parcel goes in, and the
    # cloud records how consent was known
    d = stack.deposit(waybill="YT9600000003", phone=UNKNOWN, carrier="YTO", size="S")
    assert stack.sms_code(phone=UNKNOWN, waybill="YT9600000003")
    p = parcel(stack, "YT9600000003")
    assert p["status"] in ("deposited", "notified") and p["locker_id"] == d["locker"]
