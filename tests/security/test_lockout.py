"""The lockout rule on its own: per key, doubling, forgiven by time or by the key's own success."""

from gateway.lockout import Lockout


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_lockouts_double_per_key_and_touch_no_other_key():
    clock = Clock()
    lk = Lockout(fails=3, first_s=60, max_s=200, forget_s=3600, clock=clock)
    assert [lk.failed("a") for _ in range(3)] == [0, 0, 60]
    assert lk.wait_s("a") == 60 and lk.wait_s("b") == 0
    lk.succeeded("b")  # someone else's success
    assert lk.wait_s("a") == 60
    clock.t += 61
    assert lk.wait_s("a") == 0
    assert [lk.failed("a") for _ in range(3)] == [0, 0, 120]
    clock.t += 121
    assert [lk.failed("a") for _ in range(3)] == [0, 0, 200], "capped at max_s"


def test_quiet_time_or_own_success_forgives():
    clock = Clock()
    lk = Lockout(fails=2, first_s=10, max_s=100, forget_s=50, clock=clock)
    lk.failed("a")
    clock.t += 51
    assert lk.failed("a") == 0, "a failure an hour ago does not count"
    lk.failed("a")
    clock.t += 11
    lk.succeeded("a")
    assert [lk.failed("a"), lk.failed("a")] == [0, 10], "a success starts the doubling over"


def test_a_full_table_never_drops_a_locked_key():
    clock = Clock()
    lk = Lockout(fails=1, first_s=60, max_s=60, forget_s=3600, max_keys=3, clock=clock)
    lk.failed("victim-guessed")
    for i in range(100):
        lk.failed(f"flood-{i}")  # every flood key is locked too: the oldest-locked gives way first
        clock.t += 0.01
    assert len(lk._e) <= 3
    fresh = Lockout(fails=2, first_s=60, max_s=60, forget_s=3600, max_keys=3, clock=clock)
    fresh.failed("x")
    fresh.failed("x")
    for i in range(100):
        fresh.failed(f"flood-{i}")  # one failure each: not locked, so these give way, not x
    assert fresh.wait_s("x") == 60
