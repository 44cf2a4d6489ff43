"""Who is calling: staff (password + JWT, bearer or cookie), the admin token, carrier API keys, recipients.

Every caller is resolved here and nowhere else: `resolve` (in a worker thread, with a session), `authorize`
(on the event loop: the admin token without a thread hop, anything else through `resolve` in one thread),
`allow(*roles)` (a FastAPI dependency), `staff_page` (the pages, which redirect to the login form) and
`recipient` (the villager's phone cookie). Every decision reads the database, never process memory, so
any worker can serve any request.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Annotated

import anyio
import jwt
from fastapi import Depends, HTTPException, Request, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials
from pwdlib import PasswordHash
from sqlalchemy import select
from sqlalchemy.orm import Session

from .constants import ROLES
from .crud import hash_key, station_by_key
from .deps import BEARER, ServicesDep
from .models import ApiClient, Station, User
from .principal import OPS, OPS_VIEW, STAFF_READ, STATS, Principal
from .storage import SessionDep

# the principal and the role groups are re-exported: the routes take them from here with `allow`
__all__ = ["ALGORITHM", "OPS", "OPS_VIEW", "PASSWORDS", "RECIPIENT_COOKIE", "STAFF_COOKIE", "STAFF_READ",
           "STAFF_SECURITY", "STAFF_SESSION", "STATS", "Principal", "Staff", "allow", "authenticate_user",
           "authorize", "hash_secret", "make_token", "permit", "read_token", "recipient", "recipient_phone",
           "resolve", "staff_page", "station_caller", "verify_secret"]

log = logging.getLogger("jincun.cloud.auth")
PASSWORDS = PasswordHash.recommended()
STAFF_COOKIE = "jc_staff"
RECIPIENT_COOKIE = "jc_recipient"
ALGORITHM = "HS256"
# declared for OpenAPI beside deps.BEARER; `allow` still resolves the caller itself
STAFF_SESSION = APIKeyCookie(name=STAFF_COOKIE, auto_error=False, scheme_name="staff_cookie",
                             description="The staff pages' login cookie.")
# for routes that authorise in their own body (`authorize`): the same schemes, declared
STAFF_SECURITY = [Security(BEARER), Security(STAFF_SESSION)]


def hash_secret(secret: str) -> str:
    """argon2 hash of a password or PIN."""
    return PASSWORDS.hash(secret)


def verify_secret(secret: str, hashed: str) -> bool:
    """Check a password or PIN against its hash."""
    return PASSWORDS.verify(secret, hashed)


def make_token(secret: str, *, sub: str, role: str, minutes: int, **claims) -> str:
    """A signed JWT for a staff member or a recipient."""
    now = int(time.time())
    return jwt.encode({"sub": sub, "role": role, "iat": now, "exp": now + minutes * 60, **claims}, secret,
                      algorithm=ALGORITHM)


def read_token(secret: str, token: str) -> dict | None:
    """The claims of a valid token, or None."""
    try:
        return jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "role"]})
    except jwt.PyJWTError:
        return None


def authenticate_user(session: Session, username: str, password: str) -> User | None:
    """The active user with this password, or None."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        # spend the same time as a real check, so a missing name is not told apart by timing
        PASSWORDS.verify(password, _DUMMY_HASH)
        return None
    return user if verify_secret(password, user.password_hash) else None


_DUMMY_HASH = PASSWORDS.hash("not-a-password")


def _bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer ") and header[7:].strip():
        return header[7:].strip()
    return None


def _admin(token: str, settings) -> Principal | None:
    """The admin principal if `token` is the admin token (compared in constant time), else None."""
    if hmac.compare_digest(token.encode("utf-8"), (settings.admin_token or "").encode("utf-8")):
        return Principal(name="admin-token", role="admin")
    return None


def resolve(request: Request, session: Session, services) -> Principal | None:
    """The caller of a request: the bearer token (admin token, JWT, station or carrier key) or the staff cookie."""
    settings = services.settings
    token = _bearer(request)
    if token is not None:
        if (admin := _admin(token, settings)) is not None:
            return admin
        claims = read_token(settings.jwt_key, token)
        if claims is not None:
            return _staff(session, claims)
        station = session.scalar(select(Station).where(Station.api_key_hash == hash_key(token)))
        if station is not None:
            return Principal(name=f"gateway-{station.id}", role="gateway", station_id=station.id)
        client = session.scalar(select(ApiClient).where(ApiClient.key_hash == hash_key(token),
                                                        ApiClient.active.is_(True)))
        if client is not None:
            return Principal(name=f"client-{client.id}", role="carrier_client", carrier_code=client.carrier_code,
                             client_id=client.id)
        services.counters.inc("auth_failures")
        return None
    cookie = request.cookies.get(STAFF_COOKIE)
    if cookie:
        claims = read_token(settings.jwt_key, cookie)
        if claims is not None:
            return _staff(session, claims)
    return None


def permit(who: Principal | None, roles: tuple[str, ...], services) -> Principal:
    """`who` if their role is one of `roles`; else 401 (no caller) or 403 (wrong role), counted."""
    if who is None:
        raise HTTPException(401, "log in or send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
    if who.role not in roles:
        services.counters.inc("auth_forbidden")
        raise HTTPException(403, f"role {who.role} may not do this (needs one of {', '.join(roles)})")
    return who


async def authorize(request: Request, services, roles: tuple[str, ...]) -> Principal:
    """Like `allow`, for async routes: the admin token without a thread hop, anyone else in one thread."""
    token = _bearer(request)
    who = _admin(token, services.settings) if token is not None else None
    if who is None:
        def run() -> Principal | None:
            with services.sessionmaker() as session:
                return resolve(request, session, services)
        who = await anyio.to_thread.run_sync(run)
    return permit(who, roles, services)


def station_caller(session: Session, services, token: str, station_id: str | None = None) -> Station:
    """The active station whose gateway key `token` is; 401 for an unknown key, 403 for another station's key
    or a deactivated station. (The ingest route checks the same in one query with its batch's station.)"""
    owner = station_by_key(session, api_key=token)
    if owner is None:
        services.counters.inc("gateway_auth_failures")
        raise HTTPException(401, "unknown station API key", headers={"WWW-Authenticate": "Bearer"})
    if station_id is not None and owner.id != station_id:
        services.counters.inc("gateway_auth_failures")
        raise HTTPException(403, f"this API key belongs to another station, not {station_id}")
    if not owner.active:
        raise HTTPException(403, f"station {owner.id} is deactivated")
    return owner


def staff_page(request: Request, session: Session, services, roles: tuple[str, ...]) -> Principal | None:
    """The logged-in staff member for a page if their role is one of `roles`, else None (the page redirects)."""
    who = resolve(request, session, services)
    return who if who is not None and who.role in roles else None


def _staff(session: Session, claims: dict) -> Principal | None:
    if claims.get("role") not in ROLES or claims.get("role") in ("gateway", "carrier_client", "recipient"):
        return None
    user = session.get(User, int(claims["uid"])) if str(claims.get("uid", "")).isdigit() else None
    if user is None or not user.active or user.username != claims["sub"]:
        return None
    return Principal(name=user.username, role=user.role, user_id=user.id, station_id=user.station_id,
                     carrier_code=user.carrier_code)


def allow(*roles: str):
    """A dependency that admits only the given roles (401 without credentials, 403 with the wrong role)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {unknown}")

    def check(request: Request, session: SessionDep, services: ServicesDep,
              _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
              _cookie: Annotated[str | None, Security(STAFF_SESSION)] = None) -> Principal:
        return permit(resolve(request, session, services), roles, services)

    return check


def recipient_phone(request: Request, services) -> str | None:
    """The phone of a logged-in recipient (cookie), or None."""
    cookie = request.cookies.get(RECIPIENT_COOKIE)
    if not cookie:
        return None
    claims = read_token(services.settings.jwt_key, cookie)
    if claims is None or claims.get("role") != "recipient":
        return None
    return claims["sub"]


def recipient(request: Request, services) -> Principal | None:
    """The logged-in recipient as a principal (for the audit of their own actions), or None."""
    phone = recipient_phone(request, services)
    return Principal(name=f"recipient-{phone}", role="recipient") if phone else None


Staff = Annotated[Principal, Depends(allow(*STAFF_READ))]
