"""Sans-IO codec for KR-CU16-style RS-485 lock boards: framing, checksum and the per-model command table.

Every frame is `STX ADDR LOCK CMD [DATA...] ETX SUM`, SUM being the low byte of the sum of all bytes
before it. The host is the only master on the bus: it sends one request and reads one reply whose
length the model table fixes, so replies need no length byte.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import GatewayError

STX = 0x02
ETX = 0x03
HEADER = 4  # STX ADDR LOCK CMD
TRAILER = 2  # ETX SUM
LOCKS_PER_BOARD = 16
ADDR_MAX = 0x1F


class BoardProtocolError(GatewayError):
    """A lock-board frame is malformed, has a bad checksum or is not the reply that was asked for."""


@dataclass(frozen=True)
class BoardModel:
    """Command table of one lock-board model (codes differ between models and firmware versions).

    status_data: data bytes in a status reply: two for the 16 lock (door) bits, four when the board
    also reports its 16 occupancy (infrared) sensors.
    """

    name: str
    cmd_status: int
    cmd_open: int
    reply_status: int
    reply_open_ok: int
    reply_open_fail: int
    status_data: int = 2
    locks: int = LOCKS_PER_BOARD
    door_open_bit: int = 1  # value of a lock bit when the door is open

    @property
    def has_occupancy(self) -> bool:
        return self.status_data >= 4


MODELS: dict[str, BoardModel] = {
    # 0x60 status / 0x61 open with 0x75 for success, as in one public Kerong CU driver
    "kr-cu16": BoardModel("kr-cu16", cmd_status=0x60, cmd_open=0x61, reply_status=0x60,
                          reply_open_ok=0x75, reply_open_fail=0x76),
    # the same board family with the older 0x50/0x51 firmware, with infrared occupancy sensors fitted
    "kr-cu16-ir": BoardModel("kr-cu16-ir", cmd_status=0x50, cmd_open=0x51, reply_status=0x50,
                             reply_open_ok=0x75, reply_open_fail=0x76, status_data=4),
}


def checksum(data: bytes) -> int:
    """Low byte of the sum of the bytes."""
    return sum(data) & 0xFF


def frame(addr: int, lock: int, cmd: int, data: bytes = b"") -> bytes:
    """Build one frame; lock is 0 for the whole board, 1..16 for one lock."""
    if not 0 <= addr <= ADDR_MAX:
        raise BoardProtocolError(f"board address {addr} out of range 0..{ADDR_MAX}")
    if not 0 <= lock <= 0xFF or not 0 <= cmd <= 0xFF:
        raise BoardProtocolError("lock and command must fit in one byte")
    body = bytes((STX, addr, lock, cmd)) + data + bytes((ETX,))
    return body + bytes((checksum(body),))


def status_request(model: BoardModel, addr: int) -> bytes:
    """Ask a board for the state of all its locks (and sensors)."""
    return frame(addr, 0, model.cmd_status)


def open_request(model: BoardModel, addr: int, lock: int) -> bytes:
    """Pulse one lock (1..16)."""
    if not 1 <= lock <= model.locks:
        raise BoardProtocolError(f"lock {lock} out of range 1..{model.locks}")
    return frame(addr, lock, model.cmd_open)


def status_reply_len(model: BoardModel) -> int:
    return HEADER + model.status_data + TRAILER


OPEN_REPLY_LEN = HEADER + TRAILER


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    addr: int
    lock: int
    cmd: int
    data: bytes


def parse(raw: bytes) -> Frame:
    """Check one complete frame (STX, ETX, checksum) and split it."""
    if len(raw) < HEADER + TRAILER:
        raise BoardProtocolError(f"short frame: {raw.hex(' ')}")
    if raw[0] != STX or raw[-2] != ETX:
        raise BoardProtocolError(f"bad frame delimiters: {raw.hex(' ')}")
    if checksum(raw[:-1]) != raw[-1]:
        raise BoardProtocolError(f"bad checksum: {raw.hex(' ')}")
    return Frame(raw[1], raw[2], raw[3], bytes(raw[HEADER:-TRAILER]))


def _bits(lo: int, hi: int, n: int) -> list[bool]:
    word = lo | (hi << 8)
    return [bool(word >> i & 1) for i in range(n)]


@dataclass(frozen=True)
class BoardStatus:
    """Door (and occupancy) of each lock of one board; index 0 is lock 1."""

    doors_open: tuple[bool, ...]
    occupied: tuple[bool, ...] | None


def parse_status(model: BoardModel, addr: int, raw: bytes) -> BoardStatus:
    """Decode a status reply from board `addr`."""
    f = parse(raw)
    if f.addr != addr or f.cmd != model.reply_status or len(f.data) != model.status_data:
        raise BoardProtocolError(f"not a status reply of board {addr}: {raw.hex(' ')}")
    doors = _bits(f.data[0], f.data[1], model.locks)
    if model.door_open_bit == 0:
        doors = [not d for d in doors]
    occ = tuple(_bits(f.data[2], f.data[3], model.locks)) if model.has_occupancy else None
    return BoardStatus(tuple(doors), occ)


def parse_open(model: BoardModel, addr: int, lock: int, raw: bytes) -> bool:
    """Decode an open reply: True when the board reports the lock pulsed."""
    f = parse(raw)
    if f.addr != addr or f.lock != lock or f.cmd not in (model.reply_open_ok, model.reply_open_fail):
        raise BoardProtocolError(f"not an open reply of board {addr} lock {lock}: {raw.hex(' ')}")
    return f.cmd == model.reply_open_ok


def encode_status_reply(model: BoardModel, addr: int, doors_open: list[bool], occupied: list[bool] | None) -> bytes:
    """The reply a board gives to a status request (used by the simulated board)."""
    def word(bits: list[bool]) -> bytes:
        w = sum(1 << i for i, b in enumerate(bits) if b)
        return bytes((w & 0xFF, w >> 8 & 0xFF))
    doors = doors_open if model.door_open_bit else [not d for d in doors_open]
    data = word(doors)
    if model.has_occupancy:
        data += word(occupied or [False] * model.locks)
    return frame(addr, 0, model.reply_status, data)


class FrameSplitter:
    """Splits a byte stream into frames of known lengths, skipping noise before an STX."""

    def __init__(self, max_buffer: int = 4096) -> None:
        self._buf = bytearray()
        self.max_buffer = max_buffer
        self.skipped = 0

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > self.max_buffer:
            drop = len(self._buf) - self.max_buffer
            del self._buf[:drop]
            self.skipped += drop

    def take(self, length: int) -> bytes | None:
        """The next frame of `length` bytes starting at an STX, or None until enough bytes came."""
        while self._buf and self._buf[0] != STX:
            del self._buf[0]
            self.skipped += 1
        if len(self._buf) < length:
            return None
        out = bytes(self._buf[:length])
        del self._buf[:length]
        return out

    def take_request(self) -> bytes | None:
        """The next request frame (a board sees only fixed-size requests)."""
        return self.take(HEADER + TRAILER)
