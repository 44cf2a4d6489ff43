"""Named counters shared by every part of the gateway and shown on /health."""

from __future__ import annotations

from collections import Counter


class Counters:
    """A bounded set of monotonically increasing counters (names are fixed in code, never from input)."""

    def __init__(self) -> None:
        self._c: Counter[str] = Counter()

    def inc(self, name: str, n: int = 1) -> None:
        self._c[name] += n

    def __getitem__(self, name: str) -> int:
        return self._c[name]

    def snapshot(self) -> dict[str, int]:
        return dict(sorted(self._c.items()))
