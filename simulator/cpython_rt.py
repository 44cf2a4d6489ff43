"""CPython runtime for the firmware: the few MicroPython APIs it uses, so the same files run at scale.

`python -m simulator.cpython_rt spec.json` runs a controller host (simulator/fw_host.py) under CPython.
The shims are additive: they add MicroPython names next to CPython's own and change nothing CPython has.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import types
from pathlib import Path

FIRMWARE = Path(__file__).resolve().parent.parent / "firmware"
_T0 = time.monotonic_ns()


def _ticks_ms() -> int:
    return (time.monotonic_ns() - _T0) // 1_000_000


def _ticks_diff(a: int, b: int) -> int:
    return a - b


def _ticks_add(a: int, b: int) -> int:
    return a + b


def _sleep_ms(ms: int) -> None:
    time.sleep(ms / 1000)


async def _async_sleep_ms(ms: int) -> None:
    await asyncio.sleep(ms / 1000)


async def _wait_for_ms(aw, ms: int):
    return await asyncio.wait_for(aw, ms / 1000)


async def _readinto(self: asyncio.StreamReader, buf) -> int:
    data = await self.read(len(buf))
    buf[: len(data)] = data
    return len(data)


def install() -> None:
    """Add the MicroPython names the firmware needs and put the firmware on sys.path."""
    if getattr(install, "done", False):
        return
    # setattr: these names are MicroPython's, which CPython's modules (and their type stubs) do not have
    mp = types.ModuleType("micropython")
    setattr(mp, "const", lambda x: x)  # noqa: B010
    sys.modules.setdefault("micropython", mp)
    for module, name, fn in ((time, "ticks_ms", _ticks_ms), (time, "ticks_diff", _ticks_diff),
                             (time, "ticks_add", _ticks_add), (time, "sleep_ms", _sleep_ms),
                             (asyncio, "sleep_ms", _async_sleep_ms), (asyncio, "wait_for_ms", _wait_for_ms),
                             (asyncio.StreamReader, "readinto", _readinto)):
        setattr(module, name, fn)
    if not hasattr(gc, "mem_free"):
        setattr(gc, "mem_free", lambda: 96_000)  # noqa: B010  # an ESP32's free heap after boot, for telemetry only
    if str(FIRMWARE) not in sys.path:
        sys.path.insert(0, str(FIRMWARE))
    setattr(install, "done", True)  # noqa: B010


def main(argv: list[str] | None = None) -> None:
    """Run one controller host from its spec file."""
    install()
    setattr(gc, "collect", lambda *a: 0)  # noqa: B010  # the firmware collects before every telemetry; CPython's full pass is costly
    from simulator import fw_host

    fw_host.main((argv or sys.argv[1:])[0])


if __name__ == "__main__":
    main()
