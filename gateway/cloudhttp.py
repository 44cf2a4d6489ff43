"""The station's HTTP client to the cloud: its base URL and the station's key, one place for every caller
(uplink, downlink, staff list, consent, pre-advice)."""

from __future__ import annotations

import httpx

from .config import CloudConfig


def cloud_client(cfg: CloudConfig, transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float | None = None) -> httpx.AsyncClient:
    """A client speaking to the cloud as this station (`timeout` defaults to the config's)."""
    return httpx.AsyncClient(base_url=cfg.url, transport=transport,
                             timeout=cfg.timeout_s if timeout is None else timeout,
                             headers={"Authorization": f"Bearer {cfg.api_key}"})
