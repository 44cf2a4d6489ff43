"""RS-485 lock boards: KR-CU16 frames and the non-blocking poller against a board emulated on a UART port."""

from check import eq, true, raises
from jc.lockboard import LockBus, BoardError, frame, parse, checksum, where


class BoardPort:
    """The far end of the UART: KR-CU16 boards answering by the framing rules (no UART exists here)."""

    def __init__(self, addrs, ir=False, status_cmd=0x60, open_cmd=0x61):
        self.doors = {a: 0 for a in addrs}
        self.occ = {a: 0 for a in addrs}
        self.ir = ir
        self.sc, self.oc = status_cmd, open_cmd
        self.out = b""
        self.jammed = set()
        self.silent = False
        self.noise = b""
        self.opens = []
        self.sent = []

    def write(self, raw):
        self.sent.append(bytes(raw))
        a, lock, cmd, _ = parse(raw)
        if self.silent or a not in self.doors:
            return
        if cmd == self.sc:
            d = self.doors[a]
            data = bytes((d & 0xFF, d >> 8))
            if self.ir:
                data += bytes((self.occ[a] & 0xFF, self.occ[a] >> 8))
            self.out += self.noise + frame(a, 0, self.sc, data)
        elif cmd == self.oc:
            if (a, lock) in self.jammed:
                self.out += frame(a, lock, 0x76)
            else:
                self.opens.append((a, lock))
                self.doors[a] |= 1 << (lock - 1)
                self.out += frame(a, lock, 0x75)

    def any(self):
        return len(self.out)

    def read(self, n):
        r, self.out = self.out[:n], self.out[n:]
        return r


class T:
    def __init__(self):
        self.t = 0

    def ms(self):
        return self.t


def test_frame_layout_and_checksum():
    f = frame(1, 5, 0x61)
    eq(f, bytes((0x02, 0x01, 0x05, 0x61, 0x03, (0x02 + 1 + 5 + 0x61 + 3) & 0xFF)))
    eq(parse(f), (1, 5, 0x61, b""))
    eq(checksum(b"\xff\xff"), 0xFE)
    bad = bytearray(f)
    bad[-1] ^= 1
    raises(BoardError, parse, bytes(bad))
    raises(BoardError, frame, 0x20, 1, 0x61)


def test_compartments_map_to_boards():
    eq(where(1), (0, 1))
    eq(where(16), (0, 16))
    eq(where(17), (1, 1))
    eq(where(24, 2), (3, 8))


def test_24_compartments_on_two_boards():
    port, clk = BoardPort((0, 1)), T()
    bus = LockBus(port, list(range(1, 25)), clock_ms=clk.ms)
    for _ in range(4):
        bus.poll()
        clk.t += 10
    eq(bus.door(20), False)
    bus.open(20)
    for _ in range(6):
        bus.poll()
        clk.t += 10
    eq(port.opens, [(1, 4)])
    true(bus.door(20))
    eq(bus.door(4), False)
    eq(bus.timeouts + bus.bad_frames, 0)


def test_silent_board_times_out_without_blocking():
    port, clk = BoardPort((0,)), T()
    bus = LockBus(port, [1, 2], clock_ms=clk.ms)
    port.silent = True
    for _ in range(10):
        bus.poll()  # returns at once every time
        clk.t += 40
    true(bus.timeouts >= 3, bus.timeouts)
    port.silent = False
    port.doors[0] = 0b10
    for _ in range(4):
        bus.poll()
        clk.t += 40
    true(bus.door(2))


def test_noise_and_jam_are_counted():
    port, clk = BoardPort((0,), ir=True, status_cmd=0x50, open_cmd=0x51), T()
    bus = LockBus(port, [1, 2, 3], model="kr-cu16-ir", clock_ms=clk.ms)
    port.noise = b"\x55\xaa"
    port.occ[0] = 0b100
    port.jammed.add((0, 1))
    bus.open(1)
    for _ in range(6):
        bus.poll()
        clk.t += 10
    eq(bus.open_fails, 1)
    eq(bus.occupied(3), True)
    eq(bus.occupied(1), False)
    eq(bus.door(1), False)
    raises(BoardError, LockBus, port, [1], "no-such-model")
