"""RS-485 lock boards: the sans-IO codec, pyserial over a pty pair against a simulated board, and a board
run as a locker whose events take the same outbox path as an ESP32 locker's."""

import asyncio

import httpx
import pytest

from gateway import lockboard_codec as K
from gateway.lockboard_serial import BoardLinkError, SerialBus
from gateway.lockboard_sim import SimBus
from gwkit import SECRET_L2, RunningGateway, courier_api, make_config, until

CU16 = K.MODELS["kr-cu16"]
IR = K.MODELS["kr-cu16-ir"]


def test_frames_match_the_board_documentation():
    assert K.status_request(CU16, 0) == bytes.fromhex("020000600365")
    assert K.open_request(CU16, 1, 5) == bytes([2, 1, 5, 0x61, 3, (2 + 1 + 5 + 0x61 + 3) & 0xFF])
    assert K.open_request(IR, 0, 16)[3] == 0x51
    with pytest.raises(K.BoardProtocolError):
        K.open_request(CU16, 0, 17)
    with pytest.raises(K.BoardProtocolError):
        K.frame(0x20, 0, 0x60)


def test_status_reply_round_trip_and_bad_frames():
    doors = [False] * 16
    doors[0] = doors[9] = True
    occ = [False] * 16
    occ[15] = True
    raw = K.encode_status_reply(IR, 3, doors, occ)
    st = K.parse_status(IR, 3, raw)
    assert [i + 1 for i, d in enumerate(st.doors_open) if d] == [1, 10]
    assert [i + 1 for i, o in enumerate(st.occupied) if o] == [16]
    bad = bytearray(raw)
    bad[-1] ^= 0xFF
    with pytest.raises(K.BoardProtocolError, match="checksum"):
        K.parse_status(IR, 3, bytes(bad))
    with pytest.raises(K.BoardProtocolError, match="not a status reply"):
        K.parse_status(IR, 4, raw)  # another board's answer is never taken for this one's
    assert K.parse_open(CU16, 0, 2, K.frame(0, 2, 0x75)) is True
    assert K.parse_open(CU16, 0, 2, K.frame(0, 2, 0x76)) is False


def test_splitter_skips_line_noise_before_a_frame():
    sp = K.FrameSplitter()
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
        st = K.parse_status(IR, 2, raw)
        assert not any(st.doors_open) and st.occupied[4]
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


def board_config(tmp_path, port, **kw):
    boards = [{"id": "b1", "port": port, "model": "kr-cu16-ir", "secret": SECRET_L2, "poll_s": 0.05,
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
        assert gw.boards["b1"].vault, "only the salted hash went to the board's vault"
        the_code = code_rows[0].body["code"]
        assert the_code not in str(gw.boards["b1"].vault)

        r = await http.post("/api/v1/terminal/pickup", json={"code": the_code})
        assert r.status_code == 200 and r.json() == {"locker": "b1", "cs": [2]}
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
    assert board.lockouts == 1 and not rg.sim.board.opens, "no door opened"
    await until(lambda: not board.unacked, what="events stored")
    evts = [r.body for r in await rg.outbox_rows("evt")]
    assert [e["fails"] for e in evts if e["type"] == "code_bad"] == [1, 2, 3, 4, 5]
    assert [(e["secs"], e["count"]) for e in evts if e["type"] == "lockout"] == [(30, 1)]
    assert gw.counters["board_code_locked"] == 995
