"""Cloud commands (§5.2, §5.3) against a real HTTP command queue, executed on a paho locker."""

import asyncio
import contextlib
import time

import uvicorn
from fastapi import FastAPI, Header, HTTPException, Request

from gateway.protocol import code_hash
from gwkit import SECRET_L1, RunningGateway, free_port, make_config, until

API_KEY = "station-key-demo-01"


class CommandQueue:
    """The cloud's side of the downlink: a cursor-ordered queue and the acks it received."""

    def __init__(self):
        self.commands: list[dict] = []
        self.acks: dict[str, list[dict]] = {}
        self.changed = asyncio.Event()
        self.app = FastAPI()

        @self.app.get("/api/v1/gateway/commands")
        async def commands(after: int = 0, wait: int = 0, authorization: str = Header("")):
            if authorization != f"Bearer {API_KEY}":
                raise HTTPException(403)
            deadline = time.monotonic() + min(wait, 30)
            while True:
                out = [c for c in self.commands if c["cursor"] > after]
                if out or time.monotonic() >= deadline:
                    return {"commands": out, "cursor": max([c["cursor"] for c in out], default=after)}
                self.changed.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), deadline - time.monotonic())

        @self.app.post("/api/v1/gateway/commands/{cmd_id}/ack")
        async def ack(cmd_id: str, request: Request, authorization: str = Header("")):
            if authorization != f"Bearer {API_KEY}":
                raise HTTPException(403)
            self.acks.setdefault(cmd_id, []).append(await request.json())
            return {"ok": True}

    def add(self, cmd_id: str, op: str, **fields):
        now = time.time()
        self.commands.append({"cursor": len(self.commands) + 1, "id": cmd_id, "op": op, "issued_at": now,
                              "expires_at": now + 300, **fields})
        self.changed.set()


async def test_cloud_commands_are_checked_executed_once_and_acked(station, lockers, tmp_path):
    cfg0, broker = station
    q = CommandQueue()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(q.app, host="127.0.0.1", port=port, log_level="warning"))
    srv = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    cfg = make_config(tmp_path, broker.port, cloud_url=f"http://127.0.0.1:{port}", cloud={"downlink_wait_s": 2})
    rg = RunningGateway(cfg)
    gw = await rg.start()
    try:
        l1 = lockers(broker.port, "l1").connect()
        l1.online()
        l1.birth()
        await until(lambda: gw.link.lockers["l1"].birth_at)

        def opens():
            return [c for c in l1.cmds if c["op"] == "open"]
        q.add("k-1", "open", locker="l1", c=1, by="ops-li", why="door stuck")
        await until(lambda: "k-1" in q.acks, what="ack of k-1")
        assert q.acks["k-1"][0]["ok"] is True
        assert [(c["c"], c["by"], c["why"]) for c in opens()] == [(1, "ops-li", "door stuck")]

        q.add("k-2", "open", locker="l1", c=2, by="ops-li", why="late", expires_at=time.time() - 1)
        q.add("k-3", "open", locker="l9", c=1, by="ops-li", why="x")
        q.add("k-4", "disable", locker="l1", c=3, by="ops-li", why="broken hinge")
        q.add("k-1", "open", locker="l1", c=1, by="ops-li", why="door stuck")  # delivered again
        q.add("k-5", "open", locker="l1", c=2, by="ops-wang", why="check")
        q.add("k-6", "open", locker="l1", c=3, by="ops-wang", why="check")
        q.add("k-7", "open", locker="l1", c=3, by="ops-wang", why="one too many")
        q.add("k-8", "fw_rollout", locker="l1", version="0.2.0")
        await until(lambda: all(k in q.acks for k in ("k-2", "k-3", "k-4", "k-5", "k-6", "k-7", "k-8"))
                    and len(q.acks["k-1"]) == 2, timeout=10, what="all acks")
        err = {k: v[-1].get("err") for k, v in q.acks.items()}
        assert err == {"k-1": None, "k-2": "expired", "k-3": "unknown_locker", "k-4": None, "k-5": None,
                       "k-6": None, "k-7": "rate_limited", "k-8": "bad_command"}
        assert q.acks["k-1"][1]["ok"] is True, "a repeated id is answered with its stored result"
        assert [c["c"] for c in opens()] == [1, 2, 3], "three remote opens a minute, each executed once"
        assert [c["c"] for c in l1.cmds if c["op"] == "disable"] == [3]

        # a code the cloud issued replaces the recipient's code on the locker
        q.add("k-9", "code_sync", locker="l1", phone="13800000001", code="482913", refs=["p-1"], cs=[2],
              exp_ts=time.time() + 3600)
        await until(lambda: "k-9" in q.acks, what="code_sync ack")
        assert q.acks["k-9"][0]["ok"] is True
        put = [c for c in l1.cmds if c["op"] == "code_put"][-1]
        assert put["h"] == code_hash(SECRET_L1, "482913") and put["cs"] == [2]
        q.add("k-10", "code_sync", locker="l1", phone="13800000001", code="111222", refs=["p-1"], cs=[2],
              exp_ts=time.time() + 3600)
        await until(lambda: "k-10" in q.acks, what="second code_sync ack")
        assert [c["h"] for c in l1.cmds if c["op"] == "code_del"] == [put["h"]]
        assert [c for c in l1.cmds if c["op"] == "code_put"][-1]["h"] == code_hash(SECRET_L1, "111222")
        active = await gw.codes.active("l1")
        assert [(a["phone"], a["h"]) for a in active] == [("13800000001", code_hash(SECRET_L1, "111222"))]

        # the cursor and the stored results survive a restart: nothing is executed twice
        n = len(l1.cmds)
        await rg.close()
        gw = await rg.start()
        await asyncio.sleep(1.0)
        assert [c for c in l1.cmds[n:] if c["op"] in ("open", "disable", "code_put", "code_del")] == []
    finally:
        await rg.close()
        server.should_exit = True
        await asyncio.wait_for(srv, 10)


async def test_mass_remote_open_is_impossible_and_config_is_bounded(station, lockers, tmp_path):
    cfg0, broker = station
    q = CommandQueue()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(q.app, host="127.0.0.1", port=port, log_level="warning"))
    srv = asyncio.create_task(server.serve())
    await until(lambda: server.started)
    cfg = make_config(tmp_path, broker.port, cloud_url=f"http://127.0.0.1:{port}", cloud={"downlink_wait_s": 2})
    rg = RunningGateway(cfg)
    gw = await rg.start()
    try:
        l1 = lockers(broker.port, "l1").connect()
        l1.online()
        l1.birth()
        await until(lambda: gw.link.lockers["l1"].birth_at)
        # a compromised cloud queues an open of every compartment by many operators at once
        ids = []
        for i in range(60):
            ids.append(f"m-{i}")
            q.add(f"m-{i}", "open", locker="l1", c=1 + i % 3, by=f"ops-{i % 7}", why="mass open")
        await until(lambda: all(k in q.acks for k in ids), timeout=20, what="every mass-open command acked")
        opened = [c for c in l1.cmds if c["op"] == "open"]
        assert len(opened) == 3, "at most three remote opens a minute, whatever the cloud sends"
        assert sum(1 for k in ids if q.acks[k][0]["ok"]) == 3
        assert {q.acks[k][0].get("err") for k in ids if not q.acks[k][0]["ok"]} == {"rate_limited"}
        assert gw.counters["remote_open_refused"] == 57

        # a setting the gateway lists as remotely settable changes within bounds; anything else is refused
        q.add("s-1", "config", key="gateway.tele_s", value=30)
        q.add("s-2", "config", key="cloud.remote_open_per_min", value=50)
        q.add("s-3", "config", key="mqtt.password", value="x" * 12)
        q.add("s-4", "config", key="terminal.assist_phones", value=["13700000007"])
        # nothing listens there: the download fails, no locker is offered anything
        q.add("f-1", "fw_rollout", version="0.2.0", url=f"http://127.0.0.1:{free_port()}/0.2.0.tar.gz",
              sha256="ab" * 32, lockers=["l1"])
        q.add("f-2", "fw_rollout", version="0.2.1", url="https://fw.example.cn/0.2.1.bin", sha256="ab" * 32,
              lockers=["l1", "l7"])
        await until(lambda: all(k in q.acks for k in ("s-1", "s-2", "s-3", "s-4", "f-1", "f-2")), timeout=10)
        err = {k: q.acks[k][0].get("err") for k in ("s-1", "s-2", "s-3", "s-4", "f-1", "f-2")}
        assert err == {"s-1": None, "s-2": "bad_command", "s-3": "bad_command", "s-4": None, "f-1": "offline",
                       "f-2": "unknown_locker"}
        assert q.acks["f-1"][0]["results"] == {"l1": "not_offered"}
        assert not [c for c in l1.cmds if c["op"] == "fw_offer"]
        assert gw.cfg.gateway.tele_s == 30 and gw.cfg.cloud.remote_open_per_min == 3
        assert gw.cfg.terminal.assist_phones == ["13700000007"]
        await rg.close()
        rg.cfg = make_config(tmp_path, broker.port, cloud_url=f"http://127.0.0.1:{port}",
                             cloud={"downlink_wait_s": 2})
        gw = await rg.start()
        assert gw.cfg.gateway.tele_s == 30, "a remote setting survives a restart"
    finally:
        await rg.close()
        server.should_exit = True
        await asyncio.wait_for(srv, 10)
