"""Enrollment on the Pi: trade the county's one-time token for station.json and the broker's files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import httpx

from jincun.provision import locker_entry, station_config, write_private

from .broker import plain_listener, write_broker_config
from .config import parse_config
from .errors import ConfigError
from .station_ca import default_hosts, make_station_ca

ENROLL_PATH = "/api/v1/enroll"
MAX_ANSWER_BYTES = 1_000_000  # a station's identity, a few lockers and couriers: far below this


class EnrollError(Exception):
    """The cloud refused the token or could not be reached; nothing was written."""


def fetch_enrollment(cloud_url: str, token: str, *, timeout_s: float = 30.0, verify: bool | str = True) -> dict:
    """POST the token (in the body, never the URL) and return the cloud's answer."""
    url = cloud_url.rstrip("/") + ENROLL_PATH
    try:
        with httpx.Client(timeout=timeout_s, verify=verify) as client:
            resp = client.post(url, json={"token": token})
    except httpx.HTTPError as exc:
        raise EnrollError(f"cannot reach the cloud at {cloud_url}: {exc}") from None
    if resp.status_code != 200:
        try:
            detail = resp.json().get("detail")
        except ValueError:
            detail = None
        if not isinstance(detail, str):
            detail = resp.text[:200]
        raise EnrollError(f"the cloud refused the enrollment ({resp.status_code}): {detail}")
    if len(resp.content) > MAX_ANSWER_BYTES:
        raise EnrollError("the cloud's answer is too large to be an enrollment")
    return resp.json()


def build_station(answer: dict, *, cloud_url: str, db: str, http_port: int, mqtt_port: int, listen: str,
                  audit_log: str | None = None, tls: dict | None = None) -> dict:
    """station.json from the cloud's answer: fresh locker secrets and MQTT passwords made here, on the Pi."""
    station = answer["station"]
    lockers = [locker_entry(lk["id"], [{"n": c["n"], "size": c["size"]} for c in lk["comps"]])
               for lk in answer["lockers"]]
    data = station_config(station=station["id"], name=station["name"], db=db, http_port=http_port,
                          mqtt_host="127.0.0.1", mqtt_port=mqtt_port, cloud_url=cloud_url.rstrip("/"),
                          api_key=answer["api_key"], lockers=lockers)
    data["mqtt"]["listen"] = listen
    if audit_log:
        data["mqtt"]["audit_log"] = audit_log
    if tls:
        data["mqtt"]["tls"] = tls
    # the station's couriers and agents as the cloud lists them now; the gateway's staff sync keeps them current
    data["terminal"] = {"users": [{"id": c["id"], "name": c["name"], "role": c.get("role", "courier"),
                                   "carrier": c["carrier"], "pin_hash": c["pin_hash"]} for c in answer["couriers"]]}
    return data


def enroll(*, cloud_url: str, token: str, out: Path, db: str = "/var/lib/jincun/gateway.db",
           http_port: int = 8100, mqtt_port: int = 1883, listen: str = "127.0.0.1",
           audit_log: str | None = None, tls_port: int = 8883, tls_hosts: list[str] | None = None,
           verify: bool | str = True) -> dict:
    """Enroll this station: write out/station.json, out/mosquitto/{mosquitto.conf,passwd,acl} and the
    station's CA in out/ca/ with the broker's certificate in out/mosquitto/tls/: lockers connect to the TLS
    listener on tls_port, the gateway to the plain one on mqtt_port, which listens on loopback (`listen`).

    An existing station.json is never overwritten: its lockers' credentials are on their boards.
    """
    out = Path(out)
    target = out / "station.json"
    if target.exists():
        raise EnrollError(f"{target} exists: this station is enrolled already (move it away to enroll again)")
    if not os.access(out if out.exists() else out.parent, os.W_OK):
        raise EnrollError(f"cannot write into {out}")
    answer = fetch_enrollment(cloud_url, token, verify=verify)
    tls_dir = (out / "mosquitto" / "tls").resolve()
    tls = {"port": tls_port, "cafile": str(tls_dir / "ca.pem"), "certfile": str(tls_dir / "server.pem"),
           "keyfile": str(tls_dir / "server.key")}
    data = build_station(answer, cloud_url=cloud_url, db=db, http_port=http_port, mqtt_port=mqtt_port,
                         listen=listen, audit_log=audit_log, tls=tls)
    try:
        cfg = parse_config(json.loads(json.dumps(data)))
    except ConfigError as exc:
        raise EnrollError(f"the cloud's answer does not make a valid station: {exc}") from None
    try:
        plain_listener(cfg)
    except ConfigError as exc:
        raise EnrollError(str(exc)) from None
    hosts = list(dict.fromkeys([*(tls_hosts or []), *default_hosts()]))
    make_station_ca(out / "ca", tls_dir, station=cfg.station, hosts=hosts)
    write_private(target, data)
    conf = write_broker_config(cfg, out / "mosquitto")
    return {"station": cfg.station, "station_json": str(target), "mosquitto_conf": str(conf),
            "ca": str((out / "ca" / "ca.pem").resolve()), "tls_hosts": hosts,
            "lockers": [lk.id for lk in cfg.lockers], "couriers": len(cfg.terminal.users)}
