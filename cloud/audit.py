"""The audit log: one line per staff action that changes something or reads a code (who, what, why)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from .models import AuditEntry
from .principal import Principal


def audit(session: Session, who: Principal, action: str, target: str, reason: str | None = None,
          **detail: Any) -> None:
    """Append one audit line."""
    session.add(AuditEntry(at=time.time(), actor=who.name, role=who.role, action=action, target=target,
                           reason=reason, detail=detail or None))
