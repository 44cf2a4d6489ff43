"""Offline pickup-code vault and keypad lockout, persisted atomically in flash."""

import json
from jc import const as K
from jc import store
from jc.hmac256 import code_hash, ct_equal

MAX_ENTRIES = 64

# try_code results
OK = "ok"
BAD = "bad"
LOCKED = "locked"


class Vault:
    """Entries [h, cs, exp_mono_ms]; expiry runs on monotonic time only (power-off time does not count)."""

    def __init__(self, path, secret, max_entries=MAX_ENTRIES, log=None):
        self.path = path
        self.secret = secret
        self.max = max_entries
        self.entries = []
        self.fails = 0
        self.lockouts = 0
        self.locked_until = 0
        self.corrupt = 0
        self.save_errors = 0
        self._log = log or (lambda *a: None)

    def load(self, now):
        try:
            data = store.read(self.path)
        except store.StoreError as e:
            self.corrupt += 1
            self._log("vault", "unreadable, starting empty:", e)
            data = None
        if data is None:
            return
        try:
            o = json.loads(data)
            self.entries = [[e[0], list(e[1]), now + e[2]] for e in o["e"]][: self.max]
            self.fails = o["f"]
            self.lockouts = o["l"]
            self.locked_until = now + o["u"] if o["u"] > 0 else 0
        except (ValueError, KeyError, TypeError, IndexError) as e:
            self.corrupt += 1
            self._log("vault", "bad content, starting empty:", e)
            self.entries = []

    def save(self, now):
        o = {"e": [[e[0], e[1], max(0, e[2] - now)] for e in self.entries],
             "f": self.fails, "l": self.lockouts, "u": max(0, self.locked_until - now)}
        try:
            store.write(self.path, json.dumps(o).encode())
        except store.StoreError as e:
            self.save_errors += 1
            self._log("vault", "save failed:", e)

    def purge(self, now):
        """Drop expired entries; return how many."""
        keep = [e for e in self.entries if e[2] > now]
        n = len(self.entries) - len(keep)
        if n:
            self.entries = keep
            self.save(now)
        return n

    def count(self):
        return len(self.entries)

    def put(self, h, cs, exp_s, now):
        """Store a code hash; return None or the ack error 'full'."""
        self.purge(now)
        for e in self.entries:
            if ct_equal(e[0], h):
                e[1] = list(cs)
                e[2] = now + exp_s * 1000
                self.save(now)
                return None
        if len(self.entries) >= self.max:
            return K.ERR_FULL
        self.entries.append([h, list(cs), now + exp_s * 1000])
        self.save(now)
        return None

    def delete(self, h, now):
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
            if c in e[1]:
                e[1].remove(c)
                changed = True
        if changed:
            self.entries = [e for e in self.entries if e[1]]
            self.save(now)

    def lock_left_s(self, now):
        if self.locked_until > now:
            return (self.locked_until - now + 999) // 1000
        return 0

    def try_code(self, code, now):
        """Check a typed code.

        Returns (OK, cs) | (BAD, fails, lockout_secs, lockout_count) | (LOCKED, secs_left).
        lockout_secs is 0 unless this wrong code started a lockout.
        """
        left = self.lock_left_s(now)
        if left:
            return (LOCKED, left)
        self.purge(now)
        h = code_hash(self.secret, code) if len(code) == K.CODE_LEN else None
        found = None
        for e in self.entries:
            # compare against every entry so the time taken does not reveal which one matched
            if h is not None and ct_equal(e[0], h):
                found = e
        if found is not None:
            self.fails = 0
            self.lockouts = 0
            self.locked_until = 0
            self.save(now)
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
        self.save(now)
        return (BAD, self.fails, secs, self.lockouts)
