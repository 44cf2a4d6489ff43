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


def write_private(path: Path, obj: dict | list) -> Path:
    """Write JSON readable by the owner only: it holds secrets."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
    os.replace(tmp, path)
    return path


DEFAULT_COMPS = "6S,4M,2L"


def provision_device(
    *, station: str | None, locker: str, mqtt_host: str, mqtt_port: int | None, comps: str | None, out: Path,
    station_config: Path | None = None, wifi_ssid: str | None = None, wifi_password: str | None = None,
    lock_board: str | None = None, broker_dir: Path | None = None,
) -> Path:
    """Write one locker's firmware config; with station.json, from its record there.

    A locker already in station.json (an enrolled station lists the cloud's lockers) gets its recorded
    credentials; a new one gets fresh ones, added to station.json and, with broker_dir, to the broker's
    password file and ACL, so no credential exists that the station does not know.
    mqtt_host/mqtt_port: the broker as the locker reaches it (station.json holds the gateway's view).
    lock_board: a KR-CU16 model name ("kr-cu16", "kr-cu16-ir") when the locks hang on RS-485 boards.
    """
    parsed = parse_comps(comps) if comps is not None else None
    if station_config is not None and station_config.exists():
        st = json.loads(station_config.read_text())
        if station is not None and st["station"] != station:
            raise ProvisionError(f"{station_config} is for station {st['station']!r}, not {station!r}")
        entry = next((lk for lk in st["lockers"] if lk["id"] == locker), None)
        if entry is None:
            entry = locker_entry(locker, parsed or parse_comps(DEFAULT_COMPS))
            if lock_board:
                entry["locks"] = {"bus": "rs485", "model": lock_board, "addr": 0}
            st["lockers"].append(entry)
            write_private(station_config, st)
            if broker_dir is not None:
                from gateway.broker import write_auth_files
                from gateway.config import load_config

                write_auth_files(load_config(station_config), broker_dir)
        elif parsed is not None and parsed != entry["comps"]:
            raise ProvisionError(f"locker {locker!r} has other compartments in {station_config}; "
                                 "leave out --comps to use them")
        st = dict(st, mqtt={"host": mqtt_host, "port": mqtt_port or st["mqtt"]["port"]})
        bus = {"bus": "rs485", "model": lock_board, "addr": 0} if lock_board else None
        return write_private(out, device_config(st, locker, wifi_ssid=wifi_ssid, wifi_password=wifi_password,
                                                locks=bus))
    if station is None:
        raise ProvisionError("--station is needed without a station.json")
    entry = locker_entry(locker, parsed or parse_comps(DEFAULT_COMPS))
    if lock_board:
        entry["locks"] = {"bus": "rs485", "model": lock_board, "addr": 0}
    st = {"station": station, "mqtt": {"host": mqtt_host, "port": mqtt_port or 1883}, "lockers": [entry]}
    return write_private(out, device_config(st, locker, wifi_ssid=wifi_ssid, wifi_password=wifi_password))
