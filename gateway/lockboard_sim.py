"""A simulated KR-CU16-style lock board on the far end of a pty pair, speaking the firmware's framing (jc.lockboard).

Used by tests and the demo in place of a real board; the gateway opens the pty's slave side with
pyserial exactly as it opens /dev/ttyUSB0.
"""

from __future__ import annotations

import os
import select
import threading
import tty

from jc.lockboard import LOCKS_PER_BOARD, MODELS, OPEN_REPLY_LEN, STX, BoardError, frame, has_occupancy, parse
from jc.lockboard import status_reply


def _word(bits: list[bool]) -> int:
    return sum(1 << i for i, b in enumerate(bits) if b)


class FrameSplitter:
    """Splits the byte stream a board hears into request frames, skipping noise before an STX."""

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

    def take_request(self) -> bytes | None:
        """The next request frame (a board hears only fixed-size requests), or None until enough bytes came."""
        while self._buf and self._buf[0] != STX:
            del self._buf[0]
            self.skipped += 1
        if len(self._buf) < OPEN_REPLY_LEN:
            return None
        out = bytes(self._buf[:OPEN_REPLY_LEN])
        del self._buf[:OPEN_REPLY_LEN]
        return out


class SimBoard:
    """State of one simulated board: doors, occupancy sensors, jammed and silent locks."""

    def __init__(self, model: str, addr: int = 0) -> None:
        self.model = MODELS[model]
        self.addr = addr
        self.doors = [False] * LOCKS_PER_BOARD
        self.occupied = [False] * LOCKS_PER_BOARD
        self.jammed: set[int] = set()
        self.silent = False
        self.opens: list[int] = []
        self.requests = 0

    def reply(self, raw: bytes) -> bytes | None:
        """The board's answer to one request frame, or None (bad frame, other address, or silent)."""
        addr, lock, cmd, _ = parse(raw)
        if addr != self.addr or self.silent:
            return None
        self.requests += 1
        m = self.model
        if cmd == m[0]:
            return status_reply(m, self.addr, _word(self.doors), _word(self.occupied) if has_occupancy(m) else 0)
        if cmd == m[1] and 1 <= lock <= LOCKS_PER_BOARD:
            if lock in self.jammed:
                return frame(self.addr, lock, m[4])
            self.opens.append(lock)
            self.doors[lock - 1] = True  # the door springs open when its lock is pulsed
            return frame(self.addr, lock, m[3])
        return None


class SimBus:
    """Boards sharing one bus, answered from a thread reading the pty master."""

    def __init__(self, boards: list[SimBoard]) -> None:
        self.boards = {b.addr: b for b in boards}
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave  # kept open so the pty stays up while the gateway reconnects
        self.bad_frames = 0
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._serve, name="sim-rs485", daemon=True)
        self._th.start()

    @classmethod
    def single(cls, model: str = "kr-cu16", addr: int = 0) -> SimBus:
        return cls([SimBoard(model, addr)])

    @property
    def board(self) -> SimBoard:
        return next(iter(self.boards.values()))

    def _serve(self) -> None:
        split = FrameSplitter()
        while not self._stop.is_set():
            r, _, _ = select.select([self.master], [], [], 0.05)
            if not r:
                continue
            try:
                data = os.read(self.master, 256)
            except OSError:
                return
            split.feed(data)
            while (req := split.take_request()) is not None:
                try:
                    board = self.boards.get(req[1])
                    out = board.reply(req) if board else None
                except BoardError:
                    self.bad_frames += 1  # a real board ignores a bad frame too
                    continue
                if out:
                    os.write(self.master, out)

    def close_door(self, lock: int, occupied: bool | None = None, addr: int | None = None) -> None:
        b = self.boards[addr] if addr is not None else self.board
        if occupied is not None:
            b.occupied[lock - 1] = occupied
        b.doors[lock - 1] = False

    def open_door(self, lock: int, addr: int | None = None) -> None:
        b = self.boards[addr] if addr is not None else self.board
        b.doors[lock - 1] = True

    def close(self) -> None:
        self._stop.set()
        self._th.join(2)
        for fd in (self.master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
