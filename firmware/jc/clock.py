"""Monotonic milliseconds since boot that never wrap, the wall clock set by the gateway, and timed sleeps.

Everything in the firmware that waits or reads the time goes through one Clock instance, so a simulated
clock (VirtualClock, or a simulator's own) can replace it per controller.
"""

import asyncio
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

    async def sleep_ms(self, ms):
        await asyncio.sleep_ms(ms)

    def set_wall(self, ts):
        self._wall_base = ts
        self._wall_mono = self.ms()

    def wall_known(self):
        return bool(self._wall_base)

    def wall(self):
        """Unix seconds, or 0 while the clock has not been set (protocol section 3)."""
        if not self._wall_base:
            return 0
        return self._wall_base + (self.ms() - self._wall_mono) // 1000


class VirtualClock(Clock):
    """Simulated time: while warping, sleeps end at once and the clock jumps to the earliest wake-up.

    run() must be running as a task while warping. end_warp() hands over to real time, continuing from
    the simulated time reached, so a test can spend an hour offline in a second and then talk to a real
    broker in real time.
    """

    def __init__(self):
        super().__init__()
        self.now = 0
        self.warping = True
        self._sleepers = []  # [wake_ms, event]
        self._real_base = 0

    def ms(self):
        if self.warping:
            return self.now
        return self.now + time.ticks_diff(time.ticks_ms(), self._real_base)

    async def sleep_ms(self, ms):
        if not self.warping:
            await asyncio.sleep_ms(ms)
            return
        ev = asyncio.Event()
        self._sleepers.append([self.now + max(0, ms), ev])
        await ev.wait()

    def end_warp(self):
        self.warping = False
        self._real_base = time.ticks_ms()
        for _, ev in self._sleepers:
            ev.set()
        self._sleepers = []

    async def run(self, until_ms=None):
        """Advance simulated time whenever every sleeper is waiting; stop warping at until_ms."""
        while self.warping:
            for _ in range(4):
                await asyncio.sleep_ms(0)  # let every task that is ready run before time moves
            if not self._sleepers:
                continue
            self._sleepers.sort(key=lambda s: s[0])
            wake = self._sleepers[0][0]
            if until_ms is not None and wake >= until_ms:
                self.now = until_ms
                self.end_warp()
                return
            self.now = wake
            while self._sleepers and self._sleepers[0][0] <= wake:
                self._sleepers.pop(0)[1].set()
