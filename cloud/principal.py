"""Who a caller is, once authenticated: a plain value that domain modules take (no web framework here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller."""

    name: str
    role: str
    user_id: int | None = None
    station_id: str | None = None
    carrier_code: str | None = None
    client_id: int | None = None


# the role groups the routes and pages admit
STAFF_READ = ("admin", "county_official", "maintenance", "station_agent")
OPS = ("admin", "maintenance")
OPS_VIEW = ("admin", "maintenance", "station_agent")
STATS = ("admin", "county_official")
