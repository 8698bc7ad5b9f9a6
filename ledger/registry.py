"""Participants, roles and signing keys: the contract is the registry of record, this mirrors it.

The ProvenanceLedger contract holds the registry (docs/contract.md). Every change is a contract
transaction first (`RegistryWriter`), and the database holds a mirror of the contract's
registry events, the way the log mirrors nothing but is anchored: `Registry.sync(chain)` appends
the events the chain has and the mirror lacks, and refuses (`RegistryMismatch`) when the mirror
holds anything the chain does not, so an edited database is caught like a rewritten log.

Time is the chain's: a key is valid over blocks [valid_from, revoked_from), both set by the block
of the transaction that binds or revokes it. A record counts as signed by a participant when its
signer was a valid key of it, and the participant held a role allowed to sign that kind of
record, at the block of the first checkpoint that covered it; that is what verifiers check
against the chain. At append time the log checks the mirror's present: the key is bound and not
revoked, and the participant holds a role that may sign the record's kind (`KeySnapshot.check`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from ledger.errors import (
    Conflict,
    InputError,
    KeyNotAuthorized,
    LedgerError,
    NotFound,
    NotPermitted,
    RegistryMismatch,
    SignatureError,
    StorageError,
    TransactionReverted,
)
from ledger.retry import Backoff, call_with_retry
from ledger.signing import Domain, Signer, sign_key_binding, sign_key_change
from ledger.store import Store
from ledger.store.models import ParticipantRow, RegistryEventRow

if TYPE_CHECKING:
    from ledger.chain import ChainClient, RegistryEvent

T = TypeVar("T")

ROLES = ("operator", "supplier", "manufacturer", "auditor", "maintainer", "model_publisher")
# Roles that put records in the log; auditors and maintainers read and sign nothing.
WRITING_ROLES = frozenset({"operator", "supplier", "manufacturer", "model_publisher"})
# Roles that run models: only they sign what a model said.
MODEL_ROLES = frozenset({"operator", "manufacturer"})
KIND_ROLES: dict[str, frozenset[str]] = {
    "prediction": MODEL_ROLES,
    "inspection": MODEL_ROLES,
    "model_manifest": frozenset({"operator", "model_publisher"}),
    "alarm": frozenset({"operator"}),  # the deployment's own health (api.monitor)
    # What was observed afterwards (a failure, a reviewer's label), settling predictions: signed
    # by whoever runs the plant and the models, never by a model's publisher, who would be
    # grading its own promises (docs/scorecards.md).
    "outcome": MODEL_ROLES,
    # Demand forecasts (api/forecasts.py): the plant's expected orders, made by the models the
    # plant runs, signed like predictions; suppliers read those of their products.
    "forecast": MODEL_ROLES,
    # Which supplier supplies which product (api/products.py): the operator's statement, logged
    # so that a demand scorecard's per-supplier figures can be recomputed offline.
    "product_assignment": frozenset({"operator"}),
    # Federated training (api/federation): each plant signs its own updates, the operator who
    # runs the server signs the rounds that aggregate them.
    "fl_update": frozenset({"manufacturer"}),
    "fl_round": frozenset({"operator"}),
}


def now_us() -> int:
    return time.time_ns() // 1000


def roles_for_kind(kind: str) -> frozenset[str]:
    """The roles of which a producer must hold one to sign a record of `kind`."""
    return KIND_ROLES.get(kind, WRITING_ROLES)


def check_kind(participant: str, roles: frozenset[str], kind: str) -> None:
    """Raises: NotPermitted when none of `roles` may sign a record of `kind`."""
    allowed = roles_for_kind(kind)
    if not roles & allowed:
        held = ", ".join(sorted(roles)) or "no role"
        raise NotPermitted(
            f"{participant} ({held}) may not sign {kind} records; that takes one of "
            f"{', '.join(sorted(allowed))}"
        )


def check_roles(roles: Iterable[str]) -> frozenset[str]:
    """Raises: InputError for an unknown role or none at all."""
    roles = frozenset(roles)
    bad = sorted(roles - set(ROLES))
    if bad:
        raise InputError(f"unknown role(s) {', '.join(bad)}; expected some of {', '.join(ROLES)}")
    if not roles:
        raise InputError("a participant needs at least one role")
    return roles


# ------------------------------------------------------------------------------------ values
@dataclass(frozen=True, slots=True)
class Participant:
    id: str
    name: str
    roles: frozenset[str]
    registered_block: int
    created_us: int  # the registering block's time


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A signing key: valid over blocks [valid_from, revoked_from), times those blocks' own."""

    address: str
    participant: str
    valid_from: int
    revoked_from: int | None
    valid_from_us: int
    revoked_us: int | None = None
    added_by: str | None = None  # the key (or operator) that consented to binding it
    revoked_by: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_from is None

    def valid_at(self, block: int) -> bool:
        return self.valid_from <= block and (self.revoked_from is None or block < self.revoked_from)


class KeySnapshot:
    """The registry at one moment, in memory, for checking many records quickly (and cheaply
    shipped to worker processes)."""

    def __init__(self, keys: dict[str, KeyInfo], roles: dict[str, frozenset[str]]) -> None:
        self._keys = keys
        self._roles = roles

    @classmethod
    def of(cls, keys: dict[str, tuple[str, Iterable[str]]]) -> KeySnapshot:
        """A snapshot by hand, `{address: (participant, roles)}`, every key valid: for tools
        and benchmarks that check records without a registry at hand."""
        infos = {a.lower(): KeyInfo(a.lower(), p, 0, None, 0) for a, (p, _) in keys.items()}
        return cls(infos, {p: frozenset(r) for p, r in keys.values()})

    def check(self, participant: str, address: str, kind: str) -> None:
        """Check that `address` is a key of `participant` that may sign a `kind` record now.

        Raises:
            KeyNotAuthorized: unknown key, someone else's key, or a revoked one.
            NotPermitted: the participant holds no role that may sign `kind`.
        """
        key = self._keys.get(address)
        if key is None:
            raise KeyNotAuthorized(f"key {address} is not registered")
        if key.participant != participant:
            raise KeyNotAuthorized(
                f"key {address} belongs to {key.participant}, not to {participant}"
            )
        if key.revoked_from is not None:
            raise KeyNotAuthorized(
                f"key {address} of {participant} was revoked at block {key.revoked_from}; "
                "it signs nothing new"
            )
        check_kind(participant, self._roles.get(participant, frozenset()), kind)

    def roles(self, participant: str) -> frozenset[str]:
        return self._roles.get(participant, frozenset())

    def __len__(self) -> int:
        return len(self._keys)


@dataclass
class RegistryState:
    """The registry as a sequence of its events says it is, up to their last block."""

    participants: dict[str, Participant] = field(default_factory=dict)
    keys: dict[str, KeyInfo] = field(default_factory=dict)
    role_history: dict[str, list[tuple[int, frozenset[str]]]] = field(default_factory=dict)

    def participant(self, id: str) -> Participant:
        """Raises: NotFound."""
        try:
            return self.participants[id]
        except KeyError:
            raise NotFound(f"no participant {id!r}") from None

    def keys_of(self, participant: str) -> list[KeyInfo]:
        return sorted(
            (k for k in self.keys.values() if k.participant == participant),
            key=lambda k: (k.valid_from, k.address),
        )

    def roles_at(self, participant: str, block: int) -> frozenset[str]:
        roles: frozenset[str] = frozenset()
        for start, held in self.role_history.get(participant, []):
            if start > block:
                break
            roles = held
        return roles

    def snapshot(self) -> KeySnapshot:
        return KeySnapshot(dict(self.keys), {p.id: p.roles for p in self.participants.values()})


def fold(events: Iterable[RegistryEvent]) -> RegistryState:
    """The registry that a sequence of registry events (in chain order) leaves behind.

    Raises:
        RegistryMismatch: the events contradict each other (a key event for a participant or
            key never registered): a mirror edited by hand, not a chain's.
    """
    from ledger.chain import bits_to_roles

    state = RegistryState()
    for e in events:
        pid = e.participant
        at_us = e.timestamp * 1_000_000
        try:
            if pid is None:
                raise KeyError(e.id_hash)
            if e.name == "ParticipantRegistered":
                roles = bits_to_roles(e.roles or 0)
                state.participants[pid] = Participant(
                    pid, e.display_name or "", roles, e.block_number, at_us
                )
                state.role_history[pid] = [(e.block_number, roles)]
            elif e.name == "RolesChanged":
                roles = bits_to_roles(e.roles or 0)
                state.participants[pid] = replace(state.participants[pid], roles=roles)
                history = state.role_history[pid]
                if history and history[-1][0] == e.block_number:
                    history[-1] = (e.block_number, roles)
                else:
                    history.append((e.block_number, roles))
            elif e.name == "KeyAdded" and e.key is not None:
                state.participant(pid)
                state.keys[e.key] = KeyInfo(
                    e.key, pid, e.block_number, None, at_us, added_by=e.authorized_by
                )
            elif e.name == "KeyRevoked" and e.key is not None:
                state.keys[e.key] = replace(
                    state.keys[e.key],
                    revoked_from=e.block_number,
                    revoked_us=at_us,
                    revoked_by=e.authorized_by,
                )
            else:
                raise KeyError(e.name)
        except (KeyError, NotFound) as exc:
            raise RegistryMismatch(
                [f"{e.name} in block {e.block_number} names {exc} before it was registered"]
            ) from None
    return state


# ------------------------------------------------------------------------------------ mirror
_EVENT_FIELDS = (
    "name",
    "participant",
    "id_hash",
    "display_name",
    "roles",
    "key",
    "authorized_by",
    "block_number",
    "log_index",
    "tx_hash",
    "block_hash",
    "timestamp",
)


class Registry:
    """The database's mirror of the contract's registry.

    Reads come from the chain-checked state when this process has synced (`sync`), otherwise
    from the mirror's rows as they are: a process that cannot reach the chain (a command line
    beside a running server) trusts the database, and says so where it matters.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._blocks: list[int] = []  # the chain's registry blocks fetched so far
        self._chain_events: list[RegistryEvent] = []  # their events, as the chain has them
        self._state: RegistryState | None = None  # folded from them, once synced
        self._mirrored = False  # the participants table was brought up to date once

    # --- reading ------------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        """Whether reads come from a state this process checked against the chain."""
        return self._state is not None

    def events(self) -> list[RegistryEvent]:
        """The mirror's events, in chain order, as the database holds them."""
        from ledger.chain import RegistryEvent

        with self.store.reading() as conn:
            rows = conn.execute(
                select(RegistryEventRow).order_by(
                    RegistryEventRow.block_number, RegistryEventRow.log_index
                )
            ).all()
        return [RegistryEvent(**{f: getattr(r, f) for f in _EVENT_FIELDS}) for r in rows]

    def state(self) -> RegistryState:
        """The registry: as checked against the chain when synced, else as the mirror says."""
        state = self._state
        return state if state is not None else fold(self.events())

    def participants(self) -> list[Participant]:
        return sorted(self.state().participants.values(), key=lambda p: p.id)

    def participant(self, id: str) -> Participant:
        """Raises: NotFound."""
        return self.state().participant(id)

    def keys(self, participant: str | None = None) -> list[KeyInfo]:
        state = self.state()
        if participant is not None:
            return state.keys_of(participant)
        return sorted(state.keys.values(), key=lambda k: (k.participant, k.valid_from, k.address))

    def snapshot(self) -> KeySnapshot:
        return self.state().snapshot()

    # --- following the chain ----------------------------------------------------------------
    def sync(self, chain: ChainClient, *, repair: bool = False) -> RegistryState:
        """Bring the mirror up to the chain's registry and check what it already held.

        The contract lists the blocks that hold registry events; only new ones are fetched,
        so a sync that finds nothing new costs one call. Every sync compares all the mirror's
        rows with the chain's events, so an edited, added or deleted row is found at the next
        sync, whenever it was made. `repair` rewrites the mirror from the chain instead of
        refusing.

        Raises:
            RegistryMismatch: the mirror holds what the chain does not (nothing is written).
            ChainUnavailable: the node cannot be reached.
        """
        with self._lock:
            blocks = self._blocks
            count = chain.registry_block_count()
            if len(blocks) > count:  # the chain went back (a reorg): start over
                blocks, self._chain_events = [], []
            fetched = list(self._chain_events)
            if count > len(blocks):
                new_blocks = chain.registry_blocks(len(blocks))
                for block in new_blocks:
                    fetched += _resolve(chain.registry_events(block, block), fetched)
                blocks = blocks + new_blocks
            # Another process may write the same events meanwhile: then compare again, once.
            call_with_retry(
                lambda: self._write(fetched, blocks[-1] if blocks else -1, chain, repair=repair),
                backoff=Backoff(initial=0.0, attempts=2),
                transient=lambda exc: isinstance(exc, Conflict),
            )
            if blocks != self._blocks or self._state is None:
                self._state = fold(fetched)
            self._blocks, self._chain_events = blocks, fetched
            return self._state

    def _write(
        self, fetched: list[RegistryEvent], last: int, chain: ChainClient, *, repair: bool
    ) -> None:
        """Compare the mirror's rows up to block `last` with `fetched`; append what it lacks."""
        try:
            with self.store.transaction() as conn:
                stored = self._stored_events(conn)
                if repair:
                    conn.execute(delete(RegistryEventRow))
                    stored = []
                checked = [e for e in stored if e.block_number <= last]
                diffs = _differences(checked, fetched)
                later = [e for e in stored if e.block_number > last]
                if later:
                    # Written by a process that saw a later change: checked at the next sync,
                    # unless it names a block the chain has not reached.
                    head = chain.block_number()
                    diffs += [
                        f"{e.name} in block {e.block_number} (log {e.log_index}) is from a "
                        f"block the chain has not reached (head {head})"
                        for e in later
                        if e.block_number > head
                    ]
                if diffs:
                    raise RegistryMismatch(diffs)
                rows = [_row(e) for e in fetched[len(checked) :]]
                if rows:
                    conn.execute(insert(RegistryEventRow), rows)
                if rows or repair or not self._mirrored:
                    _mirror_participants(conn, fold(fetched))
                    self._mirrored = True
        except StorageError as exc:
            if isinstance(exc.__cause__, IntegrityError):
                raise Conflict("registry events were written concurrently") from exc
            raise

    @staticmethod
    def _stored_events(conn: Any) -> list[RegistryEvent]:
        from ledger.chain import RegistryEvent

        rows = conn.execute(
            select(RegistryEventRow).order_by(
                RegistryEventRow.block_number, RegistryEventRow.log_index
            )
        ).all()
        return [RegistryEvent(**{f: getattr(r, f) for f in _EVENT_FIELDS}) for r in rows]

    def check(self, chain: ChainClient) -> None:
        """Compare the mirror's registry with the contract's storage, participant by participant
        and key by key (events and storage must tell the same story).

        Raises:
            RegistryMismatch: what differs.
        """
        mirror = fold(self.events())
        diffs: list[str] = []
        on_chain = {p.id: p for p in chain.participants()}
        for pid in sorted(set(on_chain) | set(mirror.participants)):
            if pid not in on_chain:
                diffs.append(f"participant {pid!r} is in the mirror, not on chain")
                continue
            if pid not in mirror.participants:
                diffs.append(f"participant {pid!r} is on chain, not in the mirror")
                continue
            cp, mp = on_chain[pid], mirror.participants[pid]
            if (cp.name, cp.roles, cp.registered_at) != (mp.name, mp.roles, mp.registered_block):
                diffs.append(f"participant {pid!r} differs: chain {cp}, mirror {mp}")
            if sorted(cp.keys) != sorted(k.address for k in mirror.keys_of(pid)):
                diffs.append(f"keys of {pid!r} differ: chain {sorted(cp.keys)}")
        for key in mirror.keys.values():
            try:
                ck = chain.key_info(key.address)
            except NotFound:
                diffs.append(f"key {key.address} is in the mirror, not on chain")
                continue
            if (ck.participant_id, ck.valid_from, ck.revoked_from) != (
                key.participant,
                key.valid_from,
                key.revoked_from,
            ):
                diffs.append(f"key {key.address} differs: chain {ck}, mirror {key}")
        if diffs:
            raise RegistryMismatch(diffs)


def _resolve(
    events: Sequence[RegistryEvent], earlier: Sequence[RegistryEvent] = ()
) -> list[RegistryEvent]:
    """Key events name their participant by id hash: give them the id."""
    ids = {e.id_hash: e.participant for e in earlier if e.participant is not None}
    out = []
    for e in events:
        if e.participant is None:
            e = replace(e, participant=ids.get(e.id_hash))
        else:
            ids[e.id_hash] = e.participant
        out.append(e)
    return out


def _differences(stored: Sequence[RegistryEvent], fetched: Sequence[RegistryEvent]) -> list[str]:
    diffs = []
    for i, have in enumerate(stored):
        if i >= len(fetched):
            diffs.append(
                f"{have.name} of {have.participant} in block {have.block_number} "
                f"(log {have.log_index}) is in the mirror, not on chain"
            )
        elif have != fetched[i]:
            want = fetched[i]
            diffs.append(
                f"mirror event {i} is {have.name} of {have.participant} ({have.key or ''}) in "
                f"block {have.block_number}; the chain's is {want.name} of {want.participant} "
                f"({want.key or ''}) in block {want.block_number}"
            )
    return diffs


def _row(e: RegistryEvent) -> dict[str, Any]:
    return {f: getattr(e, f) for f in _EVENT_FIELDS}


def _mirror_participants(conn: Any, state: RegistryState) -> None:
    """Keep the participants table (what other tables refer to) in step with the registry.

    It is a convenience for joins and foreign keys; nothing decides from it.
    """
    have = {r.id: r for r in conn.execute(select(ParticipantRow)).all()}
    for p in state.participants.values():
        values = {"name": p.name, "roles": ",".join(sorted(p.roles)), "created_us": p.created_us}
        row = have.get(p.id)
        if row is None:
            conn.execute(insert(ParticipantRow).values(id=p.id, **values))
        elif (row.name, row.roles, row.created_us) != tuple(values.values()):
            conn.execute(update(ParticipantRow).where(ParticipantRow.id == p.id).values(**values))


# ------------------------------------------------------------------------------------ writes
# The contract's refusals, as the ledger's errors: (error type, sentence) by custom error name.
_REFUSALS: dict[str, tuple[type[LedgerError], str]] = {
    "ParticipantExists": (Conflict, "participant {id!r} already exists"),
    "KeyExists": (Conflict, "key {key} is already bound (to {participantId!r})"),
    "KeyAlreadyRevoked": (Conflict, "key {key} was already revoked at block {revokedFrom}"),
    "UnknownParticipant": (NotFound, "no participant {id!r}"),
    "UnknownKey": (NotFound, "key {key} is not registered"),
    "NotOperator": (NotPermitted, "{sender} is not an operator key"),
    "NotAuthorized": (
        NotPermitted,
        "changing {participantId!r}'s keys takes the consent of one of its valid keys "
        "(an authorization signature); the sender {sender} is not one",
    ),
    "AuthorizationInvalid": (
        SignatureError,
        "the authorization was signed by {recovered}, which is not a valid key of "
        "{participantId!r}",
    ),
    "KeyProofInvalid": (
        SignatureError,
        "the key proof was signed by {recovered}, not by the key {key} being bound",
    ),
    "MalformedSignature": (SignatureError, "a signature is not 65 bytes r||s||v with low s"),
    "NoRoles": (InputError, "a participant needs at least one role"),
    "UnknownRoles": (InputError, "unknown role bits {roles}"),
    "EmptyParticipantId": (InputError, "a participant id must not be empty"),
    "ZeroAddress": (InputError, "the zero address cannot be a key"),
}


class RegistryWriter:
    """Changes to the registry: a contract transaction first, then the mirror follows.

    The contract is the only judge of each change; a refused one reverts at gas estimation
    and changes nothing anywhere. Signatures (`key_proof`, `authorization`) are the EIP-712
    messages of ledger.signing over the participant's current nonce (`nonce`).
    """

    def __init__(self, registry: Registry, chain: ChainClient) -> None:
        self.registry = registry
        self.chain = chain

    @property
    def domain(self) -> Domain:
        return self.chain.domain

    def nonce(self, participant: str) -> int:
        """The nonce the participant's next key change must be signed over (0 before it is
        registered). Raises nothing for an unknown participant."""
        try:
            return self.chain.key_nonce(participant)
        except NotFound:
            return 0

    def register(
        self, id: str, name: str, roles: Iterable[str], key: str, key_proof: bytes
    ) -> Participant:
        """Register a participant with its first key (operator). Raises: see `_transact`."""
        roles = check_roles(roles)
        self._transact(lambda: self.chain.register_participant(id, name, roles, key, key_proof))
        return self.registry.participant(id)

    def set_roles(self, id: str, roles: Iterable[str]) -> Participant:
        """Replace a participant's roles; none suspends it (operator)."""
        roles = frozenset(roles)
        if roles - set(ROLES):
            check_roles(roles)
        self._transact(lambda: self.chain.set_roles(id, roles))
        return self.registry.participant(id)

    def add_key(
        self, participant: str, key: str, key_proof: bytes, authorization: bytes = b""
    ) -> KeyInfo:
        self._transact(lambda: self.chain.add_key(participant, key, key_proof, authorization))
        return self.registry.state().keys[key.lower()]

    def rotate_key(
        self, old: str, new: str, key_proof: bytes, authorization: bytes = b""
    ) -> KeyInfo:
        self._transact(lambda: self.chain.rotate_key(old, new, key_proof, authorization))
        return self.registry.state().keys[new.lower()]

    def revoke_key(self, key: str, authorization: bytes = b"") -> KeyInfo:
        self._transact(lambda: self.chain.revoke_key(key, authorization))
        return self.registry.state().keys[key.lower()]

    def _transact(self, send: Callable[[], T]) -> T:
        """Send one registry transaction and sync the mirror.

        Raises:
            Conflict, NotFound, NotPermitted, SignatureError, InputError: the contract refused.
            ChainError: the node failed.
        """
        try:
            result = send()
        except TransactionReverted as exc:
            refusal = _REFUSALS.get(exc.error_name)
            if refusal is None:
                raise
            kind, text = refusal
            args = {k: (v.lower() if isinstance(v, str) and v.startswith("0x") else v)
                    for k, v in exc.error_args.items()}  # fmt: skip
            raise kind(text.format(**args)) from exc
        self.registry.sync(self.chain)
        return result

    # --- with keys held here ----------------------------------------------------------------
    def enrol(
        self, id: str, name: str, roles: Iterable[str], signer: Signer | None = None
    ) -> Signer:
        """Register a participant with a key held here (a new one by default)."""
        signer = signer or Signer.generate()
        proof = sign_key_binding(signer, self.domain, id, signer.address, 0)
        self.register(id, name, roles, signer.address, proof)
        return signer

    def rotate_held(self, participant: str, old: Signer, new: Signer | None = None) -> Signer:
        """Rotate from a key held here to another (a new one by default)."""
        new = new or Signer.generate()
        nonce = self.nonce(participant)
        proof = sign_key_binding(new, self.domain, participant, new.address, nonce)
        consent = sign_key_change(
            old, self.domain, participant, nonce, add=new.address, revoke=old.address
        )
        self.rotate_key(old.address, new.address, proof, consent)
        return new


__all__ = [
    "KIND_ROLES",
    "MODEL_ROLES",
    "ROLES",
    "WRITING_ROLES",
    "KeyInfo",
    "KeySnapshot",
    "Participant",
    "Registry",
    "RegistryState",
    "RegistryWriter",
    "check_kind",
    "check_roles",
    "fold",
    "now_us",
    "roles_for_kind",
]
