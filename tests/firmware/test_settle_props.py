"""The compartment machine under random door, occupancy and request sequences (CPython, same module).

The replay of the settle race itself lives in mp/test_settle.py, which also runs under MicroPython.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "mp"))
sys.path.insert(0, str(HERE.parents[1] / "firmware"))

import test_settle as replay
from jc.compartment import (
    DOOR_DEBOUNCE_MS,
    OCC_DEBOUNCE_MS,
    OPEN_GRACE_MS,
    PULSE_MS,
    SETTLE_MAX_MS,
    SETTLE_MS,
    Compartment,
)

TICK = 10
# an unlatched door springs open 30 ms after the pulse starts, or later: a stiff seal, pulses queued ahead
SPRINGS = st.sampled_from([30, 30, 60, 150, 400, 900, 1500])
# a door shut and a reading held this long leave the machine nothing more to wait for
MIN_OPEN_MS = 60
JUDGED_MS = DOOR_DEBOUNCE_MS + SETTLE_MS + 2 * TICK  # a close held shut this long has been judged
QUIET_MS = DOOR_DEBOUNCE_MS + SETTLE_MAX_MS + OCC_DEBOUNCE_MS + 4 * TICK


def test_replay_of_the_settle_race_on_cpython():
    for name in sorted(n for n in dir(replay) if n.startswith("test_")):
        getattr(replay, name)()


class World:
    """A compartment and the physical door and parcel it watches; every tick and event recorded."""

    def __init__(self, occupied: bool) -> None:
        self.c = Compartment(1, "M")
        self.now = 0
        self.door = False
        self.occ = occupied
        if occupied:
            self.c.st, self.c.ref = "occupied", "p-0"
        self.spring_at = -1
        self.held_shut_until = -1
        self.opened_at = -MIN_OPEN_MS
        # (ms, door, occupancy, state, a requested opening in flight)
        self.trace: list[tuple[int, bool, bool, str, bool]] = []
        self.events: list[tuple[int, str, dict]] = []
        self.requests: list[dict] = []  # accepted requests: why, ref, at, unlock

    def run(self, ms: int) -> None:
        end = self.now + ms
        while self.now < end:
            if 0 <= self.spring_at <= self.now:
                self.spring_at = -1
                if not self.door:
                    self.door = True
                    self.opened_at = self.now
            for etype, fields in self.c.tick(self.now, self.door, self.occ):
                self.events.append((self.now, etype, fields))
            self.trace.append((self.now, self.door, self.occ, self.c.st, self.c.opening is not None))
            self.now += TICK

    def act(self, action: tuple) -> None:
        kind = action[0]
        if kind == "door":
            if action[1] and self.now < self.held_shut_until:
                return  # a jammed bolt holds the door shut until the controller has given up on it
            if not action[1] and (self.spring_at >= 0 or self.now < self.opened_at + MIN_OPEN_MS):
                return  # nobody shuts a door the instant it opens
            if action[1] and not self.door:
                self.opened_at = self.now
            self.door = action[1]
        elif kind == "occ":
            if self.door:  # a parcel goes in or out only through an open door
                self.occ = action[1]
        elif kind == "request":
            why, jam, spring = action[1], action[2], action[3]
            ref = f"p-{len(self.requests) + 1}"
            if self.c.request(why, ref) is None:
                self.c.pulse_started(self.now, PULSE_MS)
                # the pulse unlatches the door: a person may pull it open before it springs by itself
                unlock = None if jam else self.now
                if unlock is not None:
                    self.spring_at = self.now + spring
                else:
                    self.held_shut_until = self.now + PULSE_MS + OPEN_GRACE_MS + 2 * DOOR_DEBOUNCE_MS
                self.requests.append({"why": why, "ref": ref if why == "deposit" else None, "at": self.now,
                                      "unlock": unlock})

    # ---- reading the record ----
    def held(self, t0: int, t1: int, door: bool | None = None, occ: bool | None = None) -> bool:
        """Over [t0, t1] the door (and/or the reading) stayed as given."""
        rows = [r for r in self.trace if t0 <= r[0] <= t1]
        return bool(rows) and all((door is None or r[1] == door) and (occ is None or r[2] == occ) for r in rows)

    def door_opened_between(self, t0: int, t1: int) -> bool:
        return any(r[1] for r in self.trace if t0 < r[0] < t1)

    def first_judged_close(self, t: int) -> int | None:
        """The first close after t that the door then stayed shut long enough for the settle to judge.

        A door opened again within a debounce of the settle may or may not have been judged: -1.
        """
        was_open = False
        for r in self.trace:
            if r[0] < t:
                continue
            if r[1]:
                was_open = True
            elif was_open:
                if self.held(r[0], r[0] + JUDGED_MS, door=False):
                    return r[0]
                if self.held(r[0], r[0] + SETTLE_MS - 2 * TICK, door=False):
                    return -1
                was_open = False
        return None


actions = st.one_of(
    st.tuples(st.just("door"), st.booleans()),
    st.tuples(st.just("occ"), st.booleans()),
    st.tuples(st.just("request"), st.sampled_from(["deposit", "deposit", "pickup", "remote"]),
              st.integers(0, 9).map(lambda n: n == 0),  # one request in ten finds its lock jammed
              SPRINGS),
)
# half the waits fall inside a settle window, where the races are
waits = st.one_of(st.integers(6, 44), st.integers(45, 250)).map(lambda n: n * TICK)
steps = st.lists(st.tuples(actions, waits), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(occupied=st.booleans(), steps=steps)
def test_invariants_under_random_door_occupancy_and_requests(occupied, steps):
    w = World(occupied)
    w.run(500)
    for action, wait in steps:
        w.act(action)
        w.run(wait)
    w.door = False
    w.run(QUIET_MS + 500)

    # 1. never `empty` while the sensor has read full, door shut, through a settle (a requested opening still
    # in flight is judged by its own door cycle, or faults the compartment when the lock jams)
    for t, door, occ, state, _ in w.trace:
        if state == "empty" and t >= QUIET_MS and w.held(t - QUIET_MS, t, door=False, occ=True) and not any(
                r[4] for r in w.trace if t - QUIET_MS <= r[0] <= t):
            raise AssertionError(f"empty at {t} ms with a full reading held since {t - QUIET_MS} ms")

    # 2. a deposit is confirmed exactly when the door closes on a full reading after that deposit's unlock
    deposits = [r for r in w.requests if r["why"] == "deposit"]
    for r in deposits:
        confirmed = [e[0] for e in w.events if e[1] == "deposit" and e[2]["ref"] == r["ref"]]
        tc = w.first_judged_close(r["unlock"]) if r["unlock"] is not None else None
        if tc == -1:
            continue
        # a parcel moves only while the door is open, so the reading a close is judged on is the one it shut on
        full = tc is not None and w.held(tc, tc + JUDGED_MS, occ=True)
        assert len(confirmed) == (1 if full else 0), (r, tc, confirmed)
        if full:
            assert tc + SETTLE_MS <= confirmed[0] <= tc + JUDGED_MS, (r, tc, confirmed)
    for t, etype, f in w.events:
        if etype == "deposit":
            assert any(r["ref"] == f["ref"] for r in deposits), f

    # 3. no deposit, void or pickup is judged against a reading taken before its request
    judged = {"deposit": True, "deposit_void": False, "pickup": False}
    for t, etype, f in w.events:
        if etype not in judged:
            continue
        mine = [r for r in w.requests if r["at"] <= t and (r["ref"] == f["ref"] if etype != "pickup" else
                                                            r["why"] == "pickup")]
        if not mine:
            assert etype == "pickup" and occupied, (t, etype, f)  # the parcel the run started with
            continue
        r = mine[-1]
        assert w.door_opened_between(r["at"], t), f"{etype} at {t} ms with no door cycle since the request at {r['at']}"
        assert t - OCC_DEBOUNCE_MS >= r["at"], (t, r)
        assert w.held(t - OCC_DEBOUNCE_MS + TICK, t, occ=judged[etype]), (t, etype, r)
