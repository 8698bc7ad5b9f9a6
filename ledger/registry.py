"""Participants, their roles and signing keys, with validity over time.

A key is valid over [valid_from, revoked): rotation revokes the old keys and adds a new one at
the same instant, so exactly one key signs at any time unless a participant holds several on
purpose. The contract holds the authoritative copy on chain; this table mirrors it for fast,
offline checks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger.errors import Conflict, InputError, KeyNotAuthorized, NotFound
from ledger.store import Store
from ledger.store.models import KeyRow, ParticipantRow

ROLES = ("operator", "supplier", "manufacturer", "auditor", "maintainer", "model_publisher")


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    roles: frozenset[str]
    created_us: int


@dataclass(frozen=True, slots=True)
class KeyInfo:
    address: str
    participant: str
    valid_from_us: int
    revoked_us: int | None
    reason: str | None = None

    def valid_at(self, t_us: int) -> bool:
        return self.valid_from_us <= t_us and (self.revoked_us is None or t_us < self.revoked_us)


def check_roles(roles: list[str] | tuple[str, ...] | frozenset[str]) -> frozenset[str]:
    bad = sorted(set(roles) - set(ROLES))
    if bad:
        raise InputError(f"unknown role(s) {', '.join(bad)}; expected some of {', '.join(ROLES)}")
    if not roles:
        raise InputError("a participant needs at least one role")
    return frozenset(roles)


class KeySnapshot:
    """An in-memory copy of the key table for checking many records quickly."""

    def __init__(self, keys: list[KeyInfo]) -> None:
        self._keys = {k.address: k for k in keys}

    def check(self, participant: str, address: str, at_us: int, now: int) -> None:
        """Check that `address` was `participant`'s key at `at_us` and is not revoked by `now`.

        Raises:
            KeyNotAuthorized: unknown key, someone else's key, or not valid at those times.
        """
        key = self._keys.get(address)
        if key is None:
            raise KeyNotAuthorized(f"key {address} is not registered")
        if key.participant != participant:
            raise KeyNotAuthorized(
                f"key {address} belongs to {key.participant}, not to {participant}"
            )
        if not key.valid_at(at_us):
            raise KeyNotAuthorized(
                f"key {address} of {participant} was not valid at the record's time"
                + (f" (revoked: {key.reason})" if key.reason else "")
            )
        if key.revoked_us is not None and key.revoked_us <= now:
            raise KeyNotAuthorized(
                f"key {address} of {participant} has been revoked; it signs nothing new"
            )

    def __len__(self) -> int:
        return len(self._keys)


class Registry:
    """Participants and keys in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def add_participant(self, id: str, name: str, roles: list[str]) -> Participant:
        p = Participant(id=id, name=name, roles=check_roles(roles), created_us=now_us())
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    insert(ParticipantRow).values(
                        id=p.id,
                        name=p.name,
                        roles=",".join(sorted(p.roles)),
                        created_us=p.created_us,
                    )
                )
        except Exception as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Conflict(f"participant {id!r} already exists") from None
            raise
        return p

    def participant(self, id: str) -> Participant:
        with self.store.reading() as conn:
            row = conn.execute(select(ParticipantRow).where(ParticipantRow.id == id)).first()
        if row is None:
            raise NotFound(f"no participant {id!r}")
        return _participant(row)

    def participants(self) -> list[Participant]:
        with self.store.reading() as conn:
            rows = conn.execute(select(ParticipantRow).order_by(ParticipantRow.id)).all()
        return [_participant(r) for r in rows]

    def add_key(
        self, participant: str, address: str, *, valid_from_us: int | None = None
    ) -> KeyInfo:
        self.participant(participant)
        key = KeyInfo(address.lower(), participant, valid_from_us or now_us(), None)
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    insert(KeyRow).values(
                        address=key.address,
                        participant=participant,
                        valid_from_us=key.valid_from_us,
                    )
                )
        except Exception as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Conflict(f"key {key.address} is already registered") from None
            raise
        return key

    def revoke_key(
        self, address: str, *, at_us: int | None = None, reason: str = "revoked"
    ) -> KeyInfo:
        address = address.lower()
        at = at_us or now_us()
        with self.store.transaction() as conn:
            row = conn.execute(select(KeyRow).where(KeyRow.address == address)).first()
            if row is None:
                raise NotFound(f"no key {address}")
            if row.revoked_us is not None and row.revoked_us <= at:
                raise Conflict(f"key {address} is already revoked")
            conn.execute(
                update(KeyRow).where(KeyRow.address == address).values(revoked_us=at, reason=reason)
            )
        return KeyInfo(address, row.participant, row.valid_from_us, at, reason)

    def rotate_key(
        self, participant: str, new_address: str, *, at_us: int | None = None
    ) -> KeyInfo:
        """Revoke every current key of `participant` and register `new_address`, at one instant."""
        at = at_us or now_us()
        for key in self.keys(participant):
            if key.revoked_us is None or key.revoked_us > at:
                self.revoke_key(key.address, at_us=at, reason=f"rotated to {new_address.lower()}")
        return self.add_key(participant, new_address, valid_from_us=at)

    def keys(self, participant: str | None = None) -> list[KeyInfo]:
        q = select(KeyRow).order_by(KeyRow.participant, KeyRow.valid_from_us)
        if participant is not None:
            q = q.where(KeyRow.participant == participant)
        with self.store.reading() as conn:
            return [_key(r) for r in conn.execute(q).all()]

    def snapshot(self) -> KeySnapshot:
        return KeySnapshot(self.keys())


def _participant(row: Any) -> Participant:
    roles = frozenset(filter(None, row.roles.split(",")))
    return Participant(id=row.id, name=row.name, roles=roles, created_us=row.created_us)


def _key(row: Any) -> KeyInfo:
    return KeyInfo(row.address, row.participant, row.valid_from_us, row.revoked_us, row.reason)
