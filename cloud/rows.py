"""Plain rows for the ingest path: read with Core selects, changed as plain attributes, written set-based.

An ORM object pays for attribute instrumentation on every read and write and for the unit of work at flush;
a batch touches the same few hundred rows hundreds of times, so the ingest keeps them as plain slotted
objects instead. A row remembers the values it was read with; writing compares against them and sends, per
table, only the changed columns of the changed rows.
"""

from __future__ import annotations

from typing import Any, ClassVar
from collections.abc import Iterable

import orjson
from sqlalchemy import Table, and_, bindparam, insert, select
from sqlalchemy.orm import Session

from .models import Compartment, Locker, Parcel, PickupCode
from .storage import pg_rows


class PlainRow:
    """One table row as plain attributes; `_orig` holds the values as last read or written (None: not stored)."""

    __slots__ = ("_orig",)
    _orig: tuple[Any, ...] | None
    table: ClassVar[Table]
    cols: ClassVar[tuple[str, ...]]
    keys: ClassVar[tuple[str, ...]]
    defaults: ClassVar[dict[str, Any]]

    @classmethod
    def loaded(cls, values: Iterable[Any]) -> PlainRow:
        """A row as read from the database (values in `cols` order)."""
        obj = cls.__new__(cls)
        values = tuple(values)
        for name, value in zip(cls.cols, values):
            object.__setattr__(obj, name, value)
        obj._orig = values
        return obj

    @classmethod
    def fresh(cls, **values: Any) -> PlainRow:
        """A row not stored yet; columns not given take their column default (or None)."""
        obj = cls.__new__(cls)
        for name in cls.cols:
            object.__setattr__(obj, name, values.get(name, cls.defaults.get(name)))
        obj._orig = None
        return obj

    @classmethod
    def select(cls):
        return select(*cls.table.columns)

    def values(self) -> tuple:
        return tuple(getattr(self, name) for name in self.cols)

    def changed(self) -> tuple[str, ...]:
        orig = self._orig
        if orig is None:
            return self.cols
        return tuple(name for name, old in zip(self.cols, orig) if getattr(self, name) != old)

    def mark_stored(self) -> None:
        self._orig = self.values()


def _plain(model) -> type[PlainRow]:
    table = model.__table__
    cols = tuple(c.name for c in table.columns)
    defaults = {c.name: c.default.arg for c in table.columns if c.default is not None and c.default.is_scalar}
    return type(f"{model.__name__}Row", (PlainRow,), {
        "__slots__": cols, "__module__": __name__, "table": table, "cols": cols,
        "keys": tuple(c.name for c in table.primary_key.columns), "defaults": defaults})


LockerRow = _plain(Locker)
CompartmentRow = _plain(Compartment)
ParcelRow = _plain(Parcel)
CodeRow = _plain(PickupCode)

_SQL_TYPES: dict[tuple[str, str], str] = {}


def sql_type(column) -> str:
    key = (column.table.name, column.name)
    found = _SQL_TYPES.get(key)
    if found is None:
        from sqlalchemy.dialects import postgresql
        found = _SQL_TYPES[key] = column.type.compile(dialect=postgresql.dialect())
    return found


_STATEMENTS: dict[tuple, Any] = {}


def _cached(key: tuple, build):
    """SQL text built once per shape: the driver and the server then see the same statement every batch."""
    stmt = _STATEMENTS.get(key)
    if stmt is None:
        stmt = _STATEMENTS[key] = build()
    return stmt


def write_rows(session: Session, rows: Iterable[PlainRow], *, keep_new: bool) -> int:
    """Write the changed and the new rows among `rows`; returns how many were written.

    Changed rows go out, per table, as one `UPDATE … FROM json_to_recordset(…)` on PostgreSQL that sets
    in each row only the columns that row changed (as the unit of work would), after locking the rows in
    primary-key order (so two batches of one station cannot deadlock); elsewhere one executemany per
    shape of change. New rows are inserted in one statement per table, or, with `keep_new` (more changes
    may follow in the same transaction), one by one, reading their keys back.
    """
    pg = session.get_bind().dialect.name == "postgresql"
    changed: dict[type, list[tuple[PlainRow, tuple[str, ...]]]] = {}
    new: dict[type, list[PlainRow]] = {}
    seen: set[int] = set()
    for row in rows:
        if id(row) in seen:
            continue
        seen.add(id(row))
        if row._orig is None:
            new.setdefault(type(row), []).append(row)
            continue
        names = row.changed()
        if names:
            changed.setdefault(type(row), []).append((row, names))
    written = 0
    for cls, found in changed.items():
        if pg:
            _update_pg(session, cls, found)
        else:
            _update_portable(session, cls, found)
        for row, _ in found:
            row.mark_stored()
        written += len(found)
    for cls, objs in new.items():
        _insert(session, cls, objs, keep_new=keep_new, pg=pg)
        written += len(objs)
    return written


def _update_pg(session: Session, cls: type[PlainRow], found: list[tuple[PlainRow, tuple[str, ...]]]) -> None:
    table, keys = cls.table, cls.keys
    cols = sorted({k for _, names in found for k in names if k not in keys})
    bit = {name: 1 << i for i, name in enumerate(cols)}
    rows = [{**{k: getattr(o, k) for k in keys}, **{k: getattr(o, k) for k in cols},
             "jc_mask": sum(bit[k] for k in names if k in bit)} for o, names in found]
    rows.sort(key=lambda r: tuple(r[k] for k in keys))
    try:
        doc = orjson.dumps(rows).decode("utf-8")
    except orjson.JSONEncodeError:
        # values orjson cannot write (integers beyond 64 bits, lone surrogates): row by row
        _update_portable(session, cls, found)
        return

    def build():
        # psycopg parameters (pg_rows)
        source = (f"json_to_recordset(CAST(%(rows)s AS json)) AS u("
                  f"{', '.join(f'{name} {sql_type(table.c[name])}' for name in (*keys, *cols))}, jc_mask bigint)")
        match = " AND ".join(f"t.{name} = u.{name}" for name in keys)
        if len(keys) == 1:
            # the key list as an array too: the rows are then found through the key's index whatever the
            # planner guesses of the JSON's row count or the table's size (a join on the recordset alone
            # took a hash join over a whole table scan while the statistics lagged the table's growth)
            match += f" AND t.{keys[0]} = ANY(CAST(%(keys)s AS {sql_type(table.c[keys[0]])}[]))"
        sets = ", ".join(f"{name} = CASE WHEN u.jc_mask & {bit[name]} <> 0 THEN u.{name} ELSE t.{name} END"
                         for name in cols)
        # one statement: the count over the locking CTE is an init plan, run to the end before the update
        # reads its first row, so every row is locked first, in key order (the sort comes before the locks)
        return (f"WITH locked AS MATERIALIZED (SELECT 1 FROM {table.name} AS t JOIN {source} ON {match} "
                f"ORDER BY {', '.join(f't.{k}' for k in keys)} FOR UPDATE OF t) "
                f"UPDATE {table.name} AS t SET {sets} FROM {source} WHERE {match} "
                f"AND (SELECT count(*) FROM locked) >= 0")

    params: dict[str, Any] = {"rows": doc}
    if len(keys) == 1:
        params["keys"] = [r[keys[0]] for r in rows]
    pg_rows(session, _cached(("update", table.name, tuple(cols)), build), params)


def _update_portable(session: Session, cls: type[PlainRow], found: list[tuple[PlainRow, tuple[str, ...]]]) -> None:
    table, keys = cls.table, cls.keys
    shapes: dict[tuple[str, ...], list[PlainRow]] = {}
    for row, names in found:
        shapes.setdefault(tuple(n for n in names if n not in keys), []).append(row)
    # primary-key order, as the unit of work updates, so concurrent writers take row locks alike
    for names, objs in shapes.items():
        objs.sort(key=lambda o: tuple(getattr(o, k) for k in keys))
        # noqa below: _cached calls the builder at once, within this iteration
        stmt = _cached(("update-portable", table.name, names), lambda: table.update().where(
            and_(*(table.c[k] == bindparam(f"k_{k}") for k in keys))).values(
            {name: bindparam(f"v_{name}") for name in names}))  # noqa: B023
        session.execute(stmt, [{**{f"k_{k}": getattr(o, k) for k in keys},
                                **{f"v_{n}": getattr(o, n) for n in names}} for o in objs])


def _insert(session: Session, cls: type[PlainRow], objs: list[PlainRow], *, keep_new: bool, pg: bool) -> None:
    table = cls.table
    auto = [c.name for c in table.primary_key.columns if c.autoincrement is not False and len(cls.keys) == 1]
    names = [n for n in cls.cols if not (n in auto and all(getattr(o, n) is None for o in objs))]
    if keep_new:
        for o in objs:
            stmt = insert(table).values({n: getattr(o, n) for n in names})
            if auto:
                stmt = stmt.returning(table.c[auto[0]])
                object.__setattr__(o, auto[0], session.execute(stmt).scalar_one())
            else:
                session.execute(stmt)
            o.mark_stored()
        return
    rows: list[dict[str, Any]] | None = [{n: getattr(o, n) for n in names} for o in objs]
    if pg:
        try:
            doc = orjson.dumps(rows).decode("utf-8")
        except orjson.JSONEncodeError:
            doc = None
        if doc is not None:
            stmt = _cached(("insert", table.name, tuple(names)), lambda: (
                f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {', '.join(names)} FROM json_to_recordset("
                f"CAST(%(rows)s AS json)) AS u({', '.join(f'{n} {sql_type(table.c[n])}' for n in names)})"))
            pg_rows(session, stmt, {"rows": doc})
            rows = None
    if rows is not None:
        session.execute(insert(table), rows)
    # keys not read back: these rows are written, and the batch that made them is over
    for o in objs:
        o._orig = ()
