"""Process-wide counters shown on /api/v1/health (thread-safe: handlers run in a thread pool)."""

from __future__ import annotations

import threading
from collections import Counter


class Counters:
    """Named monotonically increasing counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Counter[str] = Counter()

    def inc(self, name: str, n: int = 1) -> None:
        """Add `n` to counter `name`."""
        with self._lock:
            self._values[name] += n

    def get(self, name: str) -> int:
        """Current value of `name` (0 if never counted)."""
        with self._lock:
            return self._values[name]

    def snapshot(self) -> dict[str, int]:
        """A copy of all counters."""
        with self._lock:
            return dict(sorted(self._values.items()))
