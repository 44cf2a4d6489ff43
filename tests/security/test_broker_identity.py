"""Stolen board: a locker's credentials cannot take over another client's session at the station broker."""

import asyncio
import time

from gwkit import STATION, until
from simulator.intruder import try_connect


async def test_locker_credentials_cannot_take_over_the_gateway_or_a_neighbour(gateway, lockers):
    rg = gateway
    port = rg.broker.port
    l2 = lockers(port, "l2").connect()
    l2.online()
    await until(lambda: rg.gw.link.lockers["l2"].online, what="l2 online")
    restarts = rg.gw.counters.snapshot().get("task_restarts", 0)
    # the ids the gateway and l2 connect with (and the ones they used before ids were tied to usernames)
    victims = ["gateway", f"{STATION}-gateway", "l2", f"{STATION}-l2"]
    for _ in range(20):
        for cid in victims:
            rc = await asyncio.to_thread(try_connect, "127.0.0.1", port, cid, "l1", "l1-pass-1234")
            assert rc == 0, "l1's own credentials still connect (as l1)"
    await asyncio.sleep(0.5)  # a kicked gateway or locker would have noticed by now
    assert rg.gw.link.connected.is_set()
    assert rg.gw.counters.snapshot().get("task_restarts", 0) == restarts, "the gateway's session was taken over"
    assert l2.connects == 1, "l2 was disconnected"
    assert rg.gw.link.lockers["l2"].online, "l2's last will fired"
    assert rg.gw.counters.snapshot().get("lockers_lost", 0) == 0


async def test_a_neighbours_credentials_under_a_lockers_id_leave_the_locker_connected(gateway, lockers):
    """l2's credentials with l1's client id: l1 stays on."""
    rg = gateway
    l1 = lockers(rg.broker.port, "l1").connect()
    l1.online()
    await until(lambda: rg.gw.link.lockers["l1"].online, what="l1 online")
    rc = await asyncio.to_thread(try_connect, "127.0.0.1", rg.broker.port, "l1", "l2", "l2-pass-1234")
    assert rc == 0
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert l1.connects == 1 and rg.gw.link.lockers["l1"].online
