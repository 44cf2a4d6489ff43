"""The villager's report of an extra charge (二次收费) on the phone page (`/m`)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from jc.records import CHARGE_TEXT_MAX

from . import charges, commands
from .auth import recipient
from .deps import ServicesDep
from .errors import CommandRefused
from .ratelimit import hit
from .storage import SessionDep

log = logging.getLogger("jincun.cloud.pages")
router = APIRouter(include_in_schema=False)


def _back(request: Request, msg: str) -> RedirectResponse:
    q = "?lang=en&" if request.query_params.get("lang") == "en" else "?"
    return RedirectResponse(f"/m{q}msg={msg}#charge", status_code=303)


@router.post("/m/charges")
def phone_charge(request: Request, session: SessionDep, services: ServicesDep,
                 amount: Annotated[str, Form(max_length=12)], carrier: Annotated[str, Form(max_length=32)],
                 kind: Annotated[str, Form(max_length=16)] = "other", ref: Annotated[str, Form(max_length=40)] = "",
                 text: Annotated[str, Form(max_length=CHARGE_TEXT_MAX)] = "") -> Response:
    """A villager reports being charged: amount in yuan, the carrier, optionally the parcel and a note."""
    who = recipient(request, services)
    if who is None:
        return RedirectResponse("/m", status_code=303)
    phone = who.name.removeprefix("recipient-")
    if not hit(session, f"charge:{phone}:86400", limit=charges.VILLAGER_DAILY, window=86400):
        session.commit()
        return _back(request, "too_many")
    try:
        cents = charges.parse_yuan(amount)
        row = charges.report(session, phone=phone, carrier=carrier, kind=kind, cents=cents, ref=ref or None,
                             text=text)
    except CommandRefused:
        session.rollback()
        return _back(request, "charge_bad")
    commands.audit(session, who, "charge_reported", row.carrier, row.station_id, kind=row.kind, cents=row.cents)
    session.commit()
    services.counters.inc("charges_reported")
    return _back(request, "charge_reported")
