"""Barcode scanner in serial (CDC-ACM) mode: one waybill per line, read by pyserial on its own thread."""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import serial

from .counters import Counters
from .errors import GatewayError

log = logging.getLogger("jincun.gateway.scanner")

LINE_MAX = 64
KEEP = 20
WAYBILL_RE = re.compile(r"^[A-Za-z0-9-]{6,40}$")


class ScannerError(GatewayError):
    """The scanner's serial port cannot be opened or read."""


def parse_line(raw: bytes) -> str | None:
    """A waybill from one scanned line (CR/LF stripped), or None if it is not one."""
    text = raw.decode("ascii", errors="replace").strip().strip("\x00")
    return text if WAYBILL_RE.match(text) else None


class Scanner:
    """Keeps the last scans with a running number, so the terminal page can ask for the ones it has not seen."""

    def __init__(self, url: str, counters: Counters, *, baud: int = 9600) -> None:
        self.url = url
        self.baud = baud
        self.counters = counters
        self.scans: deque[tuple[int, str]] = deque(maxlen=KEEP)
        self.n = 0
        self.changed = asyncio.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scanner")
        self._port: serial.SerialBase | None = None

    def _open_sync(self) -> None:
        if self._port is None:
            try:
                self._port = serial.serial_for_url(self.url, baudrate=self.baud, timeout=0.5)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise ScannerError(f"cannot open scanner {self.url}: {exc}") from None

    def _read_sync(self) -> bytes:
        self._open_sync()
        assert self._port is not None
        try:
            return self._port.read_until(b"\n", LINE_MAX + 2)
        except (serial.SerialException, OSError) as exc:
            self._close_sync()
            raise ScannerError(f"scanner {self.url}: {exc}") from None

    def _close_sync(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError) as exc:
                log.warning("closing scanner: %s", exc)
            self._port = None

    def add(self, waybill: str) -> None:
        self.n += 1
        self.scans.append((self.n, waybill))
        self.counters.inc("scans")
        self.changed.set()

    async def run(self) -> None:
        """Read lines forever; a line that is not a waybill is counted and dropped."""
        loop = asyncio.get_running_loop()
        pending = b""
        while True:
            chunk = await loop.run_in_executor(self._pool, self._read_sync)
            if not chunk:
                continue
            pending += chunk
            if not pending.endswith((b"\n", b"\r")) and len(pending) <= LINE_MAX:
                continue  # the rest of the line is on its way
            line, pending = pending, b""
            waybill = parse_line(line)
            if waybill is None:
                self.counters.inc("scans_rejected")
                log.warning("scanner sent something that is not a waybill: %.40r", line)
                continue
            self.add(waybill)

    def since(self, after: int) -> list[dict]:
        return [{"n": n, "waybill": w} for n, w in self.scans if n > after]

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close_sync)
        self._pool.shutdown(wait=False, cancel_futures=True)
