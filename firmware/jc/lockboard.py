"""RS-485 lock boards (KR-CU16 framing) on a UART: sans-IO codec plus a non-blocking one-request-per-tick poller.

Frame: STX(0x02) ADDR LOCK CMD [DATA...] ETX(0x03) SUM, SUM = low byte of the sum of the bytes before it.
The controller is the only master: one request, then one reply whose length the model table fixes.
Compartment n is lock ((n-1) % 16) + 1 of board base_addr + (n-1) // 16.
This is the one codec: the gateway, which drives boards wired to the station's Pi, imports it too.
"""

from jc.errors import JcError

STX = 0x02
ETX = 0x03
ADDR_MAX = 0x1F
LOCKS_PER_BOARD = 16
REPLY_TIMEOUT_MS = 60
OPEN_REPLY_LEN = 6

# model: (cmd_status, cmd_open, reply_status, reply_open_ok, reply_open_fail, status_data_bytes)
# status data: 2 bytes of lock (door) bits, 4 when the board also reports 16 infrared occupancy sensors
MODELS = {
    "kr-cu16": (0x60, 0x61, 0x60, 0x75, 0x76, 2),
    "kr-cu16-ir": (0x50, 0x51, 0x50, 0x75, 0x76, 4),
}


class BoardError(JcError):
    """A lock-board frame is malformed, fails its checksum, or is not the reply asked for."""


def checksum(data):
    return sum(data) & 0xFF


def frame(addr, lock, cmd, data=b""):
    if not (0 <= addr <= ADDR_MAX and 0 <= lock <= 0xFF and 0 <= cmd <= 0xFF):
        raise BoardError("field out of range")
    body = bytes((STX, addr, lock, cmd)) + bytes(data) + bytes((ETX,))
    return body + bytes((checksum(body),))


def parse(raw):
    """Return (addr, lock, cmd, data) of one complete frame."""
    if len(raw) < 6 or raw[0] != STX or raw[-2] != ETX:
        raise BoardError("bad frame")
    if checksum(raw[:-1]) != raw[-1]:
        raise BoardError("bad checksum")
    return raw[1], raw[2], raw[3], bytes(raw[4:-2])


def where(n, base_addr=0):
    """(board address, lock number) of compartment n."""
    return base_addr + (n - 1) // LOCKS_PER_BOARD, (n - 1) % LOCKS_PER_BOARD + 1


def has_occupancy(m):
    return m[5] >= 4


def status_request(m, addr):
    """Ask board addr for its lock (and sensor) bits."""
    return frame(addr, 0, m[0])


def open_request(m, addr, lock):
    """Pulse one lock (1..16) of board addr."""
    if not 1 <= lock <= LOCKS_PER_BOARD:
        raise BoardError("lock out of range")
    return frame(addr, lock, m[1])


def status_reply_len(m):
    return OPEN_REPLY_LEN + m[5]


def parse_status(m, addr, raw):
    """(door word, occupancy word or None) of board addr's status reply; bit i is lock i+1, 1 = open/seen."""
    a, _, cmd, data = parse(raw)
    if a != addr or cmd != m[2] or len(data) != m[5]:
        raise BoardError("not a status reply")
    return data[0] | data[1] << 8, (data[2] | data[3] << 8) if m[5] >= 4 else None


def parse_open(m, addr, lock, raw):
    """True when board addr reports lock pulsed, False when it reports the lock failed."""
    a, lk, cmd, _ = parse(raw)
    if a != addr or lk != lock or cmd not in (m[3], m[4]):
        raise BoardError("not an open reply")
    return cmd == m[3]


def status_reply(m, addr, doors, occ=0):
    """The reply a board gives to a status request (door and occupancy words): for boards emulated in tests."""
    data = bytes((doors & 0xFF, doors >> 8 & 0xFF))
    if m[5] >= 4:
        data += bytes((occ & 0xFF, occ >> 8 & 0xFF))
    return frame(addr, 0, m[2], data)


class LockBus:
    """Drives the boards through a UART-like port (write, read, any) without ever waiting on it.

    Each poll() either handles the reply in flight or sends one request: a queued open first, else a
    status request to the next board. Door (and occupancy) bits come from the status replies.
    """

    def __init__(self, port, ns, model="kr-cu16", base_addr=0, clock_ms=None, de=None):
        if model not in MODELS:
            raise BoardError("unknown lock-board model " + str(model))
        self.port = port
        self.m = MODELS[model]
        self.base = base_addr
        self.ms = clock_ms
        self.de = de  # driver-enable pin (value(1) while sending), None when the transceiver switches itself
        self.boards = sorted(set(where(n, base_addr)[0] for n in ns))
        self.doors = {}  # addr -> 16-bit word, 1 = open
        self.occ = {}  # addr -> 16-bit word, 1 = parcel seen (IR models)
        self.opens = []  # queued (addr, lock)
        self.pending = None  # (kind, addr, lock, reply_len, sent_ms)
        self.next_board = 0
        self.buf = b""
        self.timeouts = 0
        self.bad_frames = 0
        self.open_fails = 0

    def open(self, n):
        self.opens.append(where(n, self.base))

    def door(self, n):
        a, lock = where(n, self.base)
        return bool(self.doors.get(a, 0) >> (lock - 1) & 1)

    def occupied(self, n):
        a, lock = where(n, self.base)
        if not has_occupancy(self.m):
            return None
        return bool(self.occ.get(a, 0) >> (lock - 1) & 1)

    def _send(self, raw):
        if self.de is not None:
            self.de.value(1)
        self.port.write(raw)
        if self.de is not None:
            flush = getattr(self.port, "flush", None)
            if flush:
                flush()  # the last stop bit must leave before the driver is released
            self.de.value(0)

    def poll(self):
        now = self.ms()
        if self.pending is not None:
            kind, addr, lock, need, t0 = self.pending
            if self.port.any():
                self.buf += self.port.read(self.port.any())
            i = self.buf.find(bytes((STX,)))
            if i > 0:
                self.buf = self.buf[i:]
            if len(self.buf) >= need:
                raw, self.buf = self.buf[:need], self.buf[need:]
                self.pending = None
                self._reply(kind, addr, lock, raw)
            elif now - t0 > REPLY_TIMEOUT_MS:
                self.timeouts += 1
                self.pending = None
                self.buf = b""
            else:
                return
        if self.opens:
            addr, lock = self.opens.pop(0)
            self._send(open_request(self.m, addr, lock))
            self.pending = ("open", addr, lock, OPEN_REPLY_LEN, now)
        elif self.boards:
            addr = self.boards[self.next_board % len(self.boards)]
            self.next_board += 1
            self._send(status_request(self.m, addr))
            self.pending = ("status", addr, 0, status_reply_len(self.m), now)

    def _reply(self, kind, addr, lock, raw):
        try:
            if kind == "status":
                self.doors[addr], occ = parse_status(self.m, addr, raw)
                if occ is not None:
                    self.occ[addr] = occ
            elif not parse_open(self.m, addr, lock, raw):
                self.open_fails += 1
        except BoardError:
            self.bad_frames += 1
