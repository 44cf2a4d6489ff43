"""The settle race (a request right after a door cycle) replayed tick by tick on the sans-IO compartment.

The same module runs under MicroPython (test_units.py) and under CPython (test_settle_props.py).
"""

from check import eq, true
from jc.compartment import Compartment, PULSE_MS

TICK = 10


class Replay:
    """One compartment fed door and occupancy readings every 10 ms; every event kept with its time."""

    def __init__(self):
        self.c = Compartment(1, "M")
        self.now = 0
        self.door = False
        self.occ = False
        self.events = []

    def until(self, t):
        while self.now < t:
            for e in self.c.tick(self.now, self.door, self.occ):
                self.events.append((self.now, e[0], e[1]))
            self.now += TICK

    def types(self, since=0):
        return [(e[1], e[2].get("kind")) for e in self.events if e[0] >= since]

    def at(self, etype):
        return [e[0] for e in self.events if e[1] == etype]


def _race():
    """Ticks to 500 ms shut; open to 1000; closed to 1300; then a deposit is requested and pulsed."""
    r = Replay()
    r.until(500)
    r.door = True  # a forced open, a staff check, a courier who closes an empty door
    r.until(1000)
    r.door = False
    r.until(1300)
    eq(r.c.request("deposit", "p-race"), None)
    req_at = r.now
    r.c.pulse_started(r.now, PULSE_MS)
    return r, req_at


def test_a_request_cancels_the_settle_of_the_door_cycle_before_it():
    r, req_at = _race()
    r.until(1800)  # the door is still shut: the old settle would have fired at 1,440 ms
    eq(r.types(req_at), [])
    eq(r.c.st, "deposit")
    eq(r.c.ref, "p-race")


def test_the_raced_deposit_is_confirmed_when_the_parcel_goes_in():
    r, req_at = _race()
    r.until(1350)
    r.door = True  # the lock springs the door
    r.until(1800)
    r.occ = True  # the courier puts the parcel in
    r.until(2400)
    r.door = False
    r.until(3500)
    eq(r.at("deposit_void"), [])
    eq([e[2] for e in r.events if e[1] == "deposit"], [{"c": 1, "ref": "p-race"}])
    true(r.at("deposit")[0] >= 2400 + 400, r.events)
    true(("alarm", "occupancy_mismatch") not in r.types(req_at), r.events)
    true(("alarm", "forced_open") not in r.types(req_at), r.events)
    eq(r.c.st, "occupied")


def test_the_raced_deposit_closed_empty_is_void_only_after_its_own_door_cycle():
    r, req_at = _race()
    r.until(1350)
    r.door = True
    r.until(1800)
    r.door = False
    r.until(3000)
    eq([t for t in r.at("deposit_void")], [t for t in r.at("deposit_void") if t >= 1800 + 400])
    eq(len(r.at("deposit_void")), 1)
    eq(r.c.st, "empty")


def test_a_parcel_left_by_a_forced_open_takes_the_compartment_out_of_service():
    r = Replay()
    r.until(500)
    r.door = True
    r.until(800)
    r.occ = True  # someone put something in an empty compartment
    r.until(1200)
    r.door = False
    r.until(1300)
    eq(r.c.request("deposit", "p-2"), "busy")  # a steady full reading is never handed to a courier
    r.until(2000)
    eq(r.c.st, "fault")
    true(("alarm", "occupancy_mismatch") in r.types(), r.events)
    eq([e[2] for e in r.events if e[1] == "state"], [{"c": 1, "st": "fault"}])
    eq(r.c.snapshot()["mm"], True)
    eq([e[2].get("occ") for e in r.events if e[2].get("kind") == "occupancy_mismatch"], [True])


def test_a_remote_open_that_removes_the_found_parcel_returns_it_to_service():
    r = Replay()
    r.until(500)
    r.door = True
    r.occ = True
    r.until(1200)
    r.door = False
    r.until(2000)
    eq(r.c.st, "fault")
    eq(r.c.request("remote"), None)
    r.c.pulse_started(r.now, PULSE_MS)
    r.until(2050)
    r.door = True
    r.until(2500)
    r.occ = False
    r.until(2800)
    r.door = False
    r.until(3600)
    eq(r.c.st, "empty")
    true("mm" not in r.c.snapshot())


def test_a_remote_open_that_leaves_the_found_parcel_keeps_it_out_of_service():
    r = Replay()
    r.until(500)
    r.door = True
    r.occ = True
    r.until(1200)
    r.door = False
    r.until(2000)
    eq(r.c.request("remote"), None)
    r.c.pulse_started(r.now, PULSE_MS)
    r.until(2050)
    r.door = True
    r.until(2500)
    r.door = False
    r.until(3600)
    eq(r.c.st, "fault")
    eq(r.types(2000).count(("alarm", "occupancy_mismatch")), 1)


def test_a_reading_still_changing_after_the_close_is_not_judged_until_it_holds():
    r = Replay()
    r.until(500)
    eq(r.c.request("deposit", "p-3"), None)
    r.c.pulse_started(r.now, PULSE_MS)
    r.until(550)
    r.door = True
    r.until(1000)
    r.door = False
    # the parcel slides onto the sensor just as the door shuts: the reading flickers for 600 ms
    flick = r.now + 600
    while r.now < flick:
        r.occ = not r.occ
        r.until(r.now + 30)
    r.occ = True
    r.until(3000)
    eq(r.at("deposit_void"), [])
    eq(len(r.at("deposit")), 1)
    true(r.at("deposit")[0] >= flick + 200, r.events)


def test_a_reading_that_never_holds_faults_the_deposit():
    r = Replay()
    r.until(500)
    eq(r.c.request("deposit", "p-4"), None)
    r.c.pulse_started(r.now, PULSE_MS)
    r.until(550)
    r.door = True
    r.until(1000)
    r.door = False
    end = r.now + 4000
    while r.now < end:
        r.occ = not r.occ
        r.until(r.now + 30)
    eq(r.c.st, "fault")
    eq(r.at("deposit"), [])
    true(("alarm", "sensor_fault") in r.types(), r.events)


def test_a_restart_with_a_parcel_in_an_empty_compartment_takes_it_out_of_service():
    r = Replay()
    r.occ = True
    r.until(1500)
    eq(r.c.st, "fault")
    true(("alarm", "occupancy_mismatch") in r.types(), r.events)


def test_a_found_parcel_is_adopted_without_opening():
    r = Replay()
    r.until(500)
    eq(r.c.adopt("p-5"), "busy")  # nothing inside: nothing to adopt
    r.door = True
    r.occ = True
    r.until(1200)
    r.door = False
    r.until(2000)
    eq(r.c.st, "fault")
    eq(r.c.adopt("p-5"), None)
    eq((r.c.st, r.c.ref), ("occupied", "p-5"))
    true("mm" not in r.c.snapshot())
    eq(r.c.adopt("p-6"), "busy")  # adopted once
    # the villager's pickup then goes as for any deposit
    eq(r.c.request("pickup"), None)
    r.c.pulse_started(r.now, PULSE_MS)
    r.until(r.now + 50)
    r.door = True
    r.until(r.now + 300)
    r.occ = False
    r.until(r.now + 300)
    r.door = False
    r.until(r.now + 1000)
    eq([e[2] for e in r.events if e[1] == "pickup"], [{"c": 1, "ref": "p-5"}])
