"""The parcel state machine: its statuses, the order they move in, and the one function that moves a parcel.

Every change of a parcel's status (locker events and station records in the ingest, carrier manifests, the
lifecycle sweeps, staff actions) goes through `advance`: the status only ever moves forward (by `RANK`), each
step is kept in the parcel's timeline (parcel_events) and queues the carrier's status webhooks.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from .models import Parcel, ParcelEvent
from .webhooks import enqueue_status

# every status a parcel can hold; taken_in: an outbound parcel (寄件) accepted at the station counter (with the
# sender's real name and the agent's inspection), collected: its carrier's courier took it away; cancelled: a
# deposit the locker never saw (the door closed on an empty compartment), shown to staff only
STATUSES = ("preadvised", "deposited", "notified", "picked_up", "overdue", "returned", "delivered_door", "taken_in",
            "collected", "cancelled")
# the forward-only order: a parcel moves to a status of higher rank, never back (a lower one is only recorded)
RANK = {"taken_in": 0, "preadvised": 0, "deposited": 1, "notified": 2, "overdue": 3, "picked_up": 4,
        "returned": 4, "delivered_door": 4, "collected": 4, "cancelled": 4}
DIRECTIONS = ("inbound", "outbound")
# in a locker, not yet taken: what the reminder sweep looks at
REMINDED = ("deposited", "notified")
# in a locker waiting for its recipient: what a replacement or superseding code carries over (an overdue
# parcel is in the return flow: its code is revoked, and it waits for its carrier, not its recipient)
WAITING = ("deposited", "notified")
# finished: a pickup code has nothing left to open for such a parcel, and staff cannot act on it any more
DONE = ("picked_up", "delivered_door", "returned", "collected", "cancelled")
# an outbound parcel counts as sent (produce statistics) once its carrier collected it
SENT = ("collected",)
# a deposit the locker did not confirm (deposit_void) cancels a parcel in these
VOIDABLE = ("preadvised", "deposited", "notified")
# what villagers never see (their phone page): a cancelled deposit was never in a locker for them
HIDDEN_FROM_RECIPIENT = ("cancelled",)
# not counted as parcels in the county's volumes: a cancelled deposit was an attempt, not a parcel
NOT_PARCELS = ("cancelled",)
# the return flow: only an overdue parcel is taken back by its courier (returned)
RETURNABLE = ("overdue",)


def moves_forward(current: str, status: str) -> bool:
    """Whether a parcel in `current` takes `status` as its new status (rather than only recording it)."""
    return RANK[status] > RANK[current]


def _timeline(session, row: dict[str, Any], rows: list | None) -> None:
    if rows is not None:
        rows.append(row)
    else:
        session.add(ParcelEvent(**row))


def advance(session, parcel: Parcel | Any, status: str, at: float, source: str, *, rows: list | None = None,
            clients: dict | None = None) -> None:
    """Record `status` in the parcel's timeline (status only moves forward) and queue carrier webhooks.

    An ingest batch passes the list its timeline rows are buffered in (`rows`, written with the batch's other
    rows) and its cache of webhook clients (`clients`)."""
    if moves_forward(parcel.status, status):
        parcel.status = status
    parcel.updated_at = time.time()
    _timeline(session, {"parcel_id": parcel.id, "status": status, "at": at, "source": source}, rows)
    enqueue_status(session, parcel, status, at, clients=clients)


def void_deposit(session, parcel: Parcel | Any, at: float, source: str, *, rows: list | None = None) -> None:
    """A deposit the terminal cancelled (the door closed on an empty compartment): the parcel is cancelled. It
    vanishes from the villager's pages and from the pre-advised counts; staff still see it, as 已取消.

    A parcel its carrier pre-advised (a manifest) is still owed to the villager: it goes back to `preadvised`,
    in no locker, so the next deposit adopts it again and the never-delivered sweep still watches it."""
    if parcel.status not in VOIDABLE:
        return
    owed = session.scalar(select(ParcelEvent.id).where(ParcelEvent.parcel_id == parcel.id,
                                                       ParcelEvent.source.like("carrier:%")).limit(1)) is not None
    status = "preadvised" if owed else "cancelled"
    parcel.status = status
    parcel.deposited_at = None
    if owed:
        parcel.locker_id = parcel.compartment = None
    parcel.updated_at = time.time()
    _timeline(session, {"parcel_id": parcel.id, "status": status, "at": at,
                        "source": f"{source} deposit_void"}, rows)
