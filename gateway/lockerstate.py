"""Live state of the station's lockers as the link knows it: compartments, sessions, and the local-locker port."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from jincun.mirror import mirror


@dataclass
class Comp:
    """Live state of one compartment as the locker last reported it."""

    n: int
    size: str
    st: str = "unknown"
    door: str = "unknown"
    occ: bool = False
    ref: str | None = None
    mm: bool = False  # the sensor reads a parcel the compartment's state does not account for

    def view(self) -> dict:
        return {"n": self.n, "size": self.size, "st": self.st, "door": self.door, "occ": self.occ,
                "ref": self.ref, "mm": self.mm}

    def assignable(self) -> bool:
        """Free for a new deposit: empty by state, and by its last occupancy reading (the sensor wins)."""
        return self.st == "empty" and not self.occ and not self.mm

    def follow(self, evt: dict) -> None:
        """Move as the locker's event says, by the one mirror the cloud uses too (jincun/mirror.py)."""
        cur = {"st": self.st, "door": self.door, "occ": self.occ, "ref": self.ref, "mm": self.mm}
        for key, value in mirror(evt, cur).items():
            setattr(self, key, value)


@dataclass
class LockerState:
    """Session state of one locker: connection, boot, event watermark, compartments."""

    id: str
    comps: dict[int, Comp]
    online: bool = False
    boot: str | None = None
    fw: str | None = None
    birth_at: float | None = None
    last_seen: float | None = None
    ev_boot: str | None = None
    acked: int = 0
    max_seq: int = 0
    committed: set[int] = field(default_factory=set)
    last_rebirth: float = 0.0
    vault: int | None = None
    # retired in the cloud (staff.py): no new deposits go into it; its events, codes and pickups go on
    retired: bool = False

    def view(self) -> dict:
        return {"id": self.id, "online": self.online, "retired": self.retired, "boot": self.boot, "fw": self.fw,
                "synced": self.birth_at is not None, "last_seen": self.last_seen,
                "acked_seq": self.acked, "comps": [c.view() for c in sorted(self.comps.values(), key=lambda c: c.n)]}


class LocalLocker(Protocol):
    """A locker the gateway runs itself (a lock board): commands are calls, eacks are calls."""

    online: bool

    async def command(self, op: str, fields: dict) -> dict: ...

    def eack(self, boot: str, seq: int) -> None: ...


EventHandler = Callable[[str, dict], Awaitable[None]]
BirthHandler = Callable[[str], Awaitable[None]]
