"""Compartment state machine and lock driver with a fake clock and a recording coil port."""

from check import eq, true
from jc.compartment import Compartment, LockDriver


class Coils:
    """Records coil drive; only a coil port can exist here, there is no GPIO."""

    def __init__(self):
        self.on = set()
        self.max_on = 0
        self.log = []

    def lock(self, n, v):
        if v:
            self.on.add(n)
        else:
            self.on.discard(n)
        self.max_on = max(self.max_on, len(self.on))
        self.log.append((n, v))

    def all_locks_off(self):
        self.on.clear()


class Rig:
    def __init__(self, ns=(1, 2, 3)):
        self.comps = {n: Compartment(n, "S", ajar_ms=5000) for n in ns}
        self.coils = Coils()
        self.drv = LockDriver(self.coils, self.comps)
        self.door = {n: False for n in ns}
        self.occ = {n: False for n in ns}
        self.now = 0
        self.events = []
        self.on_ms = {n: 0 for n in ns}

    def run(self, ms, spring=True):
        end = self.now + ms
        while self.now < end:
            for n, c in self.comps.items():
                self.events += c.tick(self.now, self.door[n], self.occ[n])
            self.drv.tick(self.now)
            for n in self.coils.on:
                self.on_ms[n] += 10
                if spring:
                    self.door[n] = True
            self.now += 10

    def types(self):
        return [(t, f.get("kind")) for t, f in self.events]


def test_deposit_confirmed():
    r = Rig()
    r.run(500)
    c = r.comps[2]
    eq(c.request("deposit", "p-1"), None)
    r.drv.pulse(2)
    r.run(300)
    eq(c.snapshot()["door"], "open")
    r.occ[2] = True
    r.door[2] = False
    r.run(1000)
    eq(c.st, "occupied")
    eq(c.ref, "p-1")
    true(("deposit", None) in r.types())
    true(r.on_ms[2] <= 500)


def test_fake_sign_off_is_void():
    r = Rig()
    r.run(500)
    r.comps[1].request("deposit", "p-2")
    r.drv.pulse(1)
    r.run(300)
    r.door[1] = False  # closed with nothing inside
    r.run(1000)
    eq(r.comps[1].st, "empty")
    true(("deposit_void", None) in r.types())
    true(("alarm", "occupancy_mismatch") in r.types())


def test_remote_open_that_takes_the_parcel_out_releases_it():
    r = Rig()
    r.run(500)
    c = r.comps[2]
    c.request("deposit", "p-3")
    r.drv.pulse(2)
    r.run(300)
    r.occ[2] = True
    r.door[2] = False
    r.run(1000)
    eq(c.st, "occupied")
    r.events = []
    eq(c.request("remote"), None)  # the village agent takes it for door-to-door delivery
    r.drv.pulse(2)
    r.run(300)
    r.occ[2] = False
    r.door[2] = False
    r.run(1000)
    eq(c.st, "empty")
    eq(c.ref, None)
    true(("state", None) in r.types())
    true(("alarm", "occupancy_mismatch") not in r.types())


def test_forced_open_and_door_ajar():
    r = Rig()
    r.run(500)
    r.door[3] = True
    r.run(200, spring=False)
    true(("alarm", "forced_open") in r.types())
    r.run(6000, spring=False)
    eq(r.types().count(("alarm", "door_ajar")), 1)


def test_jam_faults_the_compartment():
    r = Rig()
    r.run(500)
    r.comps[1].st = "occupied"
    r.comps[1].ref = "p-3"
    r.occ[1] = True
    r.run(300)
    eq(r.comps[1].request("pickup"), None)
    r.drv.pulse(1)
    r.run(4000, spring=False)
    eq(r.comps[1].st, "fault")
    true(("alarm", "lock_jam") in r.types())


def test_one_coil_at_a_time_and_pulse_cap():
    r = Rig()
    r.run(500)
    for n in (1, 2, 3):
        r.drv.pulse(n)
    r.run(3000, spring=False)
    eq(r.coils.max_on, 1)
    for n in (1, 2, 3):
        true(0 < r.on_ms[n] <= 500, "coil %d on for %d ms" % (n, r.on_ms[n]))


def test_busy_rules():
    r = Rig()
    r.run(500)
    eq(r.comps[1].request("pickup"), "busy")  # nothing to pick up
    eq(r.comps[1].request("deposit", "p-4"), None)
    eq(r.comps[1].request("deposit", "p-5"), "busy")
    eq(r.comps[2].disable(), None)
    eq(r.comps[2].request("deposit", "p-6"), "busy")
    eq(r.comps[2].enable(), None)
    eq(r.comps[2].st, "empty")


def test_sensor_fault_alarm_once():
    r = Rig()
    r.run(500)
    r.occ[2] = None
    r.run(1000)
    eq(r.types().count(("alarm", "sensor_fault")), 1)
