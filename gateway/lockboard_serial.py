"""Serial (RS-485) transport for lock boards: pyserial on its own thread, one request on the bus at a time."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import serial

from .errors import GatewayError

log = logging.getLogger("jincun.gateway.lockboard")

BAUD = 19200


class BoardLinkError(GatewayError):
    """The serial port cannot be opened, or a board did not answer in time."""


class SerialBus:
    """One RS-485 bus: blocking pyserial calls run on a dedicated thread, never on the event loop."""

    def __init__(self, url: str, *, baud: int = BAUD, timeout_s: float = 0.3) -> None:
        self.url = url
        self.baud = baud
        self.timeout_s = timeout_s
        self._port: serial.SerialBase | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rs485")
        self._lock = asyncio.Lock()

    async def _call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _open_sync(self) -> None:
        if self._port is not None:
            return
        try:
            self._port = serial.serial_for_url(self.url, baudrate=self.baud, bytesize=8, parity="N", stopbits=1,
                                               timeout=self.timeout_s, write_timeout=self.timeout_s)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise BoardLinkError(f"cannot open {self.url}: {exc}") from None

    def _exchange_sync(self, request: bytes, reply_len: int) -> bytes:
        self._open_sync()
        port = self._port
        assert port is not None
        try:
            port.reset_input_buffer()  # a late reply to an earlier request must not pass as this one's
            port.write(request)
            port.flush()
            out = bytearray()
            deadline = time.monotonic() + self.timeout_s
            while len(out) < reply_len and time.monotonic() < deadline:
                out += port.read(reply_len - len(out))
        except (serial.SerialException, OSError) as exc:
            self._close_sync()
            raise BoardLinkError(f"{self.url}: {exc}") from None
        if len(out) < reply_len:
            raise BoardLinkError(f"{self.url}: no reply ({len(out)} of {reply_len} bytes) to {request.hex(' ')}")
        return bytes(out)

    async def exchange(self, request: bytes, reply_len: int) -> bytes:
        """Send one request and read its fixed-length reply; BoardLinkError on timeout or a port error."""
        async with self._lock:
            return await self._call(self._exchange_sync, request, reply_len)

    def _close_sync(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError) as exc:
                log.warning("closing %s: %s", self.url, exc)
            self._port = None

    async def close(self) -> None:
        await self._call(self._close_sync)
        self._pool.shutdown(wait=True)
