"""A plain RS-485 lock board run as a locker: polled door states become the same events as an ESP32 locker's.

The board has no brain, so the gateway plays its controller: it keeps the compartment state machine,
the code vault and the keypad lockout, numbers events under its own boot id, and feeds them through
the locker link into the same outbox path. Events stay in `unacked` until the link's eack, and are
fed again if they were not stored (outbox full).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jc.lockboard import LOCKS_PER_BOARD, MODELS, OPEN_REPLY_LEN, BoardError, open_request, parse_open, parse_status
from jc.lockboard import status_reply_len, status_request

from . import const as C
from . import protocol
from .counters import Counters
from .errors import GatewayError
from .lockboard_serial import BoardLinkError, SerialBus

if TYPE_CHECKING:
    from .config import BoardConfig
    from .lockerlink import LockerLink
    from .outbox import Outbox

log = logging.getLogger("jincun.gateway.boardlocker")

BOARD_SCHEMA = """
CREATE TABLE IF NOT EXISTS board_comps (
    locker TEXT NOT NULL, n INTEGER NOT NULL, st TEXT NOT NULL, ref TEXT,
    PRIMARY KEY (locker, n)
);
"""
VAULT_MAX = 64
UNACKED_MAX = 10_000
OFFLINE_AFTER = 3  # failed polls in a row
JAM_S = 2.0
AJAR_S = 120.0
RESEND_S = 5.0
FAILS_BEFORE_LOCKOUT = 5
LOCKOUT_FIRST_S = 30
LOCKOUT_MAX_S = 900
FW = "board"


class KeypadLocked(GatewayError):
    """Too many wrong codes: code entry is locked for `secs` more seconds."""

    def __init__(self, secs: int) -> None:
        super().__init__(f"locked for {secs} s after repeated wrong codes")
        self.secs = secs


@dataclass
class _Comp:
    n: int
    size: str
    lock: int
    st: str = "empty"
    door: bool = False
    occ: bool = False
    ref: str | None = None
    opening: str | None = None
    pulsed_at: float = 0.0
    open_since: float = 0.0
    ajar_sent: bool = False

    def snap(self) -> dict:
        d = {"n": self.n, "size": self.size, "st": self.st, "door": "open" if self.door else "closed",
             "occ": self.occ}
        if self.ref:
            d["ref"] = self.ref
        return d


class BoardLocker:
    """One lock board (16 locks) acting as locker `cfg.id` of this station."""

    def __init__(self, cfg: "BoardConfig", link: "LockerLink", outbox: "Outbox", counters: Counters,
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
        self.comps = {c.n: _Comp(c.n, c.size, c.lock or c.n) for c in cfg.comps}
        self.vault: dict[str, tuple[list[int], float]] = {}
        self.unacked: dict[int, tuple[float, dict]] = {}
        self.online = False
        self.fails = 0
        self.lockouts = 0
        self.locked_until = 0.0
        self._poll_failures = 0
        self._secret = cfg.secret.lower()
        outbox.add_schema(BOARD_SCHEMA)

    # ---- events ----

    def _mono(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    async def _emit(self, type_: str, **fields) -> None:
        if self.seq >= C.SEQ_MAX:
            self.boot, self.seq = secrets.token_hex(4), 0
        self.seq += 1
        evt = {"v": 1, "boot": self.boot, "seq": self.seq, "ts": int(time.time()), "mono": self._mono(),
               "type": type_, **fields}
        if len(self.unacked) >= UNACKED_MAX:
            self.unacked.pop(min(self.unacked))
            self.counters.inc("board_unacked_dropped")
        self.unacked[self.seq] = (time.monotonic(), evt)
        await self.link.handle_local(self.id, "evt", evt)

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
            "v": 1, "boot": self.boot, "fw": FW, "seq": self.seq, "ts": int(time.time()), "mono": self._mono(),
            "comps": [c.snap() for c in sorted(self.comps.values(), key=lambda c: c.n)],
            "outbox": len(self.unacked), "vault": len(self.vault)})

    async def _status(self, state: str) -> None:
        body = {"v": 1, "state": state, "boot": self.boot} if state == "online" else {"v": 1, "state": "lost"}
        await self.link.handle_local(self.id, "status", body)

    # ---- persistence of compartment states (refs survive a gateway restart) ----

    async def load(self) -> None:
        rows = await self.outbox.query(lambda conn: conn.execute(
            "SELECT n, st, ref FROM board_comps WHERE locker=?", (self.id,)).fetchall())
        for n, st, ref in rows:
            if n in self.comps:
                # an opening that was in progress when the gateway stopped is judged by the next poll
                self.comps[n].st, self.comps[n].ref = st, ref

    async def _save(self, comp: _Comp) -> None:
        def save(conn: sqlite3.Connection) -> None:
            conn.execute("INSERT INTO board_comps VALUES (?,?,?,?) ON CONFLICT(locker, n) DO UPDATE SET "
                         "st=excluded.st, ref=excluded.ref", (self.id, comp.n, comp.st, comp.ref))
        await self.outbox.run(save)

    async def _set(self, comp: _Comp, st: str, ref: str | None = ...) -> None:  # type: ignore[assignment]
        comp.st = st
        if ref is not ...:
            comp.ref = ref
        await self._save(comp)

    # ---- polling ----

    async def run(self) -> None:
        """Poll the board forever; a board that stops answering goes offline, and comes back with a birth."""
        await self.load()
        first = True
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
            doors_t = tuple(bool(doors >> i & 1) for i in range(LOCKS_PER_BOARD))
            occ_t = None if occ is None else tuple(bool(occ >> i & 1) for i in range(LOCKS_PER_BOARD))
            if first:
                self._take_initial(doors_t, occ_t)
                first = False
            else:
                await self._update(doors_t, occ_t)
            if not self.online:
                self.online = True
                log.info("lock board %s online (boot %s)", self.id, self.boot)
                await self._status("online")
                await self.birth()
            await self._resend()
            await asyncio.sleep(self.cfg.poll_s)

    def _take_initial(self, doors: tuple[bool, ...], occ: tuple[bool, ...] | None) -> None:
        for comp in self.comps.values():
            comp.door = doors[comp.lock - 1]
            comp.occ = occ[comp.lock - 1] if occ is not None else comp.st in ("occupied", "pickup")
            if comp.door:
                comp.open_since = time.monotonic()

    async def _update(self, doors: tuple[bool, ...], occ: tuple[bool, ...] | None) -> None:
        now = time.monotonic()
        for comp in sorted(self.comps.values(), key=lambda c: c.n):
            if occ is not None:
                comp.occ = occ[comp.lock - 1]
            is_open = doors[comp.lock - 1]
            if is_open and not comp.door:
                comp.door, comp.open_since, comp.ajar_sent = True, now, False
                await self._emit("door", c=comp.n, open=True)
                if comp.opening is None:
                    await self._emit("alarm", kind="forced_open", c=comp.n)
                comp.opening = None
            elif not is_open and comp.door:
                comp.door = False
                await self._emit("door", c=comp.n, open=False)
                await self._closed(comp, occ is not None)
            elif comp.opening and now - comp.pulsed_at > JAM_S:
                comp.opening = None
                await self._set(comp, "fault")
                await self._emit("alarm", kind="lock_jam", c=comp.n)
            elif comp.door and not comp.ajar_sent and now - comp.open_since > AJAR_S:
                comp.ajar_sent = True
                await self._emit("alarm", kind="door_ajar", c=comp.n)

    async def _closed(self, comp: _Comp, sensed: bool) -> None:
        # without occupancy sensors a deposit opening that closes counts as a deposit, and a pickup
        # opening that closes as a pickup: the courier's and the villager's own actions are the evidence
        if comp.st == "deposit":
            if comp.occ or not sensed:
                comp.occ = True
                await self._set(comp, "occupied")
                await self._emit("deposit", c=comp.n, ref=comp.ref)
            else:
                ref = comp.ref
                await self._set(comp, "empty", None)
                await self._emit("deposit_void", c=comp.n, ref=ref)
        elif comp.st == "pickup":
            if sensed and comp.occ:
                await self._set(comp, "occupied")
            else:
                ref = comp.ref
                comp.occ = False
                await self._set(comp, "empty", None)
                await self._emit("pickup", c=comp.n, ref=ref)
                self._forget_comp(comp.n)

    # ---- commands (same ops and acks as the firmware, §3.4/§3.5) ----

    async def _pulse(self, comp: _Comp, why: str) -> bool:
        try:
            raw = await self.bus.exchange(open_request(self.model, self.cfg.addr, comp.lock), OPEN_REPLY_LEN)
            ok = parse_open(self.model, self.cfg.addr, comp.lock, raw)
        except (BoardLinkError, BoardError) as exc:
            log.warning("lock board %s lock %d: %s", self.id, comp.lock, exc)
            self.counters.inc("board_open_failures")
            return False
        if not ok:
            self.counters.inc("board_open_refused")
            await self._set(comp, "fault")
            await self._emit("alarm", kind="lock_jam", c=comp.n)
            return False
        comp.opening, comp.pulsed_at = why, time.monotonic()
        await self._emit("lock", c=comp.n, why=why)
        return True

    async def command(self, op: str, f: dict) -> dict:
        """Execute one locker command; returns the ack body fields {"ok", "err"?}."""
        if not self.online and op not in ("time", "code_put", "code_del"):
            return {"ok": False, "err": "busy"}
        if op == "time":
            return {"ok": True}  # the board has no clock: events are stamped with the gateway's
        if op == "rebirth":
            await self.birth()
            return {"ok": True}
        if op == "code_put":
            if f["h"] not in self.vault and len(self.vault) >= VAULT_MAX:
                return {"ok": False, "err": "full"}
            self.vault[f["h"]] = (list(f["cs"]), time.monotonic() + f["exp"])
            return {"ok": True}
        if op == "code_del":
            self.vault.pop(f["h"], None)
            return {"ok": True}
        comp = self.comps.get(f.get("c"))
        if comp is None:
            return {"ok": False, "err": "no_such_compartment"}
        if op in ("disable", "enable"):
            if op == "disable" and (comp.st in ("deposit", "pickup") or comp.opening):
                return {"ok": False, "err": "busy"}
            if op == "enable" and comp.st != "disabled":
                return {"ok": False, "err": "busy"}
            st = "disabled" if op == "disable" else ("occupied" if comp.ref and comp.occ else "empty")
            await self._set(comp, st)
            await self._emit("state", c=comp.n, st=st)
            return {"ok": True}
        if comp.opening or comp.door:
            return {"ok": False, "err": "busy"}
        if op == "deposit":
            if comp.st != "empty":
                return {"ok": False, "err": "busy"}
            await self._set(comp, "deposit", f["ref"])
            if not await self._pulse(comp, "deposit"):
                if comp.st == "deposit":
                    await self._set(comp, "empty", None)
                return {"ok": False, "err": "busy"}
            return {"ok": True}
        if op == "open":
            log.info("remote open of %s/%d by %s: %s", self.id, comp.n, f.get("by"), f.get("why"))
            if comp.st == "occupied":
                await self._set(comp, "pickup")
            return {"ok": True} if await self._pulse(comp, "remote") else {"ok": False, "err": "busy"}
        return {"ok": False, "err": "unknown_op"}

    # ---- pickup codes typed on the station terminal ----

    def _forget_comp(self, n: int) -> None:
        for h, (cs, exp) in list(self.vault.items()):
            if n in cs:
                cs = [x for x in cs if x != n]
                if cs:
                    self.vault[h] = (cs, exp)
                else:
                    del self.vault[h]

    async def try_code(self, code: str) -> list[int]:
        """Open every compartment of a pickup code; [] for a wrong code. KeypadLocked while locked out."""
        now = time.monotonic()
        if now < self.locked_until:
            self.counters.inc("board_code_locked")
            raise KeypadLocked(int(self.locked_until - now) + 1)
        h = protocol.code_hash(self._secret, code) if code.isdigit() and len(code) == C.CODE_DIGITS else ""
        match = None
        for vh, (cs, exp) in self.vault.items():
            if hmac.compare_digest(vh, h or "x" * 64) and exp > now:
                match = cs
        if not match:
            self.fails += 1
            await self._emit("code_bad", fails=self.fails)
            if self.fails >= FAILS_BEFORE_LOCKOUT:
                secs = min(LOCKOUT_MAX_S, LOCKOUT_FIRST_S * 2 ** self.lockouts)
                self.lockouts += 1
                self.fails = 0
                self.locked_until = now + secs
                await self._emit("lockout", secs=secs, count=self.lockouts)
                await self._emit("alarm", kind="lockout")
            return []
        self.fails, self.lockouts = 0, 0
        opened = []
        for n in match:
            comp = self.comps.get(n)
            if comp is None or comp.st != "occupied" or comp.opening or comp.door:
                continue
            await self._set(comp, "pickup")
            if await self._pulse(comp, "pickup"):
                opened.append(n)
            else:
                await self._set(comp, "occupied")
        if opened:
            await self._emit("code_ok", cs=opened)
        return opened

    async def close(self) -> None:
        await self.bus.close()
