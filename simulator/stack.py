"""One whole village station on this machine: broker, cloud, gateway and lockers running the real firmware."""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from jincun import provision
from simulator.linkfault import LinkRelay
from simulator.locker import SimLocker
from simulator.net import free_port, wait_port
from simulator.procs import stop_process

if TYPE_CHECKING:
    from simulator.embedded_broker import EmbeddedBroker

log = logging.getLogger(__name__)

CODE_RE = re.compile(r"取件码\s*(\d{6})")
_NEW_CONN = re.compile(r"New connection from (\S+) on port (\d+)\.")
_LOGIN = re.compile(r"New client connected from (\S+) as (\S+) ")


def broker_logins(log_path: Path) -> list[tuple[str, int | None]]:
    """Every login in Mosquitto's log, oldest first: the client id and the listener's port it came in on.

    Mosquitto logs the port of every new connection and then the client id it logged in as.
    """
    if not log_path.exists():
        return []
    port_of: dict[str, int] = {}
    logins: list[tuple[str, int | None]] = []
    for line in log_path.read_text(errors="replace").splitlines():
        if m := _NEW_CONN.search(line):
            port_of[m.group(1)] = int(m.group(2))
        elif m := _LOGIN.search(line):
            logins.append((m.group(2), port_of.pop(m.group(1), None)))
    return logins


# the demo station's couriers' desk: a demo-only PIN, like the demo's other known values
DESK = {"id": "desk", "name": "投递台", "role": "courier"}
DESK_PIN = "864209"


class StackError(RuntimeError):
    """The simulated station did not do what was asked in time."""


@dataclass
class Proc:
    """A child process of the stack with its log file."""

    name: str
    argv: list[str]
    env: dict
    log: Path
    popen: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the process, appending to its log."""
        self.popen = subprocess.Popen(
            self.argv, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
        )

    def stop(self, *, kill: bool = False) -> None:
        """Stop it: SIGTERM and wait, or SIGKILL (a power cut)."""
        p, self.popen = self.popen, None
        stop_process(p, 15, signal.SIGKILL if kill else signal.SIGTERM)

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.popen is not None and self.popen.poll() is None


@dataclass
class Stack:
    """A station with its lockers, gateway, broker and a cloud, each a real process on loopback."""

    workdir: Path
    station: str = "demo-01"
    station_name: str = "示例村便民服务站"
    lockers: tuple[str, ...] = ("l1",)
    comps: str = "6S,4M,2L"
    cloud_port: int = 0
    database_url: str | None = None
    broker: str = "auto"  # auto | mosquitto | amqtt
    tls: bool = True  # lockers reach Mosquitto over TLS with the station's own CA, as at a real station
    tele_s: int = 60
    terminal: dict = field(default_factory=dict)  # station.json "terminal" section (users with PIN hashes)
    procs: dict[str, Proc] = field(default_factory=dict)
    sims: dict[str, SimLocker] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir).resolve()  # children run in other folders
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.admin_token = secrets.token_urlsafe(24)
        self.api_key = secrets.token_urlsafe(24)
        self.cloud_port = self.cloud_port or free_port()
        self.gateway_port = free_port()
        self.mqtt_port = free_port()
        self.tls_port = free_port()
        self.broker_kind = self.broker
        if self.broker_kind == "auto":
            self.broker_kind = "mosquitto" if shutil.which("mosquitto") else "amqtt"
        self.tls = self.tls and self.broker_kind == "mosquitto"  # the embedded broker speaks no TLS
        self.relay: LinkRelay | None = None
        self._amqtt: EmbeddedBroker | None = None
        self._desk_token: str | None = None
        self.env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.env.pop("JINCUN_DATABASE_URL", None)

    # ---- life cycle -------------------------------------------------------------------------------------
    def start(self) -> Stack:
        """Start cloud, uplink relay, broker, gateway and lockers, and wait until every locker is online."""
        try:
            self._start_cloud()
            self.relay = LinkRelay(("127.0.0.1", self.cloud_port))
            self._write_station_config()
            self._start_broker()
            self._start_gateway()
            for lk in self.lockers:
                self._start_locker(lk)
            self.wait_lockers_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything this stack started."""
        for sim in self.sims.values():
            sim.stop()
        for name in ("gateway", "broker", "cloud"):
            if name in self.procs:
                self.procs[name].stop()
        if self._amqtt is not None:
            self._amqtt.stop()
            self._amqtt = None
        if self.relay is not None:
            self.relay.close()
            self.relay = None
        self._http.close() if hasattr(self, "_http") else None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- parts ------------------------------------------------------------------------------------------
    @property
    def cloud_url(self) -> str:
        """The cloud's base URL."""
        return f"http://127.0.0.1:{self.cloud_port}"

    @property
    def gateway_url(self) -> str:
        """The gateway's local API base URL."""
        return f"http://127.0.0.1:{self.gateway_port}"

    @property
    def http(self) -> httpx.Client:
        """A shared HTTP client for the stack's own calls."""
        if not hasattr(self, "_http"):
            self._http = httpx.Client(timeout=10)
        return self._http

    def _jincun(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "jincun", *args]

    def _start_cloud(self) -> None:
        # a port someone else holds would put the station's requests on their server: say so instead
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", self.cloud_port))
        except OSError as exc:
            raise StackError(f"port {self.cloud_port} is taken ({exc.strerror}): stop what uses it, or choose "
                             "another with --port") from exc
        env = dict(self.env)
        env["JINCUN_DATABASE_URL"] = self.database_url or f"sqlite:///{self.workdir / 'cloud.db'}"
        env["JINCUN_ADMIN_TOKEN"] = self.admin_token
        env["JINCUN_DEMO"] = "1"
        proc = Proc("cloud", self._jincun("cloud", "serve", "--port", str(self.cloud_port)), env,
                    self.workdir / "cloud.log")
        proc.start()
        self.procs["cloud"] = proc
        self.wait(lambda: self._ok(f"{self.cloud_url}/api/v1/health"), 60, "cloud up", proc=proc)
        auth = {"Authorization": f"Bearer {self.admin_token}"}
        r = self.http.post(f"{self.cloud_url}/api/v1/admin/stations", headers=auth, json={
            "id": self.station, "name": self.station_name, "kind": "village_shop",
            "village": "示例村", "town": "示例镇", "api_key": self.api_key,
            # what a villager's phone page shows to find the station
            "address": "示例镇示例村村委会东侧", "phone": "057512345678", "hours": "08:00–20:00"})
        if r.status_code not in (200, 201, 409):
            raise StackError(f"cloud refused the station: {r.status_code} {r.text}")
        self._pending_lockers = True

    def _write_station_config(self) -> None:
        comps = provision.parse_comps(self.comps)
        cfg_path = self.workdir / "station.json"
        if cfg_path.exists():
            self.station_cfg = json.loads(cfg_path.read_text())
        else:
            self.station_cfg = provision.station_config(
                station=self.station, name=self.station_name, db=str(self.workdir / "gateway.db"),
                http_port=self.gateway_port, mqtt_host="127.0.0.1", mqtt_port=self.mqtt_port,
                cloud_url=f"http://127.0.0.1:{self._relay().port}", api_key=self.api_key,
                lockers=[provision.locker_entry(lk, comps) for lk in self.lockers])
            if self.tls:
                self.station_cfg["mqtt"]["tls"] = self._make_ca()
            elif self.broker_kind == "mosquitto":
                self.station_cfg["demo"] = True  # only a demo station's broker takes lockers in plain MQTT
            provision.write_private(cfg_path, self.station_cfg)
        if self.terminal and self.station_cfg.get("terminal") != self.terminal:
            self.station_cfg["terminal"] = json.loads(json.dumps(self.terminal))  # a copy: the desk is added below
            provision.write_private(cfg_path, self.station_cfg)
        if not any(u["id"] == DESK["id"] for u in self.station_cfg.get("terminal", {}).get("users", [])):
            # the couriers' desk the demo deposits through (a deposit needs a logged-in courier)
            from gateway.terminal import hash_pin
            term = self.station_cfg.setdefault("terminal", {})
            term.setdefault("users", []).append({**DESK, "pin_hash": hash_pin(DESK_PIN)})
            provision.write_private(cfg_path, self.station_cfg)
        auth = {"Authorization": f"Bearer {self.admin_token}"}
        for lk in self.station_cfg["lockers"]:
            r = self.http.post(f"{self.cloud_url}/api/v1/admin/stations/{self.station}/lockers", headers=auth,
                               json={"id": lk["id"], "comps": lk["comps"]})
            if r.status_code not in (200, 201, 409):
                raise StackError(f"cloud refused locker {lk['id']}: {r.status_code} {r.text}")

    def _make_ca(self) -> dict:
        """The station's CA and the broker's certificate, as enrollment makes them; station.json's mqtt.tls."""
        from gateway.station_ca import make_station_ca

        tls_dir = self.workdir / "mosquitto" / "tls"
        paths = make_station_ca(self.workdir / "ca", tls_dir, station=self.station, hosts=["localhost", "127.0.0.1"])
        return {"port": self.tls_port, "cafile": str(paths["broker ca.pem"]), "certfile": str(paths["server.pem"]),
                "keyfile": str(paths["server.key"])}

    def _start_broker(self) -> None:
        kind = self.broker_kind
        if kind == "mosquitto":
            from gateway.broker import write_broker_config
            from gateway.config import load_config

            conf = write_broker_config(load_config(self.workdir / "station.json"), self.workdir / "mosquitto")
            proc = Proc("broker", ["mosquitto", "-c", str(conf)], self.env, self.workdir / "mosquitto.log")
            proc.start()
            self.procs["broker"] = proc
        else:
            from simulator.embedded_broker import EmbeddedBroker

            self._amqtt = EmbeddedBroker(port=self.mqtt_port)
            self._amqtt.start()
        wait_port("127.0.0.1", self.mqtt_port, 15)

    def locker_transports(self) -> dict[str, list[str]]:
        """How each locker's sessions reached the broker, oldest first ("tls" or "plain"), from the broker's log."""
        if self.broker_kind != "mosquitto":
            return {}
        seen: dict[str, list[str]] = {}
        for client, port in broker_logins(self.workdir / "mosquitto.log"):
            if client in self.lockers:
                seen.setdefault(client, []).append("tls" if port == self.tls_port and self.tls else "plain")
        return seen

    def all_lockers_on_tls(self) -> bool:
        """True when every locker has connected, and only ever over TLS."""
        seen = self.locker_transports()
        return all(seen.get(lk) and set(seen[lk]) == {"tls"} for lk in self.lockers)

    def _start_gateway(self) -> None:
        proc = Proc("gateway", self._jincun("gateway", "run", "--config", str(self.workdir / "station.json")),
                    self.env, self.workdir / "gateway.log")
        proc.start()
        self.procs["gateway"] = proc
        self.wait(lambda: self._ok(f"{self.gateway_url}/health"), 30, "gateway up", proc=proc)

    def _start_locker(self, locker: str) -> None:
        cfg = provision.device_config(self.station_cfg, locker, tele_s=self.tele_s)
        sim = SimLocker(self.workdir / f"locker-{locker}", cfg)
        sim.start()
        self.sims[locker] = sim

    # ---- faults -----------------------------------------------------------------------------------------
    def uplink_down(self) -> None:
        """Cut the station's uplink to the cloud."""
        self._relay().down()

    def uplink_up(self) -> None:
        """Restore the station's uplink."""
        self._relay().up()

    def _relay(self) -> LinkRelay:
        """The uplink relay, which start() made."""
        assert self.relay is not None, "the stack is not started"
        return self.relay

    def restart_gateway(self, *, kill: bool = False) -> None:
        """Restart the gateway process (kill=True is a power cut, SIGKILL) and wait for its lockers."""
        self.procs["gateway"].stop(kill=kill)
        self._start_gateway()
        self.wait_lockers_ready()

    def wait_lockers_ready(self, timeout: float = 30) -> None:
        """Wait until the gateway sees every locker online with a known state (after a birth)."""
        def ready() -> bool:
            return all(v.get("online") and v.get("synced") for v in map(self.gateway_locker, self.lockers))
        self.wait(ready, timeout, "lockers online and synced")

    def restart_broker(self) -> None:
        """Restart the station broker."""
        if self._amqtt is not None:
            self._amqtt.stop()
            self._amqtt.start()
        else:
            self.procs["broker"].stop()
            self.procs["broker"].start()
        wait_port("127.0.0.1", self.mqtt_port, 15)

    # ---- people -----------------------------------------------------------------------------------------
    def deposit(self, *, waybill: str, phone: str, carrier: str = "EMS", size: str = "M",
                occupied: bool = True, timeout: float = 15, locker: str | None = None) -> dict:
        """A courier asks for a compartment (at `locker`, or wherever one is free), puts the parcel in and closes
        the door (with nothing inside when not `occupied`: the terminal cancels that deposit)."""
        for _ in range(2):
            if self._desk_token is None:
                r = self.http.post(f"{self.gateway_url}/api/v1/terminal/login",
                                   json={"user": DESK["id"], "pin": DESK_PIN})
                if r.status_code != 200:
                    raise StackError(f"gateway refused the courier desk's login: {r.status_code} {r.text}")
                self._desk_token = r.json()["token"]
            r = self.http.post(f"{self.gateway_url}/api/v1/deposits",
                               headers={"Authorization": f"Bearer {self._desk_token}"},
                               json={"waybill": waybill, "phone": phone, "carrier": carrier, "size": size,
                                     "consent_asked": True, **({"locker": locker} if locker else {})})
            if r.status_code != 401:
                break
            self._desk_token = None  # the session ended (a restarted gateway forgets sessions): log in again
        if r.status_code != 201:
            raise StackError(f"gateway refused the deposit: {r.status_code} {r.text}")
        d = r.json()
        sim = self.sims[d["locker"]]
        c = d["c"]
        sim.wait_for(lambda s: _door(s, c), timeout)
        sim.set_occupied(c, occupied)
        sim.close_door(c)
        want = "deposited" if occupied else "void"
        self.wait(lambda: self._get(f"{self.gateway_url}/api/v1/deposits/{d['ref']}").get("state") == want,
                  timeout, f"deposit {d['ref']} {want}")
        return d

    def sms_code(self, *, phone: str, waybill: str, timeout: float = 20) -> str:
        """The pickup code the villager received by SMS for this waybill."""
        found: list[str] = []

        def look() -> bool:
            # the SMS names the carrier and the place, not the waybill: its parcel ref ties it to the waybill
            refs = {p["ref"] for p in self._get(f"{self.cloud_url}/api/v1/parcels",
                                                params={"waybill": waybill, "phone": phone}, admin=True)}
            for n in self._get(f"{self.cloud_url}/api/v1/notifications", params={"phone": phone}, admin=True):
                text = n.get("text", "")
                if n.get("ref") in refs and (m := CODE_RE.search(text)):
                    found.append(m.group(1))
                    return True
            return False

        self.wait(look, timeout, f"SMS for {waybill}")
        return found[0]

    def pickup(self, code: str, *, locker: str | None = None, timeout: float = 15) -> list[int]:
        """A villager types the code, takes every parcel behind the doors that open, and closes them."""
        sim = self.sims[locker or self.lockers[0]]
        sim.press(code + "#")
        sim.wait_for(lambda s: any(_door(s, x["n"]) and x.get("st") == "pickup" for x in s["comps"]), timeout)
        # the controller pulses one lock at a time: wait for every door of the code to spring open
        state = sim.wait_for(lambda s: all(_door(s, x["n"]) for x in s["comps"] if x.get("st") == "pickup"),
                             timeout)
        opened = [x["n"] for x in state["comps"] if x.get("st") == "pickup"]
        for c in opened:
            sim.set_occupied(c, False)
            sim.close_door(c)
        sim.wait_for(lambda s: all(_comp(s, c).get("st") == "empty" for c in opened), timeout)
        return opened

    # ---- what reached the cloud -------------------------------------------------------------------------
    def wait_drained(self, timeout: float = 60) -> None:
        """Wait until the gateway's outbox is empty and every locker has nothing unsent."""
        def drained() -> bool:
            h = self._get(f"{self.gateway_url}/health")
            return h.get("outbox_depth") == 0 and all(sim.state().get("outbox", 0) == 0 for sim in self.sims.values())
        self.wait(drained, timeout, "outbox drained")

    def ledger(self) -> dict:
        """Compare every event the lockers produced with what the cloud holds."""
        produced: set[tuple] = set()
        for lk, sim in self.sims.items():
            for e in sim.ledger():
                produced.add((lk, e["boot"], e["seq"]))
        held = self._get(f"{self.cloud_url}/api/v1/admin/ledger", params={"station": self.station}, admin=True)
        keys = [tuple(k) for k in held["events"]]
        in_cloud = set(keys)
        dup_keys = len(keys) - len(in_cloud)
        dup_transitions = sum(_repeated_transitions(p) for p in self.parcels(station=self.station, limit=1000))
        return {
            "events_sent": len(produced),
            "events_in_cloud": len(in_cloud & produced),
            "lost": len(produced - in_cloud),
            "duplicates": dup_keys + dup_transitions,
            "unexpected": len(in_cloud - produced),
        }

    def parcels(self, **params) -> list[dict]:
        """Parcels as the cloud reports them."""
        return self._get(f"{self.cloud_url}/api/v1/parcels", params=params, admin=True)

    def gateway_locker(self, locker: str) -> dict:
        """The gateway's live view of one locker."""
        data = self._get(f"{self.gateway_url}/api/v1/lockers")
        items = data.get("lockers", data) if isinstance(data, dict) else data
        for item in items:
            if item.get("id") == locker:
                return item
        return {}

    # ---- plumbing ---------------------------------------------------------------------------------------
    def _get(self, url: str, *, params: dict | None = None, admin: bool = False):
        headers = {"Authorization": f"Bearer {self.admin_token}"} if admin else {}
        try:
            r = self.http.get(url, params=params, headers=headers)
        except httpx.HTTPError:
            return {}
        return r.json() if r.status_code == 200 else {}

    def _ok(self, url: str) -> bool:
        try:
            return self.http.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    @staticmethod
    def wait(pred, timeout: float, what: str, *, proc: Proc | None = None, every: float = 0.1) -> None:
        """Poll pred until it is true; fail with what was awaited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            if proc is not None and not proc.alive:
                raise StackError(f"{proc.name} exited while waiting for {what}; see {proc.log}")
            time.sleep(every)
        raise StackError(f"timed out after {timeout}s waiting for {what}")


def _repeated_transitions(parcel: dict) -> int:
    """Status changes applied twice: a status entered again right after itself, or a second pickup."""
    statuses = [t["status"] for t in parcel.get("timeline", [])]
    again = sum(1 for a, b in zip(statuses, statuses[1:]) if a == b)
    return again + max(0, statuses.count("picked_up") - 1)


def _comp(state: dict, c: int) -> dict:
    for x in state.get("comps", []):
        if x.get("n") == c:
            return x
    return {}


def _door(state: dict, c: int) -> bool:
    doors = state.get("doors")
    if isinstance(doors, dict):
        return bool(doors.get(str(c), doors.get(c)))
    if isinstance(doors, list):
        return bool(doors[c - 1])
    return _comp(state, c).get("door") == "open"
