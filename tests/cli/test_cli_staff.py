"""`jincun cloud station|locker|courier|user add|retire` as a county admin uses them: JSON out, the change in
the cloud's database and its audit log, secrets only hashed, and every mistake one line with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud.models import AuditEntry, Courier, Locker, Station, User
from cloud.storage import make_engine
from jincun.pins import verify_pin
from tests.conftest import REPO


def _cloud(db: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JINCUN_")}
    env.update({"PYTHONPATH": str(REPO), "JINCUN_DATABASE_URL": db, "USER": "wang"})
    return subprocess.run([sys.executable, "-m", "jincun", "cloud", *args], input=stdin, capture_output=True,
                          text=True, timeout=60, env=env, cwd=REPO)


def _json(out: subprocess.CompletedProcess) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path}/cloud.db"


def test_add_and_retire_each_kind(db):
    assert _json(_cloud(db, "station", "add", "lz-xicun-03", "--name", "西村便民店", "--village", "西村",
                        "--town", "临泽镇")) == {"station": "lz-xicun-03", "name": "西村便民店", "kind": "village_shop",
                                                "active": True}
    got = _json(_cloud(db, "locker", "add", "lz-xicun-03", "l1", "--comps", "3S,2M,1L"))
    assert [c["size"] for c in got["comps"]] == ["S", "S", "S", "M", "M", "L"]
    courier = _json(_cloud(db, "courier", "add", "--carrier", "zto", "--name", "王师傅", "--phone", "13900000001",
                           "--station", "lz-xicun-03", "--secrets-stdin", stdin="482913\n"))
    assert courier["carrier"] == "ZTO" and courier["terminal_id"] == f"c{courier['courier']}"
    agent = _json(_cloud(db, "user", "add", "li.agent", "--role", "station_agent", "--name", "李代办", "--station",
                         "lz-xicun-03", "--secrets-stdin", stdin="long-password-1\n246810\n"))
    assert agent["terminal_id"].startswith("a") and agent["station"] == "lz-xicun-03"
    ops = _json(_cloud(db, "user", "add", "ops.zhao", "--role", "maintenance", "--secrets-stdin",
                       stdin="long-password-2\n"))
    assert ops["terminal_id"] is None

    for args in (("courier", "retire", "13900000001"), ("user", "retire", "li.agent"),
                 ("locker", "retire", "lz-xicun-03", "l1"), ("station", "retire", "lz-xicun-03")):
        assert _json(_cloud(db, *args, "--reason", "县里调整"))["active"] is False, args

    engine = make_engine(db)
    try:
        with Session(engine) as s:
            c = s.scalar(select(Courier))
            assert not c.active and verify_pin("482913", c.pin_hash) and "482913" not in c.pin_hash
            u = s.scalar(select(User).where(User.username == "li.agent"))
            assert not u.active and verify_pin("246810", u.pin_hash) and "long-password-1" not in u.password_hash
            assert not s.get(Station, "lz-xicun-03").active and not s.get(Locker, ("lz-xicun-03", "l1")).active
            audit = [(a.actor, a.action) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    finally:
        engine.dispose()
    assert audit == [("cli:wang", a) for a in ("station_created", "locker_added", "courier_added", "user_created",
                                               "user_created", "courier_retired", "user_retired", "locker_retired",
                                               "station_retired")]


MISTAKES = {
    "bad sizes": ((["locker", "add", "lz-a", "l1", "--comps", "3S,2X"]), "", "expected like 6S,4M,2L"),
    "short PIN": ((["courier", "add", "--carrier", "ZTO", "--name", "x", "--phone", "13900000002",
                    "--secrets-stdin"]), "1234\n", "6 to 12 digits"),
    "no PIN on stdin": ((["courier", "add", "--carrier", "ZTO", "--name", "x", "--phone", "13900000002",
                          "--secrets-stdin"]), "", "standard input ended"),
    "unknown station": ((["courier", "add", "--carrier", "ZTO", "--name", "x", "--phone", "13900000002",
                          "--station", "nowhere", "--secrets-stdin"]), "123456\n", "unknown stations"),
    "unknown carrier": ((["courier", "add", "--carrier", "NOPE", "--name", "x", "--phone", "13900000002",
                          "--secrets-stdin"]), "123456\n", "no carrier NOPE"),
    "agent without station": ((["user", "add", "li2", "--role", "station_agent", "--secrets-stdin"]),
                              "long-password-1\n246810\n", "station"),
    "short password": ((["user", "add", "li3", "--role", "maintenance", "--secrets-stdin"]), "short\n", "password"),
    "unknown courier": ((["courier", "retire", "13900000009", "--reason", "x"]), "", "no courier"),
    "retire without reason": ((["station", "retire", "lz-a"]), "", "--reason"),
}


@pytest.mark.parametrize("case", sorted(MISTAKES))
def test_a_mistake_is_one_line_and_exit_2(db, case):
    args, stdin, says = MISTAKES[case]
    out = _cloud(db, *args, stdin=stdin)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip() and not ln.startswith(("usage:", " "))]
    assert len(lines) == 1 and says in lines[0], out.stderr
    assert "Traceback" not in out.stderr and not out.stdout.strip()
