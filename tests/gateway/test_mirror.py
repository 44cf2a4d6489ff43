"""The one event-to-compartment mirror (jincun/mirror.py): the gateway's live view follows the shared vectors,
and the mirror of the events the firmware's own state machine emits lands where the firmware is."""

import json
from pathlib import Path

import pytest

import gateway  # noqa: F401 (puts the firmware's jc package within reach, as the gateway does)
from gateway.lockerlink import LockerLink
from gateway.lockerstate import Comp, LockerState
from jc import const as K
from jc.compartment import SETTLE_MS, Compartment
from jincun.mirror import mirror

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "vectors" / "mirror.json").read_text())["vectors"]


@pytest.mark.parametrize("v", VECTORS, ids=[v["name"] for v in VECTORS])
def test_gateway_view_follows_the_vectors(v):
    comp = Comp(n=1, size="M", **v["before"])
    ls = LockerState(id="l1", comps={1: comp})
    LockerLink._apply(ls, {"v": 1, "boot": "5f0c3a9e", "seq": 9, "ts": 0, "mono": 9, **v["evt"]})
    assert {k: getattr(comp, k) for k in v["after"]} == v["after"]


class Mirrored:
    """A firmware compartment with the mirror of its events beside it."""

    def __init__(self):
        self.fw = Compartment(1, "M")
        self.t = 0
        self.door, self.occ = False, False
        self.view = {"st": "empty", "door": "closed", "occ": False, "ref": None}
        self.events = []

    def emit(self, t, fields):
        evt = {"type": t, **fields}
        self.events.append(evt)
        self.view.update(mirror(evt, self.view))

    def run(self, ms, door=..., occ=...):
        """Hold the readings for `ms` (door; occupancy, None when out of range), ticking every 10 ms."""
        self.door = self.door if door is ... else door
        self.occ = self.occ if occ is ... else occ
        for _ in range(ms // 10):
            self.t += 10
            for t, fields in self.fw.tick(self.t, self.door, self.occ):
                self.emit(t, fields)

    def request(self, why, ref=None):
        assert self.fw.request(why, ref) is None
        self.fw.pulse_started(self.t, 300)
        self.emit(K.T_LOCK, {"c": 1, "why": why})

    def agrees(self, ref=True):
        """The view holds the firmware's state and door, and its ref unless the ref is still unannounced."""
        fw = self.fw.snapshot()
        assert self.view["st"] == fw["st"], self.events
        assert self.view["door"] == fw["door"]
        if ref:
            assert self.view["ref"] == fw.get("ref")


def test_the_mirror_of_the_firmware_events_lands_where_the_firmware_is():
    m = Mirrored()
    m.run(500)  # first stable readings
    m.agrees()
    # deposit: pulse, door opens, parcel in, door shut, settle; the lock event names no ref (the deposit
    # event does), so the view learns it when the deposit is confirmed
    m.request("deposit", "p-1")
    m.agrees(ref=False)
    m.run(200, door=True)
    m.run(200, occ=True)
    m.run(SETTLE_MS + 300, door=False)
    m.agrees()
    assert m.view["st"] == "occupied" and m.view["occ"] is True
    # a pickup code: pulse, door opens, parcel out, door shut
    m.request("pickup")
    m.agrees()
    m.run(200, door=True)
    m.run(300, occ=False)
    m.run(SETTLE_MS + 300, door=False)
    m.agrees()
    assert m.view["st"] == "empty" and m.view["ref"] is None
    # a deposit nobody makes: the door opens and shuts on an empty compartment
    m.request("deposit", "p-2")
    m.run(200, door=True)
    m.run(SETTLE_MS + 300, door=False)
    m.agrees()
    assert [e["type"] for e in m.events][-2:] == ["deposit_void", "alarm"]
    # a jammed lock: pulsed, the door never opens
    m.request("deposit", "p-3")
    m.run(3000)
    m.agrees(ref=False)
    assert m.view["st"] == "fault" and m.events[-1] == {"type": "alarm", "kind": "lock_jam", "c": 1}
    # the same through the gateway's view
    comp = Comp(n=1, size="M")
    ls = LockerState(id="l1", comps={1: comp})
    for e in m.events:
        LockerLink._apply(ls, e)
    assert (comp.st, comp.door) == ("fault", "closed")


def test_sensor_fault_after_a_deposit_marks_the_compartment_faulty_on_both_sides():
    m = Mirrored()
    m.run(500)
    m.request("deposit", "p-9")
    m.run(200, door=True)
    m.run(SETTLE_MS + 300, door=False, occ=None)  # the occupancy sensor reads out of range
    m.agrees(ref=False)
    assert m.view["st"] == "fault"
