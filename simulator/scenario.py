"""Scenario files (YAML): the county slice, people, hardware faults, bad actors and a fault schedule."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

FAULT_KINDS = ("uplink_down", "broker_restart", "power_cut", "lock_jam", "door_ajar", "forced_open",
               "sensor_fault", "wifi_flap", "clock_skew", "disk_full", "voltage_sag", "gateway_kill", "cloud_kill",
               "broker_kill", "locker_power_cut", "theft", "stray_parcel")
_DUR = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})$")


class ScenarioError(ValueError):
    """A scenario file is unreadable or invalid; the message names every problem."""


def duration_s(v: str | int | float) -> float:
    """'90s', '10m', '2h', '1d' or a number of seconds, in simulated seconds."""
    if isinstance(v, (int, float)):
        return float(v)
    m = _DUR.match(str(v))
    if not m:
        raise ValueError(f"bad duration {v!r}: expected like 30s, 10m, 2h, 1d")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def clock_h(v: str | int | float) -> float:
    """'09:30' or a number of hours since midnight of the first day (may exceed 24)."""
    if isinstance(v, (int, float)):
        return float(v)
    m = _CLOCK.match(str(v))
    if not m:
        raise ValueError(f"bad time {v!r}: expected HH:MM or hours")
    return int(m.group(1)) + int(m.group(2)) / 60


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid")


class People(_M):
    carriers: list[str] = ["EMS", "SF", "ZTO", "YTO", "STO", "YUNDA", "JT", "JD"]
    visits_per_day: int = Field(2, ge=1, le=6)  # each carrier's van calls at each station this often
    typo_p: float = Field(0.15, ge=0, le=1)  # a villager mistypes the code once
    ms_per_key: tuple[int, int] = (200, 700)  # typing speed range, real milliseconds per key
    pickup_median_h: float = Field(5.0, gt=0)
    pickup_sigma: float = Field(0.9, ge=0)
    never_p: float = Field(0.05, ge=0, le=1)  # parcels nobody collects during the run (overdue)
    elderly_p: float = Field(0.04, ge=0, le=1)  # recipients who need door-to-door delivery by the agent
    leave_open_p: float = Field(0.02, ge=0, le=1)  # people who leave a door open
    produce_per_day: float = Field(0, ge=0)  # outbound farm produce parcels per station per day
    sizes: dict[str, float] = {"S": 0.5, "M": 0.35, "L": 0.15}


class Hardware(_M):
    jam_p: float = Field(0.0, ge=0, le=1)
    occ_fault_p: float = Field(0.0, ge=0, le=1)
    rssi: int = -62
    vin: float = 12.0


class BadActors(_M):
    code_guessers: int = Field(0, ge=0)  # guessing sessions per scenario, spread over stations
    guesses: int = Field(12, ge=1, le=200)  # codes tried per session
    impersonators: int = Field(0, ge=0)  # attempts to pass as a locker on the station broker


class Fault(_M):
    at: float
    kind: Literal[FAULT_KINDS]  # type: ignore[valid-type]
    stations: int | Literal["all"] = 1
    duration: float = Field(0, alias="for")
    count: int = Field(1, ge=1)
    every: float = 600
    period_s: float = Field(2.0, gt=0)  # wifi_flap: real seconds up, then down
    seconds: int = 0  # clock_skew
    volts: float = 2.5  # voltage_sag
    repeat: int = Field(1, ge=1, le=20)  # locker_power_cut: cuts in a row at one controller
    broker_down: float = Field(0.0, ge=0, le=1)  # locker_power_cut: share of cuts that wait for a broker kill

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    _at = field_validator("at", mode="before")(classmethod(lambda cls, v: clock_h(v)))
    _dur = field_validator("duration", "every", mode="before")(classmethod(lambda cls, v: duration_s(v)))


class Scenario(_M):
    name: str = Field(pattern=r"^[a-z0-9-]{1,40}$")
    title: str = ""
    seed: int = 1
    runtime: Literal["micropython", "cpython"] = "micropython"
    county_seed: int = 2026
    stations: int = Field(4, ge=1, le=600)
    pick: Literal["spread", "largest"] = "spread"
    controllers_per_station: int | Literal["auto"] = 2
    comps: str = "6S,4M,2L"
    controllers_per_host: int = Field(16, ge=1, le=1000)
    gateways_per_host: int = Field(25, ge=1, le=600)
    start_h: float = 6.0
    hours: float = Field(18.0, gt=0, le=96)
    day_seconds: float = Field(360.0, gt=0)  # real seconds one simulated day takes
    volume_factor: float = Field(1.0, gt=0)
    volume_cap: int = Field(0, ge=0)  # 0: none; else at most this many parcels per station per day
    database: Literal["sqlite", "postgres"] = "sqlite"
    # busy hour: > 0 replaces the day's curve by this share of every station's compartments deposited early
    # in the run, and busy_collect of those parcels collected before it ends (people.busy_plan)
    busy_share: float = Field(0.0, ge=0, le=1)
    busy_collect: float = Field(0.5, ge=0, le=1)
    tele_s: int = Field(60, gt=0)
    ajar_s: int = Field(0, ge=0)  # firmware door-ajar timer in real seconds; 0: 2 simulated hours, min 8 s
    late_s: float = Field(30.0, gt=0)  # an event later than this in reaching the cloud is late
    drain_timeout_s: float = Field(240.0, gt=0)
    people: People = People()
    hardware: Hardware = Hardware()
    bad_actors: BadActors = BadActors()
    faults: list[Fault] = []

    _start = field_validator("start_h", mode="before")(classmethod(lambda cls, v: clock_h(v)))

    @model_validator(mode="after")
    def _faults_in_run(self):
        for f in self.faults:
            if not self.start_h <= f.at < self.start_h + self.hours:
                raise ValueError(f"fault {f.kind} at {f.at:.2f} h is outside the run")
        return self

    @property
    def scale(self) -> float:
        """Simulated seconds per real second."""
        return 86400.0 / self.day_seconds

    @property
    def run_seconds(self) -> float:
        return self.hours * 3600 / self.scale

    def real_t(self, sim_h: float) -> float:
        """Real seconds from the start of the run to simulated hour sim_h."""
        return (sim_h - self.start_h) * 3600 / self.scale

    def sim_h(self, real_t: float) -> float:
        return self.start_h + real_t * self.scale / 3600

    def real_s(self, sim_s: float) -> float:
        return sim_s / self.scale

    @property
    def firmware_ajar_s(self) -> int:
        return self.ajar_s or max(8, int(round(7200 / self.scale)))


def load_scenario(path: str | Path, **overrides) -> Scenario:
    """Read and validate a scenario file; overrides replace top-level keys (None is ignored)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ScenarioError(f"{path} must hold a mapping")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return parse_scenario(data, str(path))


def parse_scenario(data: dict, where: str = "scenario") -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ScenarioError(f"invalid {where}:\n" + "\n".join(lines)) from None
