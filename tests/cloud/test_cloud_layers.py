"""The cloud's layering: no import cycle (TYPE_CHECKING ones included), and one resolver of who is calling."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import update

import cloud
from cloud.models import User
from cloudkit import ADMIN, OTHER, STATION, STATION_KEY, add_user, admin_headers, gw, login
from importgraph import cycles, import_graph

CLOUD = Path(cloud.__file__).resolve().parent
ROOT = CLOUD.parent


def test_no_import_cycle_in_the_cloud():
    assert cycles(import_graph(CLOUD)) == []


def test_every_cloud_module_imports_on_its_own():
    """Each module imported first, into an interpreter with no other cloud module loaded."""
    names = sorted(p.stem for p in CLOUD.glob("*.py") if p.stem != "__init__")
    script = (
        "import importlib, sys\n"
        f"failed = []\nfor name in {names!r}:\n"
        "    for m in [m for m in sys.modules if m == 'cloud' or m.startswith('cloud.')]:\n"
        "        del sys.modules[m]\n"
        "    try:\n        importlib.import_module('cloud.' + name)\n"
        "    except Exception as exc:\n        failed.append(f'{name}: {exc!r}')\n"
        "print('\\n'.join(failed))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_principal_and_auth_stay_light():
    """The principal is a plain value; resolving callers pulls in neither the ingestor nor the reads."""
    script = ("import sys\nimport cloud.principal\n"
              "print(sorted(m for m in ('fastapi', 'sqlalchemy', 'pydantic') if m in sys.modules))\n"
              "import cloud.auth\n"
              "print(sorted(m for m in ('cloud.ingest', 'cloud.lookups', 'cloud.app') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[]", "[]"]


def test_every_path_gives_a_caller_the_same_verdict(cloud):
    """A sync route (`allow`), an async route (`authorize`) and a staff page resolve each caller alike."""
    c = cloud.client
    add_user(c, "ops-li", "maintenance")
    add_user(c, "county-wang", "county_official")
    add_user(c, "left-the-job", "maintenance")
    stale = login(c, "left-the-job")
    with c.app.state.sessionmaker() as session:
        session.execute(update(User).where(User.username == "left-the-job").values(active=False))
        session.commit()
    client = c.post("/api/v1/carriers/YTO/clients", json={"name": "yto-api"}, headers=admin_headers()).json()
    ops_token = login(c, "ops-li")["Authorization"].split()[1]

    callers = {
        "nobody": ({}, {}, "401"),
        "admin token": ({"Authorization": f"Bearer {ADMIN}"}, {}, "ok"),
        "maintenance JWT": (login(c, "ops-li"), {}, "ok"),
        "maintenance cookie": ({}, {"jc_staff": ops_token}, "ok"),
        "county JWT": (login(c, "county-wang"), {}, "ok"),
        "disabled user": (stale, {}, "401"),
        "forged JWT": ({"Authorization": f"Bearer {ops_token[:-4]}AAAA"}, {}, "401"),
        "station key": ({"Authorization": f"Bearer {STATION_KEY}"}, {}, "403"),
        "carrier key": ({"Authorization": f"Bearer {client['api_key']}"}, {}, "403"),
        "unknown key": ({"Authorization": "Bearer not-a-key-of-anyone"}, {}, "401"),
    }
    for who, (headers, cookies, want) in callers.items():
        c.cookies.clear()
        c.cookies.update(cookies)
        sync = c.get("/api/v1/stations", headers=headers).status_code
        async_ = c.get("/api/v1/parcels/no-such-ref", headers=headers).status_code
        page = c.get("/", headers=headers, follow_redirects=False).status_code
        verdict = {200: "ok", 404: "ok"}
        assert verdict.get(sync, str(sync)) == want, (who, "sync", sync)
        assert verdict.get(async_, str(async_)) == want, (who, "async", async_)
        # a page cannot answer 401/403 to a browser: it sends the visitor to the login form
        assert page == (200 if want == "ok" else 303), (who, "page", page)
    c.cookies.clear()


def test_the_page_and_the_api_acknowledge_an_alarm_alike(cloud):
    """One maintenance module behind both: the same station scope and the same audit line."""
    c = cloud.client
    report = {"locker": "l1", "c": 3, "phone": "13800138000", "text": "3号格口打不开", "at": 1764355300}
    resp = cloud.ingest([gw(1, "fault_report", report), gw(2, "fault_report", {**report, "c": 4})])
    assert [r["status"] for r in resp.json()["results"]] == ["applied", "applied"]
    first, second = sorted(a["id"] for a in cloud.admin_get("/api/v1/alarms", station=STATION))
    add_user(c, "agent-dong", "station_agent", station_id=OTHER)
    other_agent = login(c, "agent-dong")

    # an agent of another station can acknowledge neither through the API nor through the page
    assert c.post(f"/api/v1/alarms/{first}/ack", headers=other_agent).status_code == 404
    assert c.post(f"/ops/alarms/{second}/ack", headers=other_agent, follow_redirects=False).status_code == 303
    assert len(cloud.admin_get("/api/v1/alarms", station=STATION)) == 2

    assert c.post(f"/api/v1/alarms/{first}/ack", headers=admin_headers()).status_code == 200
    assert c.post(f"/ops/alarms/{second}/ack", headers=admin_headers(), follow_redirects=False).status_code == 303
    assert cloud.admin_get("/api/v1/alarms", station=STATION) == []
    acks = [e for e in cloud.admin_get("/api/v1/audit") if e["action"] == "alarm_ack"]
    assert sorted(e["target"].rsplit("/", 1)[1] for e in acks) == sorted([str(first), str(second)])
    assert [e["detail"] for e in acks] == [{"kind": "fault_report"}] * 2
