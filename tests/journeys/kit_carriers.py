"""What the carrier, charge and outbound journeys share: a station with its people, and the calls each person
makes (the terminal as its page calls it, /m as the phone does, the carrier API), which the scripted demo plays
too (simulator/demo_carriers.py)."""

from __future__ import annotations

import copy

from gateway.terminal import hash_pin
from simulator import demo_carriers
from simulator.demo_carriers import WebhookReceiver, admin, carrier_client, county, phone  # noqa: F401
from simulator.stack import Stack

PINS = {"c-zto": "246810", "c-sf": "357913", "a-li": "135790"}
# the station file as an older station wrote it: carriers by their Chinese names
TERMINAL = {
    "users": [
        {"id": "c-zto", "name": "王师傅", "role": "courier", "carrier": "中通", "pin_hash": hash_pin(PINS["c-zto"])},
        {"id": "c-sf", "name": "赵师傅", "role": "courier", "carrier": "顺丰", "pin_hash": hash_pin(PINS["c-sf"])},
        {"id": "a-li", "name": "李大姐", "role": "agent", "pin_hash": hash_pin(PINS["a-li"])},
    ],
    "carriers": ["中国邮政", "顺丰", "中通", "圆通"],
}


def station(tmp_path, pg_url) -> Stack:
    """A whole station (firmware under MicroPython, Mosquitto with its ACL, gateway) and a cloud on PostgreSQL."""
    return Stack(tmp_path / "station", broker="mosquitto", database_url=pg_url, terminal=copy.deepcopy(TERMINAL))


class Terminal(demo_carriers.Terminal):
    """The station terminal as its page calls it, logged in as one of this station's people."""

    def __init__(self, stack: Stack, user: str) -> None:
        super().__init__(stack, user, PINS[user])
