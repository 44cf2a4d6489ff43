"""Station enrollment tokens: issued by an admin, stored hashed, single use, expiring."""

from __future__ import annotations

import hashlib
import time

from cloudkit import STATION, STATION_KEY, admin_headers, register
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cloud.models import AuditEntry, EnrollToken
from cloud.storage import make_engine

CONSENT = "/api/v1/gateway/recipients/13800000001/consent"


def _issue(cloud, station=STATION, **body):
    return cloud.client.post(f"/api/v1/admin/stations/{station}/enroll-token", headers=admin_headers(), json=body)


def _redeem(cloud, token):
    return cloud.client.post("/api/v1/enroll", json={"token": token})


def test_only_an_admin_issues_and_only_the_hash_is_kept(cloud):
    path = f"/api/v1/admin/stations/{STATION}/enroll-token"
    assert cloud.client.post(path, json={}).status_code == 401
    assert cloud.client.post(path, json={}, headers={"Authorization": f"Bearer {STATION_KEY}"}).status_code == 403
    assert _issue(cloud, "no-such-station").status_code == 404
    assert _issue(cloud, ttl_s=30).status_code == 422
    got = _issue(cloud, ttl_s=3600)
    assert got.status_code == 201, got.text
    token = got.json()["token"]
    assert abs(got.json()["expires_at"] - (time.time() + 3600)) < 60
    engine = make_engine(cloud.settings.database_url)
    try:
        with Session(engine) as s:
            row = s.scalar(select(EnrollToken))
            assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
            assert token not in repr([getattr(row, c) for c in ("token_hash", "issued_by", "station_id")])
            actions = s.scalars(select(AuditEntry.action).where(AuditEntry.target == STATION)).all()
            assert actions == ["station_created", "enroll_token"]
    finally:
        engine.dispose()


def test_redeem_once_gives_identity_lockers_and_a_new_key(cloud):
    token = _issue(cloud).json()["token"]
    assert cloud.client.get(CONSENT, headers={"Authorization": f"Bearer {STATION_KEY}"}).status_code == 200
    got = _redeem(cloud, token)
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["station"] == {"id": STATION, "name": "冯家村便民店", "kind": "village_shop"}
    assert [(lk["id"], len(lk["comps"])) for lk in body["lockers"]] == [("l1", 6), ("l2", 4)]
    assert body["couriers"] == []
    new_key = body["api_key"]
    assert len(new_key) >= 40
    assert cloud.client.get(CONSENT, headers={"Authorization": f"Bearer {new_key}"}).status_code == 200
    assert cloud.client.get(CONSENT, headers={"Authorization": f"Bearer {STATION_KEY}"}).status_code in (401, 403)
    again = _redeem(cloud, token)
    assert again.status_code == 403 and "used already" in again.json()["detail"]
    assert _redeem(cloud, "x" * 32).status_code == 403
    assert _redeem(cloud, "short").status_code == 422


def test_expired_and_withdrawn_tokens_are_refused(cloud):
    first = _issue(cloud).json()["token"]
    second = _issue(cloud).json()["token"]
    assert "expired" in _redeem(cloud, first).json()["detail"]  # a new token withdraws the earlier one
    engine = make_engine(cloud.settings.database_url)
    try:
        with Session(engine) as s:
            s.execute(update(EnrollToken).values(expires_at=time.time() - 1))
            s.commit()
    finally:
        engine.dispose()
    late = _redeem(cloud, second)
    assert late.status_code == 403 and "expired" in late.json()["detail"]


def test_a_station_without_lockers_keeps_its_token(cloud):
    register(cloud.client, "lz-new-03", "new-station-key-000003", "新站", {})
    token = _issue(cloud, "lz-new-03").json()["token"]
    early = _redeem(cloud, token)
    assert early.status_code == 409 and "no lockers" in early.json()["detail"]
    register_locker = cloud.client.post("/api/v1/admin/stations/lz-new-03/lockers", headers=admin_headers(),
                                        json={"id": "l1", "comps": [{"n": 1, "size": "M"}]})
    assert register_locker.status_code == 201
    assert _redeem(cloud, token).status_code == 200
