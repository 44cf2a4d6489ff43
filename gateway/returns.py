"""The couriers' 待退回 list at the terminal: overdue parcels the cloud sent back to their carrier.

The cloud's `return` command (§5.2) puts a parcel on the list and revokes the villager's code at the locker
(`Deposits.to_return`). A logged-in courier of the parcel's carrier sees it and takes it out: the door opens
for them, a `handover` record with `how: return` tells the cloud, and the compartment is freed when the door
closes on it empty (the controller's `state` empty event).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from . import const as C
from .config import TerminalUser
from .errors import CommandTimeout, LockerError, LockerOffline, UnknownParcel
from .lockout import RateWindows

if TYPE_CHECKING:
    from .services import HttpServices

log = logging.getLogger("jincun.gateway.returns")

# doors a courier opens for returns: a round of overdue parcels is a handful, not the whole locker
RETURN_LIMITS = ((10, 60.0), (60, 3600.0))


class ReturnIn(BaseModel):
    ref: str = Field(pattern=C.REF_RE)


def add_routes(r: APIRouter, gw: HttpServices, *, courier: Callable[..., TerminalUser],
               record: Callable[..., Awaitable[None]], mask: Callable[[str], str]) -> None:
    """The 待退回 routes on the terminal's router."""
    p = "/api/v1/terminal/returns"
    windows = RateWindows(RETURN_LIMITS)

    @r.get(p)
    async def returns(u: TerminalUser = Depends(courier)) -> dict[str, Any]:
        """What this courier's carrier has to take back (a courier with no carrier has none)."""
        items = await gw.deposits.returns(u.carrier) if u.carrier else []
        return {"returns": [{"ref": w["ref"], "waybill": w["waybill"], "phone": mask(w["phone"]),
                             "carrier": w["carrier"], "locker": w["locker"], "c": w["c"], "since": int(w["updated"])}
                            for w in items]}

    @r.post(p)
    async def take(body: ReturnIn, u: TerminalUser = Depends(courier)) -> dict[str, Any]:
        try:
            got = await gw.deposits.get(body.ref)
        except UnknownParcel:
            got = None
        if got is None or got["state"] != "returning":
            raise HTTPException(409, {"error": "not_returning"})
        if not u.carrier or got["carrier"] != u.carrier:
            gw.counters.inc("returns_refused")
            log.warning("courier %s asked to take back %s of another carrier", u.id, body.ref)
            raise HTTPException(403, {"error": "carrier"})
        wait = windows.take(u.id)
        if wait:
            raise HTTPException(429, {"error": "rate_limited", "secs": wait})
        try:
            ack = await gw.link.send_command(got["locker"], "open", c=got["c"], by=u.id, why="return")
        except (LockerOffline, CommandTimeout):
            raise HTTPException(503, {"error": "locker_offline"}) from None
        except LockerError as exc:
            raise HTTPException(409, {"error": "locker_refused", "detail": str(exc)}) from None
        if not ack or not ack.get("ok"):
            raise HTTPException(409, {"error": "locker_refused", "detail": (ack or {}).get("err")})
        at = int(time.time())
        mark = functools.partial(gw.deposits.handed_over_in_tx, ref=body.ref, at=at, state="returned")
        await record(C.KIND_HANDOVER, {"ref": body.ref, "by": u.id, "at": at, "how": "return"}, mark)
        gw.counters.inc("returns_taken")
        return {"ref": body.ref, "locker": got["locker"], "c": got["c"], "at": at}
