"""What the carrier, charge and outbound journeys share: a station with its people, a carrier's webhook
receiver, and the calls each person makes (terminal as its page calls it, /m as the phone does, the carrier
API)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from gateway.terminal import hash_pin
from simulator.stack import Stack
from simulator.stack import _door as door_open  # the stack's own reading of a door

PINS = {"c-zto": "246810", "c-sf": "357913", "a-li": "135790"}
# the station file as an older station wrote it: carriers by their Chinese names
TERMINAL = {
    "users": [
        {"id": "c-zto", "name": "王师傅", "role": "courier", "carrier": "中通", "pin_hash": hash_pin(PINS["c-zto"])},
        {"id": "c-sf", "name": "赵师傅", "role": "courier", "carrier": "顺丰", "pin_hash": hash_pin(PINS["c-sf"])},
        {"id": "a-li", "name": "李大姐", "role": "agent", "pin_hash": hash_pin(PINS["a-li"])},
    ],
    "carriers": ["中国邮政", "顺丰", "中通", "圆通"],
}


def station(tmp_path, pg_url) -> Stack:
    """A whole station (firmware under MicroPython, Mosquitto with its ACL, gateway) and a cloud on PostgreSQL."""
    return Stack(tmp_path / "station", broker="mosquitto", database_url=pg_url, terminal=TERMINAL)


class WebhookReceiver:
    """A carrier's webhook endpoint on loopback: keeps every POST whose signature checks out."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.bad: int = 0
        self.secret = ""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                stamp = self.headers.get("X-Jincun-Timestamp", "")
                want = hmac.new(outer.secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
                if hmac.compare_digest(self.headers.get("X-Jincun-Signature", "").removeprefix("sha256="), want):
                    outer.posts.append(json.loads(body))
                else:
                    outer.bad += 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def statuses(self, waybill: str) -> list[str]:
        return [p["status"] for p in self.posts if p.get("waybill") == waybill]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def carrier_client(stack: Stack, code: str, hook: WebhookReceiver | None = None) -> dict:
    """The county admin gives a carrier an API client (with its webhook); returns the key's auth header."""
    r = stack.http.post(f"{stack.cloud_url}/api/v1/carriers/{code}/clients", headers=admin(stack),
                        json={"name": f"{code} system", "webhook_url": hook.url if hook else None})
    assert r.status_code == 201, r.text
    created = r.json()
    if hook is not None:
        hook.secret = created["webhook_secret"]
    return {"Authorization": f"Bearer {created['api_key']}"}


def admin(stack: Stack) -> dict:
    return {"Authorization": f"Bearer {stack.admin_token}"}


def county(stack: Stack, table: str, **params) -> list[dict]:
    """A county statistics table as the county office's export reads it."""
    r = stack.http.get(f"{stack.cloud_url}/api/v1/stats/{table}", params=params, headers=admin(stack))
    assert r.status_code == 200, r.text
    return r.json()


class Terminal:
    """The station terminal as its page calls it, for one logged-in user."""

    def __init__(self, stack: Stack, user: str) -> None:
        self.stack, self.base = stack, f"{stack.gateway_url}/api/v1/terminal"
        r = stack.http.post(f"{self.base}/login", json={"user": user, "pin": PINS[user]})
        assert r.status_code == 200, r.text
        self.auth = {"Authorization": f"Bearer {r.json()['token']}"}

    def get(self, path: str) -> httpx.Response:
        return self.stack.http.get(self.base + path, headers=self.auth)

    def post(self, path: str, body: dict) -> httpx.Response:
        return self.stack.http.post(self.base + path, headers=self.auth, json=body)

    def deposit(self, *, waybill: str, phone: str, size: str = "S") -> dict:
        """A courier's deposit from the page: a door opens, the parcel goes in, the door shuts."""
        r = self.post("/deposit", {"waybill": waybill, "phone": phone, "size": size, "consent_asked": True})
        assert r.status_code == 201, r.text
        d = r.json()
        sim = self.stack.sims[d["locker"]]
        sim.wait_for(lambda s: door_open(s, d["c"]), 15)
        sim.set_occupied(d["c"], True)
        sim.close_door(d["c"])
        self.stack.wait(lambda: self.get(f"/deposit/{d['ref']}").json().get("state") == "deposited", 15,
                        f"deposit {d['ref']}")
        return d


def phone(stack: Stack, number: str) -> httpx.Client:
    """The villager's phone on /m, logged in with the one-time code the SMS brought."""
    client = httpx.Client(base_url=stack.cloud_url, timeout=10)
    r = client.post("/m/otp", data={"phone": number})
    assert r.status_code == 200, r.text
    sms = stack.http.get(f"{stack.cloud_url}/api/v1/notifications", params={"phone": number},
                         headers=admin(stack)).json()
    code = next(m.group(1) for n in sms if (m := re.search(r"验证码\s*(\d{6})", n.get("text", ""))))
    r = client.post("/m/login", data={"phone": number, "code": code}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client
