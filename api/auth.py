"""API keys: random bearer tokens bound to a participant and one of its roles, stored as SHA-256.

An API key authenticates a caller to the service; it never speaks for the caller on chain (key
changes need signatures by the participant's keys, see api/routes/participants.py). A key is
refused once revoked, once expired, and while its participant does not hold its role on chain.
Every process re-reads a key at least every `KeyCache.ttl_s` (0.5 s), so a revocation takes
effect everywhere within a second.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update

from api.tables import ApiKeyRow, ensure_schema
from ledger.cache import Cache
from ledger.errors import InputError, NotFound
from ledger.registry import ROLES, Registry, now_us
from ledger.store import Store

PREFIX = "fp_"
ID_PREFIX = "k_"


@dataclass(frozen=True, slots=True)
class Caller:
    participant: str
    role: str

    @property
    def reads_everything(self) -> bool:
        return self.role in ("operator", "manufacturer", "auditor")


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key as listed: never the secret."""

    id: str
    participant: str
    role: str
    label: str
    created_us: int
    expires_us: int | None
    revoked_us: int | None

    def live(self, now: int) -> bool:
        return self.revoked_us is None and (self.expires_us is None or now < self.expires_us)


def hash_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_api_key(
    store: Store,
    participant: str,
    role: str,
    label: str = "default",
    *,
    expires_us: int | None = None,
    registry: Registry | None = None,
) -> str:
    """A new API key for `participant` acting as `role`; the token is returned once and only its
    hash is stored. `issue_api_key` also returns what is listed about it.

    Raises:
        NotFound: no such participant in the registry.
        InputError: the participant does not hold that role, or the expiry is in the past.
    """
    token, _ = issue_api_key(
        store, participant, role, label, expires_us=expires_us, registry=registry
    )
    return token


def issue_api_key(
    store: Store,
    participant: str,
    role: str,
    label: str = "default",
    *,
    expires_us: int | None = None,
    registry: Registry | None = None,
) -> tuple[str, ApiKeyInfo]:
    """Like `create_api_key`, returning (token, info)."""
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    p = (registry or Registry(store)).participant(participant)
    if role not in p.roles:
        held = ", ".join(sorted(p.roles)) or "no role"
        raise InputError(f"{participant} does not hold the role {role} (holds {held})")
    now = now_us()
    if expires_us is not None and expires_us <= now:
        raise InputError("the expiry is in the past")
    token = PREFIX + secrets.token_urlsafe(32)
    info = ApiKeyInfo(
        ID_PREFIX + secrets.token_hex(8), participant, role, label, now, expires_us, None
    )
    ensure_schema(store.engine)
    with store.transaction() as conn:
        conn.execute(
            insert(ApiKeyRow).values(
                key_hash=hash_key(token),
                id=info.id,
                participant=participant,
                role=role,
                label=label,
                created_us=now,
                expires_us=expires_us,
            )
        )
    return token, info


def list_api_keys(store: Store, participant: str | None = None) -> list[ApiKeyInfo]:
    """API keys, oldest first, all of them or one participant's (revoked ones included)."""
    q = select(ApiKeyRow).order_by(ApiKeyRow.created_us, ApiKeyRow.id)
    if participant is not None:
        q = q.where(ApiKeyRow.participant == participant)
    ensure_schema(store.engine)
    with store.reading() as conn:
        return [_info(r) for r in conn.execute(q).all()]


def revoke_api_key(store: Store, key_id: str, *, participant: str | None = None) -> ApiKeyInfo:
    """Revoke one API key by id (only among `participant`'s keys when given).

    Raises:
        NotFound: no such key (or not that participant's: the same answer).
    """
    ensure_schema(store.engine)
    with store.transaction() as conn:
        q = select(ApiKeyRow).where(ApiKeyRow.id == key_id)
        if participant is not None:
            q = q.where(ApiKeyRow.participant == participant)
        row = conn.execute(q).first()
        if row is None:
            raise NotFound(f"no API key {key_id!r}")
        if row.revoked_us is None:
            conn.execute(
                update(ApiKeyRow).where(ApiKeyRow.id == key_id).values(revoked_us=now_us())
            )
        row = conn.execute(select(ApiKeyRow).where(ApiKeyRow.id == key_id)).one()
    return _info(row)


def revoke_api_keys(store: Store, participant: str) -> int:
    """Revoke every live API key of `participant`; returns how many."""
    ensure_schema(store.engine)
    with store.transaction() as conn:
        return conn.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.participant == participant, ApiKeyRow.revoked_us.is_(None))
            .values(revoked_us=now_us())
        ).rowcount


def _info(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(
        row.id,
        row.participant,
        row.role,
        row.label,
        row.created_us,
        row.expires_us,
        row.revoked_us,
    )


class FailureThrottle:
    """Failed authentications per client address: past `limit` in `window_s` seconds, the
    client is told to wait (429, Retry-After) instead of being answered 401 at full speed.
    A valid key is never throttled; at most `max_clients` addresses are tracked."""

    def __init__(self, limit: int = 20, window_s: float = 10.0, max_clients: int = 10_000):
        self.limit = limit
        self.window_s = window_s
        self.max_clients = max_clients
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def failed(self, client: str) -> float | None:
        """Record a failure; seconds the client should wait when over the limit, else None."""
        now = time.monotonic()
        with self._lock:
            recent = self._failures.get(client)
            if recent is None:
                if len(self._failures) >= self.max_clients:
                    self._failures.clear()  # a flood of addresses: start over, stay bounded
                recent = self._failures[client] = deque()
            while recent and now - recent[0] > self.window_s:
                recent.popleft()
            recent.append(now)
            if len(recent) > self.limit:
                return self.window_s - (now - recent[0])
            return None


RolesOf = Callable[[str], frozenset[str]]


class KeyCache:
    """Looks API keys up in the store, remembering answers for `ttl_s` seconds.

    Args:
        store: where the keys are.
        roles_of: the roles a participant holds now (the registry); a key whose role its
            participant no longer holds is refused.
        ttl_s: how long an answer is reused: the longest a revocation takes to reach this
            process.
    """

    def __init__(self, store: Store, roles_of: RolesOf | None = None, ttl_s: float = 0.5) -> None:
        self.store = store
        self.roles_of = roles_of or (lambda p: Registry(store).participant(p).roles)
        self.ttl_s = ttl_s
        self._cache: Cache[bytes, tuple[Caller | None, int | None]] = Cache(10_000, ttl_s)

    def lookup(self, token: str) -> Caller | None:
        return self.lookup_hash(hash_key(token))

    def lookup_bearer(self, authorization: str) -> Caller | None:
        """The caller of an `Authorization` header's bearer token, parsed as FastAPI's
        `HTTPBearer` parses it (the fast paths answer only where the route would let the
        caller in); None for another scheme, no token or a key that is not live."""
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None
        return self.lookup(token)

    def lookup_hash(self, h: bytes) -> Caller | None:
        """The caller of the key whose SHA-256 is `h` (a portal session keeps only that)."""
        hit = self._cache.get(h)
        if hit is not None:
            caller, expires = hit
        else:
            with self.store.reading() as conn:
                row = conn.execute(
                    select(ApiKeyRow.participant, ApiKeyRow.role, ApiKeyRow.expires_us).where(
                        ApiKeyRow.key_hash == h, ApiKeyRow.revoked_us.is_(None)
                    )
                ).first()
            caller = Caller(row.participant, row.role) if row else None
            expires = row.expires_us if row else None
            self._cache.put(h, (caller, expires))
        if caller is None or (expires is not None and now_us() >= expires):
            return None
        try:
            if caller.role not in self.roles_of(caller.participant):
                return None
        except NotFound:
            return None
        return caller

    def forget(self) -> None:
        self._cache.clear()


__all__ = [
    "ApiKeyInfo",
    "Caller",
    "FailureThrottle",
    "KeyCache",
    "NotFound",
    "create_api_key",
    "hash_key",
    "issue_api_key",
    "list_api_keys",
    "revoke_api_key",
    "revoke_api_keys",
]
