"""Response models of the statistics API: one row model per table of cloud/stats.py.

Each forbids fields it does not name, so a column added to a table in cloud/stats.py without its model fails
the response (and the tests) instead of vanishing from the API.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CoverageRow(_Row):
    """Per town: villages with an active service point."""
    town: str
    villages: int
    covered: int
    uncovered: int
    coverage: float


class VolumeRow(_Row):
    """Parcels in and out on one CST day, for one village, town or carrier (the key named by `by`)."""
    day: str
    village: str | None = None
    town: str | None = None
    carrier: str | None = None
    name: str | None = None  # with `by=carrier`: the carrier's name from the one table (jincun/carriers.py)
    inbound: int
    outbound: int


class PickupTimeRow(_Row):
    """Picked-up parcels by how long they waited, in an hour bucket such as `2-6` or `72+`."""
    hours: str
    lo: int  # the bucket's bounds in hours; `hi` is null for the last, open bucket
    hi: int | None
    parcels: int
    share: float


class OverdueRow(_Row):
    """Overdue rate per town; the last row is the county's total (`合计/total`)."""
    town: str
    deposited: int
    overdue: int
    overdue_rate: float


class FlagRow(_Row):
    """A fake sign-off flag with the kinds of locker evidence that were missing (comma-separated)."""
    id: int
    ref: str
    waybill: str | None
    carrier: str | None
    station_id: str
    kind: str
    at: float
    missing: str
    resolved: bool


class SubsidyRow(_Row):
    """A village of the registry with its subsidy score (remote, populous, few parcels first)."""
    village: str
    town: str
    distance_km: float
    population: int | None
    parcels_per_day: float
    covered: bool
    score: float


class ProduceRow(_Row):
    """Farm-produce parcels sent out per town and carrier."""
    town: str
    carrier: str
    parcels: int
    weight_kg: float


class FeeRow(_Row):
    """Fees per station, direction and reason, with the carriers charged (space-separated)."""
    town: str
    station_id: str
    station: str
    direction: str
    kind: str  # what it was for (jc.records.FEE_KINDS), "—" for an older carrier fee without one
    reason: str
    source: str  # carrier (its manifest), station (outbound postage), villager (/m) or agent (the terminal)
    parcels: int
    total_yuan: float
    carriers: str
    banned: bool  # a pickup fee: no recipient may be charged one (jc.records.PICKUP_FREE)


class DoorHelpRow(_Row):
    """Door-to-door help per station: parcels waiting, the longest wait and door deliveries."""
    town: str
    village: str
    distance_km: float | None
    station_id: str
    station: str
    waiting: int
    oldest_wait_h: float | None
    delivered_door: int


class DispatchRow(_Row):
    """What a town's co-delivery station sends out, and how far its served villages lie."""
    town: str
    town_station: str
    villages: int
    served: int
    parcels_per_day: float
    farthest_km: float | None
    mean_km: float | None


# the row model of each table, in cloud/stats.py's order (stats.TABLES)
ROW_MODELS: dict[str, type[_Row]] = {
    "coverage": CoverageRow, "volumes": VolumeRow, "pickup_times": PickupTimeRow, "overdue": OverdueRow,
    "flags": FlagRow, "subsidy": SubsidyRow, "produce": ProduceRow, "fees": FeeRow, "door_help": DoorHelpRow,
    "dispatch": DispatchRow,
}


class FlagResolved(BaseModel):
    id: int
    resolved: bool


class CodeResent(BaseModel):
    """The `code_sync` commands that carry the replacement code down to the lockers."""
    commands: list[str]


class WhoAmI(BaseModel):
    name: str
    role: str
    station_id: str | None
    carrier_code: str | None


class AuditEntryPublic(BaseModel):
    at: float
    actor: str
    role: str
    action: str
    target: str
    reason: str | None
    detail: dict[str, Any] | None
