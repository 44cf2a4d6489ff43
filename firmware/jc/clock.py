"""Monotonic milliseconds since boot that never wrap, plus the wall clock set by the gateway."""

import time


class Clock:
    """Extends time.ticks_ms (which wraps) into an ever-growing count; call ms() at least once a day."""

    def __init__(self):
        self._last = time.ticks_ms()
        self._mono = 0
        self._wall_base = 0  # Unix seconds at _wall_mono, 0 while unset
        self._wall_mono = 0

    def ms(self):
        now = time.ticks_ms()
        self._mono += time.ticks_diff(now, self._last)
        self._last = now
        return self._mono

    def set_wall(self, ts):
        self._wall_base = ts
        self._wall_mono = self.ms()

    def wall(self):
        """Unix seconds, or 0 while the clock has not been set (protocol section 3)."""
        if not self._wall_base:
            return 0
        return self._wall_base + (self.ms() - self._wall_mono) // 1000
