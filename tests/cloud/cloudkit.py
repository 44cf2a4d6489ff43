"""Helpers for cloud tests: app wrapper, station registration and ingest item builders."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import count

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from cloud.settings import Settings

ADMIN = "admin-token-for-tests-0123456789"
STATION = "lz-fengjia-01"
STATION_KEY = "fengjia-station-key-0001"
OTHER = "lz-dongcun-02"
OTHER_KEY = "dongcun-station-key-0002"
BOOT = "5f0c3a9e"
GW_BOOT = "a1b2c3d4"


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN}"}


@dataclass
class Cloud:
    """A started cloud app plus helpers to build and send ingest batches."""

    client: TestClient
    settings: Settings
    _batch: count = field(default_factory=lambda: count(1))

    def admin_get(self, path: str, **params):
        resp = self.client.get(path, params=params, headers=admin_headers())
        assert resp.status_code == 200, resp.text
        return resp.json()

    def ingest(self, items: list, *, station: str = STATION, key: str = STATION_KEY, batch: str | None = None):
        body = {"station": station, "batch": batch or f"b-{next(self._batch)}", "items": items}
        return self.client.post("/api/v1/gateway/ingest", json=body, headers={"Authorization": f"Bearer {key}"})

    def counters(self) -> dict[str, int]:
        return self.client.get("/api/v1/health").json()["counters"]


def make_settings(db_url: str, **extra) -> Settings:
    return Settings(database_url=db_url, admin_token=ADMIN, **extra)


def register(client: TestClient, station: str, key: str, name: str, lockers: dict[str, int]) -> None:
    resp = client.post("/api/v1/admin/stations", headers=admin_headers(),
                       json={"id": station, "name": name, "kind": "village_shop", "village": "冯家村",
                             "town": "临泽镇", "api_key": key})
    assert resp.status_code == 201, resp.text
    for locker, n in lockers.items():
        comps = [{"n": i, "size": "SML"[(i - 1) % 3]} for i in range(1, n + 1)]
        resp = client.post(f"/api/v1/admin/stations/{station}/lockers", headers=admin_headers(),
                           json={"id": locker, "comps": comps})
        assert resp.status_code == 201, resp.text


# ---- item builders ---------------------------------------------------------------------------

def evt(seq: int, type_: str, *, src: str = "l1", boot: str = BOOT, ts: int = 1764355260, rx: float | None = None,
        **fields) -> dict:
    body = {"v": 1, "boot": boot, "seq": seq, "ts": ts, "mono": 1000 * seq, "type": type_, **fields}
    return {"src": src, "boot": boot, "seq": seq, "kind": "evt", "rx": rx or 1764355261.0 + seq, "body": body}


def birth(seq: int, comps: list[dict], *, src: str = "l1", boot: str = BOOT, item_seq: int | None = None,
          rx: float = 1764355200.5) -> dict:
    body = {"v": 1, "boot": boot, "fw": "0.1.0", "seq": seq, "ts": 0, "mono": 900, "comps": comps,
            "outbox": 0, "vault": 0}
    return {"src": src, "boot": boot, "seq": seq if item_seq is None else item_seq, "kind": "birth", "rx": rx,
            "body": body}


def empty_comps(n: int) -> list[dict]:
    return [{"n": i, "size": "SML"[(i - 1) % 3], "st": "empty", "door": "closed", "occ": False}
            for i in range(1, n + 1)]


def gw(seq: int, kind: str, body: dict, *, rx: float | None = None) -> dict:
    return {"src": "gw", "boot": GW_BOOT, "seq": seq, "kind": kind, "rx": rx or 1764355250.0 + seq, "body": body}


def parcel_record(seq: int, ref: str, *, c: int = 2, locker: str = "l1", waybill: str = "YT7788990011",
                  carrier: str = "YTO", phone: str = "13800138000") -> dict:
    return gw(seq, "parcel", {"ref": ref, "waybill": waybill, "carrier": carrier, "phone": phone,
                              "locker": locker, "c": c, "size": "M"})


def code_record(seq: int, ref: str, code: str, *, locker: str = "l1", phone: str = "13800138000") -> dict:
    return gw(seq, "code", {"ref": ref, "locker": locker, "phone": phone, "code": code, "exp_ts": 1764960000})


# ---- staff and carrier helpers ---------------------------------------------------------------

PASSWORD = "correct-horse-battery"


def add_user(client: TestClient, username: str, role: str, **extra) -> dict:
    resp = client.post("/api/v1/users", headers=admin_headers(),
                       json={"username": username, "display_name": username, "password": PASSWORD, "role": role,
                             **extra})
    assert resp.status_code == 201, resp.text
    return resp.json()


def login(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    resp = client.post("/api/v1/auth/login", data={"username": username, "password": password})
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def gw_headers(key: str = STATION_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
