"""A courier the county manages in the cloud deposits at the station, and is refused once retired.

Real processes throughout: the cloud on PostgreSQL, `jincun cloud` run as the county admin runs it, the
gateway, Mosquitto with the gateway's ACL, and the locker firmware under MicroPython.
"""

from __future__ import annotations

import re

import pytest
from kit_couriers import (jincun_cloud, keypad_booking, put_parcel_in, terminal_deposit, terminal_login,
                          terminal_users)

from simulator.stack import Stack

pytestmark = pytest.mark.micropython

PIN = "518204"
PHONE = "13900000031"
VILLAGER = "13800000031"


@pytest.fixture
def stack(tmp_path, pg_url):
    """A station whose gateway fetches the county's couriers every second (30 s by default)."""
    with Stack(tmp_path / "station", broker="mosquitto", database_url=pg_url,
               terminal={"staff_sync_s": 1.0}) as s:
        yield s


def test_courier_created_in_the_cloud_deposits_and_is_refused_once_retired(stack, pg_url):
    # the county admin registers a ZTO courier for this station; the PIN goes in on stdin, never as an argument
    rc, out, err = jincun_cloud(pg_url, "courier", "add", "--carrier", "ZTO", "--name", "王师傅", "--phone", PHONE,
                                "--station", stack.station, "--secrets-stdin", stdin=PIN + "\n")
    assert rc == 0, err
    uid = out["terminal_id"]
    assert re.fullmatch(r"c\d+", uid) and out["stations"] == [stack.station]

    # within the sync interval the terminal offers the courier at login, and takes their PIN
    stack.wait(lambda: uid in terminal_users(stack), 15, "the courier reaches the terminal")
    assert terminal_users(stack)[uid]["name"] == "王师傅"
    assert terminal_login(stack, uid, "000000").status_code == 401
    login = terminal_login(stack, uid, PIN)
    assert login.status_code == 200, login.text
    assert login.json()["role"] == "courier" and login.json()["carrier"] == "ZTO"
    token = login.json()["token"]

    # the courier deposits through the terminal page's calls; the door opens, the parcel goes in
    d = terminal_deposit(stack, token, waybill="ZT7000000031", phone=VILLAGER)
    assert d.status_code == 201, d.text
    put_parcel_in(stack, d.json())

    # the villager gets the code by SMS, and the cloud has the parcel deposited by the ZTO courier
    code = stack.sms_code(phone=VILLAGER, waybill="ZT7000000031")
    (parcel,) = stack.parcels(waybill="ZT7000000031")
    assert parcel["status"] in ("deposited", "notified") and parcel["carrier"] == "ZTO"
    assert stack.pickup(code) == [d.json()["c"]]

    # the keypad: the courier books two compartments at the terminal and gets a one-time 8-digit PIN; at the
    # locker a wrong PIN opens nothing, theirs opens both doors, and each parcel is confirmed by its door
    booked = keypad_booking(stack, token, [{"waybill": "ZT7000000041", "phone": "13800000041", "size": "S"},
                                           {"waybill": "ZT7000000042", "phone": "13800000042", "size": "M"}])
    assert booked.status_code == 201, booked.text
    pin, deps = booked.json()["pin"], booked.json()["deposits"]
    assert re.fullmatch(r"\d{8}", pin) and len({d["c"] for d in deps}) == 2
    sim = stack.sims[booked.json()["locker"]]
    sim.press(("1" if pin[0] != "1" else "2") + pin[1:] + "#")
    sim.wait_for(lambda st: "Wrong code" in st["display"])
    assert not any(sim.state()["doors"].values()), "no door opened"
    sim.press(pin + "#")
    sim.wait_for(lambda st: "Deposit in" in st["display"])
    for d in deps:
        put_parcel_in(stack, d, locker=booked.json()["locker"])
    for d in deps:
        assert stack.sms_code(phone=f"1380000004{d['waybill'][-1]}", waybill=d["waybill"])
        (kp,) = stack.parcels(waybill=d["waybill"])
        assert kp["status"] in ("deposited", "notified") and kp["compartment"] == d["c"] and kp["carrier"] == "ZTO"
    # used once: the same PIN opens nothing again
    sim.press(pin + "#")
    sim.wait_for(lambda st: "Wrong code" in st["display"])
    assert not any(sim.state()["doors"].values()), "no door opened"

    # the station's agent, given an account with a terminal PIN in the cloud, logs in at the terminal too
    rc, out, err = jincun_cloud(pg_url, "user", "add", "li.agent", "--role", "station_agent", "--name", "李代办",
                                "--station", stack.station, "--secrets-stdin", stdin="long-password-1\n246810\n")
    assert rc == 0, err
    agent = out["terminal_id"]
    stack.wait(lambda: agent in terminal_users(stack), 15, "the agent reaches the terminal")
    assert terminal_login(stack, agent, "246810").json()["role"] == "agent"

    # offline, the station keeps the courier from its own database, through a restart of the gateway
    stack.uplink_down()
    stack.restart_gateway()
    assert uid in terminal_users(stack)
    relogin = terminal_login(stack, uid, PIN)
    assert relogin.status_code == 200, relogin.text
    token = relogin.json()["token"]
    stack.uplink_up()

    # the admin retires the courier: within the sync the terminal ends their session and refuses their PIN
    rc, out, err = jincun_cloud(pg_url, "courier", "retire", PHONE, "--reason", "离职")
    assert rc == 0 and out["active"] is False, err
    stack.wait(lambda: uid not in terminal_users(stack), 15, "the retired courier leaves the terminal")
    assert terminal_login(stack, uid, PIN).status_code == 401
    refused = terminal_deposit(stack, token, waybill="ZT7000000032", phone=VILLAGER)
    assert refused.status_code == 401, refused.text
    assert not stack.parcels(waybill="ZT7000000032")

    # a second retire is the admin's mistake: one line, exit 2
    rc, out, err = jincun_cloud(pg_url, "courier", "retire", PHONE, "--reason", "again")
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "retired already" in err
