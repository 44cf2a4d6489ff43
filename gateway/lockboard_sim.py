"""A simulated KR-CU16-style lock board on the far end of a pty pair, speaking the same framing.

Used by tests and the demo in place of a real board; the gateway opens the pty's slave side with
pyserial exactly as it opens /dev/ttyUSB0.
"""

from __future__ import annotations

import os
import select
import threading
import tty

from .lockboard_codec import BoardProtocolError, FrameSplitter, MODELS, BoardModel, encode_status_reply, frame, parse


class SimBoard:
    """State of one simulated board: doors, occupancy sensors, jammed and silent locks."""

    def __init__(self, model: BoardModel, addr: int = 0) -> None:
        self.model = model
        self.addr = addr
        self.doors = [False] * model.locks
        self.occupied = [False] * model.locks
        self.jammed: set[int] = set()
        self.silent = False
        self.opens: list[int] = []
        self.requests = 0

    def reply(self, raw: bytes) -> bytes | None:
        """The board's answer to one request frame, or None (bad frame, other address, or silent)."""
        f = parse(raw)
        if f.addr != self.addr or self.silent:
            return None
        self.requests += 1
        m = self.model
        if f.cmd == m.cmd_status:
            return encode_status_reply(m, self.addr, self.doors, self.occupied if m.has_occupancy else None)
        if f.cmd == m.cmd_open and 1 <= f.lock <= m.locks:
            if f.lock in self.jammed:
                return frame(self.addr, f.lock, m.reply_open_fail)
            self.opens.append(f.lock)
            self.doors[f.lock - 1] = True  # the door springs open when its lock is pulsed
            return frame(self.addr, f.lock, m.reply_open_ok)
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
    def single(cls, model: str = "kr-cu16", addr: int = 0) -> "SimBus":
        return cls([SimBoard(MODELS[model], addr)])

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
                    addr = req[1]
                    board = self.boards.get(addr)
                    out = board.reply(req) if board else None
                except BoardProtocolError:
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
