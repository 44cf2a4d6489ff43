"""Provisioning: per-device secrets, MQTT credentials and the configs built from them."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path

SIZES = ("S", "M", "L")
_COMPS_RE = re.compile(r"^\s*(\d{1,2})\s*([SML])\s*$")


class ProvisionError(ValueError):
    """A provisioning request that cannot be honoured."""


def new_secret() -> str:
    """A 32-byte per-device HMAC secret, hex."""
    return secrets.token_hex(32)


def new_password() -> str:
    """A random MQTT password; there are no default passwords."""
    return secrets.token_urlsafe(18)


def parse_comps(spec: str) -> list[dict]:
    """Turn '6S,4M,2L' into numbered compartments [{'n': 1, 'size': 'S'}, ...]."""
    comps: list[dict] = []
    for part in spec.split(","):
        m = _COMPS_RE.match(part)
        if not m:
            raise ProvisionError(f"bad compartment spec {part!r}: expected like 6S,4M,2L")
        comps.extend({"n": len(comps) + 1, "size": m.group(2)} for _ in range(int(m.group(1))))
    if not 1 <= len(comps) <= 32:
        raise ProvisionError(f"a controller drives 1 to 32 compartments, not {len(comps)}")
    return comps


def locker_entry(locker_id: str, comps: list[dict]) -> dict:
    """A station.json locker entry with fresh credentials."""
    return {"id": locker_id, "secret": new_secret(), "mqtt_password": new_password(), "comps": comps}


def station_config(
    *, station: str, name: str, db: str, http_port: int, mqtt_host: str, mqtt_port: int,
    cloud_url: str, api_key: str, lockers: list[dict],
) -> dict:
    """A gateway station.json with a fresh gateway password."""
    return {
        "station": station,
        "name": name,
        "gateway": {"db": db, "http": {"host": "127.0.0.1", "port": http_port}},
        "mqtt": {"host": mqtt_host, "port": mqtt_port, "username": "gateway", "password": new_password()},
        "cloud": {"url": cloud_url, "api_key": api_key},
        "lockers": lockers,
    }


def device_config(station_cfg: dict, locker_id: str, *, keepalive: int = 30, tele_s: int = 60,
                  wifi_ssid: str | None = None, wifi_password: str | None = None, locks: dict | None = None) -> dict:
    """The firmware's config.json for one locker of a station.

    locks: {"bus": "rs485", "model": "kr-cu16", "addr": 0} for lock boards on the RS-485 UART (12 to 32
    compartments); omitted for the board's own expander outputs (up to 12).
    """
    for lk in station_cfg["lockers"]:
        if lk["id"] == locker_id:
            break
    else:
        raise ProvisionError(f"locker {locker_id!r} is not in station {station_cfg['station']!r}")
    mqtt = station_cfg["mqtt"]
    cfg = {
        "station": station_cfg["station"],
        "locker": locker_id,
        "secret": lk["secret"],
        "mqtt": {
            "host": mqtt["host"], "port": mqtt["port"], "user": locker_id, "password": lk["mqtt_password"],
            "client_id": locker_id, "keepalive": keepalive,
        },
        "comps": lk["comps"],
        "tele_s": tele_s,
    }
    if wifi_ssid:
        cfg["wifi"] = {"ssid": wifi_ssid, "password": wifi_password or ""}
    bus = locks or lk.get("locks")
    if bus:
        cfg["locks"] = dict(bus)
    elif len(lk["comps"]) > 12:
        raise ProvisionError(f"{len(lk['comps'])} compartments need RS-485 lock boards (locks bus 'rs485')")
    return cfg


def write_private(path: Path, obj: dict) -> Path:
    """Write JSON readable by the owner only: it holds secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)
    return path


def provision_device(
    *, station: str, locker: str, mqtt_host: str, mqtt_port: int, comps: str, out: Path,
    station_config: Path | None = None, wifi_ssid: str | None = None, wifi_password: str | None = None,
    lock_board: str | None = None,
) -> Path:
    """Create credentials for one locker, add it to station.json if given, and write its firmware config.

    lock_board: a KR-CU16 model name ("kr-cu16", "kr-cu16-ir") when the locks hang on RS-485 boards.
    """
    entry = locker_entry(locker, parse_comps(comps))
    if lock_board:
        entry["locks"] = {"bus": "rs485", "model": lock_board, "addr": 0}
    if station_config is not None and station_config.exists():
        st = json.loads(station_config.read_text())
        if st["station"] != station:
            raise ProvisionError(f"{station_config} is for station {st['station']!r}, not {station!r}")
        if any(lk["id"] == locker for lk in st["lockers"]):
            raise ProvisionError(f"locker {locker!r} already exists in {station_config}; remove it first")
        st["lockers"].append(entry)
        write_private(station_config, st)
    else:
        st = {"station": station, "mqtt": {"host": mqtt_host, "port": mqtt_port}, "lockers": [entry]}
    return write_private(out, device_config(st, locker, wifi_ssid=wifi_ssid, wifi_password=wifi_password))
