"""A plain RS-485 lock board run as a locker: polled door states become the same events as an ESP32 locker's.

The board has no brain, so the gateway plays its controller with the firmware's own modules: the compartment
state machine (jc.compartment.Compartment), the code vault with its keypad lockout (jc.vault.Vault) and the
framing codec (jc.lockboard). Only the I/O is the gateway's: polls over the serial bus stand in for the
firmware's hardware tick, the vault lives in a file beside the station database, and events are numbered
under the board's own boot id and fed through the locker link into the same outbox path. Events stay in
`unacked` until the link's eack, and are fed again if they were not stored (outbox full).
"""

from __future__ import annotations

import asyncio
import binascii
import logging
import secrets
import sqlite3
import time
from typing import TYPE_CHECKING

from jc import const as JK
from jc.compartment import PULSE_MS, Compartment
from jc.digest import ct_equal
from jc.lockboard import MODELS, OPEN_REPLY_LEN, BoardError, open_request, parse_open, parse_status
from jc.lockboard import status_reply_len, status_request
from jc.vault import BAD, LOCKED, OK, Vault

from . import const as C
from .counters import Counters
from .errors import GatewayError
from .lockboard_serial import BoardLinkError, SerialBus

if TYPE_CHECKING:
    from .config import BoardConfig
    from .lockerlink import LockerLink
    from .stationdb import Outbox

log = logging.getLogger("jincun.gateway.boardlocker")

UNACKED_MAX = 10_000
OFFLINE_AFTER = 3  # failed polls in a row
OPEN_TRIES = 3  # an open request whose reply is lost is sent again (the coil pulses once more, harmlessly)
RESEND_S = 5.0
FW = "board"


class KeypadLocked(GatewayError):
    """Too many wrong codes: code entry is locked for `secs` more seconds."""

    def __init__(self, secs: int) -> None:
        super().__init__(f"locked for {secs} s after repeated wrong codes")
        self.secs = secs


class BoardVault(Vault):
    """The firmware's code vault and keypad lockout, in a file beside the station database; false when empty."""

    def __len__(self) -> int:
        return self.count()

    def holds(self, code: str, now: int) -> bool:
        """Whether a live pickup code of this board is `code`, counting nothing (no wrong try, no lockout)."""
        if len(code) != JK.CODE_LEN:
            return False
        h = self.mac.digest(JK.CODE_MSG_PREFIX + code.encode())
        found = False
        for e in self.entries:  # every entry, as check() does, so the time taken says nothing
            if ct_equal(e[0], h) and e[3] is None and e[2] > now:
                found = True
        return found

    def right_at_station(self, now: int) -> None:
        """The code typed at the station was right, here or on another board: the vault's own right-code rule
        (Vault.right), persisted."""
        self.right(now)
        self.commit(now)


def sensed_occupancy(comp: Compartment) -> bool:
    """What an occupancy sensor would read, for a board without sensors.

    The courier's and the villager's own actions are the evidence: a compartment opened for a deposit
    holds the parcel once its door closes, one opened for a pickup is empty, and a disabled or faulty
    one holds a parcel when it has a ref.
    """
    st = comp.st
    return st in (JK.ST_DEPOSIT, JK.ST_OCCUPIED) or (st in (JK.ST_FAULT, JK.ST_DISABLED) and comp.ref is not None)


class BoardLocker:
    """One lock board (16 locks) acting as locker `cfg.id` of this station."""

    def __init__(self, cfg: BoardConfig, link: LockerLink, outbox: Outbox, counters: Counters,
                 bus: SerialBus | None = None) -> None:
        self.cfg = cfg
        self.id = cfg.id
        self.model = MODELS[cfg.model]
        self.link = link
        self.outbox = outbox
        self.counters = counters
        self.bus = bus or SerialBus(cfg.port, baud=cfg.baud, timeout_s=cfg.timeout_s)
        self.boot = secrets.token_hex(4)
        self.seq = 0
        self.started = time.monotonic()
        self.comps = {c.n: Compartment(c.n, c.size) for c in cfg.comps}
        self.locks = {c.n: c.lock or c.n for c in cfg.comps}
        path = outbox.path.with_name(f"board-{cfg.id}.vault")
        self.vault = BoardVault(str(path), binascii.unhexlify(cfg.secret), log=self._vault_log)
        self.vault.load(self.ms())  # a small file, read once at start-up: codes and lockout survive a restart
        self._vault_lock = asyncio.Lock()
        self.unacked: dict[int, tuple[float, dict]] = {}
        self.online = False
        self._poll_failures = 0

    @staticmethod
    def _vault_log(*parts) -> None:
        log.warning("board vault: %s", " ".join(str(p) for p in parts))

    def ms(self) -> int:
        """The board's clock in ms (monotonic), as the firmware's ticks_ms."""
        return int((time.monotonic() - self.started) * 1000)

    async def _vault_call(self, fn, *args):
        """Run one vault operation (it may write its file) off the event loop, one at a time."""
        async with self._vault_lock:
            return await asyncio.to_thread(fn, *args)

    # ---- events ----

    async def _emit(self, type_: str, **fields) -> None:
        if self.seq >= C.SEQ_MAX:
            self.boot, self.seq = secrets.token_hex(4), 0
        self.seq += 1
        now = self.ms()
        evt = {"v": 1, "boot": self.boot, "seq": self.seq, "ts": int(time.time()), "mono": now,
               "type": type_, **fields}
        if len(self.unacked) >= UNACKED_MAX:
            self.unacked.pop(min(self.unacked))
            self.counters.inc("board_unacked_dropped")
        self.unacked[self.seq] = (time.monotonic(), evt)
        await self.link.handle_local(self.id, "evt", evt)
        if type_ == JK.T_PICKUP or type_ == JK.T_STATE and fields.get("st") == JK.ST_EMPTY:
            await self._vault_call(self.vault.consume, fields["c"], now)  # as the firmware's App does

    def eack(self, boot: str, seq: int) -> None:
        """The gateway committed every event up to seq: forget them."""
        if boot != self.boot:
            return
        for s in [s for s in self.unacked if s <= seq]:
            del self.unacked[s]

    async def _resend(self) -> None:
        now = time.monotonic()
        for s in sorted(self.unacked):
            at, evt = self.unacked[s]
            if now - at >= RESEND_S:
                self.unacked[s] = (now, evt)
                self.counters.inc("board_resends")
                await self.link.handle_local(self.id, "evt", evt)

    async def birth(self) -> None:
        await self.link.handle_local(self.id, "birth", {
            "v": 1, "boot": self.boot, "fw": FW, "seq": self.seq, "ts": int(time.time()), "mono": self.ms(),
            "comps": [self.comps[n].snapshot() for n in sorted(self.comps)],
            "outbox": len(self.unacked), "vault": self.vault.count()})

    async def _status(self, state: str) -> None:
        body = {"v": 1, "state": state, "boot": self.boot} if state == "online" else {"v": 1, "state": "lost"}
        await self.link.handle_local(self.id, "status", body)

    # ---- persistence of compartment states (refs survive a gateway restart) ----

    async def load(self) -> None:
        rows = await self.outbox.query(lambda conn: conn.execute(
            "SELECT n, st, ref FROM board_comps WHERE locker=?", (self.id,)).fetchall())
        for n, st, ref in rows:
            comp = self.comps.get(n)
            if comp is not None and st in JK.STATES:
                # an opening that was in progress when the gateway stopped is judged by the state machine
                # once the first polls show the door shut, as after a controller's reboot
                comp.st, comp.ref = st, ref

    async def _save(self, comp: Compartment) -> None:
        if not comp.dirty:
            return
        comp.dirty = False

        def save(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO board_comps VALUES (?,?,?,?) ON CONFLICT(locker, n) DO UPDATE SET "
                         "st=excluded.st, ref=excluded.ref", (self.id, comp.n, comp.st, comp.ref))
        await self.outbox.run(save)

    # ---- polling: each good poll is one hardware tick of the firmware's state machines ----

    async def run(self) -> None:
        """Poll the board forever; a board that stops answering goes offline, and comes back with a birth."""
        await self.load()
        while True:
            try:
                raw = await self.bus.exchange(status_request(self.model, self.cfg.addr),
                                              status_reply_len(self.model))
                doors, occ = parse_status(self.model, self.cfg.addr, raw)
            except (BoardLinkError, BoardError) as exc:
                self._poll_failures += 1
                self.counters.inc("board_poll_failures")
                if self.online and self._poll_failures >= OFFLINE_AFTER:
                    self.online = False
                    log.warning("lock board %s stopped answering: %s", self.id, exc)
                    await self._status("lost")
                await asyncio.sleep(self.cfg.poll_s)
                continue
            self._poll_failures = 0
            await self._tick(doors, occ)
            if not self.online and all(c.ready() for c in self.comps.values()):
                # the first birth describes settled sensors, as the firmware's does
                self.online = True
                log.info("lock board %s online (boot %s)", self.id, self.boot)
                await self._status("online")
                await self.birth()
            await self._resend()
            await asyncio.sleep(self.cfg.poll_s)

    async def _tick(self, doors: int, occ: int | None) -> None:
        now = self.ms()
        for n in sorted(self.comps):
            comp, bit = self.comps[n], self.locks[n] - 1
            occupied = bool(occ >> bit & 1) if occ is not None else sensed_occupancy(comp)
            for type_, fields in comp.tick(now, bool(doors >> bit & 1), occupied):
                await self._emit(type_, **fields)
            await self._save(comp)

    # ---- commands (same ops and acks as the firmware, §3.4/§3.5) ----

    async def _pulse(self, comp: Compartment) -> bool:
        """Pulse the compartment's lock; False when the board refused or never answered.

        The state machine's jam check starts with the pulse, as the firmware's lock driver starts it: a
        lock that does not let the door open within the grace gives `alarm lock_jam` and `fault`.
        """
        comp.pulse_started(self.ms(), PULSE_MS)
        lock = self.locks[comp.n]
        for _ in range(OPEN_TRIES):
            try:
                raw = await self.bus.exchange(open_request(self.model, self.cfg.addr, lock), OPEN_REPLY_LEN)
                ok = parse_open(self.model, self.cfg.addr, lock, raw)
                break
            except (BoardLinkError, BoardError) as exc:
                log.warning("lock board %s lock %d: %s", self.id, lock, exc)
        else:
            self.counters.inc("board_open_failures")
            return False
        if not ok:
            self.counters.inc("board_open_refused")
        return ok

    async def _open(self, comp: Compartment, why: str) -> bool:
        """Announce and pulse an opening the state machine has accepted."""
        await self._save(comp)
        await self._emit(JK.T_LOCK, c=comp.n, why=why)
        return await self._pulse(comp)

    async def command(self, op: str, f: dict) -> dict:
        """Execute one locker command; returns the ack body fields {"ok", "err"?}."""
        if not self.online and op not in (JK.OP_TIME, JK.OP_CODE_PUT, JK.OP_CODE_DEL):
            return {"ok": False, "err": JK.ERR_BUSY}
        err = None
        if op == JK.OP_TIME:
            pass  # the board has no clock: events are stamped with the gateway's
        elif op == JK.OP_REBIRTH:
            await self.birth()
        elif op == JK.OP_CODE_PUT:
            if any(n not in self.comps for n in f["cs"]):
                err = JK.ERR_NO_SUCH_COMP
            else:
                err = await self._vault_call(self.vault.put, f["h"], f["cs"], f["exp"], self.ms())
        elif op == JK.OP_CODE_DEL:
            await self._vault_call(self.vault.delete, f["h"], self.ms())
        elif op in (JK.OP_DEPOSIT, JK.OP_OPEN, JK.OP_DISABLE, JK.OP_ENABLE):
            comp = self.comps.get(f["c"]) if "c" in f else None
            if comp is None:
                err = JK.ERR_NO_SUCH_COMP
            elif op in (JK.OP_DISABLE, JK.OP_ENABLE):
                err = comp.disable() if op == JK.OP_DISABLE else comp.enable()
                if err is None:
                    await self._save(comp)
                    await self._emit(JK.T_STATE, c=comp.n, st=comp.st)
            else:
                why = "deposit" if op == JK.OP_DEPOSIT else "remote"
                err = comp.request(why, f.get("ref"))
                if err is None:
                    if op == JK.OP_OPEN:
                        log.info("remote open of %s/%d by %s: %s", self.id, comp.n, f.get("by"), f.get("why"))
                    if not await self._open(comp, why):
                        err = JK.ERR_BUSY
        else:
            err = JK.ERR_UNKNOWN_OP
        return {"ok": True} if err is None else {"ok": False, "err": err}

    # ---- pickup codes typed on the station terminal: the firmware's keypad path (App._code) ----

    async def holds(self, code: str) -> bool:
        """Whether this board's vault opens something for pickup code `code` (nothing is counted)."""
        return bool(self.vault) and await self._vault_call(self.vault.holds, code, self.ms())

    async def right_at_station(self) -> None:
        """The code typed at the station was right, on this board or another: its wrong-code count starts again
        (not during a lockout, which takes no code)."""
        await self._vault_call(self.vault.right_at_station, self.ms())

    def lock_left_s(self) -> int:
        """Seconds left of this board's code lockout (0 when code entry is open)."""
        return int(self.vault.lock_left_s(self.ms()))

    async def try_code(self, code: str) -> list[int]:
        """Open every compartment of a pickup code; [] for a wrong code. KeypadLocked while locked out."""
        r = await self._vault_call(self.vault.try_code, code, self.ms())
        if r[0] == LOCKED:
            self.counters.inc("board_code_locked")
            raise KeypadLocked(r[1])
        if r[0] == BAD:
            _, fails, secs, count = r
            await self._emit(JK.T_CODE_BAD, fails=fails)
            if secs:
                await self._emit(JK.T_LOCKOUT, secs=secs, count=count)
                await self._emit(JK.T_ALARM, kind=JK.A_LOCKOUT)
            return []
        if r[0] != OK:
            return []  # a courier PIN: boards driven by the gateway take none
        accepted = [n for n in r[1] if n in self.comps and self.comps[n].request("pickup") is None]
        await self._emit(JK.T_CODE_OK, cs=accepted or list(r[1]))
        return [n for n in accepted if await self._open(self.comps[n], "pickup")]

    async def close(self) -> None:
        await self.bus.close()
