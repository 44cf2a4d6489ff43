"""The OpenAPI document as Swagger UI reads it: security schemes on every guarded route, one version."""

from __future__ import annotations

import time
import tomllib

from cloudkit import ADMIN

from tests.conftest import REPO

# enrollment authorises by the one-time token in its body, as login does by the password
OPEN = {("/api/v1/health", "get"), ("/api/v1/auth/login", "post"), ("/api/v1/enroll", "post")}


def test_every_guarded_route_declares_how_to_authorise(cloud):
    spec = cloud.client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["staff_cookie"]["in"] == "cookie"
    unguarded = {(path, method) for path, ops in spec["paths"].items() for method, op in ops.items()
                 if not op.get("security")}
    assert unguarded == OPEN
    for path, _method in OPEN:
        assert path in spec["paths"], path
    # what Swagger UI sends after "Authorize" with the admin token is accepted
    guarded = cloud.client.get("/api/v1/admin/ledger", params={"station": "fengjia"},
                               headers={"Authorization": f"Bearer {ADMIN}"})
    assert guarded.status_code == 200
    assert cloud.client.get("/api/v1/admin/ledger", params={"station": "fengjia"}).status_code == 401


def test_one_version_string():
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    from cloud.app import create_app
    from cloud.settings import Settings

    app = create_app(Settings(database_url="sqlite://", admin_token="openapi-version-k7Qp2xW9zR4m"))
    assert app.version == version


def _untyped(schema: dict, spec: dict) -> str | None:
    """Why a JSON response schema says nothing of its fields, or None when it is typed."""
    if not schema:
        return "no schema"
    if "$ref" in schema:
        return None
    if schema.get("type") == "array":
        inner = _untyped(schema.get("items", {}), spec)
        return inner and f"array of {inner}"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return next((why for s in schema[key] if (why := _untyped(s, spec))), None)
    if schema.get("type") == "object" and not schema.get("properties"):
        extra = schema.get("additionalProperties")
        return None if isinstance(extra, dict) and not _untyped(extra, spec) else "object of anything"
    return None


def test_every_success_response_is_typed(cloud):
    """Every 2xx answer in the OpenAPI document has a schema a client can generate code from; a file or a
    page declares its media type instead."""
    spec = cloud.client.get("/openapi.json").json()
    loose = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for code, response in op["responses"].items():
                if not code.startswith("2"):
                    continue
                content = response.get("content")
                if not content:
                    loose.append((path, method, code, "no content"))
                    continue
                for media, body in content.items():
                    if media == "application/json":
                        if why := _untyped(body.get("schema", {}), spec):
                            loose.append((path, method, code, why))
                    elif body.get("schema") != {"type": "string", "format": "binary"} and media != "text/html":
                        loose.append((path, method, code, f"{media} without a binary schema"))
    assert loose == []
    # the statistics files declare what they are, and answer nothing else
    export = spec["paths"]["/api/v1/stats/{name}/export"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


def test_the_untyped_check_sees_a_loose_schema():
    assert _untyped({"type": "array", "items": {"type": "object", "additionalProperties": True}}, {})
    assert _untyped({"type": "object", "additionalProperties": True}, {})
    assert _untyped({}, {})
    assert _untyped({"type": "array", "items": {"$ref": "#/components/schemas/CoverageRow"}}, {}) is None


def test_each_statistics_table_has_its_row_model(cloud):
    from typing import get_args

    from cloud import stats
    from cloud.routes_staff import Table
    from cloud.seed import seed_county
    from cloud.stats_schemas import ROW_MODELS

    assert tuple(ROW_MODELS) == stats.TABLES == get_args(Table)
    spec = cloud.client.get("/openapi.json").json()
    for name, model in ROW_MODELS.items():
        schema = spec["paths"][f"/api/v1/stats/{name}"]["get"]["responses"]["200"]["content"]["application/json"]
        assert schema["schema"]["items"] == {"$ref": f"#/components/schemas/{model.__name__}"}, name

    factory = cloud.client.app.state.sessionmaker
    now = time.time()
    with factory() as session:
        seed_county(session, towns=3, villages=40, parcels_per_station_day=2, days=10, now=now)
        session.commit()
    headers = {"Authorization": f"Bearer {ADMIN}"}
    for name in ROW_MODELS:
        for by in (("village", "town", "carrier") if name == "volumes" else ("town",)):
            got = cloud.client.get(f"/api/v1/stats/{name}", params={"by": by, "days": 10}, headers=headers)
            assert got.status_code == 200, (name, got.text)
            with factory() as session:
                kw = {"by": by, "days": 10} if name == "volumes" else {} if name in ("coverage", "flags") else \
                    {"days": 10}
                want = stats.table(session, name, **kw)
            # every column of the table reaches the client, named and valued as cloud/stats.py made it
            assert got.json() == want, name
            assert want or name == "flags", name
