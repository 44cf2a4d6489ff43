"""Simulated people as a plan (sans-IO): couriers on a daily curve, villagers, the elderly, produce, bad actors.

make_plan() turns a scenario and its stations into a time-ordered list of actions in simulated hours.
The runner plays them against the running system; pickups follow the SMS, so their times are drawn
here as delays and applied when the code arrives.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from simulator.scenario import Scenario

# arrival curve of courier vans over the day: (centre hour, spread in hours, weight)
VAN_WAVES = ((9.5, 1.0, 0.55), (15.0, 1.3, 0.45))
PICKUP_HOURS = (7.0, 21.5)  # villagers come to the locker in daylight
PRODUCE = ("猕猴桃", "苹果", "蜂蜜", "土鸡蛋", "茶叶", "核桃")


@dataclass
class Parcel:
    station: str
    carrier: str
    waybill: str
    phone: str
    size: str
    elderly: bool = False
    typo: bool = False
    ms_per_key: int = 400
    pickup_delay_h: float | None = None  # None: never collected during the run
    leave_open: bool = False
    # filled in while playing
    ref: str | None = None
    locker: str | None = None
    c: int | None = None
    code: str | None = None
    deposited_h: float | None = None
    sms_h: float | None = None
    picked_h: float | None = None
    outcome: str = "planned"


@dataclass(order=True)
class Action:
    at_h: float
    seq: int
    kind: str = field(compare=False)  # visit | outbound | guess | impersonate
    station: str = field(compare=False)
    parcels: list[Parcel] = field(default_factory=list, compare=False)
    info: dict = field(default_factory=dict, compare=False)


def _van_hour(rng: random.Random) -> float:
    r = rng.random()
    acc = 0.0
    for centre, spread, w in VAN_WAVES:
        acc += w
        if r <= acc:
            return max(7.0, min(19.5, rng.gauss(centre, spread)))
    return 15.0


def _poisson(rng: random.Random, lam: float) -> int:
    if lam > 50:
        return max(0, int(round(rng.gauss(lam, math.sqrt(lam)))))
    k, p, l_ = 0, 1.0, math.exp(-lam)
    while True:
        p *= rng.random()
        if p <= l_:
            return k
        k += 1


BUSY_DEPOSITS = 0.35  # a busy hour's vans all call within this share of the run
BUSY_PICKUP = (0.05, 0.3)  # and its villagers come this share of the run after the SMS


def busy_plan(sc: Scenario, stations: list[tuple[str, int]]) -> list[Action]:
    """A busy hour (双十一 at its peak): stations are (station id, parcels in the run); every carrier's van
    calls once within the first BUSY_DEPOSITS of the run, and `busy_collect` of the parcels are collected
    a short while after their SMS, so deposits, pickups and their door events all fall inside the run."""
    rng = random.Random(sc.seed)
    pp = sc.people
    sizes, weights = zip(*pp.sizes.items())
    acts: list[Action] = []
    n = 0
    for st, parcels in stations:
        share = [parcels // len(pp.carriers) + (1 if i < parcels % len(pp.carriers) else 0)
                 for i in range(len(pp.carriers))]
        for carrier, k in zip(pp.carriers, share):
            batch = []
            for _ in range(k):
                n += 1
                collect = rng.random() < sc.busy_collect
                batch.append(Parcel(
                    station=st, carrier=carrier, waybill=f"SIM{sc.seed % 1000:03d}{n:07d}",
                    phone=f"139{(n * 7919 + sc.seed) % 10**8:08d}", size=rng.choices(sizes, weights)[0],
                    typo=rng.random() < pp.typo_p, ms_per_key=rng.randint(*pp.ms_per_key),
                    pickup_delay_h=sc.hours * rng.uniform(*BUSY_PICKUP) if collect else None))
            if batch:
                at = sc.start_h + sc.hours * BUSY_DEPOSITS * rng.random()
                acts.append(Action(at, len(acts), "visit", st, batch, {"carrier": carrier}))
    acts.sort()
    return acts


def make_plan(sc: Scenario, stations: list[tuple[str, int]]) -> list[Action]:
    """stations: (station id, normal-day volume). Returns the actions of the run, earliest first."""
    if sc.busy_share:
        return busy_plan(sc, stations)
    rng = random.Random(sc.seed)
    pp = sc.people
    end_h = sc.start_h + sc.hours
    days = range(int(sc.start_h // 24), int(math.ceil(end_h / 24)))
    acts: list[Action] = []
    n = 0
    sizes, weights = zip(*pp.sizes.items())
    for st, volume in stations:
        daily = volume * sc.volume_factor
        if sc.volume_cap:
            daily = min(daily, sc.volume_cap)
        for day in days:
            for carrier in pp.carriers:
                share = daily / len(pp.carriers) / pp.visits_per_day
                for _ in range(pp.visits_per_day):
                    k = _poisson(rng, share)
                    at = day * 24 + _van_hour(rng)
                    if k == 0 or not sc.start_h <= at < end_h:
                        continue
                    batch = []
                    for _ in range(k):
                        n += 1
                        never = rng.random() < pp.never_p
                        delay = None if never else rng.lognormvariate(math.log(pp.pickup_median_h), pp.pickup_sigma)
                        batch.append(Parcel(
                            station=st, carrier=carrier, waybill=f"SIM{sc.seed % 1000:03d}{n:07d}",
                            phone=f"139{(n * 7919 + sc.seed) % 10**8:08d}", size=rng.choices(sizes, weights)[0],
                            elderly=rng.random() < pp.elderly_p, typo=rng.random() < pp.typo_p,
                            ms_per_key=rng.randint(*pp.ms_per_key), pickup_delay_h=delay,
                            leave_open=rng.random() < pp.leave_open_p))
                    acts.append(Action(at, len(acts), "visit", st, batch, {"carrier": carrier}))
            for _ in range(_poisson(rng, pp.produce_per_day)):
                at = day * 24 + rng.uniform(8, 18)
                if sc.start_h <= at < end_h:
                    acts.append(Action(at, len(acts), "outbound", st, info={
                        "produce": rng.choice(PRODUCE), "weight_g": rng.randint(500, 15000),
                        "carrier": rng.choice(pp.carriers), "phone": f"137{rng.randrange(10**8):08d}"}))
    ids = [s for s, _ in stations]
    for i in range(sc.bad_actors.code_guessers):
        acts.append(Action(rng.uniform(sc.start_h, end_h - 0.5), len(acts), "guess", ids[i % len(ids)],
                           info={"guesses": sc.bad_actors.guesses, "seed": rng.randrange(10**6)}))
    for i in range(sc.bad_actors.impersonators):
        acts.append(Action(rng.uniform(sc.start_h, end_h - 0.5), len(acts), "impersonate", ids[i % len(ids)]))
    acts.sort()
    return acts


def pickup_hour(deposit_or_sms_h: float, delay_h: float) -> float:
    """When a villager with this delay comes: never at night; a night-time wish waits for the morning."""
    t = deposit_or_sms_h + delay_h
    hour = t % 24
    if hour < PICKUP_HOURS[0]:
        t += PICKUP_HOURS[0] - hour
    elif hour > PICKUP_HOURS[1]:
        t += 24 - hour + PICKUP_HOURS[0]
    return t


def elderly_phones(acts: list[Action]) -> dict[str, list[str]]:
    """Per station, the phones of recipients who need their parcels brought home (terminal.assist_phones)."""
    out: dict[str, list[str]] = {}
    for a in acts:
        for p in a.parcels:
            if p.elderly:
                out.setdefault(a.station, []).append(p.phone)
    return out
