"""A county on one machine: one cloud, one broker, gateway hosts and controller hosts, each a real process.

Scale decisions (see docs/simulator.md): one Mosquitto serves every station (each station keeps its own
gateway user, locker users and deny-by-default ACL, all in one password file and ACL, and its own CA and
TLS listener for its lockers); several gateways share a process and an event loop; several controllers
share an interpreter. One cloud serves all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import secrets
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from gateway.broker import acl_text, broker_body, broker_user, password_line, tls_lines
from gateway.config import parse_config
from gateway.terminal import hash_pin
from jincun import provision
from jincun.fwtools import micropypath
from simulator.locker import _find_micropython
from simulator.net import PortPool, wait_port
from simulator.stack import Proc, StackError

log = logging.getLogger("jincun.sim.cluster")
REPO = Path(__file__).resolve().parent.parent
CODE_RE = re.compile(r"取件码\s*(\d{6})")
WAYBILL_RE = re.compile(r"运单号\s*([A-Za-z0-9-]+)")
AGENT_ID, AGENT_PIN = "agent1", "246810"
# the couriers' desk of every simulated station (no fixed carrier: each deposit names its carrier)
COURIER_ID, COURIER_PIN = "desk1", "864209"
AGENT_PIN_ITERATIONS = 1000  # a simulator-only PIN; hundreds of stations start faster with a cheap hash
SMS_MAX = 200_000


class ClusterError(StackError):
    """The county did not start or a part stopped answering."""


@dataclass
class StationSpec:
    id: str
    name: str
    town: str
    lockers: list[str]
    assist_phones: list[str] = field(default_factory=list)


class SmsSink:
    """The SMS carrier's test double: the cloud's HTTP notifier posts here; villagers read their codes."""

    def __init__(self) -> None:
        self.by_ref: dict[str, tuple[str, float]] = {}
        self.count = 0
        self.dropped = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                n = int(self.headers.get("Content-Length") or 0)
                try:
                    msg = json.loads(self.rfile.read(n))
                    sink.receive(str(msg["phone"]), str(msg["text"]), msg.get("ref"))
                    self.send_response(200)
                except (ValueError, KeyError, TypeError):
                    self.send_response(400)
                self.end_headers()

            def log_message(self, *a) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="sms-sink", daemon=True)
        self.thread.start()

    def receive(self, phone: str, text: str, ref: str | None) -> None:
        code = CODE_RE.search(text)
        with self.lock:
            self.count += 1
            if not (code and ref):
                return
            if len(self.by_ref) >= SMS_MAX:
                self.dropped += 1
                return
            self.by_ref[ref] = (code.group(1), time.time())

    def codes(self) -> dict[str, str]:
        """Every parcel's latest code (by the parcel's ref), as its recipient last read it."""
        with self.lock:
            return {ref: c for ref, (c, _) in self.by_ref.items()}

    def code(self, ref: str) -> tuple[str, float] | None:
        """The code the SMS about this parcel carried, and when it came."""
        with self.lock:
            return self.by_ref.get(ref)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HostClient:
    """The control channel of one controller host: requests tagged with rid, replies matched to futures."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.futs: dict[int, asyncio.Future] = {}
        self.rid = 0
        self.task: asyncio.Task | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 22)
        self.task = asyncio.create_task(self._rx())

    async def _rx(self) -> None:
        try:
            assert self.reader is not None, "connect() opened it"
            while line := await self.reader.readline():
                reply = json.loads(line)
                fut = self.futs.pop(reply.get("rid"), None)
                if fut is not None and not fut.done():
                    fut.set_result(reply)
        except (OSError, ValueError) as exc:
            log.warning("controller host %s: %s", self.port, exc)
        for fut in self.futs.values():
            if not fut.done():
                fut.set_exception(ClusterError(f"controller host on {self.port} closed its channel"))
        self.futs.clear()

    async def call(self, op: str, timeout: float = 30, **kw) -> dict:
        if self.writer is None or self.task is None or self.task.done():
            raise ClusterError(f"controller host on {self.port} is not connected")
        self.rid += 1
        fut = asyncio.get_running_loop().create_future()
        self.futs[self.rid] = fut
        self.writer.write(json.dumps({"op": op, "rid": self.rid, **kw}).encode() + b"\n")
        await self.writer.drain()
        reply = await asyncio.wait_for(fut, timeout)
        if not reply.get("ok"):
            raise ClusterError(f"controller op {op} failed: {reply.get('err')}")
        return reply

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.task is not None:
            self.task.cancel()


class GwClient:
    """The control channel of one gateway host (one request at a time)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.lock = asyncio.Lock()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def call(self, op: str, timeout: float = 30, **kw) -> dict:
        async with self.lock:
            try:
                if self.writer is None or self.reader is None:
                    self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 24)
                reader, writer = self.reader, self.writer
                writer.write(json.dumps({"op": op, **kw}).encode() + b"\n")
                await writer.drain()
                line = await asyncio.wait_for(reader.readline(), timeout)
            except (TimeoutError, OSError) as exc:
                self.writer = None
                raise ClusterError(f"gateway host on {self.port}: {exc!r}") from None
        if not line:
            self.writer = None
            raise ClusterError(f"gateway host on {self.port} closed its channel")
        try:
            reply = json.loads(line)
        except ValueError:
            self.writer = None
            raise ClusterError(f"gateway host on {self.port} answered {line[:80]!r}") from None
        if not reply.get("ok"):
            raise ClusterError(f"gateway op {op} failed: {reply.get('err')}")
        return reply

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Cluster:
    """Starts and stops the county's processes and knows where every station and controller lives."""

    workdir: Path
    stations: list[StationSpec]
    runtime: str = "micropython"
    comps: str = "6S,4M,2L"
    controllers_per_host: int = 16
    gateways_per_host: int = 25
    database_url: str | None = None
    cloud_port: int = 0
    tele_s: int = 60
    ajar_s: int = 120
    hw: dict = field(default_factory=dict)
    seed: int = 1
    # lockers reach the broker over TLS, each station's on its own listener with its own CA, as at a real
    # station; only the MicroPython runtime carries TLS (the CPython runtime has no MicroPython streams)
    tls: bool = True
    procs: dict[str, Proc] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.admin_token = secrets.token_urlsafe(24)
        self.ports = PortPool()
        self.cloud_port = self.cloud_port or self.ports.take()
        self.mqtt_port = self.ports.take()  # the gateways' plain listener, on loopback as on a Pi
        self.tls = self.tls and self.runtime == "micropython"
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.env.pop("JINCUN_DATABASE_URL", None)
        self.station_cfgs: dict[str, dict] = {}
        self.locker_station: dict[str, str] = {}
        self.locker_host: dict[str, int] = {}  # locker -> index of its controller host
        self.station_host: dict[str, int] = {}
        self.hosts: list[HostClient] = []
        self.gwhosts: list[GwClient] = []
        self.sms: SmsSink | None = None
        self.http = httpx.Client(timeout=30)
        self._restart_locks: dict[str, threading.Lock] = {}

    @property
    def cloud_url(self) -> str:
        return f"http://127.0.0.1:{self.cloud_port}"

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.workdir / 'cloud.db'}"

    @property
    def n_controllers(self) -> int:
        return sum(len(s.lockers) for s in self.stations)

    def gateway_url(self, station: str) -> str:
        return f"http://127.0.0.1:{self.station_cfgs[station]['gateway']['http']['port']}"

    def sms_sink(self) -> SmsSink:
        """The SMS provider stand-in, which start() made."""
        assert self.sms is not None, "the cluster is not started"
        return self.sms

    def locker_dir(self, locker: str) -> Path:
        return self.workdir / "lockers" / locker

    # ---- start / stop -------------------------------------------------------------------------------------
    def start(self, progress=lambda msg: None) -> Cluster:
        try:
            self.sms = SmsSink()
            progress("cloud")
            self._start_cloud()
            progress(f"registering {len(self.stations)} stations")
            self._register()
            progress("broker")
            self._start_broker()
            progress(f"gateways ({len(self.stations)})")
            self._start_gateways()
            progress(f"controllers ({self.n_controllers}, {self.runtime})")
            self._start_controllers()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for name in sorted(self.procs, key=lambda n: (not n.startswith("fw"), not n.startswith("gw"))):
            self.procs[name].stop()
        if self.sms is not None:
            self.sms.close()
            self.sms = None
        self.http.close()

    def _start_cloud(self) -> None:
        env = dict(self.env, JINCUN_DATABASE_URL=self.db_url, JINCUN_ADMIN_TOKEN=self.admin_token, JINCUN_DEMO="1",
                   JINCUN_SMS_ADAPTER="http", JINCUN_SMS_HTTP_URL=f"http://127.0.0.1:{self.sms_sink().port}/sms")
        proc = Proc("cloud", [sys.executable, "-m", "jincun", "cloud", "serve", "--port", str(self.cloud_port)],
                    env, self.workdir / "cloud.log")
        proc.start()
        self.procs["cloud"] = proc
        self._wait_cloud()

    def _wait_cloud(self) -> None:
        proc = self.procs["cloud"]
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if self.http.get(f"{self.cloud_url}/api/v1/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if not proc.alive:
                raise ClusterError(f"cloud exited; see {proc.log}")
            time.sleep(0.2)
        raise ClusterError("cloud not up after 90 s")

    def _register(self) -> None:
        auth = {"Authorization": f"Bearer {self.admin_token}"}
        comps = provision.parse_comps(self.comps)
        agent = {"id": AGENT_ID, "name": "示例代办员", "role": "agent",
                 "pin_hash": hash_pin(AGENT_PIN, iterations=AGENT_PIN_ITERATIONS)}
        desk = {"id": COURIER_ID, "name": "投递台", "role": "courier",
                "pin_hash": hash_pin(COURIER_PIN, iterations=AGENT_PIN_ITERATIONS)}
        from concurrent.futures import ThreadPoolExecutor
        ports = {st.id: self.ports.take() for st in self.stations}
        tls_ports = {st.id: self.ports.take() for st in self.stations} if self.tls else {}
        with ThreadPoolExecutor(8) as pool:
            cfgs = list(pool.map(lambda st: self._register_one(st, auth, comps, [agent, desk], ports[st.id],
                                                               tls_ports.get(st.id)), self.stations))
        for st, cfg in zip(self.stations, cfgs):
            self.station_cfgs[st.id] = cfg
            for lk in cfg["lockers"]:
                self.locker_station[lk["id"]] = st.id

    def _register_one(self, st: StationSpec, auth: dict, comps: list[dict], users: list[dict], port: int,
                      tls_port: int | None) -> dict:
        """Register one station and its lockers in the cloud; returns its gateway's station.json.

        tls_port: the station's own TLS listener for its lockers, with a CA made for the station as
        enrollment makes it (gateway/station_ca.py); None: the lockers speak plain MQTT (CPython runtime).
        """
        api_key = secrets.token_urlsafe(24)
        with httpx.Client(timeout=30) as http:
            r = http.post(f"{self.cloud_url}/api/v1/admin/stations", headers=auth, json={
                "id": st.id, "name": st.name, "kind": "village_shop", "village": st.name, "town": st.town,
                "api_key": api_key})
            if r.status_code not in (200, 201):
                raise ClusterError(f"cloud refused station {st.id}: {r.status_code} {r.text[:200]}")
            cfg = provision.station_config(
                station=st.id, name=st.name, db=str(self.workdir / "gateways" / st.id / "gateway.db"),
                http_port=port, mqtt_host="127.0.0.1", mqtt_port=self.mqtt_port, cloud_url=self.cloud_url,
                api_key=api_key, lockers=[provision.locker_entry(lk, comps) for lk in st.lockers])
            cfg["mqtt"]["username"] = f"gw-{st.id}"
            cfg["gateway"].update({"tele_s": 60.0, "time_s": 600.0})
            cfg["cloud"].update({"downlink": False, "backoff_max_s": 4.0})
            cfg["terminal"] = {"users": users, "assist_phones": st.assist_phones[:5000]}
            if tls_port is not None:
                cfg["mqtt"]["tls"] = self._station_tls(st.id, tls_port)
            parse_config(cfg)  # fail here, naming the station, rather than in a host
            for lk in cfg["lockers"]:
                r = http.post(f"{self.cloud_url}/api/v1/admin/stations/{st.id}/lockers", headers=auth,
                              json={"id": lk["id"], "comps": lk["comps"]})
                if r.status_code not in (200, 201):
                    raise ClusterError(f"cloud refused locker {lk['id']}: {r.status_code} {r.text[:200]}")
        return cfg

    def _station_tls(self, station: str, port: int) -> dict:
        """The station's CA and the broker's certificate for its listener; station.json's mqtt.tls."""
        from gateway.station_ca import make_station_ca

        paths = make_station_ca(self.workdir / "ca" / station, self.workdir / "mosquitto" / "tls" / station,
                                station=station, hosts=["localhost", "127.0.0.1"])
        return {"port": port, "cafile": str(paths["broker ca.pem"]), "certfile": str(paths["server.pem"]),
                "keyfile": str(paths["server.key"])}

    def _start_broker(self) -> None:
        if not shutil.which("mosquitto"):
            raise ClusterError("the county simulator needs Mosquitto (apt-get install mosquitto)")
        out = self.workdir / "mosquitto"
        out.mkdir(exist_ok=True)
        users, acl, listeners = [], [], []
        for cfg in self.station_cfgs.values():
            users.append(password_line(cfg["mqtt"]["username"], cfg["mqtt"]["password"]))
            users += [password_line(lk["id"], lk["mqtt_password"]) for lk in cfg["lockers"]]
            parsed = parse_config(cfg)
            acl.append(acl_text(parsed))
            # a real station's lockers' listener, held to loopback here: the simulator faces no network
            listeners.append(re.sub(r"^listener (\d+)$", r"listener \1 127.0.0.1", tls_lines(parsed), flags=re.M))
        for name, text in (("passwd", "\n".join(users) + "\n"), ("acl", "\n".join(acl))):
            (out / name).write_text(text)
            os.chmod(out / name, 0o600)
        first = parse_config(next(iter(self.station_cfgs.values())))
        body = broker_body(first, out, run_as=broker_user(out))
        conf = out / "mosquitto.conf"
        conf.write_text(f"listener {self.mqtt_port} 127.0.0.1\npersistence_location {out}/\n"
                        f"max_connections -1\n" + body + "".join(listeners))
        _give_to_broker(out, run_as=broker_user(out))
        proc = Proc("broker", ["mosquitto", "-c", str(conf)], self.env, self.workdir / "mosquitto.log")
        proc.start()
        self.procs["broker"] = proc
        wait_port("127.0.0.1", self.mqtt_port, 15)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each kind of process (cloud, broker, gateways, controllers)."""
        tick = os.sysconf("SC_CLK_TCK")
        out: dict[str, float] = {}
        for name, proc in self.procs.items():
            if proc.popen is None:
                continue
            try:
                fields = Path(f"/proc/{proc.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            kind = "gateways" if name.startswith("gw") else "controllers" if name.startswith("fw") else name
            out[kind] = round(out.get(kind, 0.0) + (int(fields[11]) + int(fields[12])) / tick, 1)
        return out

    def restart_broker(self, *, kill: bool = False) -> None:
        """Stop the broker (SIGTERM, or SIGKILL for a crash) and start it again on the same port."""
        self.procs["broker"].stop(kill=kill)
        self.procs["broker"].start()
        wait_port("127.0.0.1", self.mqtt_port, 15)

    # ---- chaos: SIGKILL and a restart, as systemd would -------------------------------------------------------
    @property
    def gateway_hosts(self) -> int:
        return len(self.gwhosts)

    def stations_of_host(self, host: int) -> list[str]:
        return [s for s, h in self.station_host.items() if h == host]

    def _proc_of(self, component: str, host: int = 0) -> tuple[Proc, threading.Lock]:
        name = {"cloud": "cloud", "broker": "broker"}.get(component, f"gw{host}")
        return self.procs[name], self._restart_locks.setdefault(name, threading.Lock())

    def kill(self, component: str, host: int = 0) -> None:
        """SIGKILL the cloud, the broker or gateway host `host`: nothing flushed, no goodbye."""
        proc, lock = self._proc_of(component, host)
        with lock:
            proc.stop(kill=True)

    def revive(self, component: str, host: int = 0) -> None:
        """Start a killed process again and wait until it serves; a running one is left alone."""
        proc, lock = self._proc_of(component, host)
        with lock:
            if proc.alive:
                return
            proc.start()
            if component == "cloud":
                self._wait_cloud()
            elif component == "broker":
                wait_port("127.0.0.1", self.mqtt_port, 15)
            else:
                self._wait_port(self.gwhosts[host].port, proc, 60 + len(self.stations_of_host(host)) * 0.2)

    def revive_all(self) -> None:
        """Every process of the county runs again (a run may end while one is down)."""
        self.revive("cloud")
        self.revive("broker")
        for h in range(self.gateway_hosts):
            self.revive("gateway", h)

    def _start_gateways(self) -> None:
        ids = list(self.station_cfgs)
        per = self.gateways_per_host
        for h, i in enumerate(range(0, len(ids), per)):
            port = self.ports.take()
            chunk = ids[i:i + per]
            spec = {"control_port": port, "stations": [self.station_cfgs[s] for s in chunk]}
            path = self.workdir / f"gwhost-{h}.json"
            provision.write_private(path, spec)
            proc = Proc(f"gw{h}", [sys.executable, "-m", "simulator.gw_host", str(path)], self.env,
                        self.workdir / f"gwhost-{h}.log")
            proc.start()
            self.procs[f"gw{h}"] = proc
            for s in chunk:
                self.station_host[s] = h
            self.gwhosts.append(GwClient(port))
        for h, gc in enumerate(self.gwhosts):
            self._wait_port(gc.port, self.procs[f"gw{h}"], 60 + len(ids) * 0.2)

    def _start_controllers(self) -> None:
        lockers = [lk["id"] for cfg in self.station_cfgs.values() for lk in cfg["lockers"]]
        per = self.controllers_per_host
        self.host_ports: list[int] = []
        for h, i in enumerate(range(0, len(lockers), per)):
            chunk = lockers[i:i + per]
            port = self.ports.take()
            ctrls = []
            for j, lk in enumerate(chunk):
                st = self.station_cfgs[self.locker_station[lk]]
                dev = provision.device_config(st, lk, keepalive=60, tele_s=self.tele_s)  # with mqtt.tls: TLS
                dev["mqtt"].update({"backoff_min_ms": 300, "backoff_max_ms": 4000})
                dev["ajar_s"] = self.ajar_s
                d = self.locker_dir(lk)
                d.mkdir(parents=True, exist_ok=True)
                ctrls.append({"dir": str(d), "config": dev,
                              "hw": {**self.hw, "seed": self.seed * 100003 + i + j + 1}})
                self.locker_host[lk] = h
            spec = {"control_port": port, "log": str(self.workdir / f"fwhost-{h}.log"), "controllers": ctrls}
            path = self.workdir / f"fwhost-{h}.json"
            provision.write_private(path, spec)
            if self.runtime == "micropython":
                heap = max(4, 2 + len(chunk) // 2)
                argv = [_find_micropython(), "-X", f"heapsize={heap}M", str(REPO / "simulator" / "fw_host.py"),
                        str(path)]
                env = dict(self.env, MICROPYPATH=micropypath(REPO / 'simulator'))
            else:
                argv = [sys.executable, "-m", "simulator.cpython_rt", str(path)]
                env = self.env
            proc = Proc(f"fw{h}", argv, env, self.workdir / f"fwhost-{h}.out")
            proc.start()
            self.procs[f"fw{h}"] = proc
            self.host_ports.append(port)
        for h, port in enumerate(self.host_ports):
            self._wait_port(port, self.procs[f"fw{h}"], 60)

    def _wait_port(self, port: int, proc: Proc, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive:
                raise ClusterError(f"{proc.name} exited; see {proc.log}")
            try:
                wait_port("127.0.0.1", port, 0.5)
                return
            except (TimeoutError, OSError):
                continue
        raise ClusterError(f"{proc.name} did not open its control port in {timeout:.0f} s; see {proc.log}")

    # ---- async side (runs in the runner's loop) -------------------------------------------------------------
    async def connect(self) -> None:
        self.hosts = [HostClient(p) for p in self.host_ports]
        for h in self.hosts:
            await h.connect()

    async def disconnect(self) -> None:
        for h in self.hosts:
            await h.close()
        for g in self.gwhosts:
            await g.close()

    def host_of(self, locker: str) -> HostClient:
        return self.hosts[self.locker_host[locker]]

    async def ctl(self, locker: str, op: str, timeout: float = 30, **kw) -> dict:
        return await self.host_of(locker).call(op, lk=locker, timeout=timeout, **kw)

    async def gw(self, station: str, op: str, **kw) -> dict:
        return await self.gwhosts[self.station_host[station]].call(op, station=station, **kw)

    async def controllers_summary(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for r in await asyncio.gather(*(h.call("summary") for h in self.hosts)):
            out.update(r["ctrls"])
        return out

    async def gateways_summary(self) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for r in await asyncio.gather(*(g.call("summary", timeout=60) for g in self.gwhosts)):
            out.update(r["stations"])
        return out

    async def wait_online(self, timeout: float) -> None:
        """Every gateway sees all of its lockers online."""
        deadline = time.monotonic() + timeout
        want = {s.id: len(s.lockers) for s in self.stations}
        while True:
            summ = await self.gateways_summary()
            missing = [s for s, n in want.items() if summ.get(s, {}).get("online", 0) < n]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise ClusterError(f"{len(missing)} stations still miss lockers after {timeout:.0f} s, e.g. "
                                   f"{missing[:3]}")
            await asyncio.sleep(1)


def _give_to_broker(out: Path, run_as: str | None) -> None:
    """A root-started broker reads its files as the `mosquitto` user unless it stays root."""
    if os.geteuid() != 0 or run_as == "root":
        return
    import pwd
    try:
        pw = pwd.getpwnam("mosquitto")
    except KeyError:
        return
    for name in ("passwd", "acl"):
        os.chown(out / name, pw.pw_uid, pw.pw_gid)
