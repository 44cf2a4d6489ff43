"""Pydantic models of the HTTP API: one Create/Public family per entity."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from . import constants as K

StationKind = Literal["village_shop", "party_service_centre", "postal_point", "town_station", "district_hub"]
Size = Literal["S", "M", "L"]
LOCKER_ID = r"^[a-z0-9-]{1,32}$"
STATION_ID = r"^[a-z0-9-]{1,32}$"


class CompartmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(ge=K.COMPARTMENT_MIN, le=K.COMPARTMENT_MAX)
    size: Size


class CompartmentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    n: int
    size: str
    state: str
    door: str
    occ: bool
    ref: str | None


class LockerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=LOCKER_ID)
    comps: list[CompartmentCreate] = Field(min_length=1, max_length=K.COMPARTMENT_MAX)


class LockerPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    fw: str | None
    boot: str | None
    online: str
    last_seen: float | None
    rssi: int | None
    vin: float | None
    temp: float | None
    heap: int | None
    outbox: int | None
    up: int | None
    compartments: list[CompartmentPublic] = []


class StationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=STATION_ID)
    name: str = Field(min_length=1, max_length=128)
    kind: StationKind = "village_shop"
    village: str | None = Field(default=None, min_length=1, max_length=64)
    town: str | None = Field(default=None, min_length=1, max_length=64)
    api_key: str = Field(min_length=16, max_length=256)


class StationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    name: str
    kind: str
    village: str | None = None
    town: str | None = None
    active: bool
    lockers: list[LockerPublic] = []


class ParcelEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    status: str
    at: float
    source: str


class ParcelPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    ref: str
    waybill: str | None
    carrier: str | None
    direction: str
    phone: str | None
    station_id: str
    locker_id: str | None
    compartment: int | None
    size: str | None
    status: str
    created_at: float
    deposited_at: float | None
    picked_up_at: float | None
    fee_cents: int
    fee_reason: str | None
    timeline: list[ParcelEventPublic] = []


class NotificationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    phone: str
    text: str
    status: str
    attempts: int
    ref: str | None
    created_at: float
    sent_at: float | None


class ItemResult(BaseModel):
    src: Any = None
    boot: Any = None
    seq: Any = None
    status: Literal["applied", "duplicate", "rejected"]
    error: str | None = None


class IngestResponse(BaseModel):
    batch: str
    applied: int
    duplicate: int
    rejected: int
    results: list[ItemResult]


class LedgerPublic(BaseModel):
    station: str
    events: list[tuple[str, str, int]]
    parcel_transitions: dict[str, int]


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    db: str
    counters: dict[str, int]
