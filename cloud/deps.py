"""Request dependencies shared by the routers: services on app.state and bearer auth."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from sqlalchemy.orm import Session, sessionmaker

from .counters import Counters
from .ingest import Ingestor
from .settings import Settings
from .sms import DispatchGate, Notifier


@dataclass
class Services:
    """Everything a request may need, built once by the app factory."""

    settings: Settings
    sessionmaker: sessionmaker[Session]
    counters: Counters
    ingestor: Ingestor
    notifier: Notifier
    sms_gate: DispatchGate = field(default_factory=DispatchGate)


def get_services(request: Request) -> Services:
    """The app's services."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def bearer(authorization: Annotated[str | None, Header()] = None) -> str:
    """The token of an `Authorization: Bearer …` header, or 401."""
    if not authorization or not authorization.lower().startswith("bearer ") or not authorization[7:].strip():
        raise HTTPException(401, "missing Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    return authorization[7:].strip()


def require_admin(services: ServicesDep, token: Annotated[str, Depends(bearer)]) -> None:
    """Allow only the admin token."""
    expected = services.settings.admin_token or ""
    if not hmac.compare_digest(token.encode("utf-8"), expected.encode("utf-8")):
        raise HTTPException(403, "this token is not the admin token")
