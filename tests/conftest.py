"""Shared fixtures: real Mosquitto brokers and real PostgreSQL databases, each started per test and cleaned up."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from simulator.net import free_port, wait_port  # noqa: F401 - re-exported for tests
from simulator.procs import stop_process

from screens import SCREENSHOTS

REPO = Path(__file__).resolve().parent.parent
VECTORS = REPO / "tests" / "vectors"
MICROPYTHON = shutil.which("micropython") or str(REPO / ".venv" / "bin" / "micropython")


@dataclass
class Broker:
    """A Mosquitto broker started for one test."""

    host: str
    port: int
    workdir: Path
    conf: Path
    proc: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.workdir / "mosquitto.log"

    def start(self) -> None:
        """Start (or restart) the broker in the foreground and wait for its port."""
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_port(self.host, self.port)

    def stop(self) -> None:
        """Stop the broker cleanly, so a persistent one saves its state."""
        stop_process(self.proc, 10)
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port and config."""
        self.stop()
        self.start()


@pytest.fixture
def mosquitto_factory(tmp_path):
    """Start Mosquitto brokers from a config body; `listener` and `persistence_location` are added here."""
    if not shutil.which("mosquitto"):
        pytest.fail("mosquitto is not installed: run `make test`, which installs it")
    started: list[Broker] = []

    def make(body: str = "allow_anonymous true\n", *, name: str = "broker") -> Broker:
        workdir = tmp_path / f"{name}-{len(started)}"
        workdir.mkdir()
        port = free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\n"
            f"persistence_location {workdir}/\n"
            + body.replace("{workdir}", str(workdir))
        )
        broker = Broker("127.0.0.1", port, workdir, conf)
        broker.start()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def mosquitto(mosquitto_factory) -> Broker:
    """An anonymous Mosquitto broker on a free port."""
    return mosquitto_factory()


PG_ADMIN_URL = os.environ.get("JINCUN_TEST_PG", "postgresql+psycopg://jincun:jincun@127.0.0.1:5432/postgres")


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    sqlalchemy = pytest.importorskip("sqlalchemy")
    name = f"jincun_t_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001 - a missing server must fail loudly, not skip
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """Every cloud test that takes this runs twice: on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/cloud.db"
    return request.getfixturevalue("pg_url")


_RUN_STARTED = time.time()


def pytest_terminal_summary(terminalreporter):
    """Say where the screenshots of this run are, so a reviewer can look at the pages."""
    if not SCREENSHOTS.is_dir():
        return
    new = [p for p in SCREENSHOTS.glob("*.png") if p.stat().st_mtime >= _RUN_STARTED]
    if new:
        terminalreporter.write_sep("-", "screenshots")
        terminalreporter.write_line(f"{len(new)} screenshots of the pages in {SCREENSHOTS}")
