"""Staff log in with passwords and get JWTs; every route checks the role (SQLite and PostgreSQL)."""

from __future__ import annotations

from cloudkit import STATION, STATION_KEY, add_user, admin_headers, login


def test_login_roles_and_permissions(cloud):
    c = cloud.client
    add_user(c, "ops-li", "maintenance")
    add_user(c, "county-wang", "county_official")
    add_user(c, "agent-zhao", "station_agent", station_id=STATION)
    ops, county, agent = login(c, "ops-li"), login(c, "county-wang"), login(c, "agent-zhao")

    assert c.get("/api/v1/auth/me", headers=ops).json()["role"] == "maintenance"
    # county officials read statistics but may not open doors; maintenance is the other way round
    assert c.get("/api/v1/stats/coverage", headers=county).status_code == 200
    assert c.get("/api/v1/stats/coverage", headers=ops).status_code == 403
    body = {"station": STATION, "op": "open", "locker": "l1", "c": 2, "reason": "door stuck"}
    assert c.post("/api/v1/commands", json=body, headers=county).status_code == 403
    assert c.post("/api/v1/commands", json=body, headers=agent).status_code == 403
    assert c.post("/api/v1/commands", json=body, headers=ops).status_code == 201
    # only admins create users; a station key is no staff credential
    assert c.post("/api/v1/users", headers=ops, json={"username": "x-y-z", "display_name": "x",
                                                      "password": "p" * 12, "role": "admin"}).status_code == 403
    assert c.get("/api/v1/stats/coverage", headers={"Authorization": f"Bearer {STATION_KEY}"}).status_code == 403
    assert c.get("/api/v1/stats/coverage").status_code == 401


def test_wrong_password_forged_token_and_disabled_user(cloud):
    c = cloud.client
    add_user(c, "ops-li", "maintenance")
    resp = c.post("/api/v1/auth/login", data={"username": "ops-li", "password": "wrong-password"})
    assert resp.status_code == 401
    assert c.post("/api/v1/auth/login", data={"username": "nobody", "password": "x"}).status_code == 401
    token = login(c, "ops-li")["Authorization"].split()[1]
    head, payload, sig = token.split(".")
    forged = f"{head}.{payload}.{sig[:-4]}AAAA"
    assert c.get("/api/v1/alarms", headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    # a token stays bound to an active account
    from sqlalchemy import update

    from cloud.models import User
    with c.app.state.sessionmaker() as session:
        session.execute(update(User).where(User.username == "ops-li").values(active=False))
        session.commit()
    assert c.get("/api/v1/alarms", headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_login_attempts_are_rate_limited(cloud):
    c = cloud.client
    add_user(c, "ops-li", "maintenance")
    codes = [c.post("/api/v1/auth/login", data={"username": "ops-li", "password": "nope"}).status_code
             for _ in range(7)]
    assert codes == [401] * 5 + [429] * 2
    # even the right password waits out the lockout (a minute, doubling: cloud/guards.py)
    assert c.post("/api/v1/auth/login", data={"username": "ops-li", "password": "correct-horse-battery"}
                  ).status_code == 429


def test_user_validation(cloud):
    c = cloud.client
    bad = [{"username": "a", "display_name": "a", "password": "p" * 12, "role": "admin"},
           {"username": "abc", "display_name": "a", "password": "short", "role": "admin"},
           {"username": "abc", "display_name": "a", "password": "p" * 12, "role": "emperor"},
           {"username": "abc", "display_name": "a", "password": "p" * 12, "role": "station_agent"},
           {"username": "abc", "display_name": "a" * 65, "password": "p" * 12, "role": "admin"}]
    for body in bad:
        assert c.post("/api/v1/users", json=body, headers=admin_headers()).status_code == 422, body
    add_user(c, "abc", "admin")
    again = c.post("/api/v1/users", json={"username": "abc", "display_name": "a", "password": "p" * 12,
                                          "role": "admin"}, headers=admin_headers())
    assert again.status_code == 409
