"""The OpenAPI document as Swagger UI reads it: security schemes on every guarded route, one version."""

from __future__ import annotations

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
    for path, method in OPEN:
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
