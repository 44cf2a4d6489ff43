"""SimLocker: the real firmware in a MicroPython subprocess, its flash a folder, its board simulated."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import IO

from jincun.fwtools import micropypath
from simulator.procs import stop_process

REPO = Path(__file__).resolve().parent.parent
FIRMWARE = REPO / "firmware"
HEAP = "4M"
REBOOT_EXIT = 75  # the firmware asks for a restart (machine.reset on the board)

DEFAULT_COMPS = [{"n": i, "size": "S"} for i in range(1, 7)] + \
    [{"n": i, "size": "M"} for i in range(7, 11)] + \
    [{"n": i, "size": "L"} for i in range(11, 13)]


class SimError(Exception):
    """The simulated locker did not start, died, or its control channel failed."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _find_micropython() -> str:
    venv = REPO / ".venv" / "bin" / "micropython"
    if venv.exists():
        return str(venv)
    found = shutil.which("micropython")
    if not found:
        raise SimError("MicroPython unix port not found (.venv/bin/micropython)")
    return found


def make_locker_config(station: str, locker: str, *, mqtt_host: str, mqtt_port: int, password: str,
                       secret: str, comps: list[dict] | None = None, tele_s: int = 60) -> dict:
    """A config.json for one locker, in the shape the provisioning code writes."""
    return {
        "station": station,
        "locker": locker,
        "secret": secret,
        "mqtt": {"host": mqtt_host, "port": mqtt_port, "user": locker, "password": password,
                 "client_id": f"{station}-{locker}", "keepalive": 30},
        "comps": [dict(c) for c in (comps or DEFAULT_COMPS)],
        "tele_s": tele_s,
    }


class SimLocker:
    """One simulated locker controller; workdir holds flash/ (the firmware's cwd), ledger.jsonl and firmware.log."""

    def __init__(self, workdir: Path, config: dict, *, micropython: str | None = None):
        self.workdir = Path(workdir).resolve()  # the firmware runs in flash/, so paths handed to it are absolute
        self.flash = self.workdir / "flash"
        self.flash.mkdir(parents=True, exist_ok=True)
        self.ledger_path = self.workdir / "ledger.jsonl"
        self.log = self.workdir / "firmware.log"
        cfg = json.loads(json.dumps(config))
        sim = cfg.setdefault("sim", {})
        sim.setdefault("port", _free_port())
        sim.setdefault("ledger", str(self.ledger_path))
        self.config = cfg
        self.port = sim["port"]
        (self.flash / "config.json").write_text(json.dumps(cfg, indent=1))
        self.micropython = micropython or _find_micropython()
        self.proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._rfile: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._stopping = False
        self._rebooting = False
        self.reboots = 0  # restarts the firmware asked for (after an update, a failed self-test)

    # ---- process ----
    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _spawn(self, reset: str) -> None:
        (self.flash / "sim_reset").write_text(reset)
        env = dict(os.environ, MICROPYPATH=micropypath())
        with self.log.open("ab") as logf:
            proc = subprocess.Popen(
                [self.micropython, "-X", f"heapsize={HEAP}", str(FIRMWARE / "main.py")],
                cwd=self.flash, stdout=logf, stderr=subprocess.STDOUT, env=env)
        self.proc = proc
        threading.Thread(target=self._watch, args=(proc,), name=f"sim-{self.port}", daemon=True).start()

    def _watch(self, proc: subprocess.Popen) -> None:
        """Restart the firmware when it asks for a reboot, as the board's reset would."""
        rc = proc.wait()
        with self._lock:
            if rc != REBOOT_EXIT or self._stopping or self.proc is not proc:
                return
            self._rebooting = True
            self.reboots += 1
            self._spawn("soft")
            self._rebooting = False

    def start(self, timeout: float = 10.0) -> None:
        if self.alive:
            return
        with self._lock:
            self._stopping = False
            self._spawn("power")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                raise SimError(f"firmware exited with {self.proc.returncode if self.proc else None}; see {self.log}")
            try:
                self._connect()
                return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise SimError(f"firmware control channel not up after {timeout}s; see {self.log}")

    def _connect(self) -> None:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self._sock = sock
        self._rfile = sock.makefile("rb")

    def _close_channel(self) -> None:
        if self._rfile:
            self._rfile.close()
        if self._sock:
            self._sock.close()
        self._sock = self._rfile = None

    def stop(self) -> None:
        """Stop the firmware (SIGTERM, then SIGKILL)."""
        self._close_channel()
        with self._lock:
            self._stopping = True
        stop_process(self.proc, 5)
        self.proc = None

    def kill(self) -> None:
        """Power loss: SIGKILL with no chance to flush anything."""
        self._close_channel()
        with self._lock:
            self._stopping = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def __enter__(self) -> SimLocker:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- control channel ----
    def _call(self, req: dict, retry: bool = True) -> dict:
        if not self.alive and not self._rebooting:
            raise SimError(f"firmware is not running; see {self.log}")
        try:
            if self._sock is None:
                self._connect()
            assert self._sock is not None and self._rfile is not None  # _connect set both or raised
            self._sock.sendall(json.dumps(req).encode() + b"\n")
            line = self._rfile.readline()
        except OSError as e:
            self._close_channel()
            if retry and self._await_restart():
                return self._call(req, False)
            raise SimError(f"control channel: {e}") from e
        if not line:
            self._close_channel()
            if retry and self._await_restart():
                return self._call(req, False)
            raise SimError("control channel closed")
        reply = json.loads(line)
        if not reply.get("ok"):
            raise SimError(f"control op {req.get('op')} failed: {reply.get('err')}")
        return reply

    def _await_restart(self, timeout: float = 10.0) -> bool:
        """After a firmware-requested reboot, wait for the new process's control channel."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self._stopping:
            proc = self.proc
            if proc is not None and proc.poll() not in (None, REBOOT_EXIT) and not self._rebooting:
                return False  # it died for good
            if self.alive or self._rebooting:
                try:
                    self._connect()
                    return True
                except OSError:
                    pass
            time.sleep(0.05)
        return False

    def set_wifi(self, up: bool) -> None:
        """Wi-Fi lost or back (the firmware's net_up() follows it)."""
        self._call({"op": "wifi", "up": up})

    def press(self, keys: str) -> None:
        self._call({"op": "keys", "keys": keys})

    def open_door(self, c: int) -> None:
        self._call({"op": "door", "c": c, "open": True})

    def close_door(self, c: int) -> None:
        self._call({"op": "door", "c": c, "open": False})

    def set_occupied(self, c: int, v: bool | None) -> None:
        """v=None makes the occupancy sensor read out of range (sensor fault)."""
        self._call({"op": "occ", "c": c, "v": v})

    def jam(self, c: int, v: bool = True) -> None:
        self._call({"op": "jam", "c": c, "v": v})

    def state(self) -> dict:
        return self._call({"op": "state"})

    def ledger(self) -> list[dict]:
        """Every event the firmware created since the sim folder was made (survives flash loss)."""
        if not self.ledger_path.exists():
            return []
        return [json.loads(line) for line in self.ledger_path.read_text().splitlines() if line.strip()]

    def comp(self, c: int) -> dict:
        return next(x for x in self.state()["comps"] if x["n"] == c)

    def wait_for(self, pred: Callable[[dict], bool], timeout: float = 10.0) -> dict:
        """Poll state() until pred(state) is true; raise TimeoutError with the last state otherwise."""
        deadline = time.monotonic() + timeout
        st: dict = {}
        while time.monotonic() < deadline:
            st = self.state()
            if pred(st):
                return st
            time.sleep(0.05)
        raise TimeoutError(f"condition not met in {timeout}s; last state: {json.dumps(st)[:2000]}")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""
