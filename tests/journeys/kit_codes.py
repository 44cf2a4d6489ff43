"""What the journeys of codes, door-to-door, returns, cancelled deposits and never-delivered parcels share: one
station with two lockers running the real firmware, Mosquitto with the gateway's ACL, the gateway and the cloud
on PostgreSQL; and each person's way in (the terminal's API as its page calls it, the phone page `/m` as a
phone calls it, the carrier API, the county's admin API)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.terminal import hash_pin
from simulator.demo_journeys import (Phone, Terminal, admin, cloud_compartment, commands,  # noqa: F401 (the
                                     compartment, notifications, parcel, refused, sweep)  # ways in, re-exported)
from simulator.stack import Stack

PG_ADMIN_URL = __import__("os").environ.get(
    "JINCUN_TEST_PG", "postgresql+psycopg://jincun:jincun@127.0.0.1:5432/postgres")

AGENT = {"id": "agent1", "name": "王站长", "role": "agent"}
AGENT_PIN = "531864"
YTO_COURIER = {"id": "yto1", "name": "圆通小李", "role": "courier", "carrier": "YTO"}
ZTO_COURIER = {"id": "zto1", "name": "中通小张", "role": "courier", "carrier": "ZTO"}
COURIER_PIN = "742913"


def terminal_users() -> dict:
    """The station's terminal section: the village agent and two carriers' couriers."""
    return {"users": [{**AGENT, "pin_hash": hash_pin(AGENT_PIN)},
                      {**YTO_COURIER, "pin_hash": hash_pin(COURIER_PIN)},
                      {**ZTO_COURIER, "pin_hash": hash_pin(COURIER_PIN)}]}


def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one module's station, dropped afterwards."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    name = f"jincun_j_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - a missing server must fail loudly, not skip
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def station(workdir: Path, database_url: str, lockers: tuple[str, ...] = ("l1",)) -> Stack:
    """The station, started: the journeys' users are in its terminal section."""
    return Stack(workdir, broker="mosquitto", lockers=lockers, database_url=database_url,
                 terminal=terminal_users()).start()


class Receiver:
    """The carrier's webhook endpoint: a real HTTP server that keeps what the cloud posts to it."""

    def __init__(self) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.got: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server naming
                outer.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self, ref: str) -> list[str]:
        return [h["status"] for h in self.got if h.get("ref") == ref]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def carrier_webhook(stack: Stack, carrier: str, url: str | None) -> dict:
    """The county registers the carrier's API client (with its webhook address); its key and secret."""
    r = stack.http.post(f"{stack.cloud_url}/api/v1/carriers/{carrier}/clients", headers=admin(stack),
                        json={"name": f"{carrier.lower()}-api", "webhook_url": url})
    assert r.status_code == 201, r.text
    return r.json()
