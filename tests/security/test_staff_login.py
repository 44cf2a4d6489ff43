"""Outsider against staff logins: guessing one password, spraying many names, locking a colleague out."""

import httpx
from seckit import CLOUD_ADMIN

from cloud.guards import LOGIN_BY_ADDR, LOGIN_BY_NAME
from cloud.ratelimit import lockout_left


def client(url: str, addr: str = "127.0.0.1") -> httpx.Client:
    return httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(local_address=addr))


def login(http: httpx.Client, name: str, password: str) -> httpx.Response:
    return http.post("/api/v1/auth/login", data={"username": name, "password": password})


def test_guessing_locks_the_name_briefly_and_nobody_else(cloud_proc):
    with client(cloud_proc.url) as http:
        for name in ("ops-li", "ops-zhao"):
            r = http.post("/api/v1/users", headers={"Authorization": f"Bearer {CLOUD_ADMIN}"}, json={
                "username": name, "display_name": name, "password": f"right-{name}-pw", "role": "maintenance"})
            assert r.status_code == 201, r.text
        n = LOGIN_BY_NAME["fails"]
        codes = [login(http, "ops-li", f"guess-{i}").status_code for i in range(n + 2)]
        assert codes == [401] * n + [429] * 2
        r = login(http, "ops-li", "right-ops-li-pw")
        assert r.status_code == 429, "the right password waits out the lockout"
        assert 0 < int(r.headers["Retry-After"]) <= LOGIN_BY_NAME["first_s"], "the lockout is short"
        assert login(http, "ops-zhao", "right-ops-zhao-pw").status_code == 200, "only the guessed name is locked"
        # the web form shares the lockout
        r = http.post("/login", data={"username": "ops-li", "password": "right-ops-li-pw"}, follow_redirects=False)
        assert r.status_code == 429


def test_a_spray_of_names_is_limited_per_address(cloud_proc):
    n = LOGIN_BY_ADDR["fails"]
    with client(cloud_proc.url, "127.0.0.3") as sprayer, client(cloud_proc.url) as office:
        codes = [login(sprayer, f"user{i}", "Winter2026!").status_code for i in range(n + 3)]
        assert codes == [401] * n + [429] * 3
        r = office.post("/api/v1/users", headers={"Authorization": f"Bearer {CLOUD_ADMIN}"}, json={
            "username": "ops-wu", "display_name": "wu", "password": "right-ops-wu-pw", "role": "maintenance"})
        assert r.status_code == 201
        assert login(office, "ops-wu", "right-ops-wu-pw").status_code == 200, "other addresses log in"
        assert login(sprayer, "ops-wu", "right-ops-wu-pw").status_code == 429
        counters = office.get("/api/v1/health").json()["counters"]
    assert counters["login_failures"] == n and counters["login_locked"] >= 4


def test_lockouts_double_and_stay_short():
    times = [float(i) for i in range(5)]
    assert lockout_left(times, 10.0, fails=5, first_s=60, max_s=960) == 54.0
    times += [100.0 + i for i in range(5)]
    assert lockout_left(times, 110.0, fails=5, first_s=60, max_s=960) == 114.0  # 120 s from the 10th failure
    times = [float(i) for i in range(5 * 10)]
    assert lockout_left(times, 49.0, fails=5, first_s=60, max_s=960) == 960.0, "capped at 16 minutes"
