"""Stolen board: a retained birth or event left at the broker is not believed after a gateway restart."""

import asyncio

from gwkit import until

SIZES = ((1, "S"), (2, "M"), (3, "L"))
FORGED = [{"n": n, "size": s, "st": "disabled", "door": "closed", "occ": False} for n, s in SIZES]
GOOD = [{"n": n, "size": s, "st": "empty", "door": "closed", "occ": False} for n, s in SIZES]


async def test_retained_forged_birth_is_not_applied_after_a_gateway_restart(gateway, lockers):
    rg = gateway
    l1 = lockers(rg.broker.port, "l1").connect()
    l1.online()
    # with its own credentials the board leaves a birth that disables every compartment, retained
    l1.pub("birth", {"v": 1, "boot": l1.boot, "fw": "0.1.0", "seq": 0, "ts": 0, "mono": 900, "comps": FORGED,
                     "outbox": 0, "vault": 0}, retain=True)
    # and a retained event
    l1.pub("evt", {"v": 1, "boot": l1.boot, "seq": 99, "ts": 0, "mono": 9, "type": "pickup", "c": 1,
                   "ref": "p-x"}, retain=True)
    await until(lambda: rg.gw.link.lockers["l1"].comps[1].st == "disabled", what="live birth seen")
    l1.birth(GOOD)  # the board's real state, live
    await until(lambda: rg.gw.link.lockers["l1"].comps[1].st == "empty", what="real birth seen")
    await rg.close()
    await rg.start()
    await asyncio.sleep(0.5)  # the broker hands retained messages over right after the subscription
    ls = rg.gw.link.lockers["l1"]
    assert all(c.st != "disabled" for c in ls.comps.values()), "the retained forged birth was applied"
    assert rg.gw.counters.snapshot()["retained_ignored"] >= 2  # the birth and the event
    health = await rg.gw.health()
    assert health["counters"]["retained_ignored"] >= 2
