"""The scripted day's journeys across every tier: each case is played as its people play it, and judged from what
the other people then see (the villager's phone page, the terminal, the county's pages and API).

Played after the day's deposits and pickups, on a station with two lockers:
- `code_scope`: a villager with parcels in both lockers has one code; a replacement reaches both lockers, the
  old code opens nothing and the new one opens every compartment, offline;
- `door_to_door`: the villager's choice on `/m` reaches the station's list within a minute; the agent hands the
  parcel over, which closes it everywhere and frees its compartment;
- `cancelled`: a deposit whose door closed on an empty compartment vanishes from the villager's page and is
  shown to staff as 已取消;
- `returns`: a week later an uncollected parcel goes back: the code no longer opens it, the carrier's courier
  takes it out from the terminal's 待退回 list, the compartment is freed and the villager is told;
- `never_delivered`: a parcel the carrier pre-advised that never reaches the locker is flagged after 48 hours.
The sweep's clock is moved forward through the demo's admin API (`POST /api/v1/admin/sweep?at=`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

import httpx

from simulator.stack import Stack, StackError

log = logging.getLogger(__name__)

OTP_RE = re.compile(r"查件验证码\s*(\d{6})")
RECODE_RE = re.compile(r"新取件码\s*(\d{6})")


class Terminal:
    """One person logged in at the station terminal, calling its API as the page does."""

    def __init__(self, stack: Stack, user: str, pin: str) -> None:
        self.stack = stack
        r = stack.http.post(f"{stack.gateway_url}/api/v1/terminal/login", json={"user": user, "pin": pin})
        if r.status_code != 200:
            raise StackError(f"terminal login of {user} refused: {r.status_code} {r.text}")
        self.headers = {"Authorization": f"Bearer {r.json()['token']}"}

    def get(self, path: str) -> httpx.Response:
        return self.stack.http.get(f"{self.stack.gateway_url}/api/v1/terminal/{path}", headers=self.headers)

    def post(self, path: str, body: dict) -> httpx.Response:
        return self.stack.http.post(f"{self.stack.gateway_url}/api/v1/terminal/{path}", json=body,
                                    headers=self.headers)


class Phone:
    """A villager's phone on `/m`: logs in with the code the SMS brings, reads the page, submits its forms."""

    def __init__(self, stack: Stack, phone: str) -> None:
        self.stack = stack
        self.phone = phone
        self.client = httpx.Client(base_url=stack.cloud_url, timeout=10, follow_redirects=True)
        before = {n["id"] for n in notifications(stack, phone)}
        self.client.post("/m/otp", data={"phone": phone})
        code = next((m.group(1) for n in notifications(stack, phone)
                     if n["id"] not in before and (m := OTP_RE.search(n.get("text", "")))), None)
        if code is None:
            raise StackError(f"no login SMS reached {phone}")
        r = self.client.post("/m/login", data={"phone": phone, "code": code})
        if r.status_code != 200:
            raise StackError(f"/m login of {phone} refused: {r.status_code}")

    def page(self) -> str:
        return self.client.get("/m").text

    def choose(self, *, door_help: bool, consent: str = "granted") -> None:
        """Consent to the locker, and door-to-door help as its own setting, as the phone page sends them."""
        for path, data in (("/m/consent", {"consent": consent}),
                           ("/m/door-help", {"door_help": "on" if door_help else "off"})):
            r = self.client.post(path, data=data)
            if r.status_code >= 400:
                raise RuntimeError(f"{path} answered {r.status_code}")

    def new_code(self, station: str) -> None:
        self.client.post("/m/code", data={"station": station})

    def close(self) -> None:
        self.client.close()


def admin(stack: Stack) -> dict:
    return {"Authorization": f"Bearer {stack.admin_token}"}


def notifications(stack: Stack, phone: str) -> list[dict]:
    """The SMS the cloud sent to a phone, newest first."""
    r = stack.http.get(f"{stack.cloud_url}/api/v1/notifications", params={"phone": phone}, headers=admin(stack))
    return r.json() if r.status_code == 200 else []


def parcel(stack: Stack, waybill: str) -> dict:
    """The parcel of a waybill as the county's staff see it ({} if none or several)."""
    found = stack.parcels(waybill=waybill)
    return found[0] if len(found) == 1 else {}


def sweep(stack: Stack, *, days: float) -> dict:
    """The cloud's lifecycle sweep, run with its clock `days` ahead (the demo's clock seam)."""
    r = stack.http.post(f"{stack.cloud_url}/api/v1/admin/sweep", params={"at": time.time() + days * 86400},
                        headers=admin(stack))
    if r.status_code != 200:
        raise StackError(f"sweep refused: {r.status_code} {r.text}")
    return r.json()


def compartment(stack: Stack, locker: str, c: int) -> dict:
    """One compartment as the gateway's live view shows it."""
    return next((x for x in stack.gateway_locker(locker).get("comps", []) if x.get("n") == c), {})


def cloud_compartment(stack: Stack, locker: str, c: int) -> dict:
    """One compartment as the county's staff see it in the cloud."""
    r = stack.http.get(f"{stack.cloud_url}/api/v1/stations", headers=admin(stack))
    for st in r.json() if r.status_code == 200 else []:
        for lk in st.get("lockers", []):
            if lk["id"] == locker:
                return next((x for x in lk.get("compartments", []) if x.get("n") == c), {})
    return {}


def commands(stack: Stack, op: str) -> list[dict]:
    """The downlink commands of an op, as the county's maintenance staff list them."""
    r = stack.http.get(f"{stack.cloud_url}/api/v1/commands", params={"station": stack.station, "op": op},
                       headers=admin(stack))
    return r.json() if r.status_code == 200 else []


def refused(stack: Stack, locker: str, code: str) -> bool:
    """A villager types a code at a locker: True when no door opens for it."""
    sim = stack.sims[locker]
    sim.press(code + "#")
    time.sleep(1.5)
    return all(x.get("st") != "pickup" for x in sim.state()["comps"])


def take_out(stack: Stack, locker: str, c: int) -> bool:
    """Whoever opened the door takes the parcel out and shuts it; True when the gateway shows it free."""
    sim = stack.sims[locker]
    sim.wait_for(lambda s: s["doors"][str(c)], 10)
    sim.set_occupied(c, False)
    sim.close_door(c)
    return _until(lambda: compartment(stack, locker, c).get("st") == "empty"
                  and not compartment(stack, locker, c).get("ref"), 10)


def _until(pred: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.2)
    return False


def _verdict(name: str, **seen: bool) -> bool:
    """A journey held when everything its people should see, they saw; what they did not is logged."""
    ok = all(seen.values())
    log.log(logging.INFO if ok else logging.WARNING, "journey %s: %s", name, seen)
    return ok


def _freed_in_cloud(stack: Stack, locker: str, c: int) -> bool:
    comp = cloud_compartment(stack, locker, c)
    return comp.get("state") == "empty" and comp.get("ref") is None


def code_scope(stack: Stack) -> bool:
    """One code per recipient per station, across both lockers; a replacement reaches both."""
    phone = "13900000011"
    d1 = stack.deposit(waybill="JCSCOPE0001", phone=phone, carrier="ZTO", size="S", locker="l1")
    d2 = stack.deposit(waybill="JCSCOPE0002", phone=phone, carrier="ZTO", size="S", locker="l2")
    first = stack.sms_code(phone=phone, waybill="JCSCOPE0001")
    same = stack.sms_code(phone=phone, waybill="JCSCOPE0002") == first
    stack.wait_drained()
    villager = Phone(stack, phone)
    villager.new_code(stack.station)
    new = next((m.group(1) for n in notifications(stack, phone) if (m := RECODE_RE.search(n.get("text", "")))), "")
    synced = _until(lambda: sorted((k["locker_id"], k["status"]) for k in commands(stack, "code_sync"))
                    == [("l1", "done"), ("l2", "done")], 30)
    old_refused = refused(stack, "l1", first) and refused(stack, "l2", first)
    stack.uplink_down()  # the lockers check the code themselves
    opened = stack.pickup(new, locker="l1") == [d1["c"]] and stack.pickup(new, locker="l2") == [d2["c"]]
    stack.uplink_up()
    stack.wait_drained(60)
    done = _until(lambda: all(parcel(stack, w).get("status") == "picked_up" for w in ("JCSCOPE0001", "JCSCOPE0002")),
                  30)
    villager.close()
    return _verdict("code scope", same=same, new=bool(new) and new != first, synced=synced,
                    old_refused=old_refused, opened=opened, done=done)


def door_to_door(stack: Stack, *, agent_pin: str) -> bool:
    """The villager's choice reaches the station's list within a minute; the handover frees the compartment."""
    phone, waybill = "13900000012", "JCDOOR00001"
    d = stack.deposit(waybill=waybill, phone=phone, carrier="EMS", size="S", locker="l1")
    stack.sms_code(phone=phone, waybill=waybill)
    agent = Terminal(stack, "agent", agent_pin)
    villager = Phone(stack, phone)
    villager.choose(door_help=True)
    listed = _until(lambda: waybill in [p["waybill"] for p in agent.get("parcels").json()["door_to_door"]], 60)
    handed = agent.post("handover", {"ref": d["ref"]}).status_code == 200
    freed = handed and take_out(stack, "l1", d["c"])
    stack.wait_drained()
    closed = _until(lambda: parcel(stack, waybill).get("status") == "delivered_door", 20)
    seen = "已送货上门" in villager.page()
    villager.close()
    return _verdict("door to door", listed=listed, handed=handed, freed=freed, closed=closed, seen=seen,
                    freed_in_cloud=_freed_in_cloud(stack, "l1", d["c"]))


def cancelled(stack: Stack) -> bool:
    """A deposit the terminal cancels vanishes from the villager's page; staff see it as 已取消."""
    phone, waybill = "13900000013", "JCVOID00001"
    d = stack.deposit(waybill=waybill, phone=phone, carrier="STO", size="S", locker="l1", occupied=False)
    stack.wait_drained()
    gone = _until(lambda: parcel(stack, waybill).get("status") == "cancelled", 20)
    villager = Phone(stack, phone)
    hidden = waybill not in villager.page()
    villager.close()
    html = stack.http.get(f"{stack.cloud_url}/parcels/{d['ref']}").text
    return _verdict("cancelled", gone=gone, hidden=hidden, staff_see_cancelled="已取消" in html,
                    freed_in_cloud=_freed_in_cloud(stack, "l1", d["c"]))


def returns(stack: Stack, *, courier: str, courier_pin: str, carrier: str, days: float) -> bool:
    """A week later an uncollected parcel goes back to its carrier through the locker."""
    phone, waybill = "13900000014", "JCBACK00001"
    d = stack.deposit(waybill=waybill, phone=phone, carrier=carrier, size="S", locker="l1")
    code = stack.sms_code(phone=phone, waybill=waybill)
    stack.wait_drained()
    sweep(stack, days=days)
    term = Terminal(stack, courier, courier_pin)
    listed = _until(lambda: waybill in [r["waybill"] for r in term.get("returns").json()["returns"]], 30)
    revoked = refused(stack, "l1", code)
    taken = term.post("returns", {"ref": d["ref"]}).status_code == 200
    freed = taken and take_out(stack, "l1", d["c"])
    stack.wait_drained()
    back = _until(lambda: parcel(stack, waybill).get("status") == "returned", 20)
    told = any("已退回快递公司" in n.get("text", "") for n in notifications(stack, phone))
    return _verdict("returns", listed=listed, revoked=revoked, taken=taken, freed=freed, back=back, told=told,
                    freed_in_cloud=_freed_in_cloud(stack, "l1", d["c"]))


def never_delivered(stack: Stack, *, carrier: str = "YUNDA") -> bool:
    """A pre-advised parcel that never reaches the locker is flagged after 48 hours, once."""
    r = stack.http.post(f"{stack.cloud_url}/api/v1/carriers/{carrier}/clients", headers=admin(stack),
                        json={"name": f"{carrier.lower()}-demo"})
    if r.status_code != 201:
        raise StackError(f"carrier client refused: {r.status_code} {r.text}")
    key = {"Authorization": f"Bearer {r.json()['api_key']}"}
    r = stack.http.post(f"{stack.cloud_url}/api/v1/carrier/manifests", headers=key, json={
        "manifest_id": "demo-never-1", "parcels": [{"waybill": "YD00000000001", "station": stack.station,
                                                     "phone": "13900000015"}]})
    early = sweep(stack, days=1)["never_delivered"] == 0
    late = sweep(stack, days=3)["never_delivered"] >= 1
    return _verdict("never delivered", manifest=r.status_code == 200, early=early, late=late,
                    listed="YD00000000001" in [f["waybill"] for f in flags(stack)])


def flags(stack: Stack, kind: str = "never_delivered") -> list[dict]:
    """The county's quality table: the flags of one kind."""
    r = stack.http.get(f"{stack.cloud_url}/api/v1/stats/flags", headers=admin(stack))
    return [f for f in (r.json() if r.status_code == 200 else []) if f.get("kind") == kind]


def play(stack: Stack, *, agent_pin: str, courier: str, courier_pin: str, carrier: str) -> dict:
    """Play every case once; each journey's verdict comes from what the people then see."""
    journeys: dict[str, bool] = {}
    cases: list[tuple[str, Callable[[], bool]]] = [
        ("code_scope", lambda: code_scope(stack)),
        ("door_to_door", lambda: door_to_door(stack, agent_pin=agent_pin)),
        ("cancelled", lambda: cancelled(stack)),
        ("returns", lambda: returns(stack, courier=courier, courier_pin=courier_pin, carrier=carrier, days=8)),
        ("never_delivered", lambda: never_delivered(stack)),
    ]
    for name, case in cases:
        try:
            journeys[name] = bool(case())
        except (StackError, TimeoutError, httpx.HTTPError, KeyError, ValueError) as exc:
            log.error("journey %s broke: %s", name, exc)
            journeys[name] = False
        print(f"journey {name}: {'ok' if journeys[name] else 'FAILED'}", flush=True)
    held = stack.parcels(station=stack.station, limit=1000)
    return {
        "returns": sum(1 for p in held if p.get("status") == "returned"),
        "door_to_door": sum(1 for p in held if p.get("status") == "delivered_door"),
        "cancelled": sum(1 for p in held if p.get("status") == "cancelled"),
        "never_delivered_flagged": len(flags(stack)),
        "journeys": journeys,
    }
