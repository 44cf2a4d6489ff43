"""`jincun demo`: one village station on embedded defaults, played by a person or by a scripted day."""

from __future__ import annotations

import io
import json
import logging
import random
import secrets
import shlex
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

from gateway.terminal import PIN_MIN_DIGITS, hash_pin, verify_pin
from jincun import provision
from simulator import demo_carriers, demo_journeys
from simulator.stack import Stack, StackError, _door

log = logging.getLogger(__name__)

CARRIERS = ("EMS", "SF", "ZTO", "YTO", "STO", "YUNDA", "JT", "JD")

HELP = """\
命令 / commands:
  courier PHONE [S|M|L]   快递员存件 a courier deposits a parcel for PHONE (door opens, parcel in, door shut)
  terminal PIN PHONE [S|M|L]  快递员在站点终端存件 a courier logs in at the terminal and deposits: a door opens
  shut C                  放入包裹并关门 put the parcel into open compartment C and shut its door
  agent PIN               代办员查看待取件 the station agent lists the parcels waiting at the terminal
  remote C REASON         运维远程开门 maintenance opens compartment C from the cloud, giving a reason
  keys DIGITS             在键盘上输入 type on the locker keypad, e.g. keys 123456#
  take C                  取出 C 号格口的包裹并关门 take the parcel from compartment C and shut its door
  sms [PHONE]             查看短信 show the SMS outbox (pickup codes)
  uplink down|up          断开/恢复上行链路 cut or restore the station's link to the cloud
  status                  格口状态 compartment states
  quit                    退出 stop everything
"""


PIN_DIGITS = PIN_MIN_DIGITS  # the terminal's shortest PIN


@dataclass(frozen=True)
class Person:
    """One demo account: a cloud staff login and, for people at the station, a terminal PIN."""

    username: str
    display: str
    role: str  # the cloud role
    password: str
    carrier: str | None = None
    station: bool = False  # the account belongs to the demo station
    terminal_role: str | None = None  # courier | agent: has a PIN at the station terminal
    pin: str | None = None


def demo_people(workdir: Path) -> list[Person]:
    """One account per role with passwords and distinct PINs made for this demo folder (kept in it, private)."""
    path = workdir / "demo-people.json"
    if path.exists():
        return [Person(**p) for p in json.loads(path.read_text())]
    pins: set[str] = set()
    while len(pins) < 3:
        pin = f"{secrets.randbelow(10**PIN_DIGITS):0{PIN_DIGITS}d}"
        if len(set(pin)) >= 3:  # nothing like 000000 or 121212 that a guesser tries first
            pins.add(pin)
    agent_pin, ems_pin, sf_pin = pins

    def pw() -> str:
        return secrets.token_urlsafe(9)

    people = [
        Person("county", "县邮政管理 County office", "county_official", pw()),
        Person("maint", "运维 Maintenance", "maintenance", pw()),
        Person("agent", "代办员 Station agent", "station_agent", pw(), station=True, terminal_role="agent",
               pin=agent_pin),
        Person("courier-ems", "邮政快递员 EMS courier", "courier", pw(), carrier="EMS", terminal_role="courier",
               pin=ems_pin),
        Person("courier-sf", "顺丰快递员 SF courier", "courier", pw(), carrier="SF", terminal_role="courier",
               pin=sf_pin),
    ]
    provision.write_private(path, [asdict(p) for p in people])
    return people


def terminal_section(people: list[Person]) -> dict:
    """station.json's terminal users for the people with a PIN."""
    return {"users": [{"id": p.username, "name": p.display, "role": p.terminal_role, "carrier": p.carrier or "",
                       "pin_hash": hash_pin(p.pin)} for p in people if p.pin]}


def create_accounts(stack: Stack, people: list[Person]) -> None:
    """Create each person's cloud account with the stack's admin token."""
    auth = {"Authorization": f"Bearer {stack.admin_token}"}
    for p in people:
        r = stack.http.post(f"{stack.cloud_url}/api/v1/users", headers=auth, json={
            "username": p.username, "display_name": p.display, "password": p.password, "role": p.role,
            "station_id": stack.station if p.station else None, "carrier_code": p.carrier})
        if r.status_code not in (201, 409):
            raise StackError(f"cloud refused account {p.username}: {r.status_code} {r.text}")


def addresses(stack: Stack, people: list[Person]) -> str:
    """Every page with the login that opens it."""
    by = {p.username: p for p in people}
    c, g = stack.cloud_url, stack.gateway_url

    def login(name: str) -> str:
        return f"login: {name} / {by[name].password}"

    lines = [
        f"  县级总览 county overview    {c}/",
        f"  县级统计 county office      {c}/stats       {login('county')}",
        f"  运维 maintenance            {c}/ops         {login('maint')}",
        f"  代办员 station agent        {c}/ops         {login('agent')}",
        f"                              {g}/terminal  {by['agent'].display} ({by['agent'].username}) "
        f"PIN: {by['agent'].pin}",
    ]
    for p in people:
        if p.terminal_role == "courier":
            lines.append(f"  快递员 {p.carrier} courier" + " " * (11 - len(p.carrier or "")) + f"{g}/terminal  "
                         f"{p.display} ({p.username}) PIN: {p.pin}   (cloud {login(p.username)})")
    lines += [
        f"  村民 villager               {c}/m           手机号+短信验证码 phone + SMS code (read it with: sms PHONE)",
        f"  短信 SMS outbox             {c}/sms",
        f"  网关 gateway health         {g}/health",
    ]
    return "\n".join(lines)


def _workdir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    base = Path("var")
    base.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="demo-", dir=base))


def run_demo(*, headless: bool, duration: float, port: int, workdir: str | None) -> int:
    """Start the station and either play a scripted day (headless) or take commands from a person."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    folder = _workdir(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    people = demo_people(folder)
    # the scripted day plays the code-scope journey across two lockers; a person gets one to play with
    stack = Stack(folder, cloud_port=port, terminal=terminal_section(people),
                  lockers=("l1", "l2") if headless else ("l1",))
    print(f"starting cloud, broker, gateway and {len(stack.lockers)} 12-compartment locker(s) in {stack.workdir} ...",
          flush=True)
    try:
        stack.start()
        create_accounts(stack, people)
    except (StackError, TimeoutError) as exc:
        print(f"demo failed to start: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    try:
        if headless:
            result = scripted_day(stack, duration, people=people)
            journeys = result.pop("journeys", {})
            result.update(play_journeys(stack, people))
            result["journeys"] = {**journeys, **result.get("journeys", {})}
            result["journeys_ok"] = bool(result["journeys"]) and all(result["journeys"].values())
            print(json.dumps(result, ensure_ascii=False))
            # an empty ledger proves nothing: the lockers must have recorded events, and all of them arrived
            clean = result["events_sent"] > 0 and result["events_in_cloud"] == result["events_sent"]
            ok = clean and result["lost"] == 0 and result["duplicates"] == 0 and result["journeys_ok"]
            return 0 if ok else 1
        return interactive(stack, people)
    finally:
        stack.stop()


def scripted_day(stack: Stack, duration: float, *, seed: int = 11, people: list[Person] | None = None) -> dict:
    """Couriers deposit, villagers pick up, the uplink fails for a while and the gateway loses power once."""
    rng = random.Random(seed)
    t0 = time.monotonic()
    outage = (0.35 * duration, 0.6 * duration)
    waiting: list[dict] = []  # deposited parcels whose SMS has arrived
    unsent: list[dict] = []  # deposited while the uplink was down: SMS arrives after it returns
    counts = {"deposits_ok": 0, "pickups_ok": 0, "wrong_codes": 0, "gateway_power_cuts": 0}
    n = 0
    outage_done = killed = False
    relay = stack.relay
    assert relay is not None, "the stack is started"
    while (now := time.monotonic() - t0) < duration:
        down = outage[0] <= now < outage[1]
        if down and relay.is_up:
            print(f"[{now:5.1f}s] uplink down / 上行链路中断", flush=True)
            stack.uplink_down()
        if not down and not relay.is_up:
            print(f"[{now:5.1f}s] uplink up / 上行链路恢复", flush=True)
            stack.uplink_up()
            outage_done = True
            for p in unsent:
                p["code"] = stack.sms_code(phone=p["phone"], waybill=p["waybill"], timeout=60)
                waiting.append(p)
            unsent.clear()
        if outage_done and not killed and now > 0.75 * duration:
            print(f"[{now:5.1f}s] gateway power cut (kill -9) / 网关断电", flush=True)
            stack.restart_gateway(kill=True)
            killed = True
            counts["gateway_power_cuts"] += 1
        free = _free_compartments(stack)
        if free and (rng.random() < 0.6 or not waiting):
            n += 1
            phone = f"138{rng.randrange(10**8):08d}"
            waybill = f"JC{n:06d}{rng.randrange(1000):03d}"
            size = rng.choice([s for s in ("S", "M", "L") if s in free] or ["S"])
            stack.deposit(waybill=waybill, phone=phone, carrier=rng.choice(CARRIERS), size=size,
                          locker=stack.lockers[0])
            counts["deposits_ok"] += 1
            p = {"waybill": waybill, "phone": phone}
            if relay.is_up:
                p["code"] = stack.sms_code(phone=phone, waybill=waybill)
                waiting.append(p)
            else:
                unsent.append(p)
        elif waiting:
            p = waiting.pop(rng.randrange(len(waiting)))
            if rng.random() < 0.2:
                _wrong_code(stack, p["code"])
                counts["wrong_codes"] += 1
            stack.pickup(p["code"])
            counts["pickups_ok"] += 1
        time.sleep(0.05)
    if not relay.is_up:
        stack.uplink_up()
    for p in unsent:
        p["code"] = stack.sms_code(phone=p["phone"], waybill=p["waybill"], timeout=60)
        waiting.append(p)
    for p in waiting:  # the day ends with every villager having collected
        stack.pickup(p["code"])
        counts["pickups_ok"] += 1
    # the carrier journeys: a pre-advised deposit, extra charges, an outbound parcel (simulator/demo_carriers.py)
    by = {p.username: p for p in people or []}
    carrier_journeys = demo_carriers.play(
        stack, courier=("courier-sf", by["courier-sf"].pin or ""), agent=("agent", by["agent"].pin or ""),
        carrier="SF") if {"courier-sf", "agent"} <= set(by) else {"charges_reported": 0, "journeys": {}}
    stack.wait_drained(120)
    parcels = stack.parcels(station=stack.station)
    ledger = stack.ledger()
    return {
        "deposited": sum(1 for p in parcels if p.get("deposited_at")),
        "picked_up": sum(1 for p in parcels if p.get("status") == "picked_up"),
        **{k: ledger[k] for k in ("events_sent", "events_in_cloud", "lost", "duplicates")},
        **counts,
        # every locker session the broker saw came in on its TLS listener (from the broker's log, not the config)
        "tls": stack.all_lockers_on_tls(),
        **carrier_journeys,
        "seconds": round(time.monotonic() - t0, 1),
    }


def play_journeys(stack: Stack, people: list[Person]) -> dict:
    """After the day: every journey across the tiers, once (simulator/demo_journeys.py); the ledger is read again
    so the journeys' events count too."""
    agent = next(p for p in people if p.terminal_role == "agent")
    courier = next(p for p in people if p.terminal_role == "courier" and p.carrier)
    got = demo_journeys.play(stack, agent_pin=agent.pin or "", courier=courier.username,
                             courier_pin=courier.pin or "", carrier=courier.carrier or "")
    stack.wait_drained(120)
    ledger = stack.ledger()
    return {**got, **{k: ledger[k] for k in ("events_sent", "events_in_cloud", "lost", "duplicates")}}


def _wrong_code(stack: Stack, code: str) -> None:
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    stack.sims[stack.lockers[0]].press(wrong + "#")
    time.sleep(0.3)


def _free_compartments(stack: Stack) -> dict[str, int]:
    """Empty compartments per size, from the locker's own state."""
    free: dict[str, int] = {}
    for c in stack.sims[stack.lockers[0]].state().get("comps", []):
        if c.get("st") == "empty":
            free[c["size"]] = free.get(c["size"], 0) + 1
    return free


def interactive(stack: Stack, people: list[Person]) -> int:
    """Read commands from a person until quit or end of input."""
    cast(io.TextIOWrapper, sys.stdout).reconfigure(line_buffering=True)  # a pipe reads each answer as it is printed
    sim = stack.sims[stack.lockers[0]]
    courier_pin = next(p.pin for p in people if p.terminal_role == "courier")
    agent_pin = next(p.pin for p in people if p.terminal_role == "agent")
    print(f"""
进村 jincun demo is running.
{addresses(stack, people)}
  logs: {stack.workdir}

Play courier:   courier 13800001111 M     then read the SMS with:  sms 13800001111
  at the terminal: terminal {courier_pin} 13800002222 M    then:  shut <compartment>
Play villager:  keys <code>#              then take the parcel:    take <compartment>
Play agent:     agent {agent_pin}
Play maintenance: remote 12 门卡住了       (then: take 12)
{HELP}""", flush=True)
    n = 0
    for line in sys.stdin:
        try:
            parts = shlex.split(line)
        except ValueError as exc:
            print(f"? {exc}")
            continue
        if not parts:
            continue
        cmd, args = parts[0].lower(), parts[1:]
        try:
            if cmd in ("quit", "exit", "q"):
                break
            elif cmd == "courier" and args:
                n += 1
                d = stack.deposit(waybill=f"JCDEMO{n:05d}", phone=args[0], size=(args[1:] or ["M"])[0].upper())
                print(f"存件完成 deposited waybill JCDEMO{n:05d} in locker {d['locker']} compartment {d['c']}")
            elif cmd == "terminal" and len(args) >= 2:
                n += 1
                d = terminal_deposit(stack, pin=args[0], phone=args[1], size=(args[2:] or ["M"])[0].upper(),
                                     waybill=f"JCTERM{n:05d}")
                print(f"门已开 door open: locker {d['locker']} compartment {d['c']} (waybill JCTERM{n:05d}); "
                      f"put the parcel in and shut it: shut {d['c']}")
            elif cmd == "shut" and args:
                c = int(args[0])
                if not _door(sim.state(), c):
                    print(f"{c} 号格口没有开门 compartment {c} is not open")
                    continue
                sim.set_occupied(c, True)
                sim.close_door(c)
                def occupied(s: dict, c: int = c) -> bool:
                    return any(x["n"] == c and x.get("st") == "occupied" for x in s["comps"])

                sim.wait_for(occupied, 10)
                print(f"存件完成 compartment {c} holds the parcel, door shut; the villager's SMS follows")
            elif cmd == "agent" and args:
                waiting = terminal_waiting(stack, pin=args[0])
                for p in waiting:
                    print(f"  {p['locker']}/{p['c']:>2} {p['carrier']:<6} {p['waybill']} {p['phone']}")
                print(f"待取件 {len(waiting)} parcel(s) waiting")
            elif cmd == "remote" and len(args) >= 2:
                c = int(args[0])
                maint = next(p for p in people if p.role == "maintenance")
                k = remote_open(stack, maint, c=c, reason=" ".join(args[1:]))
                print(f"已远程开门 remote open {k}: compartment {c} is open; shut it with: take {c}")
            elif cmd == "keys" and args:
                sim.press(args[0])
                time.sleep(0.5)
                opened = [c["n"] for c in sim.state()["comps"] if c.get("st") == "pickup"]
                print(f"已开门 open: {opened}" if opened else "没有开门 no door opened")
            elif cmd == "take" and args:
                c = int(args[0])
                sim.set_occupied(c, False)
                sim.close_door(c)
                print(f"取件完成 compartment {c} emptied and shut")
            elif cmd == "sms":
                params = {"phone": args[0]} if args else {}
                for msg in stack._get(f"{stack.cloud_url}/api/v1/notifications", params=params, admin=True)[:5]:
                    print(f"  {msg.get('phone')}: {msg.get('text')}")
            elif cmd == "uplink" and args and args[0] in ("down", "up"):
                (stack.uplink_down if args[0] == "down" else stack.uplink_up)()
                print(f"uplink {args[0]}")
            elif cmd == "status":
                for c in sim.state()["comps"]:
                    print(f"  {c['n']:>2} {c['size']} {c['st']}")
            else:
                print(HELP)
        except (StackError, TimeoutError, KeyError, ValueError) as exc:
            print(f"出错 error: {exc}")
    return 0


def _terminal_login(stack: Stack, pin: str) -> dict:
    # at the terminal a person picks their name from the list, then types the PIN; the demo's commands take
    # only the PIN, so it picks the name the PIN belongs to
    users = stack.station_cfg.get("terminal", {}).get("users", [])
    user = next((u["id"] for u in users if verify_pin(pin, u["pin_hash"])), "")
    if not user:
        raise StackError("没有这个 PIN 的终端用户 no terminal user has this PIN")
    r = stack.http.post(f"{stack.gateway_url}/api/v1/terminal/login", json={"user": user, "pin": pin})
    if r.status_code != 200:
        raise StackError(f"终端登录失败 terminal login refused: {r.status_code} {r.text}")
    return r.json()


def terminal_deposit(stack: Stack, *, pin: str, phone: str, size: str, waybill: str, timeout: float = 15) -> dict:
    """A courier logs in at the station terminal and asks for a compartment; returns once its door is open."""
    auth = {"Authorization": f"Bearer {_terminal_login(stack, pin)['token']}"}
    # the recipient agreed on the phone when the cloud cannot tell: the courier says so, and it is recorded
    r = stack.http.post(f"{stack.gateway_url}/api/v1/terminal/deposit", headers=auth,
                        json={"waybill": waybill, "phone": phone, "size": size, "consent_asked": True})
    stack.http.post(f"{stack.gateway_url}/api/v1/terminal/logout", headers=auth)
    if r.status_code != 201:
        raise StackError(f"终端拒绝存件 terminal refused the deposit: {r.status_code} {r.text}")
    d = r.json()
    stack.sims[d["locker"]].wait_for(lambda s: _door(s, d["c"]), timeout)
    return d


def remote_open(stack: Stack, person: Person, *, c: int, reason: str, timeout: float = 30) -> str:
    """Maintenance logs in to the cloud and opens a compartment remotely; returns once the door is open."""
    r = stack.http.post(f"{stack.cloud_url}/api/v1/auth/login",
                        data={"username": person.username, "password": person.password})
    if r.status_code != 200:
        raise StackError(f"登录失败 login refused: {r.status_code} {r.text}")
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    locker = stack.lockers[0]
    r = stack.http.post(f"{stack.cloud_url}/api/v1/commands", headers=auth,
                        json={"station": stack.station, "locker": locker, "op": "open", "c": c, "reason": reason})
    if r.status_code != 201:
        raise StackError(f"云端拒绝 the cloud refused: {r.status_code} {r.text}")
    stack.sims[locker].wait_for(lambda s: _door(s, c), timeout)
    return r.json()["cmd_id"]


def terminal_waiting(stack: Stack, *, pin: str) -> list[dict]:
    """The parcels waiting in the station's lockers, as the agent's terminal lists them."""
    auth = {"Authorization": f"Bearer {_terminal_login(stack, pin)['token']}"}
    r = stack.http.get(f"{stack.gateway_url}/api/v1/terminal/parcels", headers=auth)
    stack.http.post(f"{stack.gateway_url}/api/v1/terminal/logout", headers=auth)
    if r.status_code != 200:
        raise StackError(f"终端拒绝 terminal refused: {r.status_code} {r.text}")
    return r.json()["parcels"]
