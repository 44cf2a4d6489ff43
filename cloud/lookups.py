"""Hot read paths (parcel by ref, parcels by pickup code) on SQLAlchemy Core, one thread hop per request.

These are the requests a county makes most (support calls, villagers' phone pages), so they skip the ORM
and response re-validation; the JSON has exactly the shape of `schemas.ParcelPublic`.
"""

from __future__ import annotations

import hmac
from typing import Any

import anyio
from fastapi import HTTPException, Request
from sqlalchemy import Connection, select

from .auth import Principal, principal_from_request
from .models import Parcel, ParcelEvent, PickupCode

PARCEL_COLS = ("ref", "waybill", "carrier", "direction", "phone", "station_id", "locker_id", "compartment", "size",
               "status", "created_at", "deposited_at", "picked_up_at", "fee_cents", "fee_reason")
_P = Parcel.__table__
_E = ParcelEvent.__table__
_C = PickupCode.__table__


def _with_timeline(conn: Connection, rows: list) -> list[dict[str, Any]]:
    if not rows:
        return []
    ids = [r.id for r in rows]
    events: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for e in conn.execute(select(_E.c.parcel_id, _E.c.status, _E.c.at, _E.c.source)
                          .where(_E.c.parcel_id.in_(ids)).order_by(_E.c.id)):
        events[e.parcel_id].append({"status": e.status, "at": e.at, "source": e.source})
    return [{**{c: getattr(r, c) for c in PARCEL_COLS}, "timeline": events[r.id]} for r in rows]


def parcel_by_ref(conn: Connection, ref: str) -> dict[str, Any] | None:
    """One parcel with its timeline, or None."""
    row = conn.execute(select(_P.c.id, *(_P.c[c] for c in PARCEL_COLS)).where(_P.c.ref == ref)).first()
    return _with_timeline(conn, [row])[0] if row is not None else None


def parcels_by_code(conn: Connection, station: str, code: str) -> list[dict[str, Any]]:
    """The parcels a live pickup code opens at a station."""
    refs: set[str] = set()
    for (r,) in conn.execute(select(_C.c.refs).where(_C.c.station_id == station, _C.c.code == code,
                                                     _C.c.used.is_(False))):
        refs.update(r)
    if not refs:
        return []
    rows = conn.execute(select(_P.c.id, *(_P.c[c] for c in PARCEL_COLS)).where(_P.c.ref.in_(sorted(refs)))
                        .order_by(_P.c.ref)).all()
    return _with_timeline(conn, list(rows))


async def authorize(request: Request, services, roles: tuple[str, ...]) -> Principal:
    """Like auth.allow, without a thread hop for the admin token (the common case for service callers)."""
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    if token and hmac.compare_digest(token.encode("utf-8"), (services.settings.admin_token or "").encode("utf-8")):
        who: Principal | None = Principal(name="admin-token", role="admin")
    else:
        def resolve() -> Principal | None:
            with services.sessionmaker() as session:
                return principal_from_request(request, session, services)
        who = await anyio.to_thread.run_sync(resolve)
    if who is None:
        raise HTTPException(401, "log in or send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    if who.role not in roles:
        services.counters.inc("auth_forbidden")
        raise HTTPException(403, f"role {who.role} may not do this (needs one of {', '.join(roles)})")
    return who


async def read(services, fn, *args):
    """Run a Core read in one worker thread on a pooled connection."""
    def run():
        with services.sessionmaker.kw["bind"].connect() as conn:
            return fn(conn, *args)
    return await anyio.to_thread.run_sync(run)
