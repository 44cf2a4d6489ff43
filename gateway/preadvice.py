"""A waybill's pre-advice: which carrier's manifest announced it to this station, asked of the cloud.

A deposit by a terminal user with no carrier of their own (the station's desk) takes its carrier from here
when the agent picks none (docs/gateway.md, "Station terminal"). With the cloud unreachable, or a waybill
nobody pre-advised (or pre-advised by two carriers), the answer is None and the agent picks the carrier.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import httpx

from jincun import carriers

from .cloudhttp import cloud_client
from .config import CloudConfig
from .counters import Counters

log = logging.getLogger("jincun.gateway.preadvice")

PREADVICE_PATH = "/api/v1/gateway/preadvice/{waybill}"


class CloudPreadvice:
    """Asks the cloud which carrier pre-advised a waybill to this station; None when it is not known."""

    def __init__(self, cfg: CloudConfig, counters: Counters, *, transport: httpx.AsyncBaseTransport | None = None,
                 timeout_s: float = 3.0) -> None:
        self.cfg = cfg
        self.counters = counters
        self.transport = transport
        self.timeout_s = timeout_s

    async def carrier(self, waybill: str) -> str | None:
        try:
            async with cloud_client(self.cfg, self.transport, self.timeout_s) as client:
                resp = await client.get(PREADVICE_PATH.format(waybill=quote(waybill, safe="")))
            if resp.status_code != 200:
                raise ValueError(f"HTTP {resp.status_code}")
            found = resp.json().get("carriers")
            if not isinstance(found, list):
                raise ValueError("no carrier list")
        except (httpx.HTTPError, ValueError, AttributeError) as exc:
            self.counters.inc("preadvice_cloud_failures")
            log.warning("pre-advice of waybill %s not known from the cloud: %s", waybill, exc)
            return None
        codes = {carriers.code_of(c) for c in found if isinstance(c, str)}
        if len(codes) != 1:
            return None  # nobody pre-advised it, or two carriers did: the agent says whose it is
        code = codes.pop()
        return code if code is not None and carriers.CODE_RE.match(code) else None
