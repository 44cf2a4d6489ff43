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


def _with_timeline(conn: Connection, where) -> list[dict[str, Any]]:
    """Parcels matching `where`, each with its timeline, in one round trip (parcels joined to their events)."""
    stmt = (select(_P.c.id, *(_P.c[c] for c in PARCEL_COLS), _E.c.status.label("e_status"), _E.c.at.label("e_at"),
                   _E.c.source.label("e_source"))
            .select_from(_P.outerjoin(_E, _E.c.parcel_id == _P.c.id)).where(where).order_by(_P.c.ref, _E.c.id))
    out: dict[int, dict[str, Any]] = {}
    for r in conn.execute(stmt):
        parcel = out.get(r.id)
        if parcel is None:
            parcel = out[r.id] = {**{c: getattr(r, c) for c in PARCEL_COLS}, "timeline": []}
        if r.e_status is not None:
            parcel["timeline"].append({"status": r.e_status, "at": r.e_at, "source": r.e_source})
    return list(out.values())


def parcel_by_ref(conn: Connection, ref: str) -> dict[str, Any] | None:
    """One parcel with its timeline, or None."""
    found = _with_timeline(conn, _P.c.ref == ref)
    return found[0] if found else None


def parcels_by_code(conn: Connection, station: str, code: str) -> list[dict[str, Any]]:
    """The parcels a live pickup code opens at a station."""
    refs: set[str] = set()
    for (r,) in conn.execute(select(_C.c.refs).where(_C.c.station_id == station, _C.c.code == code,
                                                     _C.c.used.is_(False))):
        refs.update(r)
    if not refs:
        return []
    return _with_timeline(conn, _P.c.ref.in_(sorted(refs)))


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
    engine = services.sessionmaker.kw["bind"]

    def run():
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                # each read stands alone (as it would under READ COMMITTED), with no BEGIN and ROLLBACK
                # round trips around it
                conn.execution_options(isolation_level="AUTOCOMMIT")
            return fn(conn, *args)
    return await anyio.to_thread.run_sync(run)
