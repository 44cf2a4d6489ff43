"""`jincun demo`: one village station on embedded defaults, played by a person or by a scripted day."""

from __future__ import annotations

import json
import logging
import random
import shlex
import sys
import tempfile
import time
from pathlib import Path

from simulator.stack import Stack, StackError

log = logging.getLogger(__name__)

CARRIERS = ("EMS", "SF", "ZTO", "YTO", "STO", "YUNDA", "JT", "JD")

HELP = """\
命令 / commands:
  courier PHONE [S|M|L]   快递员存件 a courier deposits a parcel for PHONE (door opens, parcel in, door shut)
  keys DIGITS             在键盘上输入 type on the locker keypad, e.g. keys 123456#
  take C                  取出 C 号格口的包裹并关门 take the parcel from compartment C and shut its door
  sms [PHONE]             查看短信 show the SMS outbox (pickup codes)
  uplink down|up          断开/恢复上行链路 cut or restore the station's link to the cloud
  status                  格口状态 compartment states
  quit                    退出 stop everything
"""


def _workdir(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    base = Path("var")
    base.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="demo-", dir=base))


def run_demo(*, headless: bool, duration: float, port: int, workdir: str | None) -> int:
    """Start the station and either play a scripted day (headless) or take commands from a person."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stack = Stack(_workdir(workdir), cloud_port=port)
    print(f"starting cloud, broker, gateway and a 12-compartment locker in {stack.workdir} ...", flush=True)
    try:
        stack.start()
    except (StackError, TimeoutError) as exc:
        print(f"demo failed to start: {exc}", file=sys.stderr)
        stack.stop()
        return 1
    try:
        if headless:
            result = scripted_day(stack, duration)
            print(json.dumps(result, ensure_ascii=False))
            # an empty ledger proves nothing: the lockers must have recorded events, and all of them arrived
            clean = result["events_sent"] > 0 and result["events_in_cloud"] == result["events_sent"]
            return 0 if clean and result["lost"] == 0 and result["duplicates"] == 0 else 1
        return interactive(stack)
    finally:
        stack.stop()


def scripted_day(stack: Stack, duration: float, *, seed: int = 11) -> dict:
    """Couriers deposit, villagers pick up, the uplink fails for a while and the gateway loses power once."""
    rng = random.Random(seed)
    t0 = time.monotonic()
    outage = (0.35 * duration, 0.6 * duration)
    waiting: list[dict] = []  # deposited parcels whose SMS has arrived
    unsent: list[dict] = []  # deposited while the uplink was down: SMS arrives after it returns
    counts = {"deposits_ok": 0, "pickups_ok": 0, "wrong_codes": 0, "gateway_power_cuts": 0}
    n = 0
    outage_done = killed = False
    while (now := time.monotonic() - t0) < duration:
        down = outage[0] <= now < outage[1]
        if down and stack.relay.is_up:
            print(f"[{now:5.1f}s] uplink down / 上行链路中断", flush=True)
            stack.uplink_down()
        if not down and not stack.relay.is_up:
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
            stack.deposit(waybill=waybill, phone=phone, carrier=rng.choice(CARRIERS), size=size)
            counts["deposits_ok"] += 1
            p = {"waybill": waybill, "phone": phone}
            if stack.relay.is_up:
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
    if not stack.relay.is_up:
        stack.uplink_up()
    for p in unsent:
        p["code"] = stack.sms_code(phone=p["phone"], waybill=p["waybill"], timeout=60)
        waiting.append(p)
    for p in waiting:  # the day ends with every villager having collected
        stack.pickup(p["code"])
        counts["pickups_ok"] += 1
    stack.wait_drained(120)
    parcels = stack.parcels(station=stack.station)
    ledger = stack.ledger()
    return {
        "deposited": sum(1 for p in parcels if p.get("deposited_at")),
        "picked_up": sum(1 for p in parcels if p.get("status") == "picked_up"),
        **{k: ledger[k] for k in ("events_sent", "events_in_cloud", "lost", "duplicates")},
        **counts,
        "seconds": round(time.monotonic() - t0, 1),
    }


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


def interactive(stack: Stack) -> int:
    """Read commands from a person until quit or end of input."""
    sim = stack.sims[stack.lockers[0]]
    print(f"""
进村 jincun demo is running.
  云端页面 cloud pages:   {stack.cloud_url}/        (短信 SMS: {stack.cloud_url}/sms)
  网关接口 gateway API:   {stack.gateway_url}/health
  logs: {stack.workdir}

Play courier:  courier 13800001111 M     then read the SMS with:  sms 13800001111
Play villager: keys <code>#              then take the parcel:    take <compartment>
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
