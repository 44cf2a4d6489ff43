"""The physical ledger: what is inside each compartment against what the cloud and the villagers were told.

The simulated boards know which parcels people put into each compartment and took out (`BoardSim.contents`).
At the end of a run every parcel physically inside must be held by the cloud as in that compartment, with
a live pickup code that reached its recipient by SMS, or be on the station agent's found-parcel list;
otherwise it is **stranded** (nobody will ever come for it). Every parcel the cloud holds as in a locker
must be physically in that compartment; otherwise it is a **phantom** (a villager holds a code for an empty
door). `reconcile()` is pure; `read_cloud()` reads the cloud's own database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError

from simulator.cluster import AGENT_ID, AGENT_PIN, Cluster
from simulator.ledger import LedgerError

IN_LOCKER = ("deposited", "notified", "overdue")  # cloud statuses of a parcel that lies in a compartment
NO_SMS = "no SMS reached the recipient"
PHYSICAL_SETTLE_S = 60.0  # after the drain, SMS still queued in the cloud (retried every 30 s) may go out

log = logging.getLogger("jincun.sim")


@dataclass(frozen=True)
class CloudParcel:
    """An inbound parcel as the cloud holds it."""

    waybill: str
    ref: str
    station: str
    locker: str | None
    c: int | None
    status: str


@dataclass(frozen=True)
class CloudView:
    """The cloud's parcels by waybill and its live (unused, unexpired) codes: (station, code) -> refs."""

    parcels: dict[str, CloudParcel]
    live_codes: dict[tuple[str, str], frozenset[str]]


def read_cloud(db_url: str, now: float | None = None) -> CloudView:
    """Inbound parcels and live pickup codes from the cloud's database."""
    now = now or time.time()
    eng = create_engine(db_url)
    try:
        with eng.connect() as conn:
            rows = conn.execute(text(
                "SELECT waybill, ref, station_id, locker_id, compartment, status FROM parcels "
                "WHERE direction = 'inbound' AND waybill IS NOT NULL")).all()
            codes = conn.execute(text(
                "SELECT station_id, code, refs, exp FROM pickup_codes WHERE used = :f"), {"f": False}).all()
    except SQLAlchemyError as exc:
        raise LedgerError(f"cannot read the cloud database: {exc}") from exc
    finally:
        eng.dispose()
    parcels = {r[0]: CloudParcel(r[0], r[1], r[2], r[3], r[4], r[5]) for r in rows}
    live: dict[tuple[str, str], frozenset[str]] = {}
    for st, code, refs, exp in codes:
        if exp is not None and exp <= now:
            continue
        refs = json.loads(refs) if isinstance(refs, str) else (refs or [])
        live[(st, code)] = live.get((st, code), frozenset()) | frozenset(refs)
    return CloudView(parcels, live)


def reconcile(inside: dict[str, dict[int, list[str]]], cloud: CloudView, sms: dict[str, str],
              found: AbstractSet[str] = frozenset()) -> dict:
    """inside: locker -> compartment -> parcels physically there; sms: parcel ref -> code the recipient got;
    found: waybills on the agents' found-parcel lists. Returns the stranded and phantom parcels, each with
    its reason."""
    stranded, phantom, on_list = [], [], []
    for locker, comps in inside.items():
        for c, items in comps.items():
            for wb in items:
                if wb in found:
                    on_list.append({"waybill": wb, "locker": locker, "c": c})
                    continue
                why = _why_stranded(wb, locker, c, cloud, sms, found)
                if why:
                    stranded.append({"waybill": wb, "locker": locker, "c": c, "why": why})
    for p in cloud.parcels.values():
        there = inside.get(p.locker or "", {}).get(p.c, []) if p.c is not None else []
        if p.status in IN_LOCKER and p.waybill not in there:
            where = [f"{lk}/{c}" for lk, comps in inside.items() for c, items in comps.items() if p.waybill in items]
            phantom.append({"waybill": p.waybill, "locker": p.locker, "c": p.c, "status": p.status,
                            "physically_at": where})
    return {"stranded_parcels": len(stranded), "phantom_parcels": len(phantom), "stranded": stranded,
            "phantom": phantom, "found": on_list}


def _why_stranded(wb: str, locker: str, c: int, cloud: CloudView, sms: dict[str, str],
                  found: AbstractSet[str]) -> str:
    if wb in found:
        return ""
    p = cloud.parcels.get(wb)
    if p is None:
        return "unknown to the cloud"
    if p.status not in IN_LOCKER:
        return f"cloud status {p.status}"
    if (p.locker, p.c) != (locker, c):
        return f"cloud holds it at {p.locker}/{p.c}"
    code = sms.get(p.ref)
    if code is None:
        return NO_SMS
    if p.ref not in cloud.live_codes.get((p.station, code), frozenset()):
        return "the code sent is not live for it"
    return ""


async def settle_physical(cl: Cluster) -> dict:
    """The compartments' contents against the cloud and the SMS the villagers got, until they agree or
    PHYSICAL_SETTLE_S passes (an SMS queued while the cloud or the carrier was down goes out on the
    notifier's next retry)."""
    deadline = time.monotonic() + PHYSICAL_SETTLE_S
    while True:
        inside: dict[str, dict[int, list[str]]] = {}
        for r in await asyncio.gather(*(h.call("contents") for h in cl.hosts)):
            inside.update({lk: {int(c): v for c, v in comps.items()} for lk, comps in r["inside"].items() if comps})
        view = await asyncio.to_thread(read_cloud, cl.db_url)
        found = {wb for lk, c in await found_places(cl) for wb in inside.get(lk, {}).get(c, [])}
        res = reconcile(inside, view, cl.sms_sink().codes(), found)
        res["inside"] = sum(len(v) for comps in inside.values() for v in comps.values())
        # after the drain every event is in the cloud: only an SMS still on its way can change the verdict
        waiting = any(p["why"] == NO_SMS for p in res["stranded"])
        if not waiting or time.monotonic() > deadline:
            return res
        await asyncio.sleep(2)

async def found_places(cl: Cluster) -> set[tuple[str, int]]:
    """The compartments on the agents' found-parcel lists (GET /api/v1/terminal/found at each station):
    a parcel lying there is the agent's task, not stranded. Read after the run's own client is closed."""
    places: set[tuple[str, int]] = set()
    async with httpx.AsyncClient(timeout=30) as http:
        for s in cl.stations:
            url = cl.gateway_url(s.id)
            try:
                r = await http.post(f"{url}/api/v1/terminal/login", json={"user": AGENT_ID, "pin": AGENT_PIN})
                r.raise_for_status()
                r = await http.get(f"{url}/api/v1/terminal/found",
                                   headers={"Authorization": f"Bearer {r.json()['token']}"})
                r.raise_for_status()
            except httpx.HTTPError as exc:
                log.warning("found parcels at %s: %s", s.id, exc)
                continue
            places |= {(f["locker"], int(f["c"])) for f in r.json()["found"]}
    return places
