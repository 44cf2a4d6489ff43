"""Hot read paths (parcel by ref, parcels by pickup code), without the ORM or response re-validation.

These are the requests a county makes most (support calls, villagers' phone pages). On PostgreSQL they run
on the event loop through psycopg's async connection pool (`PgReader`): no thread hop and no SQLAlchemy
execution per request, about half the CPU of the threaded path. Elsewhere (SQLite) they run on SQLAlchemy
Core in one worker thread. Both give JSON of exactly the shape of `schemas.ParcelPublic`, from the same
statements (the async path sends their PostgreSQL compilation).
"""

from __future__ import annotations

from typing import Any

import anyio
import orjson
from fastapi.responses import Response
from sqlalchemy import Connection, String, bindparam, func, select
from sqlalchemy.dialects import postgresql

from .models import Parcel, ParcelEvent, PickupCode
from .storage import PG_OPTIONS, pg_sql

PARCEL_COLS = ("ref", "waybill", "carrier", "direction", "phone", "station_id", "locker_id", "compartment", "size",
               "status", "created_at", "deposited_at", "picked_up_at", "fee_cents", "fee_reason")
_P = Parcel.__table__
_E = ParcelEvent.__table__
_C = PickupCode.__table__


def _timeline_stmt(where):
    """Parcels matching `where` joined to their events: id, PARCEL_COLS, then event status, at, source."""
    return (select(_P.c.id, *(_P.c[c] for c in PARCEL_COLS), _E.c.status.label("e_status"), _E.c.at.label("e_at"),
                   _E.c.source.label("e_source"))
            .select_from(_P.outerjoin(_E, _E.c.parcel_id == _P.c.id)).where(where).order_by(_P.c.ref, _E.c.id))


def _fold(rows) -> list[dict[str, Any]]:
    """Rows of _timeline_stmt (as tuples) into parcels, each with its timeline."""
    out: dict[int, dict[str, Any]] = {}
    n = len(PARCEL_COLS)
    for r in rows:
        parcel = out.get(r[0])
        if parcel is None:
            parcel = out[r[0]] = {**dict(zip(PARCEL_COLS, r[1:n + 1])), "timeline": []}
        if r[n + 1] is not None:
            parcel["timeline"].append({"status": r[n + 1], "at": r[n + 2], "source": r[n + 3]})
    return list(out.values())


def _with_timeline(conn: Connection, where) -> list[dict[str, Any]]:
    """Parcels matching `where`, each with its timeline, in one round trip (parcels joined to their events)."""
    return _fold(conn.execute(_timeline_stmt(where)))


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


class PgReader:
    """The hot reads on the event loop, through psycopg's async pool (PostgreSQL only)."""

    BY_REF = pg_sql(_timeline_stmt(_P.c.ref == bindparam("ref")))
    # two round trips, not one with the JSON array expanded in a subquery: the planner cannot size that
    # subquery and scans every parcel
    BY_REFS = pg_sql(_timeline_stmt(_P.c.ref == func.any(bindparam("refs", type_=postgresql.ARRAY(String)))))
    CODE = pg_sql(select(_C.c.refs).where(_C.c.station_id == bindparam("station"), _C.c.code == bindparam("code"),
                                           _C.c.used.is_(False)))

    def __init__(self, url: str, *, max_size: int = 16, timeout: float = 30.0, options: str = PG_OPTIONS) -> None:
        from psycopg_pool import AsyncConnectionPool

        # autocommit: each read stands alone (as under READ COMMITTED) with no BEGIN/ROLLBACK round trips;
        # psycopg prepares a statement on the server after a few runs; the planner's costs as on the
        # engine's connections (storage.PG_OPTIONS)
        kwargs = {"autocommit": True, **({"options": options} if options else {})}
        self.pool = AsyncConnectionPool(url, min_size=2, max_size=max_size, timeout=timeout, open=False,
                                        kwargs=kwargs)

    @classmethod
    def for_url(cls, sqlalchemy_url, *, options: str = PG_OPTIONS) -> PgReader | None:
        """A reader for a SQLAlchemy PostgreSQL URL (psycopg driver), or None for other databases."""
        if sqlalchemy_url.get_backend_name() != "postgresql" or sqlalchemy_url.get_driver_name() not in (
                "psycopg", "psycopg_async"):
            return None
        return cls(sqlalchemy_url.set(drivername="postgresql").render_as_string(hide_password=False),
                   options=options)

    async def open(self) -> None:
        await self.pool.open(wait=False)

    async def close(self) -> None:
        await self.pool.close()

    async def _rows(self, sql: str, params: dict) -> list[tuple]:
        async with self.pool.connection() as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall()

    async def parcel_by_ref(self, ref: str) -> dict[str, Any] | None:
        found = _fold(await self._rows(self.BY_REF, {"ref": ref}))
        return found[0] if found else None

    async def parcels_by_code(self, station: str, code: str) -> list[dict[str, Any]]:
        refs: set[str] = set()
        for (r,) in await self._rows(self.CODE, {"station": station, "code": code}):
            refs.update(r)
        if not refs:
            return []
        return _fold(await self._rows(self.BY_REFS, {"refs": sorted(refs)}))


def json_response(obj: Any) -> Response:
    """A JSON answer encoded by orjson (the hot paths' bodies are plain dicts, lists, str and numbers)."""
    return Response(orjson.dumps(obj), media_type="application/json")


async def parcel_by_ref_any(services, ref: str) -> dict[str, Any] | None:
    """parcel_by_ref on the async reader when there is one, else on a worker thread."""
    if services.reader is not None:
        return await services.reader.parcel_by_ref(ref)
    return await read(services, parcel_by_ref, ref)


async def parcels_by_code_any(services, station: str, code: str) -> list[dict[str, Any]]:
    """parcels_by_code on the async reader when there is one, else on a worker thread."""
    if services.reader is not None:
        return await services.reader.parcels_by_code(station, code)
    return await read(services, parcels_by_code, station, code)


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
