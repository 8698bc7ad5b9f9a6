"""The contract's registry of participants: organisations, their roles and signing keys.

Writes are operator or key-holder transactions checked by the contract; reads are views
(participants, keys and their validity windows in blocks, roles at a block) and the registry's
events, which `ledger.registry` mirrors into the database.

Key changes carry EIP-712 signatures that the contract checks (ledger.signing): `key_proof` is
the new key's KeyBinding, `authorization` a valid key's KeyChange (empty when the client's own
account is that key, or for an operator's revocation or recovery).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any

from web3.types import FilterParams

from ledger.chain._wire import checksum, event_topic, hex0x, wire_address
from ledger.chain.transactions import Transactor, Tx
from ledger.errors import (
    InputError,
    KeyNotAuthorized,
    LedgerError,
    NotFound,
    TransactionReverted,
)

# Role names as the rest of forgeproof spells them, and their bit in the contract.
ROLE_BITS: dict[str, int] = {
    "operator": 1 << 0,
    "supplier": 1 << 1,
    "manufacturer": 1 << 2,
    "auditor": 1 << 3,
    "maintainer": 1 << 4,
    "model_publisher": 1 << 5,
}
LOG_CHUNK = 5_000  # blocks per eth_getLogs request (public nodes cap the range)
PAGE = 1024  # registry blocks per `registryBlocks` call


def roles_to_bits(roles: Iterable[str]) -> int:
    """Role names to the contract's bit flags.

    Raises:
        InputError: an unknown role name.
    """
    bits = 0
    for role in roles:
        if role not in ROLE_BITS:
            raise InputError(f"unknown role {role!r}; expected some of {', '.join(ROLE_BITS)}")
        bits |= ROLE_BITS[role]
    return bits


def bits_to_roles(bits: int) -> frozenset[str]:
    return frozenset(name for name, bit in ROLE_BITS.items() if bits & bit)


@dataclass(frozen=True)
class ChainParticipant:
    id: str
    name: str
    roles: frozenset[str]
    registered_at: int  # block number
    keys: tuple[str, ...]
    nonce: int  # key changes so far: what the next KeyBinding / KeyChange signature names


@dataclass(frozen=True)
class RegistryEvent:
    """One registry event as the contract emitted it, where it was emitted.

    `name` is ParticipantRegistered, RolesChanged, KeyAdded or KeyRevoked; the fields that do
    not apply to it are None. `block` is `validFrom` / `revokedFrom` for key events (always
    the event's own block).
    """

    name: str
    participant: str | None  # None for key events: they name the participant by id hash
    id_hash: str
    display_name: str | None
    roles: int | None
    key: str | None
    authorized_by: str | None
    block_number: int
    log_index: int
    tx_hash: str
    block_hash: str
    timestamp: int

    @classmethod
    def from_args(cls, name: str, args: dict[str, Any], **where: Any) -> RegistryEvent:
        key = args.get("key")
        by = args.get("authorizedBy")
        return cls(
            name=name,
            participant=args.get("id"),
            id_hash=hex0x(args["idHash"]),
            display_name=args.get("name"),
            roles=args.get("roles"),
            key=key.lower() if key else None,
            authorized_by=by.lower() if by else None,
            **where,
        )


@dataclass(frozen=True)
class ChainKey:
    """A signing key and its validity window in blocks: [valid_from, revoked_from)."""

    address: str
    participant_id: str
    valid_from: int
    revoked_from: int | None

    def valid_at(self, block: int) -> bool:
        return self.valid_from <= block and (self.revoked_from is None or block < self.revoked_from)


class RegistryOps(Transactor):
    """The registry half of `ChainClient`."""

    # -------------------------------------------------------------------------- writes
    def register_participant(
        self, participant_id: str, name: str, roles: Iterable[str], key: str, key_proof: bytes
    ) -> Tx:
        """Register an organisation with its first key (operator only).

        Raises:
            InputError: an unknown role name or a malformed address.
            TransactionReverted: NotOperator, ParticipantExists, NoRoles, EmptyParticipantId,
                KeyExists, KeyProofInvalid, MalformedSignature.
        """
        bits = roles_to_bits(roles)
        return self.transact(
            "registerParticipant", participant_id, name, bits, checksum(key), bytes(key_proof)
        )

    def set_roles(self, participant_id: str, roles: Iterable[str]) -> Tx:
        """Replace a participant's roles (an empty set suspends it). Operator only."""
        return self.transact("setRoles", participant_id, roles_to_bits(roles))

    def add_key(
        self, participant_id: str, key: str, key_proof: bytes, authorization: bytes = b""
    ) -> Tx:
        """Bind `key` to the participant from the transaction's block on.

        Raises:
            TransactionReverted: NotAuthorized, AuthorizationInvalid, KeyExists,
                KeyProofInvalid, MalformedSignature, UnknownParticipant.
        """
        return self.transact(
            "addKey", participant_id, checksum(key), bytes(key_proof), bytes(authorization)
        )

    def revoke_key(self, key: str, authorization: bytes = b"") -> Tx:
        """Revoke `key` from the transaction's block on.

        Raises:
            TransactionReverted: NotAuthorized, AuthorizationInvalid, KeyAlreadyRevoked,
                UnknownKey.
        """
        return self.transact("revokeKey", checksum(key), bytes(authorization))

    def rotate_key(self, old: str, new: str, key_proof: bytes, authorization: bytes = b"") -> Tx:
        """Replace key `old` by `new` in the transaction's block.

        Raises:
            TransactionReverted: as `add_key` and `revoke_key`.
        """
        return self.transact(
            "rotateKey", checksum(old), checksum(new), bytes(key_proof), bytes(authorization)
        )

    # -------------------------------------------------------------------------- reads
    def participant(self, participant_id: str) -> ChainParticipant:
        """Raises: NotFound."""
        try:
            name, bits, registered, keys, nonce = self.call("participant", participant_id)
        except TransactionReverted as exc:
            raise _not_found(
                exc, "UnknownParticipant", f"no participant {participant_id!r}"
            ) from exc
        return ChainParticipant(
            participant_id,
            name,
            bits_to_roles(bits),
            registered,
            tuple(k.lower() for k in keys),
            nonce,
        )

    def participants(self) -> list[ChainParticipant]:
        """Every registered participant, in registration order."""
        count = self.call("participantCount")
        return [self.participant(self.call("participantIdAt", i)) for i in range(count)]

    def key_info(self, address: str) -> ChainKey:
        """Raises: NotFound."""
        try:
            participant_id, valid_from, revoked_from = self.call("keyInfo", checksum(address))
        except TransactionReverted as exc:
            raise _not_found(exc, "UnknownKey", f"key {address} is not registered") from exc
        return ChainKey(wire_address(address), participant_id, valid_from, revoked_from or None)

    def roles_at(self, participant_id: str, block: int) -> frozenset[str]:
        """The roles `participant_id` held at `block` (none before its registration).

        Raises:
            NotFound: no such participant.
        """
        try:
            return bits_to_roles(self.call("rolesAt", participant_id, block))
        except TransactionReverted as exc:
            raise _not_found(
                exc, "UnknownParticipant", f"no participant {participant_id!r}"
            ) from exc

    def key_nonce(self, participant_id: str) -> int:
        """The participant's key-change count: the nonce its next KeyBinding/KeyChange names."""
        return self.participant(participant_id).nonce

    def is_operator(self, address: str | None = None) -> bool:
        return bool(self.call("isOperator", checksum(address or self.account.address)))

    def key_valid_at(
        self,
        participant_id: str,
        address: str,
        *,
        block: int | None = None,
        timestamp: float | None = None,
    ) -> bool:
        """Could `address` sign for `participant_id` at `block` (or at Unix `timestamp`,
        resolved to the last block at or before it; neither: now): a valid key of it, and the
        participant held some role then?

        Raises:
            NotFound: no such participant.
        """
        at = self._resolve_block(block, timestamp)
        try:
            return bool(self.call("isKeyValidAt", participant_id, checksum(address), at))
        except TransactionReverted as exc:
            raise _not_found(
                exc, "UnknownParticipant", f"no participant {participant_id!r}"
            ) from exc

    def require_key(
        self,
        participant_id: str,
        address: str,
        *,
        block: int | None = None,
        timestamp: float | None = None,
    ) -> ChainKey:
        """Like `key_valid_at`, but raise instead of answering False, naming why.

        Raises:
            KeyNotAuthorized: unknown key, another participant's key, not valid then, or the
                participant held no role then.
            NotFound: no such participant.
        """
        at = self._resolve_block(block, timestamp)
        try:
            key = self.key_info(address)
        except NotFound as exc:
            raise KeyNotAuthorized(f"key {address} is not registered on chain") from exc
        if key.participant_id != participant_id:
            raise KeyNotAuthorized(
                f"key {address} belongs to {key.participant_id!r}, not to {participant_id!r}"
            )
        if not key.valid_at(at):
            until = "open" if key.revoked_from is None else str(key.revoked_from)
            raise KeyNotAuthorized(
                f"key {address} of {participant_id!r} is valid over blocks "
                f"[{key.valid_from}, {until}), not at block {at}"
            )
        if not self.roles_at(participant_id, at):
            raise KeyNotAuthorized(f"{participant_id!r} held no role at block {at}")
        return key

    # -------------------------------------------------------------------------- events
    def registry_blocks(self, start: int = 0) -> list[int]:
        """The blocks holding registry events, ascending, from the `start`-th on."""
        out: list[int] = []
        while True:
            got = [int(b) for b in self.call("registryBlocks", start + len(out), PAGE)]
            out += got
            if len(got) < PAGE:
                return out

    def registry_block_count(self) -> int:
        return int(self.call("registryBlockCount"))

    def registry_events(self, from_block: int, to_block: int) -> list[RegistryEvent]:
        """The registry's events in blocks [from_block, to_block], in chain order (see
        `registry_blocks` for which blocks hold any: scanning a range costs a node time in
        proportion to its length, on eth-tester ~20 ms a block)."""
        if to_block < from_block:
            return []
        topics = {
            event_topic(e.abi): e
            for e in (
                self.contract.events.ParticipantRegistered(),
                self.contract.events.RolesChanged(),
                self.contract.events.KeyAdded(),
                self.contract.events.KeyRevoked(),
            )
        }
        out: list[RegistryEvent] = []
        times: dict[int, int] = {}
        for lo in range(from_block, to_block + 1, LOG_CHUNK):
            hi = min(lo + LOG_CHUNK - 1, to_block)
            query: FilterParams = {
                "address": self.contract.address,
                "fromBlock": lo,
                "toBlock": hi,
                "topics": [list(topics)],
            }
            logs = self._rpc("eth_getLogs", partial(self.w3.eth.get_logs, query))
            for log in logs:
                event = topics[hex0x(log["topics"][0])]
                args = dict(event.process_log(log)["args"])
                block = int(log["blockNumber"])
                if block not in times:
                    times[block] = int(self._block(block)["timestamp"])
                out.append(
                    RegistryEvent.from_args(
                        event.event_name,
                        args,
                        block_number=block,
                        log_index=int(log["logIndex"]),
                        tx_hash=hex0x(log["transactionHash"]),
                        block_hash=hex0x(log["blockHash"]),
                        timestamp=times[block],
                    )
                )
        out.sort(key=lambda e: (e.block_number, e.log_index))
        return out


def _not_found(exc: TransactionReverted, error_name: str, message: str) -> LedgerError:
    """`NotFound` for the custom error that means "no such thing", else the revert itself."""
    return NotFound(message) if exc.error_name == error_name else exc
