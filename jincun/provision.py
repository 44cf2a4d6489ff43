"""Provisioning: per-device secrets, MQTT credentials and the configs built from them."""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import ssl
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
    link = {"host": mqtt["host"], "port": mqtt["port"], "user": locker_id, "password": lk["mqtt_password"],
            "client_id": locker_id, "keepalive": keepalive}
    if mqtt.get("tls"):
        link.update(locker_tls(mqtt["tls"], mqtt["host"]))
    cfg: dict = {
        "station": station_cfg["station"],
        "locker": locker_id,
        "secret": lk["secret"],
        "mqtt": link,
        "comps": lk["comps"],
        "tele_s": tele_s,
    }
    if station_cfg.get("demo"):
        cfg["demo"] = True  # a demo station's locker: `firmware deploy` lets it go without TLS
    if wifi_ssid:
        cfg["wifi"] = {"ssid": wifi_ssid, "password": wifi_password or ""}
    bus = locks or lk.get("locks")
    if bus:
        cfg["locks"] = dict(bus)
    elif len(lk["comps"]) > 12:
        raise ProvisionError(f"{len(lk['comps'])} compartments need RS-485 lock boards (locks bus 'rs485')")
    return cfg


def locker_tls(tls: dict, host: str) -> dict:
    """A locker's TLS keys: the broker's TLS port, the station CA (DER, base64) and the name to check.

    Refused when the broker's certificate does not name host: the locker would refuse the broker.
    """
    ca_pem = Path(tls["cafile"]).read_text()
    names = certificate_names(Path(tls["certfile"]))
    if host not in names:
        raise ProvisionError(f"the broker's certificate names {', '.join(sorted(names))}, not {host}: give one "
                             f"of those as --mqtt-host, or enroll again with --tls-host {host}")
    der = ssl.PEM_cert_to_DER_cert(ca_pem)
    return {"port": int(tls.get("port", 8883)), "tls": True, "ca": base64.b64encode(der).decode(),
            "server_hostname": host}


def certificate_names(certfile: Path) -> set[str]:
    """The DNS names and IP addresses a server certificate is valid for."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(certfile.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    ips = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    return set(san.get_values_for_type(x509.DNSName)) | ips


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
    lock_board: str | None = None, broker_dir: Path | None = None, demo: bool = False,
) -> Path:
    """Write one locker's firmware config; with station.json, from its record there.

    A locker already in station.json (an enrolled station lists the cloud's lockers) gets its recorded
    credentials; a new one gets fresh ones, added to station.json and, with broker_dir, to the broker's
    password file and ACL, so no credential exists that the station does not know.
    All or nothing: every check (compartments, lock board, the broker certificate's names, the station's
    config) passes before station.json, the broker's files or the locker's config is written.
    mqtt_host/mqtt_port: the broker as the locker reaches it (station.json holds the gateway's view).
    lock_board: a KR-CU16 model name ("kr-cu16", "kr-cu16-ir") when the locks hang on RS-485 boards.
    demo: without station.json, write a plain-MQTT demo config (marked "demo": true); refused otherwise.
    """
    parsed = parse_comps(comps) if comps is not None else None
    bus = {"bus": "rs485", "model": lock_board, "addr": 0} if lock_board else None
    if station_config is not None and station_config.exists():
        st = json.loads(station_config.read_text())
        if station is not None and st["station"] != station:
            raise ProvisionError(f"{station_config} is for station {st['station']!r}, not {station!r}")
        if not st["mqtt"].get("tls") and not st.get("demo"):
            raise ProvisionError(f"{station_config} has no mqtt.tls: outside the demo the broker takes lockers over "
                                 "TLS only (`jincun gateway enroll` makes the station's CA and certificate)")
        entry = next((lk for lk in st["lockers"] if lk["id"] == locker), None)
        new = entry is None
        if entry is None:
            entry = locker_entry(locker, parsed or parse_comps(DEFAULT_COMPS))
            if bus:
                entry["locks"] = dict(bus)
            st["lockers"].append(entry)
        elif parsed is not None and parsed != entry["comps"]:
            raise ProvisionError(f"locker {locker!r} has other compartments in {station_config}; "
                                 "leave out --comps to use them")
        link = dict(st["mqtt"], host=mqtt_host)
        if mqtt_port:
            link["port"] = mqtt_port
            if link.get("tls"):
                link["tls"] = dict(link["tls"], port=mqtt_port)
        dev = device_config(dict(st, mqtt=link), locker, wifi_ssid=wifi_ssid, wifi_password=wifi_password,
                            locks=bus)
        if out.is_dir():
            raise ProvisionError(f"{out} is a folder: give --out a file name")
        # the config is staged first: a folder that cannot be written leaves no locker recorded
        staged = write_private(out.with_name(out.name + ".new"), dev)
        try:
            if new:
                _record_locker(station_config, st, broker_dir)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
        os.replace(staged, out)
        return out
    if not demo:
        raise ProvisionError("a locker outside the demo needs the station's CA and TLS port from its station.json: "
                             "enroll the station (`jincun gateway enroll`) and pass --station-config PATH")
    if station is None:
        raise ProvisionError("--station is needed without a station.json")
    entry = locker_entry(locker, parsed or parse_comps(DEFAULT_COMPS))
    if bus:
        entry["locks"] = dict(bus)
    st = {"station": station, "demo": True, "mqtt": {"host": mqtt_host, "port": mqtt_port or 1883}, "lockers": [entry]}
    return write_private(out, device_config(st, locker, wifi_ssid=wifi_ssid, wifi_password=wifi_password))


def _record_locker(station_config: Path, st: dict, broker_dir: Path | None) -> None:
    """Write station.json with a new locker and, with broker_dir, the broker's password file and ACL.

    The station's config is validated first, so a config the gateway would refuse is never written.
    """
    from gateway.config import parse_config

    cfg = parse_config(st, base=station_config.parent)
    write_private(station_config, st)
    if broker_dir is not None:
        from gateway.broker import write_auth_files

        write_auth_files(cfg, broker_dir)
