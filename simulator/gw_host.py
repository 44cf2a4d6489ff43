"""Gateway host: the real gateway of several stations in one process and one event loop.

`python -m simulator.gw_host spec.json`. Each station is a `gateway.app.Gateway` run by `gateway.app.run`
with its own SQLite outbox, local HTTP API port and MQTT session. The station's uplink is an httpx
transport that can be cut (`UplinkSwitch`): a cut link refuses every connection, as a dead 4G modem does.
A JSON-lines control channel takes faults (uplink, disk full) and answers status summaries.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

import httpx

from gateway.app import Gateway, run
from gateway.config import parse_config
from gateway.errors import GatewayError

log = logging.getLogger("jincun.sim.gwhost")
MAX_LINE = 65536
FULL_PAGES = 1 << 30


class UplinkSwitch(httpx.AsyncBaseTransport):
    """The station's uplink: passes requests to the cloud while up, refuses to connect while down."""

    def __init__(self) -> None:
        self.up = True
        self.refused = 0
        self._inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.up:
            self.refused += 1
            raise httpx.ConnectError("uplink down", request=request)
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


class GwHost:
    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.stop = asyncio.Event()
        self.gws: dict[str, Gateway] = {}
        self.links: dict[str, UplinkSwitch] = {}
        self.cfgs = {d["station"]: parse_config(d) for d in spec["stations"]}

    async def main(self) -> None:
        tasks = []
        for st, cfg in self.cfgs.items():
            self.links[st] = UplinkSwitch()
            tasks.append(asyncio.create_task(self._run_one(st, cfg), name=f"gw-{st}"))
        while len(self.gws) < len(self.cfgs):
            for t in tasks:
                if t.done() and (exc := t.exception()) is not None:
                    raise exc
            await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop.set)  # after every gateway installed its own
        server = await asyncio.start_server(self._client, "127.0.0.1", self.spec["control_port"], limit=MAX_LINE)
        print(f"gateways ready: {len(self.gws)} on control port {self.spec['control_port']}", flush=True)
        try:
            await self.stop.wait()
        finally:
            server.close()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_one(self, st: str, cfg) -> None:
        await run(cfg, transport=self.links[st], stop=self.stop, started=lambda gw: self.gws.__setitem__(st, gw))

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    req = json.loads(line)
                    reply = await self._op(req)
                except (ValueError, KeyError, TypeError, GatewayError) as exc:
                    reply = {"ok": False, "err": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
            log.warning("control client: %s", exc)
        finally:
            writer.close()

    async def _op(self, req: dict) -> dict:
        op = req["op"]
        if op == "summary":
            out = {}
            for st, gw in self.gws.items():
                s = await gw.outbox.stats()
                c = gw.counters.snapshot()
                out[st] = {"depth": s["depth"], "uplink": gw.uplink.up, "link_up": self.links[st].up,
                           "online": gw.link.online_count(), "disk_full": gw.outbox.disk_full,
                           "counters": {k: v for k, v in c.items() if v}}
            return {"ok": True, "stations": out}
        gw = self.gws[req["station"]]
        if op == "uplink":
            self.links[req["station"]].up = bool(req["up"])
        elif op == "disk_full":
            on = bool(req["on"])

            def limit(conn):
                pages = conn.execute("PRAGMA page_count").fetchone()[0]
                conn.execute(f"PRAGMA max_page_count={pages if on else FULL_PAGES}")
            await gw.outbox.run(limit)
        else:
            return {"ok": False, "err": f"unknown op {op}"}
        return {"ok": True}


def main(argv: list[str] | None = None) -> None:
    argv = argv or sys.argv[1:]
    spec = json.loads(Path(argv[0]).read_text())
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(GwHost(spec).main())


if __name__ == "__main__":
    main()
