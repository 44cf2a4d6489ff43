"""The scripted day's carrier journeys: a terminal deposit meeting the carrier's pre-advice, extra charges
reported on the phone page and at the terminal, and an outbound parcel taken in and collected. Each outcome is
read back from what the system shows (the cloud's parcels, the carrier's webhook, the county's tables)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from jincun import carriers
from simulator.stack import Stack, StackError, _door

# a well-formed resident ID number (its check digit holds), no one's: the demo's outbound sender
DEMO_ID = "11010519491231002X"
SMS_OTP_RE = re.compile(r"验证码\s*(\d{6})")


class WebhookReceiver:
    """A carrier's webhook endpoint on loopback: keeps every POST whose signature checks out."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.bad = 0
        self.secret = ""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
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
        """The statuses the carrier heard for one of its waybills, in order."""
        return [p["status"] for p in self.posts if p.get("waybill") == waybill]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def admin(stack: Stack) -> dict:
    return {"Authorization": f"Bearer {stack.admin_token}"}


def carrier_client(stack: Stack, code: str, hook: WebhookReceiver | None = None) -> dict:
    """The county admin gives a carrier an API client (with its webhook); returns the key's auth header."""
    r = stack.http.post(f"{stack.cloud_url}/api/v1/carriers/{code}/clients", headers=admin(stack),
                        json={"name": f"{code} system", "webhook_url": hook.url if hook else None})
    if r.status_code != 201:
        raise StackError(f"cloud refused the carrier client: {r.status_code} {r.text}")
    created = r.json()
    if hook is not None:
        hook.secret = created["webhook_secret"]
    return {"Authorization": f"Bearer {created['api_key']}"}


def county(stack: Stack, table: str, **params) -> list[dict]:
    """A county statistics table as the county office's export reads it."""
    r = stack.http.get(f"{stack.cloud_url}/api/v1/stats/{table}", params=params, headers=admin(stack))
    return r.json() if r.status_code == 200 else []


class Terminal:
    """The station terminal as its page calls it, for one logged-in user."""

    def __init__(self, stack: Stack, user: str, pin: str) -> None:
        self.stack, self.base = stack, f"{stack.gateway_url}/api/v1/terminal"
        r = stack.http.post(f"{self.base}/login", json={"user": user, "pin": pin})
        if r.status_code != 200:
            raise StackError(f"terminal refused {user}: {r.status_code} {r.text}")
        self.auth = {"Authorization": f"Bearer {r.json()['token']}"}

    def get(self, path: str) -> httpx.Response:
        return self.stack.http.get(self.base + path, headers=self.auth)

    def post(self, path: str, body: dict) -> httpx.Response:
        return self.stack.http.post(self.base + path, headers=self.auth, json=body)

    def deposit(self, *, waybill: str, phone: str, size: str = "S", timeout: float = 15) -> dict:
        """A courier's deposit from the page: a door opens, the parcel goes in, the door shuts."""
        r = self.post("/deposit", {"waybill": waybill, "phone": phone, "size": size, "consent_asked": True})
        if r.status_code != 201:
            raise StackError(f"terminal refused the deposit: {r.status_code} {r.text}")
        d = r.json()
        sim = self.stack.sims[d["locker"]]
        sim.wait_for(lambda s: _door(s, d["c"]), timeout)
        sim.set_occupied(d["c"], True)
        sim.close_door(d["c"])
        self.stack.wait(lambda: self.get(f"/deposit/{d['ref']}").json().get("state") == "deposited", timeout,
                        f"deposit {d['ref']}")
        return d


def phone(stack: Stack, number: str) -> httpx.Client:
    """The villager's phone on /m, logged in with the one-time code the SMS brought."""
    client = httpx.Client(base_url=stack.cloud_url, timeout=10)
    r = client.post("/m/otp", data={"phone": number})
    if r.status_code != 200:
        raise StackError(f"/m refused the code request: {r.status_code}")
    sms = stack.http.get(f"{stack.cloud_url}/api/v1/notifications", params={"phone": number},
                         headers=admin(stack)).json()
    code = next(m.group(1) for n in sms if (m := SMS_OTP_RE.search(n.get("text", ""))))
    r = client.post("/m/login", data={"phone": number, "code": code}, follow_redirects=False)
    if r.status_code != 303:
        raise StackError(f"/m refused the login: {r.status_code}")
    return client


def play(stack: Stack, *, courier: tuple[str, str], agent: tuple[str, str], carrier: str) -> dict[str, Any]:
    """Play the three journeys with the demo's courier of `carrier` and its agent ((user, PIN) each); return
    `charges_reported` and `journeys` (each journey's outcome as the system shows it)."""
    hook = WebhookReceiver()
    try:
        key = carrier_client(stack, carrier, hook)
        out = {"carrier_identity": _carrier_identity(stack, key, hook, courier, carrier),
               "extra_charge": False, "outbound": False}
        out["extra_charge"], reported = _extra_charge(stack, agent, carrier)
        out["outbound"] = _outbound(stack, key, hook, courier, agent, carrier)
        return {"charges_reported": reported, "journeys": out}
    finally:
        hook.close()


def _waybill(carrier: str, n: int) -> str:
    return f"{carrier}{int(time.time()) % 10**6:06d}{n:04d}"


def _carrier_identity(stack: Stack, key: dict, hook: WebhookReceiver, courier: tuple[str, str],
                      carrier: str) -> bool:
    """The carrier pre-advises, its courier deposits at the terminal: one parcel, adopted, webhook heard;
    the villager collects; the county's volumes name each carrier once, by code."""
    waybill, villager = _waybill(carrier, 1), "13900007001"
    print(f"journey: {carrier} pre-advises {waybill}; its courier deposits it at the terminal", flush=True)
    r = stack.http.post(f"{stack.cloud_url}/api/v1/carrier/manifests", headers=key, json={
        "manifest_id": f"demo-{waybill}", "parcels": [{"waybill": waybill, "station": stack.station,
                                                         "phone": villager}]})
    if r.status_code != 200:
        return False
    d = Terminal(stack, *courier).deposit(waybill=waybill, phone=villager)
    code = stack.sms_code(phone=villager, waybill=waybill, timeout=60)
    stack.pickup(code)
    try:
        stack.wait(lambda: "picked_up" in hook.statuses(waybill), 60, "the carrier's webhook")
    except StackError:
        return False
    found = stack.parcels(waybill=waybill)
    rows = county(stack, "volumes", by="carrier", days=1)
    keys = [(r["day"], r["carrier"]) for r in rows]
    return (len(found) == 1 and found[0]["ref"] == d["ref"] and found[0]["carrier"] == carrier
            and [t["status"] for t in found[0]["timeline"]][:2] == ["preadvised", "deposited"]
            and hook.bad == 0 and len(keys) == len(set(keys)) and all(k in carriers.CODES for _, k in keys))


def _extra_charge(stack: Stack, agent: tuple[str, str], carrier: str) -> tuple[bool, int]:
    """A villager reports a pickup fee on /m, the agent records a charge at the terminal: both in the county's
    fees table with the carrier."""
    villager = "13900007001"
    print("journey: a villager reports an extra charge on /m; the agent records one at the terminal", flush=True)
    m = phone(stack, villager)
    try:
        r = m.post("/m/charges", data={"amount": "2", "carrier": carrier, "kind": "pickup",
                                       "text": "取件时被收了两元"}, follow_redirects=False)
        shown = "charge_reported" in r.headers.get("location", "") and 'id="my-charges"' in m.get("/m").text
    finally:
        m.close()
    r = Terminal(stack, *agent).post("/charge", {"carrier": carrier, "kind": "remote_surcharge", "cents": 300,
                                                 "phone": "13900007002", "text": "送到家加收三元"})
    if r.status_code != 201:
        return False, 0

    def reported() -> list[dict]:
        return [row for row in county(stack, "fees", days=1) if row.get("source") in ("villager", "agent")]
    try:
        stack.wait(lambda: {row["source"] for row in reported()} == {"villager", "agent"}, 60, "charges in the county")
    except StackError:
        return False, sum(row["parcels"] for row in reported())
    rows = reported()
    ok = shown and all(row["carriers"] == carrier for row in rows) and any(
        row["source"] == "villager" and row["kind"] == "pickup" and row["banned"] for row in rows)
    return ok, sum(row["parcels"] for row in rows)


def _outbound(stack: Stack, key: dict, hook: WebhookReceiver, courier: tuple[str, str], agent: tuple[str, str],
              carrier: str) -> bool:
    """The agent takes in a sender's parcel with real name and inspection; the carrier's courier collects it;
    the carrier hears `collected`; the produce statistics count it."""
    waybill = _waybill(carrier, 2)
    print(f"journey: an outbound parcel taken in at the terminal, collected by the {carrier} courier", flush=True)
    before = sum(r["parcels"] for r in county(stack, "produce", days=1) if r["carrier"] == carrier)
    r = Terminal(stack, *agent).post("/outbound", {
        "carrier": carrier, "sender_name": "张大爷", "sender_phone": "13900007003", "dest": "广州市天河区",
        "weight_g": 2500, "produce": "蜜桔", "sender_id": DEMO_ID, "inspected": True})
    if r.status_code != 201 or r.json().get("sender_id_tail") != DEMO_ID[-4:]:
        return False
    ref = r.json()["ref"]
    c = Terminal(stack, *courier)
    try:
        stack.wait(lambda: ref in [o["ref"] for o in c.get("/outbound").json()["outbound"]], 15, "parcel listed")
    except StackError:
        return False
    if c.post(f"/outbound/{ref}/collect", {"waybill": waybill}).status_code != 200:
        return False
    try:
        stack.wait(lambda: "collected" in hook.statuses(waybill), 60, "the carrier's webhook")
    except StackError:
        return False
    mine = stack.http.get(f"{stack.cloud_url}/api/v1/carrier/parcels/{waybill}", headers=key).json()
    after = sum(r["parcels"] for r in county(stack, "produce", days=1) if r["carrier"] == carrier)
    return mine.get("status") == "collected" and mine.get("ref") == ref and after == before + 1
