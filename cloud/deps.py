"""Request dependencies shared by the routers: the services on app.state and the bearer credential.

Who the caller is gets decided in auth.py, not here; this module names the ingestor and the reader for
type checkers only, so importing it pulls in neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from .counters import Counters
from .settings import Settings
from .sms import DispatchGate

if TYPE_CHECKING:
    from .ingest import Ingestor
    from .lookups import PgReader
    from .sms import Notifier


@dataclass
class Services:
    """Everything a request may need, built once by the app factory."""

    settings: Settings
    sessionmaker: sessionmaker[Session]
    counters: Counters
    ingestor: Ingestor
    notifier: Notifier
    sms_gate: DispatchGate = field(default_factory=DispatchGate)
    # the hot lookups on the event loop (PostgreSQL), or None: they run on SQLAlchemy in a thread
    reader: PgReader | None = None


async def get_services(request: Request) -> Services:
    """The app's services (async: FastAPI runs a plain-def dependency in a worker thread, a hop per request)."""
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


# declared for OpenAPI, so that Swagger UI can authorise; the routes still resolve the caller themselves
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description=(
    "The admin token, a staff login's JWT (POST /api/v1/auth/login), a station gateway's API key "
    "or a carrier client's API key."))


async def bearer(credentials: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None) -> str:
    """The token of an `Authorization: Bearer …` header, or 401."""
    if credentials is None or not credentials.credentials.strip():
        raise HTTPException(401, "missing Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    return credentials.credentials.strip()

