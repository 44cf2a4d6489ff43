"""Courier against the station terminal: guessing another user's PIN, spraying names, evicting sessions."""

import httpx
import pytest

from gateway.terminal import SESSIONS_PER_USER, hash_pin
from gwkit import RunningGateway, free_port, make_config

ITS = 20_000  # a cheaper hash than the default keeps the test short; the rule is the same


@pytest.fixture
async def term(station, tmp_path):
    _, broker = station
    port = free_port()
    top = {"terminal": {"users": [
        {"id": "c-wang", "name": "王师傅", "role": "courier", "carrier": "中通",
         "pin_hash": hash_pin("246810", iterations=ITS)},
        {"id": "a-li", "name": "李大姐", "role": "agent", "pin_hash": hash_pin("735190", iterations=ITS)}]}}
    rg = RunningGateway(make_config(tmp_path, broker.port, top=top, http={"port": port}))
    await rg.start()
    rg.url = f"http://127.0.0.1:{port}/api/v1/terminal"
    try:
        yield rg
    finally:
        await rg.close()


def client(rg, addr: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTP client whose connections come from `addr` (any 127.x address reaches the gateway)."""
    return httpx.AsyncClient(base_url=rg.url, transport=httpx.AsyncHTTPTransport(local_address=addr))


async def login(http, user, pin):
    return await http.post("/login", json={"user": user, "pin": pin})


async def test_own_logins_between_guesses_do_not_reset_the_victims_lockout(term):
    async with client(term) as http:
        codes = []
        for guess in range(100000, 100008):
            assert (await login(http, "c-wang", "246810")).status_code == 200  # the courier's own PIN
            codes.append((await login(http, "a-li", str(guess))).status_code)
        assert codes == [401] * 5 + [429] * 3
        r = await login(http, "a-li", "735190")
        assert r.status_code == 429 and r.json()["detail"]["scope"] == "user", "right PIN refused during the lockout"
        assert 0 < r.json()["detail"]["secs"] <= 60
        assert (await login(http, "c-wang", "246810")).status_code == 200, "only the guessed user is locked"
    snap = term.gw.counters.snapshot()
    assert snap["pin_failures"] == 5 and snap["pin_locked"] == 4


async def test_a_spray_of_names_locks_the_address_not_the_station(term):
    async with client(term, "127.0.0.2") as sprayer, client(term) as desk:
        codes = [(await login(sprayer, f"u{i}", "000000")).status_code for i in range(22)]
        assert codes == [401] * 20 + [429] * 2
        r = await login(sprayer, "c-wang", "246810")
        assert r.status_code == 429 and r.json()["detail"]["scope"] == "address"
        assert (await login(desk, "c-wang", "246810")).status_code == 200, "the station's own terminal still works"


async def test_logins_never_evict_another_users_session(term):
    async with client(term) as http:
        agent = (await login(http, "a-li", "735190")).json()["token"]
        for _ in range(70):
            assert (await login(http, "c-wang", "246810")).status_code == 200
        r = await http.get("/parcels", headers={"Authorization": f"Bearer {agent}"})
        assert r.status_code == 200, "the agent's session survived the courier's logins"
        assert sum(u.id == "c-wang" for u, _ in term.gw.sessions._s.values()) == SESSIONS_PER_USER


async def test_short_pins_are_refused(term):
    async with client(term) as http:
        assert (await login(http, "c-wang", "2468")).status_code == 422
    with pytest.raises(ValueError):
        hash_pin("4821")
