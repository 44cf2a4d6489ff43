"""Offline pickup-code vault and keypad lockout, persisted atomically in flash."""

import json
import binascii
from jc import const as K
from jc import store
from jc.digest import Hmac, ct_equal

MAX_ENTRIES = 64

# try_code results
OK = "ok"
COURIER = "courier"
BAD = "bad"
LOCKED = "locked"


class Vault:
    """Entries [h, cs, exp_mono_ms, deps]; expiry runs on monotonic time only (power-off time does not count).

    deps is None for a pickup code, or [[c, ref], ...] for a courier PIN: the deposits it opens.
    h is held as the raw 32-byte digest in RAM (hex in flash). The wrong-code count and lockout live in a
    small file of their own (path + ".lock"), so a wrong code costs one tiny write, not a vault rewrite.
    """

    def __init__(self, path, secret, max_entries=MAX_ENTRIES, log=None):
        self.path = path
        self.lock_path = path + ".lock"
        self.secret = secret
        self.mac = Hmac(secret)
        self._lock_dirty = False
        self._dirty = False
        self.max = max_entries
        self.entries = []
        self.fails = 0
        self.lockouts = 0
        self.locked_until = 0
        self.corrupt = 0
        self.save_errors = 0
        self._log = log or (lambda *a: None)

    def _read(self, path):
        try:
            data = store.read(path)
            return None if data is None else json.loads(data)
        except (store.StoreError, ValueError) as e:
            self.corrupt += 1
            self._log("vault", "unreadable, starting empty:", path, e)
            return None

    def readable(self):
        """The vault file reads back whole (or is not there yet)."""
        try:
            store.read(self.path)
            return True
        except store.StoreError as e:
            self._log("vault", "not readable:", e)
            return False

    def load(self, now):
        o = self._read(self.path)
        if o is not None:
            try:
                self.entries = [[binascii.unhexlify(e[0]), list(e[1]), now + e[2], e[3] if len(e) > 3 else None]
                                for e in o["e"]][: self.max]
            except (ValueError, KeyError, TypeError, IndexError) as e:
                self.corrupt += 1
                self._log("vault", "bad content, starting empty:", e)
                self.entries = []
        lk = self._read(self.lock_path)
        if lk is None and type(o) is dict and "f" in o:
            lk = o  # written before the lockout had a file of its own
        if lk is not None:
            try:
                self.fails = int(lk["f"])
                self.lockouts = int(lk["l"])
                self.locked_until = now + lk["u"] if lk["u"] > 0 else 0
            except (ValueError, KeyError, TypeError) as e:
                self.corrupt += 1
                self._log("vault", "bad lockout record:", e)

    def _write(self, path, obj):
        try:
            store.write(path, json.dumps(obj).encode())
        except store.StoreError as e:
            self.save_errors += 1
            self._log("vault", "save failed:", e)

    def save(self, now):
        """Persist the entries (the lockout record has its own file: save_lock)."""
        self._write(self.path, {"e": [[binascii.hexlify(e[0]).decode(), e[1], max(0, e[2] - now), e[3]]
                                      for e in self.entries]})

    def save_lock(self, now):
        self._write(self.lock_path, {"f": self.fails, "l": self.lockouts, "u": max(0, self.locked_until - now)})

    def purge(self, now):
        """Drop expired entries; return how many."""
        for e in self.entries:
            if e[2] <= now:
                break
        else:
            return 0
        keep = [e for e in self.entries if e[2] > now]
        n = len(self.entries) - len(keep)
        if n:
            self.entries = keep
            self.save(now)
        return n

    def count(self):
        return len(self.entries)

    def put(self, h, cs, exp_s, now, deps=None):
        """Store a code (or, with deps, a courier PIN) hash; return None or the ack error 'full'."""
        h = binascii.unhexlify(h)
        self.purge(now)
        for e in self.entries:
            if ct_equal(e[0], h):
                e[1] = list(cs)
                e[2] = now + exp_s * 1000
                e[3] = deps
                self.save(now)
                return None
        if len(self.entries) >= self.max:
            return K.ERR_FULL
        self.entries.append([h, list(cs), now + exp_s * 1000, deps])
        self.save(now)
        return None

    def put_courier(self, h, deps, exp_s, now):
        """Store a courier PIN hash that opens the deposits deps = [[c, ref], ...]."""
        return self.put(h, [d[0] for d in deps], exp_s, now, [[d[0], d[1]] for d in deps])

    def delete(self, h, now):
        h = binascii.unhexlify(h)
        n = len(self.entries)
        self.entries = [e for e in self.entries if not ct_equal(e[0], h)]
        if len(self.entries) != n:
            self.save(now)
            return True
        return False

    def consume(self, c, now):
        """A compartment was emptied: remove it from every code; a code with nothing left is deleted."""
        changed = False
        for e in self.entries:
            if e[3] is None and c in e[1]:
                e[1].remove(c)
                changed = True
        if changed:
            self.entries = [e for e in self.entries if e[1]]
            self.save(now)

    def lock_left_s(self, now):
        if self.locked_until > now:
            return (self.locked_until - now + 999) // 1000
        return 0

    def right(self, now):
        """A right code was typed: the wrong-code count and the lockout start again (commit() persists it).

        check() calls it on a match; a keypad made of several vaults (the gateway's lock boards behind one
        station terminal) calls it on every vault when any of them matched. Nothing changes during a
        lockout: a locked keypad takes no code, right or wrong.
        """
        if self.lock_left_s(now):
            return
        if self.fails or self.lockouts or self.locked_until:
            self.fails = 0
            self.lockouts = 0
            self.locked_until = 0
            self._lock_dirty = True

    def try_code(self, code, now):
        """check() then commit(): the decision, persisted."""
        r = self.check(code, now)
        self.commit(now)
        return r

    def commit(self, now):
        """Persist what the last check() changed; call it before telling the person the outcome."""
        if self._lock_dirty:
            self._lock_dirty = False
            self.save_lock(now)
        if self._dirty:
            self._dirty = False
            self.save(now)

    def check(self, code, now):
        """Decide on a typed code without touching flash (commit() persists it).

        Returns (OK, cs) | (COURIER, deps) | (BAD, fails, lockout_secs, lockout_count) | (LOCKED, secs_left).
        A 6-digit entry is a pickup code, an 8-digit one a courier PIN (used once, then deleted).
        lockout_secs is 0 unless this wrong code started a lockout.
        """
        left = self.lock_left_s(now)
        if left:
            return (LOCKED, left)
        self.purge(now)
        h = None
        if isinstance(code, str):
            code = code.encode()
        if len(code) == K.CODE_LEN:
            h = self.mac.digest(K.CODE_MSG_PREFIX + code)
        elif len(code) == K.PIN_LEN:
            h = self.mac.digest(K.PIN_MSG_PREFIX + code)
        found = None
        for e in self.entries:
            # compare against every entry so the time taken does not reveal which one matched
            if h is not None and ct_equal(e[0], h) and (e[3] is None) == (len(code) == K.CODE_LEN):
                found = e
        if found is not None:
            self.right(now)
            if found[3] is not None:
                self.entries = [e for e in self.entries if e is not found]
                self._dirty = True
                return (COURIER, [list(d) for d in found[3]])
            return (OK, list(found[1]))
        self.fails += 1
        secs = 0
        if self.fails % K.LOCKOUT_AFTER == 0:
            secs = K.LOCKOUT_FIRST_S
            for _ in range(self.lockouts):
                secs *= 2
                if secs >= K.LOCKOUT_MAX_S:
                    secs = K.LOCKOUT_MAX_S
                    break
            self.lockouts += 1
            self.locked_until = now + secs * 1000
        self._lock_dirty = True
        return (BAD, self.fails, secs, self.lockouts)
