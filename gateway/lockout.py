"""Doubling lockouts and sliding-window rate limits, per key (a user, an address): sans-IO."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Entry:
    fails: int = 0
    level: int = 0
    until: float = 0.0
    last: float = 0.0


class Lockout:
    """`fails` failures of one key lock that key for `first_s`, then twice as long each time, up to `max_s`.

    A key is forgiven (count and level) after `forget_s` without a failure, or by its own success; no key's
    success touches another's. The table holds at most `max_keys` keys: when full, the entry that was quiet
    longest and is not locked goes first, so a flood of addresses cannot free a locked key.
    """

    def __init__(self, *, fails: int, first_s: float, max_s: float, forget_s: float, max_keys: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fails, self.first_s, self.max_s, self.forget_s = fails, first_s, max_s, forget_s
        self.max_keys = max_keys
        self.clock = clock
        self._e: dict[str, _Entry] = {}

    def wait_s(self, key: str) -> int:
        """Whole seconds until `key` may try again; 0 when it may now."""
        e = self._e.get(key)
        left = 0.0 if e is None else e.until - self.clock()
        return math.ceil(left) if left > 0 else 0

    def failed(self, key: str) -> int:
        """Count a failure of `key`; returns the lockout it now starts in seconds (0: none yet)."""
        now = self.clock()
        e = self._e.get(key)
        if e is None:
            self._make_room(now)
            e = self._e[key] = _Entry()
        elif now - e.last > self.forget_s and e.until <= now:
            e.fails = e.level = 0
        e.fails += 1
        e.last = now
        if e.fails < self.fails:
            return 0
        secs = min(self.max_s, self.first_s * 2 ** min(e.level, 30))
        e.until, e.fails = now + secs, 0
        e.level += 1
        return int(secs)

    def succeeded(self, key: str) -> None:
        """Forget `key`'s failures (and only `key`'s)."""
        self._e.pop(key, None)

    def _make_room(self, now: float) -> None:
        if len(self._e) < self.max_keys:
            return
        free = [k for k, e in self._e.items() if e.until <= now]
        pool = free or list(self._e)
        del self._e[min(pool, key=lambda k: self._e[k].until if not free else self._e[k].last)]


class RateWindows:
    """At most `n` actions per `window_s` for each (n, window_s) pair, counted per key (sliding windows)."""

    def __init__(self, limits: tuple[tuple[int, float], ...], *, max_keys: int = 1024,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.longest = max(w for _, w in limits)
        self.max_keys = max_keys
        self.clock = clock
        self._hits: dict[str, list[float]] = {}

    def take(self, key: str) -> int:
        """Count one action of `key` if every window allows it: 0; else the seconds until one would."""
        now = self.clock()
        hits = [t for t in self._hits.get(key, ()) if t > now - self.longest]
        for n, window in self.limits:
            inside = [t for t in hits if t > now - window]
            if len(inside) >= n:
                self._hits[key] = hits
                return math.ceil(inside[0] + window - now) or 1
        if key not in self._hits and len(self._hits) >= self.max_keys:
            del self._hits[min(self._hits, key=lambda k: max(self._hits[k], default=0.0))]
        self._hits[key] = hits + [now]
        return 0
