"""Downlink (§5.2, §5.3): authorised, rate-limited, audited commands long-polled by the gateway."""

from __future__ import annotations

import threading
import time

from cloudkit import OTHER_KEY, STATION, add_user, admin_headers, gw_headers, login

OPEN = {"station": STATION, "op": "open", "locker": "l1", "c": 3, "reason": "door stuck"}


def test_remote_open_reaches_the_gateway_and_is_acked_once(cloud):
    c = cloud.client
    add_user(c, "ops-li", "maintenance")
    ops = login(c, "ops-li")
    resp = c.post("/api/v1/commands", json=OPEN, headers=ops)
    assert resp.status_code == 201, resp.text
    cmd_id = resp.json()["cmd_id"]

    page = c.get("/api/v1/gateway/commands", params={"after": 0, "wait": 5}, headers=gw_headers()).json()
    assert len(page["commands"]) == 1
    cmd = page["commands"][0]
    assert (cmd["id"], cmd["op"], cmd["locker"], cmd["c"], cmd["by"], cmd["why"]) == \
        (cmd_id, "open", "l1", 3, "ops-li", "door stuck")
    assert cmd["expires_at"] > cmd["issued_at"] and page["cursor"] == cmd["cursor"]
    # another station's gateway sees nothing of it and cannot ack it
    other = c.get("/api/v1/gateway/commands", params={"after": 0}, headers=gw_headers(OTHER_KEY)).json()
    assert other["commands"] == []
    assert c.post(f"/api/v1/gateway/commands/{cmd_id}/ack", json={"ok": True},
                  headers=gw_headers(OTHER_KEY)).status_code == 404

    first = c.post(f"/api/v1/gateway/commands/{cmd_id}/ack", json={"ok": True, "at": 1764355203},
                   headers=gw_headers())
    assert first.json() == {"id": cmd_id, "status": "done", "ok": True, "err": None}
    again = c.post(f"/api/v1/gateway/commands/{cmd_id}/ack", json={"ok": False, "err": "busy"}, headers=gw_headers())
    assert again.json() == first.json()
    # an acknowledged command is not handed out again
    assert c.get("/api/v1/gateway/commands", params={"after": 0}, headers=gw_headers()).json()["commands"] == []
    listed = c.get("/api/v1/commands", params={"station": STATION}, headers=ops).json()
    assert listed[0]["status"] == "done" and listed[0]["ack_at"] == 1764355203
    audit = c.get("/api/v1/audit", headers=admin_headers()).json()
    assert any(a["action"] == "command_open" and a["actor"] == "ops-li" and a["reason"] == "door stuck"
               for a in audit)


def test_remote_open_needs_reason_and_a_real_target(cloud):
    c = cloud.client
    add_user(c, "ops-li", "maintenance")
    ops = login(c, "ops-li")
    for body, code in ((dict(OPEN, reason=None), 422), (dict(OPEN, reason="   "), 422),
                       (dict(OPEN, locker="l9"), 422),            # l9 belongs to the other station
                       (dict(OPEN, c=30), 422), (dict(OPEN, station="nowhere"), 404),
                       (dict(OPEN, reason="x" * 201), 422), (dict(OPEN, c="three"), 422)):
        assert c.post("/api/v1/commands", json=body, headers=ops).status_code == code, body


def test_remote_open_rate_limit_and_audit(cloud):
    c = cloud.client
    add_user(c, "ops-li", "maintenance")
    ops = login(c, "ops-li")
    codes = [c.post("/api/v1/commands", json=dict(OPEN, c=n), headers=ops).status_code for n in (1, 2, 3, 4)]
    assert codes == [201, 201, 201, 429]
    audit = c.get("/api/v1/audit", headers=admin_headers()).json()
    assert [a["action"] for a in audit].count("open_refused") == 1
    # a disable is not a remote open and is not held back by that limit
    assert c.post("/api/v1/commands", json=dict(OPEN, op="disable"), headers=ops).status_code == 201


def test_long_poll_waits_and_wakes(cloud):
    c = cloud.client
    add_user(c, "ops-li", "maintenance")
    ops = login(c, "ops-li")
    started = time.monotonic()
    empty = c.get("/api/v1/gateway/commands", params={"after": 0, "wait": 1}, headers=gw_headers())
    assert empty.json() == {"commands": [], "cursor": 0} and time.monotonic() - started >= 0.9

    got = {}

    def poll():
        got["page"] = c.get("/api/v1/gateway/commands", params={"after": 0, "wait": 20},
                            headers=gw_headers()).json()

    t = threading.Thread(target=poll)
    t.start()
    time.sleep(0.5)
    assert c.post("/api/v1/commands", json=dict(OPEN, op="rebirth", c=None, reason=None),
                  headers=ops).status_code == 201
    t.join(15)
    assert not t.is_alive() and got["page"]["commands"][0]["op"] == "rebirth"
    # bad query values are refused, not clamped silently
    assert c.get("/api/v1/gateway/commands", params={"wait": 31}, headers=gw_headers()).status_code == 422
    assert c.get("/api/v1/gateway/commands", params={"after": -1}, headers=gw_headers()).status_code == 422
    assert c.get("/api/v1/gateway/commands", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_firmware_rollout_status(cloud):
    c = cloud.client
    body = {"station": STATION, "op": "fw_rollout", "version": "0.2.0", "url": "https://fw.example/0.2.0.bin",
            "sha256": "a" * 64, "lockers": ["l1", "l2"]}
    resp = c.post("/api/v1/commands", json=body, headers=admin_headers())
    assert resp.status_code == 201
    cmd = c.get("/api/v1/gateway/commands", headers=gw_headers()).json()["commands"][0]
    assert (cmd["op"], cmd["version"], cmd["lockers"]) == ("fw_rollout", "0.2.0", ["l1", "l2"])
    c.post(f"/api/v1/gateway/commands/{cmd['id']}/ack", json={"ok": False, "err": "offline"}, headers=gw_headers())
    rollouts = c.get("/api/v1/commands", params={"op": "fw_rollout"}, headers=admin_headers()).json()
    assert (rollouts[0]["status"], rollouts[0]["ack_err"]) == ("failed", "offline")
    assert c.post("/api/v1/commands", json=dict(body, sha256="xyz"), headers=admin_headers()).status_code == 422
