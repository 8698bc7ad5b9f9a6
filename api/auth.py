"""API keys: random bearer tokens bound to a participant and one role, stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from ledger.errors import InputError, NotFound
from ledger.registry import ROLES, Registry, now_us
from ledger.store import Store
from ledger.store.models import ApiKeyRow

PREFIX = "fp_"


@dataclass(frozen=True, slots=True)
class Caller:
    participant: str
    role: str

    @property
    def reads_everything(self) -> bool:
        return self.role in ("operator", "manufacturer", "auditor")


def hash_key(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def create_api_key(store: Store, participant: str, role: str, label: str = "default") -> str:
    """A new API key for `participant` acting as `role`; the token is shown once, never stored.

    Raises:
        NotFound: no such participant.
        InputError: the participant does not hold that role.
    """
    if role not in ROLES:
        raise InputError(f"unknown role {role!r}; expected one of {', '.join(ROLES)}")
    p = Registry(store).participant(participant)
    if role not in p.roles:
        raise InputError(
            f"{participant} does not hold the role {role} (has {', '.join(sorted(p.roles))})"
        )
    token = PREFIX + secrets.token_urlsafe(32)
    with store.transaction() as conn:
        conn.execute(
            insert(ApiKeyRow).values(
                key_hash=hash_key(token),
                participant=participant,
                role=role,
                label=label,
                created_us=now_us(),
            )
        )
    return token


def revoke_api_keys(store: Store, participant: str) -> int:
    with store.transaction() as conn:
        return conn.execute(
            update(ApiKeyRow)
            .where(ApiKeyRow.participant == participant, ApiKeyRow.revoked_us.is_(None))
            .values(revoked_us=now_us())
        ).rowcount


class KeyCache:
    """Looks API keys up in the store, remembering answers for a few seconds."""

    def __init__(self, store: Store, ttl_s: float = 5.0) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._cache: dict[bytes, tuple[float, Caller | None]] = {}
        self._lock = threading.Lock()

    def lookup(self, token: str) -> Caller | None:
        h = hash_key(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(h)
        if hit and now - hit[0] < self.ttl_s:
            return hit[1]
        with self.store.reading() as conn:
            row = conn.execute(
                select(ApiKeyRow.participant, ApiKeyRow.role).where(
                    ApiKeyRow.key_hash == h, ApiKeyRow.revoked_us.is_(None)
                )
            ).first()
        caller = Caller(row.participant, row.role) if row else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[h] = (now, caller)
        return caller

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()


__all__ = ["Caller", "KeyCache", "NotFound", "create_api_key", "hash_key", "revoke_api_keys"]
