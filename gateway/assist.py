"""The station's door-to-door list: villagers who asked for their parcels to be brought to their door.

Two sources, one list: the phones written into station.json (`terminal.assist_phones`, the agent's own list)
and the choices villagers make on their phone page, which the cloud sends down as `assist` commands (§5.2) and
the station keeps in its database (table `assist`), so the list holds through days without the uplink. A
villager's own choice wins over the written list: one who said "no" is off it.
"""

from __future__ import annotations

import sqlite3
import time

from .stationdb import Outbox


def choose_in_tx(conn: sqlite3.Connection, phone: str, door_help: bool, at: float | None = None) -> None:
    """Keep one villager's choice (the latest wins)."""
    conn.execute("INSERT INTO assist (phone, door_help, at) VALUES (?,?,?) ON CONFLICT(phone) DO UPDATE SET "
                 "door_help=excluded.door_help, at=excluded.at WHERE excluded.at >= assist.at",
                 (phone, int(door_help), time.time() if at is None else at))


async def choose(outbox: Outbox, phone: str, door_help: bool, at: float | None = None) -> None:
    """Keep one villager's choice, in its own transaction."""
    await outbox.run(lambda conn: choose_in_tx(conn, phone, door_help, at))


async def phones(outbox: Outbox, written: list[str]) -> set[str]:
    """The phones on the door-to-door list now."""
    rows = await outbox.query(lambda conn: conn.execute("SELECT phone, door_help FROM assist").fetchall())
    chosen = dict(rows)
    return {p for p in written if chosen.get(p, 1)} | {p for p, on in chosen.items() if on}
