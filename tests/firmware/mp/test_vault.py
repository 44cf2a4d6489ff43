"""Vault: codes, expiry, single use, lockout escalation, persistence and power loss."""

from check import eq, true
from jc.vault import Vault, OK, BAD, LOCKED
from jc.digest import code_hash

SECRET = bytes(range(32))


def mk():
    v = Vault("vault.bin", SECRET)
    v.load(0)
    return v


def test_code_opens_its_compartments():
    v = mk()
    eq(v.put(code_hash(SECRET, "123456"), [2, 5], 3600, 0), None)
    eq(v.try_code("123456", 10), (OK, [2, 5]))
    eq(v.try_code("654321", 20)[0], BAD)


def test_single_use_after_all_compartments_emptied():
    v = mk()
    v.put(code_hash(SECRET, "123456"), [2, 5], 3600, 0)
    v.consume(2, 1)
    eq(v.try_code("123456", 2), (OK, [5]))
    v.consume(5, 3)
    eq(v.count(), 0)
    eq(v.try_code("123456", 4)[0], BAD)


def test_expiry_on_monotonic_time():
    v = mk()
    v.put(code_hash(SECRET, "111111"), [1], 60, 1000)
    eq(v.try_code("111111", 60999)[0], OK)
    eq(v.try_code("111111", 61000)[0], BAD)
    eq(v.count(), 0)


def test_code_del():
    v = mk()
    h = code_hash(SECRET, "222222")
    v.put(h, [3], 60, 0)
    true(v.delete(h, 1))
    eq(v.try_code("222222", 2)[0], BAD)


def test_lockout_after_five_and_doubling():
    v = mk()
    now = 0
    expect = [30, 60, 120, 240, 480, 900, 900]
    for want in expect:
        for i in range(4):
            r = v.try_code("000000", now)
            eq(r[0], BAD)
            eq(r[2], 0)
        r = v.try_code("000000", now)
        eq(r[0], BAD)
        eq(r[2], want, "lockout length")
        # while locked, codes are refused and not counted
        fails = v.fails
        eq(v.try_code("000000", now + 1)[0], LOCKED)
        eq(v.fails, fails)
        now += want * 1000
    eq(v.try_code("000000", now - 1)[0], LOCKED)


def test_hundred_wrong_codes_then_good_code():
    v = mk()
    v.put(code_hash(SECRET, "424242"), [7], 10 ** 7, 0)
    now = 0
    lockouts = 0
    for i in range(100):
        left = v.lock_left_s(now)
        if left:
            now += left * 1000
        r = v.try_code("%06d" % i, now)
        eq(r[0], BAD)
        if r[2]:
            lockouts += 1
            true(r[2] <= 900)
    eq(lockouts, 20)
    eq(v.fails, 100)
    now += v.lock_left_s(now) * 1000
    eq(v.try_code("424242", now), (OK, [7]))
    eq(v.fails, 0)
    eq(v.lockouts, 0)


def test_good_code_resets_fail_count():
    v = mk()
    v.put(code_hash(SECRET, "123456"), [1], 600, 0)
    for _ in range(4):
        v.try_code("999999", 0)
    eq(v.try_code("123456", 1)[0], OK)
    eq(v.try_code("999999", 2), (BAD, 1, 0, 0))


def test_a_right_code_on_another_vault_of_the_keypad_resets_the_count():
    v = mk()
    for _ in range(4):
        v.try_code("999999", 0)
    v.right(1)
    v.commit(1)
    eq(v.try_code("999999", 2), (BAD, 1, 0, 0))
    w = Vault("vault.bin", SECRET)
    w.load(3)
    eq(w.fails, 1, "the reset was persisted")
    for _ in range(4):
        w.try_code("999999", 4)
    eq(w.lock_left_s(5), 30)
    w.right(5)
    eq(w.lock_left_s(5), 30, "a locked keypad takes no code, right or wrong")
    eq(w.try_code("999999", 6)[0], LOCKED)


def test_short_or_long_code_is_wrong():
    v = mk()
    v.put(code_hash(SECRET, "123456"), [1], 600, 0)
    eq(v.try_code("12345", 0)[0], BAD)
    eq(v.try_code("1234567", 0)[0], BAD)
    eq(v.fails, 2)


def test_survives_restart_with_lockout():
    v = mk()
    v.put(code_hash(SECRET, "123456"), [4], 600, 0)
    for _ in range(5):
        v.try_code("000000", 0)
    w = Vault("vault.bin", SECRET)
    w.load(5000)  # new boot: monotonic clock restarted
    eq(w.count(), 1)
    eq(w.lock_left_s(5000), 30)
    eq(w.try_code("123456", 5000 + 30000), (OK, [4]))


def test_full_vault():
    v = Vault("vault.bin", SECRET, max_entries=4)
    v.load(0)
    for i in range(4):
        eq(v.put(code_hash(SECRET, "%06d" % i), [1], 60, 0), None)
    eq(v.put(code_hash(SECRET, "999999"), [1], 60, 0), "full")
    # same hash again is an update, not a new entry
    eq(v.put(code_hash(SECRET, "000001"), [2], 60, 0), None)


def test_torn_temp_file_keeps_old_version():
    v = mk()
    v.put(code_hash(SECRET, "123456"), [1], 600, 0)
    with open("vault.bin.tmp", "wb") as f:
        f.write(b"JCS1\x40\x00")  # power lost while writing the next version
    w = Vault("vault.bin", SECRET)
    w.load(0)
    eq(w.count(), 1)
    eq(w.corrupt, 0)


def test_truncated_file_is_detected_not_trusted():
    v = mk()
    v.put(code_hash(SECRET, "123456"), [1], 600, 0)
    with open("vault.bin", "rb") as f:
        raw = f.read()
    with open("vault.bin", "wb") as f:
        f.write(raw[: len(raw) // 2])
    w = Vault("vault.bin", SECRET)
    w.load(0)
    eq(w.corrupt, 1)
    eq(w.count(), 0)
    eq(w.try_code("123456", 0)[0], BAD)
