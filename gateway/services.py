"""What the station's HTTP layer (the local API and the terminal) may use of the running gateway.

The handlers get an `HttpServices`, never the `Gateway`: they call the parts they need and cannot replace any
of them (the record is frozen), and the HTTP modules import nothing of the gateway's wiring.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .boardlocker import BoardLocker
    from .config import StationConfig
    from .consent import ConsentPort
    from .counters import Counters
    from .deposits import Deposits
    from .lockerlink import LockerLink
    from .scanner_serial import Scanner
    from .stationdb import Outbox
    from .pins import Sessions
    from .preadvice import CloudPreadvice
    from .uplink import Uplink


@dataclass(frozen=True, slots=True)
class HttpServices:
    """The parts of one gateway that its HTTP handlers use."""

    cfg: StationConfig
    counters: Counters
    outbox: Outbox  # the terminal's own records (handover, outbound, fault report)
    deposits: Deposits
    consent: ConsentPort
    preadvice: CloudPreadvice  # which carrier pre-advised a waybill (a desk deposit's carrier)
    link: LockerLink
    uplink: Uplink  # read for its state only
    boards: dict[str, BoardLocker]
    scanner: Scanner | None
    health: Callable[[], Awaitable[dict]]
    sessions: Sessions  # the terminal's logins (kept in the station database across restarts)
