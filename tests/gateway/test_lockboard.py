"""RS-485 lock boards: pyserial over a pty pair against a simulated board, and a board run as a locker whose
events take the same outbox path as an ESP32 locker's. The codec itself (jc.lockboard, the firmware's) is
tested in tests/firmware/test_lockboard_frames.py."""

import asyncio
from pathlib import Path

import httpx
import pytest

from gateway.lockboard_serial import BoardLinkError, SerialBus
from gateway.lockboard_sim import FrameSplitter, SimBus
from jc import const as JK
from jc import lockboard as K
from gateway.protocol import code_hash
from gwkit import SECRET_L2, RunningGateway, courier_api, make_config, until

CU16 = K.MODELS["kr-cu16"]
IR = K.MODELS["kr-cu16-ir"]


def test_splitter_skips_line_noise_before_a_frame():
    sp = FrameSplitter()
    req = K.status_request(CU16, 0)
    sp.feed(b"\xff\x00" + req[:3])
    assert sp.take_request() is None
    sp.feed(req[3:])
    assert sp.take_request() == req and sp.skipped == 2


async def test_serial_bus_over_a_pty_pair():
    sim = SimBus.single("kr-cu16-ir", addr=2)
    bus = SerialBus(sim.port, timeout_s=0.3)
    try:
        sim.board.occupied[4] = True
        raw = await bus.exchange(K.status_request(IR, 2), K.status_reply_len(IR))
        doors, occ = K.parse_status(IR, 2, raw)
        assert doors == 0 and occ == 1 << 4
        raw = await bus.exchange(K.open_request(IR, 2, 5), K.OPEN_REPLY_LEN)
        assert K.parse_open(IR, 2, 5, raw) and sim.board.opens == [5] and sim.board.doors[4]
        sim.board.jammed.add(6)
        assert K.parse_open(IR, 2, 6, await bus.exchange(K.open_request(IR, 2, 6), K.OPEN_REPLY_LEN)) is False
        # a request to a board that is not on the bus times out instead of hanging
        with pytest.raises(BoardLinkError, match="no reply"):
            await bus.exchange(K.status_request(IR, 7), K.status_reply_len(IR))
    finally:
        await bus.close()
        sim.close()


def board_config(tmp_path, port, model="kr-cu16-ir", **kw):
    boards = [{"id": "b1", "port": port, "model": model, "secret": SECRET_L2, "poll_s": 0.05,
               "comps": [{"n": 1, "size": "S"}, {"n": 2, "size": "M", "lock": 5}, {"n": 3, "size": "L", "lock": 9}]}]
    return make_config(tmp_path, kw.pop("mqtt_port"), top={"boards": boards}, **kw)


@pytest.fixture
async def board_station(station, tmp_path):
    cfg0, broker = station
    sim = SimBus.single("kr-cu16-ir")
    rg = RunningGateway(board_config(tmp_path, sim.port, mqtt_port=broker.port))
    await rg.start()
    rg.sim = sim
    try:
        yield rg
    finally:
        await rg.close()
        sim.close()


async def test_board_deposit_code_and_pickup_through_the_outbox(board_station):
    rg, sim = board_station, board_station.sim
    gw = rg.gw
    b1 = gw.link.lockers["b1"]
    await until(lambda: b1.online and b1.birth_at, what="board birth")
    async with courier_api(gw) as http:
        r = await http.post("/api/v1/deposits", json={
            "consent_asked": True, "waybill": "ZT123456", "phone": "13900000002",
            "carrier": "中通", "size": "M", "locker": "b1"})
        assert r.status_code == 201, r.text
        d = r.json()
        assert d["c"] == 2 and sim.board.opens == [5], "compartment 2 sits on lock 5"
        await until(lambda: b1.comps[2].door == "open", what="door seen open")
        assert (b1.comps[2].st, b1.comps[2].ref) == ("deposit", d["ref"]), "the live view knows the opening"
        sim.close_door(5, occupied=True)
        await until(lambda: b1.comps[2].st == "occupied", what="deposit confirmed by door + occupancy")
        assert (await http.get(f"/api/v1/deposits/{d['ref']}")).json()["state"] == "deposited"
        code_rows = []

        async def code():
            code_rows[:] = await rg.outbox_rows("code")
            return code_rows
        for _ in range(100):
            if await code() and (await gw.codes.active("b1"))[0]["synced"]:
                break
            await asyncio.sleep(0.05)
        vault = gw.boards["b1"].vault
        assert vault.count() == 1, "the code went to the board's vault"
        the_code = code_rows[0].body["code"]
        stored = Path(vault.path).read_bytes()
        assert code_hash(SECRET_L2, the_code).encode() in stored and the_code.encode() not in stored, \
            "only the salted hash is kept, in the firmware vault's file"

        r = await http.post("/api/v1/terminal/pickup", json={"code": the_code})
        assert r.status_code == 200 and r.json() == {"locker": "b1", "cs": [2],
                                                     "opened": [{"locker": "b1", "cs": [2]}]}
        await until(lambda: b1.comps[2].door == "open", what="door seen open")
        sim.close_door(5, occupied=False)
        await until(lambda: b1.comps[2].st == "empty", what="pickup seen")
        assert (await http.post("/api/v1/terminal/pickup", json={"code": the_code})).status_code == 404, \
            "a used code opens nothing"

    await until(lambda: not gw.boards["b1"].unacked, what="every board event eacked once stored")
    evts = await rg.outbox_rows("evt")
    assert all(e.src == "b1" and e.boot == gw.boards["b1"].boot for e in evts)
    assert [e.seq for e in evts] == list(range(1, len(evts) + 1)), "one boot, seq without gaps"
    types = [e.body["type"] for e in evts]
    for t in ("lock", "door", "deposit", "code_ok", "pickup"):
        assert t in types
    assert b1.acked == len(evts)


@pytest.fixture
async def two_boards(station, tmp_path):
    """A station with two lock boards, b1 and b2, each on its own pty pair; the gateway's `sims` are theirs."""
    _, broker = station
    sims = [SimBus.single("kr-cu16-ir"), SimBus.single("kr-cu16-ir")]
    boards = [{"id": f"b{i + 1}", "port": sim.port, "model": "kr-cu16-ir", "secret": SECRET_L2, "poll_s": 0.05,
               "comps": [{"n": 1, "size": "M"}, {"n": 2, "size": "M"}]} for i, sim in enumerate(sims)]
    rg = RunningGateway(make_config(tmp_path, broker.port, top={"boards": boards}))
    await rg.start()
    rg.sims = sims
    try:
        lks = [rg.gw.link.lockers["b1"], rg.gw.link.lockers["b2"]]
        await until(lambda: all(lk.online and lk.birth_at for lk in lks), what="both boards born")
        yield rg
    finally:
        await rg.close()
        for sim in sims:
            sim.close()


async def board_deposit(http, rg, board: str, waybill: str, phone: str) -> None:
    """A courier's deposit into compartment 1 of `board`, confirmed by the door and the occupancy sensor."""
    lk, sim = rg.gw.link.lockers[board], rg.sims[int(board[1:]) - 1]
    r = await http.post("/api/v1/deposits", json={
        "consent_asked": True, "waybill": waybill, "phone": phone, "carrier": "ZTO", "size": "M", "locker": board})
    assert r.status_code == 201 and r.json()["c"] == 1, r.text
    await until(lambda: lk.comps[1].door == "open", what="deposit door open")
    sim.close_door(1, occupied=True)
    await until(lambda: lk.comps[1].st == "occupied", what="deposit confirmed")


async def test_one_code_opens_the_recipients_compartments_on_every_board(two_boards):
    """A villager with parcels on two lock boards types their one code once: both doors open, and no board
    counts it as a wrong code."""
    rg, sims = two_boards, two_boards.sims
    gw = rg.gw
    lks = [gw.link.lockers["b1"], gw.link.lockers["b2"]]
    async with courier_api(gw) as http:
        for i, lk in enumerate(lks):
            await board_deposit(http, rg, lk.id, f"ZT55500{i}", "13900000009")
        await until(lambda: all(gw.boards[b].vault.count() == 1 for b in ("b1", "b2")), what="codes on boards")
        codes = {r.body["code"] for r in await rg.outbox_rows("code")}
        assert len(codes) == 1, "one code per recipient per station"
        (the_code,) = codes

        r = await http.post("/api/v1/terminal/pickup", json={"code": the_code})
        assert r.status_code == 200, r.text
        assert r.json()["opened"] == [{"locker": "b1", "cs": [1]}, {"locker": "b2", "cs": [1]}]
        assert sims[0].board.opens[-1] == 1 and sims[1].board.opens[-1] == 1
        await until(lambda: all(lk.comps[1].door == "open" for lk in lks), what="both doors open")
        assert all(b.vault.fails == 0 for b in gw.boards.values()), "no board counted a wrong code"
        for sim in sims:
            sim.close_door(1, occupied=False)
        await until(lambda: all(lk.comps[1].st == "empty" for lk in lks), what="both picked up")
        r = await http.post("/api/v1/terminal/pickup", json={"code": the_code})
        assert r.status_code == 404 and r.json()["detail"]["error"] == "bad_code"
        # a wrong code counts once, against the first board only
        assert [gw.boards[b].vault.fails for b in ("b1", "b2")] == [1, 0]


async def test_a_right_code_for_board_2_resets_the_wrong_count_of_every_board(two_boards):
    """Wrong codes at the terminal count against the station's first board. A villager who mistyped up to one
    below the lockout, then typed their code, whose parcel is on board 2 only, starts again from nothing on
    every board: the same number of typos later, code entry is still open."""
    rg = two_boards
    gw = rg.gw
    below = JK.LOCKOUT_AFTER - 1
    async with courier_api(gw) as http:
        await board_deposit(http, rg, "b2", "ZT777001", "13900000011")
        await until(lambda: gw.boards["b2"].vault.count() == 1, what="code on board 2")
        (the_code,) = {r.body["code"] for r in await rg.outbox_rows("code")}
        assert not gw.boards["b1"].vault, "board 1 holds no code"
        wrong = (c for c in (f"{n:06d}" for n in range(100003, 1000000, 7919)) if c != the_code)

        async def typed(code: str) -> int:
            return (await http.post("/api/v1/terminal/pickup", json={"code": code})).status_code

        assert [await typed(next(wrong)) for _ in range(below)] == [404] * below
        r = await http.post("/api/v1/terminal/pickup", json={"code": the_code})
        assert r.status_code == 200 and r.json()["opened"] == [{"locker": "b2", "cs": [1]}], r.text
        assert [b.vault.fails for b in gw.boards.values()] == [0, 0], "no board keeps a wrong count"
        assert [await typed(next(wrong)) for _ in range(below)] == [404] * below, \
            "as many typos as before the right code, and no lockout"
        # wrong codes still count as before: one more locks code entry at the terminal, the next is refused
        assert await typed(next(wrong)) == 404
        assert await typed(next(wrong)) == 429
        assert [b.vault.lockouts for b in gw.boards.values()] == [1, 0]
    await until(lambda: not any(b.unacked for b in gw.boards.values()), what="events stored")
    evts = [r.body for r in await rg.outbox_rows("evt")]
    assert [e["fails"] for e in evts if e["type"] == "code_bad"] == [*range(1, below + 1), *range(1, below + 2)]
    assert [(e["secs"], e["count"]) for e in evts if e["type"] == "lockout"] == [(JK.LOCKOUT_FIRST_S, 1)]
    assert [r.src for r in await rg.outbox_rows("evt") if r.body["type"] == "code_bad"] == ["b1"] * (2 * below + 1)


async def test_forced_door_jam_and_a_silent_board(board_station):
    rg, sim = board_station, board_station.sim
    gw = rg.gw
    b1 = gw.link.lockers["b1"]
    await until(lambda: b1.online and b1.birth_at, what="board birth")
    sim.open_door(1)  # nobody asked for it
    await until(lambda: gw.boards["b1"].seq >= 2, what="forced open seen")
    sim.board.jammed.add(9)
    ack = await gw.link.send_command("b1", "open", c=3, by="ops-li", why="test")
    assert ack["ok"] is False and ack["err"] == "busy"
    await until(lambda: b1.comps[3].st == "fault", what="jammed lock marks the compartment faulty")
    sim.board.silent = True
    await until(lambda: not b1.online, timeout=5, what="silent board goes offline")
    sim.board.silent = False
    await until(lambda: b1.online, timeout=5, what="board back online")
    await until(lambda: not gw.boards["b1"].unacked, what="all eacked")
    alarms = [r.body["kind"] for r in await rg.outbox_rows("evt") if r.body["type"] == "alarm"]
    assert alarms == ["forced_open", "lock_jam"]
    statuses = [r.body["state"] for r in await rg.outbox_rows("status") if r.src == "b1"]
    assert statuses == ["online", "lost", "online"]
    assert len([r for r in await rg.outbox_rows("birth") if r.src == "b1"]) == 2


async def test_a_thousand_wrong_codes_open_nothing_and_lock_the_keypad(board_station):
    rg = board_station
    gw = rg.gw
    b1 = gw.link.lockers["b1"]
    await until(lambda: b1.online and b1.birth_at, what="board birth")
    board = gw.boards["b1"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gw.app), base_url="http://gw") as http:
        statuses = []
        for i in range(1000):
            r = await http.post("/api/v1/terminal/pickup", json={"code": f"{(i * 7919) % 1000000:06d}"})
            statuses.append(r.status_code)
    assert statuses[:5] == [404] * 5, "five wrong codes are answered, then the keypad locks"
    assert statuses[5:] == [429] * 995
    assert board.vault.lockouts == 1 and not rg.sim.board.opens, "no door opened"
    await until(lambda: not board.unacked, what="events stored")
    evts = [r.body for r in await rg.outbox_rows("evt")]
    assert [e["fails"] for e in evts if e["type"] == "code_bad"] == [1, 2, 3, 4, 5]
    assert [(e["secs"], e["count"]) for e in evts if e["type"] == "lockout"] == [(30, 1)]
    assert gw.counters["board_code_locked"] == 995


async def test_the_keypad_lockout_outlasts_a_restart_and_keeps_counting(board_station):
    """The firmware's vault decides: the count goes on after a lockout, and a restart does not clear it."""
    rg = board_station

    async def wrong(n):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=rg.gw.app), base_url="http://gw") as http:
            return [(await http.post("/api/v1/terminal/pickup", json={"code": f"{900000 + i:06d}"})).status_code
                    for i in range(n)]

    await until(lambda: rg.gw.link.lockers["b1"].birth_at, what="board birth")
    assert await wrong(6) == [404] * 5 + [429]
    await rg.close()
    await rg.start()
    await until(lambda: rg.gw.link.lockers["b1"].birth_at, what="board birth after the restart")
    assert await wrong(1) == [429], "a gateway restart does not lift the lockout"
    board = rg.gw.boards["b1"]
    board.started -= 31  # the board's clock moves past the 30 s lockout
    assert await wrong(6) == [404] * 5 + [429], "five more wrong codes lock it again"
    await until(lambda: not board.unacked, what="events stored")
    evts = [r.body for r in await rg.outbox_rows("evt") if r.body["boot"] == board.boot]
    assert [e["fails"] for e in evts if e["type"] == "code_bad"] == [6, 7, 8, 9, 10]
    assert [(e["secs"], e["count"]) for e in evts if e["type"] == "lockout"] == [(60, 2)]


async def test_a_board_without_occupancy_sensors_takes_the_courier_and_villager_at_their_word(station, tmp_path):
    """kr-cu16 has no sensors: a deposit opening that closes holds the parcel, a pickup opening that closes is
    empty (the state machine reads what a sensor would have read), and a remote open takes nothing out."""
    _, broker = station
    sim = SimBus.single("kr-cu16")
    rg = RunningGateway(board_config(tmp_path, sim.port, model="kr-cu16", mqtt_port=broker.port))
    await rg.start()
    try:
        gw = rg.gw
        b1 = gw.link.lockers["b1"]
        await until(lambda: b1.online and b1.birth_at, what="board birth")
        ack = await gw.link.send_command("b1", "deposit", c=1, ref="p-nosense")
        assert ack["ok"] is True and sim.board.opens == [1]
        await until(lambda: b1.comps[1].door == "open", what="door seen open")
        sim.close_door(1)
        await until(lambda: b1.comps[1].st == "occupied", what="deposit taken at the courier's word")
        assert b1.comps[1].ref == "p-nosense"
        ack = await gw.link.send_command("b1", "open", c=1, by="ops-li", why="check")
        assert ack["ok"] is True
        await until(lambda: b1.comps[1].door == "open", what="door seen open")
        sim.close_door(1)
        await until(lambda: b1.comps[1].door == "closed", what="door seen shut")
        await until(lambda: gw.boards["b1"].comps[1].settle_at < 0, what="the closing judged")
        await until(lambda: not gw.boards["b1"].unacked, what="events stored")
        assert b1.comps[1].st == "occupied", "a remote open is no pickup"
        h = code_hash(SECRET_L2, "246810")
        assert (await gw.link.send_command("b1", "code_put", h=h, cs=[1], exp=3600))["ok"] is True
        assert await gw.boards["b1"].try_code("246810") == [1]
        await until(lambda: b1.comps[1].door == "open", what="door seen open")
        sim.close_door(1)
        await until(lambda: b1.comps[1].st == "empty", what="pickup taken at the villager's word")
        assert gw.boards["b1"].vault.count() == 0, "the emptied compartment's code is used up"
        types = [r.body["type"] for r in await rg.outbox_rows("evt")]
        assert "deposit" in types and "pickup" in types and "alarm" not in types
    finally:
        await rg.close()
        sim.close()
