"""A registry held in memory, for tests of the layers that only read a `KeySnapshot` (ingest,
the log, EPCIS capture, receipts). The chain-backed registry and its mirror are tested in
tests/ledger/test_registry.py; here nothing touches a chain or a database."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import insert, select

from ledger.errors import Conflict, NotFound
from ledger.registry import KeyInfo, KeySnapshot, Participant, RegistryState, check_roles
from ledger.signing import Signer
from ledger.store import Store
from ledger.store.models import RegistryEventRow


class StaticRegistry:
    """Participants and keys by hand; each change happens in a block of its own."""

    def __init__(self) -> None:
        self.state = RegistryState()
        self.block = 1

    def _next(self) -> int:
        self.block += 1
        return self.block

    def add_participant(self, id: str, name: str, roles: list[str]) -> Participant:
        if id in self.state.participants:
            raise Conflict(f"participant {id!r} already exists")
        block = self._next()
        p = Participant(id, name, check_roles(roles), block, block * 1_000_000)
        self.state.participants[id] = p
        self.state.role_history[id] = [(block, p.roles)]
        return p

    def set_roles(self, id: str, roles: list[str]) -> Participant:
        block = self._next()
        p = replace(self.state.participant(id), roles=frozenset(roles))
        self.state.participants[id] = p
        self.state.role_history[id].append((block, p.roles))
        return p

    def add_key(self, participant: str, address: str) -> KeyInfo:
        self.state.participant(participant)
        address = address.lower()
        if address in self.state.keys:
            raise Conflict(f"key {address} is already bound")
        block = self._next()
        key = KeyInfo(address, participant, block, None, block * 1_000_000)
        self.state.keys[address] = key
        return key

    def revoke_key(self, address: str) -> KeyInfo:
        key = self.state.keys.get(address.lower())
        if key is None:
            raise NotFound(f"no key {address}")
        block = self._next()
        key = replace(key, revoked_from=block, revoked_us=block * 1_000_000)
        self.state.keys[key.address] = key
        return key

    def participant(self, id: str) -> Participant:
        return self.state.participant(id)

    def participants(self) -> list[Participant]:
        return sorted(self.state.participants.values(), key=lambda p: p.id)

    def keys(self, participant: str | None = None) -> list[KeyInfo]:
        if participant is not None:
            return self.state.keys_of(participant)
        return list(self.state.keys.values())

    def snapshot(self) -> KeySnapshot:
        return self.state.snapshot()


def forge_key(store: Store, participant: str) -> Signer:
    """The attack of issue #13, finding 1: write a key for `participant` into the database's
    registry mirror (one more KeyAdded row, in the last registry block), and nowhere else."""
    forger = Signer.generate()
    with store.reading() as conn:
        block, log_index = conn.execute(
            select(RegistryEventRow.block_number, RegistryEventRow.log_index)
            .order_by(RegistryEventRow.block_number.desc(), RegistryEventRow.log_index.desc())
            .limit(1)
        ).one()
    with store.transaction() as conn:
        conn.execute(
            insert(RegistryEventRow).values(
                block_number=block,
                log_index=log_index + 1,
                name="KeyAdded",
                participant=participant,
                id_hash="0x" + "00" * 32,
                key=forger.address,
                tx_hash="0x" + "00" * 32,
                block_hash="0x" + "00" * 32,
                timestamp=0,
            )
        )
    return forger
