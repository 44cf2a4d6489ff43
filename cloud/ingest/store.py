"""The ingest's storage seam: the batch's look-ups (preload), the ledger insert and the parcel stubs.

Each is described once, as SQLAlchemy Core over the models' tables, and each dialect's SQL is built from that
one description:
- the look-ups (`LOOKUPS`) run one by one on SQLite; on PostgreSQL the same statements are nested into one
  statement that answers one JSON text (`PRELOAD`), one round trip a batch;
- the ledger insert (`insert_ledger`) takes its columns from `LEDGER`: a multi-row INSERT .. ON CONFLICT DO
  NOTHING on SQLite, one JSON document read by `json_to_recordset` on PostgreSQL; the one-pass batch and the
  item-by-item path both use it.
The changed rows themselves are written by cloud/rows.py (`write_rows`).
"""

from __future__ import annotations

import json
import time
from typing import Any

import orjson
from sqlalchemy import (
    ARRAY,
    Table,
    Text,
    bindparam,
    cast,
    exists,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..models import Carrier, Compartment, Event, Locker, Parcel, PickupCode, Recipient
from ..protocol import Item
from ..rows import CodeRow, CompartmentRow, LockerRow, ParcelRow
from ..storage import among, bulk_insert, fixed_rows, one_of, pg_rows
from ..webhooks import HOOKED_CLIENTS
from .context import BatchContext, BatchKeys


def table_of(model) -> Table:
    """A model's table, typed as one."""
    return model.__table__


def is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def dialect_insert(session: Session, table):
    """A dialect insert that supports ON CONFLICT on SQLite and PostgreSQL."""
    name = session.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database {name} is not supported")


# ---- look-ups ------------------------------------------------------------------------------------

def lookups(*, pg: bool) -> dict[str, Any]:
    """The batch's look-ups, in the order `BatchContext.fill` takes them (`pg`: the list parameters as
    arrays). Parameters: station, refs, waybills, phones, pickup_refs."""
    station: Any = bindparam("station")
    return {
        "lockers": LockerRow.select().where(Locker.station_id == station),
        "comps": CompartmentRow.select().where(Compartment.station_id == station),
        "parcels": ParcelRow.select().where(among(Parcel.ref, "refs", pg=pg)),
        "preadvised": ParcelRow.select().where(Parcel.station_id == station,
                                               among(Parcel.waybill, "waybills", pg=pg),
                                               Parcel.status == "preadvised", Parcel.locker_id.is_(None)),
        "recipients": select(Recipient.phone, Recipient.consent, Recipient.door_help).where(
            among(Recipient.phone, "phones", pg=pg)),
        # the codes of the recipients the records name, and of those whose parcels the batch picks up or hands
        # over (they are used up)
        "codes": CodeRow.select().where(
            PickupCode.station_id == station, PickupCode.used.is_(False),
            or_(among(PickupCode.phone, "phones", pg=pg),
                PickupCode.phone.in_(select(Parcel.phone).where(among(Parcel.ref, "pickup_refs", pg=pg))))),
        "carriers": select(Carrier.code, Carrier.name_zh),
    }


# elsewhere than on PostgreSQL: one statement each
LOOKUPS = lookups(pg=False)


def _as_json(stmt):
    """A scalar subquery answering the rows of `stmt` as one JSON array of arrays (in column order)."""
    sub = stmt.subquery()
    return select(func.json_agg(func.json_build_array(*sub.c))).select_from(sub).scalar_subquery()


def _new_parcel_ids():
    """An id for each ref not held yet, for the parcels the batch will create (one not used leaves a gap in the
    sequence, nothing more)."""
    n = func.unnest(bindparam("refs", type_=ARRAY(Text))).table_valued("ref").render_derived(name="n")
    seq = func.nextval(func.pg_get_serial_sequence(Parcel.__tablename__, "id"))
    return (select(func.json_agg(func.json_build_array(n.c.ref, seq))).select_from(n)
            .where(~exists().where(Parcel.ref == n.c.ref)).scalar_subquery())


# on PostgreSQL the same look-ups, the carriers' webhook clients and the new parcels' ids as one statement and
# one round trip, answered as one JSON text that orjson reads: each statement had cost the worker some 0.3 ms
# of CPU, about as much as its rows
PRELOAD = select(cast(func.json_build_array(*(_as_json(s) for s in lookups(pg=True).values()),
                                            _as_json(HOOKED_CLIENTS), _new_parcel_ids()), Text))


def preload(ctx: BatchContext, items: list[Item]) -> None:
    """Load once per batch what its items look up again and again into `ctx` (emptied first)."""
    session = ctx.session
    ctx.clear()
    keys = BatchKeys.of(items)
    params = {"station": ctx.station.id, "refs": list(keys.refs), "waybills": list(keys.waybills),
              "phones": list(keys.phones), "pickup_refs": keys.pickup_refs}
    if is_pg(session):
        (doc,), = fixed_rows(session, PRELOAD, params)
        *found, clients, ids = (rows or () for rows in orjson.loads(doc))
        from ..webhooks import prime_clients
        prime_clients(ctx.clients, clients)
        ctx.parcel_ids = dict(ids)
    else:
        # a look-up whose list parameters are all empty finds nothing: it is not sent
        needs = {"parcels": keys.refs, "preadvised": keys.waybills, "recipients": keys.phones,
                 "codes": keys.phones or keys.pickup_refs}
        found = [fixed_rows(session, stmt, params) if needs.get(name, True) else ()
                 for name, stmt in LOOKUPS.items()]
    ctx.fill(keys, **dict(zip(LOOKUPS, found)))


# ---- the ledger (events) -------------------------------------------------------------------------

# the ledger row's columns besides station_id, with their PostgreSQL types, and its unique key
LEDGER = (("src", "text"), ("boot", "text"), ("seq", "bigint"), ("kind", "text"), ("month", "integer"),
          ("type", "text"), ("ts", "double precision"), ("rx", "double precision"), ("body", "json"))
LEDGER_KEY = ("station_id", "src", "boot", "seq", "kind", "month")
_NAMES = ", ".join(name for name, _ in LEDGER)
_KEY = ", ".join(LEDGER_KEY)
_RETURN = ", ".join(LEDGER_KEY[1:])

# run through pg_rows (psycopg parameters). It answers one row of nulls when every row was inserted (the
# common case: nothing more travels back), else the keys of the rows inserted (none if all were held)
_PG_INSERT_JSON = (
    f"WITH ins AS (INSERT INTO events (station_id, {_NAMES}) "
    f"SELECT %(station)s, {', '.join('u.' + n for n, _ in LEDGER)} "
    f"FROM json_to_recordset(CAST(%(rows)s AS json)) AS u({', '.join(f'{n} {t}' for n, t in LEDGER)}) "
    f"ON CONFLICT ({_KEY}) DO NOTHING RETURNING {_RETURN}), "
    "n AS (SELECT count(*) AS c FROM ins) "
    f"SELECT {', '.join(['NULL'] * (len(LEDGER_KEY) - 1))} FROM n WHERE n.c = %(total)s "
    f"UNION ALL SELECT {', '.join('ins.' + k for k in LEDGER_KEY[1:])} FROM ins, n WHERE n.c <> %(total)s")
# for values orjson cannot write (integers beyond 64 bits, lone surrogates): one array per column
_PG_INSERT_ARRAYS = text(
    f"INSERT INTO events (station_id, {_NAMES}) SELECT :station, "
    f"{', '.join('u.' + n for n, _ in LEDGER[:-1])}, CAST(u.body AS json) FROM unnest("
    + ", ".join(f"CAST(:{n} AS {'text' if t == 'json' else t}[])" for n, t in LEDGER)
    + f") AS u({_NAMES}) ON CONFLICT ({_KEY}) DO NOTHING RETURNING {_RETURN}")


def ledger_row(station_id: str, item: Item, month: int) -> dict[str, Any]:
    """The ledger row of an item, without its body (`insert_ledger` takes that from the item)."""
    ts = item.body.get("ts")
    return {"station_id": station_id, "src": item.src, "boot": item.boot, "seq": item.seq, "kind": item.kind,
            "month": month, "type": item.body.get("type") if item.kind == "evt" else None,
            "ts": ts if isinstance(ts, int) else None, "rx": item.rx}


def _json_text(body: Any) -> str:
    """Compact JSON text of a validated body; the stdlib writes what orjson refuses (big ints, lone surrogates)."""
    try:
        return orjson.dumps(body).decode("utf-8")
    except orjson.JSONEncodeError:
        return json.dumps(body, ensure_ascii=False)


def insert_ledger(session: Session, station_id: str, rows: list[dict[str, Any]],
                  items: list[Item]) -> set[tuple] | None:
    """Insert ledger rows (`ledger_row`; `items` gives each row's body, `rows` has no key twice), skipping ones
    already held; returns the keys (src, boot, seq, kind, month) inserted, or None when every row was."""
    if not is_pg(session):
        table = table_of(Event)
        stmt = (sqlite.insert(table).on_conflict_do_nothing(index_elements=list(LEDGER_KEY))
                .returning(*(table.c[k] for k in LEDGER_KEY[1:])))
        got = {tuple(r) for r in session.execute(stmt, [{**r, "body": it.body} for r, it in zip(rows, items)])}
        return None if len(got) == len(rows) else got
    # one statement, one JSON document: the SQL text never changes, so nothing is re-parsed. A body validation
    # already wrote out is not written again: each row's text is closed with it
    doc = None
    texts = [it.text for it in items]
    if all(t is not None for t in texts):
        # one document written in one call, each body as the text it stands in
        fragment = orjson.Fragment
        doc = orjson.dumps([{**r, "body": fragment(t)} for r, t in zip(rows, texts) if t is not None]).decode("utf-8")
    else:
        try:
            doc = orjson.dumps([{**r, "body": it.body} for r, it in zip(rows, items)]).decode("utf-8")
        except orjson.JSONEncodeError:
            doc = None
    if doc is not None:
        keys = pg_rows(session, _PG_INSERT_JSON, {"station": station_id, "rows": doc, "total": len(rows)})
        if len(keys) == 1 and keys[0][0] is None:
            return None
        return {tuple(k) for k in keys}
    cols: dict[str, list] = {name: [r[name] for r in rows] for name, _ in LEDGER[:-1]}
    for name, kind in LEDGER[:-1]:
        if kind == "double precision":
            # one element type per array: psycopg refuses lists mixing int and float
            cols[name] = [None if v is None else float(v) for v in cols[name]]
    cols["body"] = [_json_text(it.body) for it in items]
    got = {tuple(r) for r in session.execute(_PG_INSERT_ARRAYS, {"station": station_id, **cols}).all()}
    return None if len(got) == len(rows) else got


# ---- parcel stubs --------------------------------------------------------------------------------

def stub_values(station_id: str, ref: str, locker_id: str | None, c: int | None, now: float) -> dict[str, Any]:
    """A parcel an event or record names before its parcel record arrived: inbound, preadvised."""
    return {"ref": ref, "station_id": station_id, "locker_id": locker_id, "compartment": c, "status": "preadvised",
            "direction": "inbound", "fee_cents": 0, "produce": False, "reminders": 0, "created_at": now,
            "updated_at": now}


def insert_stubs(ctx: BatchContext, stubs: dict[str, dict[str, Any]]) -> list:
    """Make the stub parcels of a one-pass batch (`stub_values` by ref) and return them as the batch's rows.

    On PostgreSQL they get ids drawn by the preload and are inserted with the batch's other new rows at its end,
    holding by then what the batch's records and events set: one insert and no update per new parcel. A ref
    another transaction inserts meanwhile fails that insert, and the batch then goes item by item. Elsewhere
    they are inserted at once and read back."""
    session = ctx.session
    if is_pg(session):
        made = [ParcelRow.fresh(id=ctx.parcel_ids[ref], **values) for ref, values in stubs.items()]
        ctx.fresh.extend(made)
        return made
    bulk_insert(session, table_of(Parcel), list(stubs.values()), skip_existing=True)
    return [ctx.adopt(ParcelRow, row) for row in session.execute(
        ParcelRow.select().where(one_of(session, Parcel.ref, set(stubs)))).all()]


def insert_stub(ctx: BatchContext, ref: str, locker_id: str | None, c: int | None) -> Any:
    """Make one stub parcel now (an item applied on its own) and return it as the batch's row."""
    session = ctx.session
    table = table_of(Parcel)
    values = stub_values(ctx.station.id, ref, locker_id, c, time.time())
    row = session.execute(dialect_insert(session, table).values(**values).on_conflict_do_nothing(
        index_elements=["ref"]).returning(*table.columns)).first()
    if row is None:
        # another transaction created it between our look-up and the insert
        row = session.execute(ParcelRow.select().where(Parcel.ref == ref)).one()
    return ctx.adopt(ParcelRow, row)
