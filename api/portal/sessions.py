"""Portal sign-in: an API key exchanged for a session cookie.

The cookie carries a random token; the database keeps its SHA-256, the SHA-256 of the API key it
stands for, a CSRF token, and when it ends. Every request resolves the session to its API key
through the service's `KeyCache`, so the portal sees exactly the caller the API would: a revoked
or expired key, or a participant that lost the role, ends every session opened with it within a
second. The cookie is HttpOnly (no script reads it) and SameSite=Strict (no other site's page
sends it); forms carry the session's CSRF token besides, checked in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from api.auth import Caller, hash_key
from api.tables import PortalSession, ensure_schema
from ledger.registry import now_us
from ledger.store import Store

COOKIE = "fp_session"
LIFETIME_S = 8 * 3600  # a working day; sign in again after


@dataclass(frozen=True, slots=True)
class Session:
    caller: Caller
    csrf: str
    expires_us: int
    token_hash: bytes


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def open_session(store: Store, api_key: str, *, lifetime_s: int = LIFETIME_S) -> tuple[str, str]:
    """A new session for `api_key` (already authenticated by the caller): (cookie token, csrf)."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    now = now_us()
    ensure_schema(store.engine)
    with store.transaction() as conn:
        conn.execute(
            insert(PortalSession).values(
                token_hash=_hash(token),
                key_hash=hash_key(api_key),
                csrf=csrf,
                created_us=now,
                expires_us=now + lifetime_s * 1_000_000,
            )
        )
    return token, csrf


def resolve(store: Store, keys: object, token: str | None) -> Session | None:
    """The live session of a cookie token, acting as its API key (`keys`: a `KeyCache`)."""
    if not token:
        return None
    h = _hash(token)
    with store.reading() as conn:
        row = conn.execute(
            select(PortalSession.key_hash, PortalSession.csrf, PortalSession.expires_us).where(
                PortalSession.token_hash == h, PortalSession.ended_us.is_(None)
            )
        ).first()
    if row is None or now_us() >= row.expires_us:
        return None
    caller = keys.lookup_hash(row.key_hash)  # type: ignore[attr-defined]
    if caller is None:
        return None
    return Session(caller, row.csrf, row.expires_us, h)


def end_session(store: Store, token_hash: bytes) -> None:
    with store.transaction() as conn:
        conn.execute(
            update(PortalSession)
            .where(PortalSession.token_hash == token_hash, PortalSession.ended_us.is_(None))
            .values(ended_us=now_us())
        )


def csrf_ok(session: Session, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(session.csrf.encode(), given.encode())
