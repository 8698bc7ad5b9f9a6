"""ChainClient: the ProvenanceLedger contract seen from Python, on any EVM chain.

Two presets and one plain constructor:

    ChainClient.embedded(path)                      eth-tester/py-evm, persisted under `path`
    ChainClient.from_url(url, private_key=...)      any JSON-RPC node (anvil, geth, a testnet)
    ChainClient(w3, private_key=..., address=...)   a Web3 you built, attached to a deployment

Every transaction is signed locally (eth-account) and sent raw, on both kinds of chain, with a
locally tracked nonce, an `eth_estimateGas` limit plus margin, and EIP-1559 fees. A transaction
counts only once its receipt says status 1; a checkpoint counts as anchored only once
`confirmations` blocks include it, and is published again if a reorg drops it meanwhile.

Errors from web3, eth-tester and HTTP are translated here: reverts become `TransactionReverted`
(with the contract's custom error name), unreachable nodes `ChainUnavailable` after retries
with exponential backoff, anything else `ChainError`.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import BlockNotFound as TesterBlockNotFound
from eth_utils import keccak, to_checksum_address
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound
from web3.types import FilterParams, TxParams

from ledger.chain import _errors
from ledger.chain.artifact import Artifact, load_artifact
from ledger.errors import (
    ChainError,
    ChainUnavailable,
    CheckpointConflict,
    ContractMismatch,
    InputError,
    KeyNotAuthorized,
    LedgerError,
    NotFound,
    TransactionReverted,
    VerificationError,
)
from ledger.signing import Domain

T = TypeVar("T")

# Role names as the rest of forgeproof spells them, and their bit in the contract.
ROLE_BITS: dict[str, int] = {
    "operator": 1 << 0,
    "supplier": 1 << 1,
    "manufacturer": 1 << 2,
    "auditor": 1 << 3,
    "maintainer": 1 << 4,
    "model_publisher": 1 << 5,
}

DEPLOYMENT_FILE = "deployment.json"
LOG_CHUNK = 5_000  # blocks per eth_getLogs request (public nodes cap the range)
DEFAULT_TIP = 10**9  # wei per gas, when the node has no suggestion
# Gas added to every limit: nodes estimate against the latest block, a transaction runs in the
# next one, and the registry's writes cost more in a block of their own (a new entry in the
# list of registry blocks, a new step in a role history: ~22k gas each) than in the block the
# estimate saw when it already held one. Only gas used is paid for.
GAS_HEADROOM = 50_000
TIP_TTL = 30.0  # seconds a node's tip suggestion is reused
STALL_CHECK_S = 2.0  # while waiting for a receipt: how often to check it can still be mined
# A proof source: given the size of the latest checkpoint on chain, the consistency proof
# from it to the new checkpoint. Lets the client re-prove after a reorg moved the chain back.
ProofSource = Callable[[int], Sequence[bytes]]


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


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def _address(a: str) -> str:
    """Lower-case 0x address, the project's wire form."""
    try:
        return to_checksum_address(a).lower()
    except ValueError as exc:
        raise InputError(f"not an address: {a!r}") from exc


# ------------------------------------------------------------------------------------ values
@dataclass(frozen=True)
class Tx:
    """A mined, successful transaction."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int


@dataclass(frozen=True)
class Anchor:
    """Where a checkpoint (size, root) is anchored: what a receipt cites.

    `gas_used` is None when the anchor was recovered from chain state (contract storage and
    the event log) rather than from the publishing transaction's receipt.
    """

    chain_id: int
    contract: str
    size: int
    root: bytes
    tx_hash: str
    block_number: int
    block_hash: str
    timestamp: int
    gas_used: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "root": _hex(self.root)}


@dataclass(frozen=True)
class ChainCheckpoint:
    """A checkpoint as the contract stores it."""

    size: int
    root: bytes
    previous_size: int
    block_number: int
    timestamp: int
    index: int


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
            id_hash=_hex(args["idHash"]),
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


@dataclass(frozen=True)
class Deployment:
    """Where the contract lives: stored next to the chain state as deployment.json."""

    chain_id: int
    contract: str
    block_number: int
    tx_hash: str
    deployer: str

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise ChainError(f"deployment file {path} is unreadable: {exc}") from exc


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient failures (connection refused, timeouts, HTTP 5xx)."""

    attempts: int = 5
    initial_delay: float = 0.05
    max_delay: float = 2.0

    def delays(self) -> Iterator[float]:
        delay = self.initial_delay
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(delay * 2, self.max_delay)


@dataclass
class PendingCheckpoint:
    """A checkpoint mined but not yet confirmed, with what it takes to publish it again.

    `anchor` is where it is now (it changes if a reorg forces re-publication);
    `republished` counts those re-publications.
    """

    size: int
    root: bytes
    proof: Sequence[bytes] | ProofSource
    anchor: Anchor
    republished: int = field(default=0)


# ------------------------------------------------------------------------------------ client
class ChainClient:
    """The ProvenanceLedger contract on one chain, acting as one account (the operator's key).

    Thread-safe: transactions are serialised (one nonce sequence), calls may run in parallel
    except on the embedded chain, whose provider serialises everything.
    """

    def __init__(
        self,
        w3: Web3,
        *,
        private_key: str | bytes,
        address: str,
        deployment_block: int = 0,
        confirmations: int = 1,
        retry: RetryPolicy | None = None,
        poll_interval: float = 0.002,
        max_poll_interval: float = 0.1,
        timeout: float = 120.0,
        gas_margin: float = 1.25,
        gas_headroom: int = GAS_HEADROOM,
        priority_fee: int | None = None,
        artifact: Artifact | None = None,
        check_code: bool = True,
    ) -> None:
        """Attach to the ProvenanceLedger at `address`.

        Args:
            w3: the chain (any provider).
            private_key: the key transactions are signed with.
            address: the contract.
            deployment_block: block of the deployment (lower bound for searches by time).
            confirmations: blocks that must include a checkpoint before it counts as anchored
                (1: its own block is enough).
            retry: backoff for transient node failures.
            poll_interval, max_poll_interval: receipt and confirmation polling; the interval
                starts small (a local node answers in milliseconds) and doubles up to the max.
            timeout: seconds to wait for a receipt or for confirmations.
            gas_margin, gas_headroom: gas limit = estimate * margin + headroom.
            priority_fee: tip per gas in wei (None: ask the node, fall back to 1 gwei).
            artifact: the contract build (default: the committed ProvenanceLedger artifact).
            check_code: compare the code at `address` with the artifact's runtime code.

        Raises:
            ContractMismatch: there is no code, or other code, at `address`.
            ChainUnavailable: the node cannot be reached.
        """
        if confirmations < 1:
            raise InputError(f"confirmations must be at least 1, got {confirmations}")
        self.w3 = w3
        self.account: LocalAccount = Account.from_key(private_key)
        self.artifact = artifact or load_artifact()
        self.address = _address(address)
        self.deployment_block = deployment_block
        self.confirmations = confirmations
        self.retry = retry or RetryPolicy()
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout
        self.gas_margin = gas_margin
        self.gas_headroom = gas_headroom
        self.priority_fee = priority_fee
        self.contract = w3.eth.contract(
            address=to_checksum_address(self.address), abi=self.artifact.abi
        )
        self._decoder = _errors.ErrorDecoder(self.artifact.abi)
        self._send_lock = threading.RLock()
        self._nonce: int | None = None
        self._tip: tuple[int, float] = (DEFAULT_TIP, -float("inf"))
        self._closers: list[Callable[[], None]] = []
        self.chain_id: int = self._rpc("eth_chainId", lambda: w3.eth.chain_id)
        if check_code:
            self._check_code()

    # -------------------------------------------------------------------------- presets
    @classmethod
    def embedded(
        cls,
        path: str | Path,
        *,
        private_key: str | bytes | None = None,
        operator_id: str = "operator",
        operator_name: str = "forgeproof operator",
        **options: Any,
    ) -> ChainClient:
        """An in-process chain (eth-tester + py-evm) kept under `path`; deploy or attach.

        The first call creates the chain and deploys the contract from `private_key` (default:
        eth-tester's first funded test key); later calls, in this process or after a restart,
        reopen the same chain and contract. A key without funds is funded from eth-tester's
        test accounts first. Only one process may hold `path` at a time.

        Raises:
            ChainUnavailable: another process holds the chain.
            ContractMismatch: deployment.json names code that is not this contract build.
        """
        from ledger.chain._embedded import (
            EmbeddedChain,
            faucet_key,
            fund_from_faucet,
            locked_provider,
        )

        directory = Path(path)
        chain = EmbeddedChain(directory)
        try:
            w3 = Web3(locked_provider(chain.tester))
            key = private_key if private_key is not None else faucet_key(0)
            client = cls._deploy_or_attach(
                w3,
                private_key=key,
                deployment_file=directory / DEPLOYMENT_FILE,
                operator_id=operator_id,
                operator_name=operator_name,
                fund=lambda address: fund_from_faucet(w3, address),
                **options,
            )
        except BaseException:
            chain.close()
            raise
        client._closers.append(chain.close)
        return client

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        private_key: str | bytes,
        address: str | None = None,
        deployment_file: str | Path | None = None,
        operator_id: str = "operator",
        operator_name: str = "forgeproof operator",
        request_timeout: float = 10.0,
        **options: Any,
    ) -> ChainClient:
        """A JSON-RPC node at `url` (http or https); attach to `address` or deploy.

        With `address`, attach to it. Otherwise attach to the contract named in
        `deployment_file` when it exists, or deploy one and write that file (when given).

        Raises:
            ChainUnavailable: the node cannot be reached.
            ContractMismatch: the address holds other code, or the file is for another chain.
        """
        w3 = Web3(
            Web3.HTTPProvider(
                url,
                request_kwargs={"timeout": request_timeout},
                # Our own retry policy covers every call, writes included; no double retrying.
                exception_retry_configuration=None,
            )
        )
        if address is not None:
            return cls(w3, private_key=private_key, address=address, **options)
        return cls._deploy_or_attach(
            w3,
            private_key=private_key,
            deployment_file=Path(deployment_file) if deployment_file else None,
            operator_id=operator_id,
            operator_name=operator_name,
            fund=None,
            **options,
        )

    @classmethod
    def deploy(
        cls,
        w3: Web3,
        *,
        private_key: str | bytes,
        operator_id: str = "operator",
        operator_name: str = "forgeproof operator",
        **options: Any,
    ) -> tuple[ChainClient, Deployment]:
        """Deploy a new ProvenanceLedger; the sender becomes the first operator's key."""
        artifact = options.get("artifact") or load_artifact()
        bootstrap = cls(
            w3,
            private_key=private_key,
            address="0x" + "00" * 20,
            check_code=False,
            **{k: v for k, v in options.items() if k != "artifact"},
            artifact=artifact,
        )
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = factory.constructor(operator_id, operator_name).data_in_transaction
        tx, receipt = bootstrap._send({"data": data}, "deploy ProvenanceLedger")
        contract = receipt.get("contractAddress")
        if not contract:
            raise ChainError(f"deployment {tx.tx_hash} produced no contract address")
        deployment = Deployment(
            chain_id=bootstrap.chain_id,
            contract=_address(contract),
            block_number=tx.block_number,
            tx_hash=tx.tx_hash,
            deployer=bootstrap.account.address.lower(),
        )
        client = cls(
            w3,
            private_key=private_key,
            address=deployment.contract,
            deployment_block=deployment.block_number,
            **options,
        )
        return client, deployment

    @classmethod
    def _deploy_or_attach(
        cls,
        w3: Web3,
        *,
        private_key: str | bytes,
        deployment_file: Path | None,
        operator_id: str,
        operator_name: str,
        fund: Callable[[str], None] | None,
        **options: Any,
    ) -> ChainClient:
        if deployment_file is not None and deployment_file.exists():
            deployment = Deployment.load(deployment_file)
            client = cls(
                w3,
                private_key=private_key,
                address=deployment.contract,
                deployment_block=deployment.block_number,
                **options,
            )
            if client.chain_id != deployment.chain_id:
                raise ContractMismatch(
                    f"{deployment_file} is for chain {deployment.chain_id}, "
                    f"the node is chain {client.chain_id}"
                )
            if fund is not None:
                fund(client.account.address)
            return client
        if fund is not None:
            fund(Account.from_key(private_key).address)
        # A crash between the deployment's receipt and writing the file must not lead to a
        # second contract: look for one this key already deployed before deploying anew.
        artifact = options.get("artifact") or load_artifact()
        probe = cls(  # not attached to anything: it lends its retrying, translating _rpc
            w3, private_key=private_key, address="0x" + "00" * 20, check_code=False, **options
        )
        found = probe._rpc(
            "looking for an earlier deployment",
            lambda: _find_deployment(w3, probe.account.address, artifact),
        )
        if found is not None:
            deployment = found
            client = cls(
                w3,
                private_key=private_key,
                address=deployment.contract,
                deployment_block=deployment.block_number,
                **options,
            )
        else:
            client, deployment = cls.deploy(
                w3,
                private_key=private_key,
                operator_id=operator_id,
                operator_name=operator_name,
                **options,
            )
        if deployment_file is not None:
            deployment.save(deployment_file)
        return client

    def with_account(self, private_key: str | bytes) -> ChainClient:
        """The same contract and chain, acting as another account (a participant's key)."""
        return ChainClient(
            self.w3,
            private_key=private_key,
            address=self.address,
            deployment_block=self.deployment_block,
            confirmations=self.confirmations,
            retry=self.retry,
            poll_interval=self.poll_interval,
            max_poll_interval=self.max_poll_interval,
            timeout=self.timeout,
            gas_margin=self.gas_margin,
            gas_headroom=self.gas_headroom,
            priority_fee=self.priority_fee,
            artifact=self.artifact,
            check_code=False,
        )

    @property
    def domain(self) -> Domain:
        """The EIP-712 domain of this deployment: its records and key changes are signed in it."""
        return Domain(self.chain_id, self.address)

    def close(self) -> None:
        """Release what the preset opened (the embedded chain's database and lock)."""
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> ChainClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------- registry
    # Key changes carry EIP-712 signatures that the contract checks (ledger.signing):
    # `key_proof` is the new key's KeyBinding, `authorization` a valid key's KeyChange (empty
    # when this client's own account is that key, or for an operator's revocation or recovery).
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
            "registerParticipant", participant_id, name, bits, _cs(key), bytes(key_proof)
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
            "addKey", participant_id, _cs(key), bytes(key_proof), bytes(authorization)
        )

    def revoke_key(self, key: str, authorization: bytes = b"") -> Tx:
        """Revoke `key` from the transaction's block on.

        Raises:
            TransactionReverted: NotAuthorized, AuthorizationInvalid, KeyAlreadyRevoked,
                UnknownKey.
        """
        return self.transact("revokeKey", _cs(key), bytes(authorization))

    def rotate_key(self, old: str, new: str, key_proof: bytes, authorization: bytes = b"") -> Tx:
        """Replace key `old` by `new` in the transaction's block.

        Raises:
            TransactionReverted: as `add_key` and `revoke_key`.
        """
        return self.transact(
            "rotateKey", _cs(old), _cs(new), bytes(key_proof), bytes(authorization)
        )

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
            participant_id, valid_from, revoked_from = self.call("keyInfo", _cs(address))
        except TransactionReverted as exc:
            raise _not_found(exc, "UnknownKey", f"key {address} is not registered") from exc
        return ChainKey(_address(address), participant_id, valid_from, revoked_from or None)

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

    def registry_blocks(self, start: int = 0) -> list[int]:
        """The blocks holding registry events, ascending, from the `start`-th on."""
        out: list[int] = []
        while True:
            got = [int(b) for b in self.call("registryBlocks", start + len(out), 1024)]
            out += got
            if len(got) < 1024:
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
            _hex(keccak(text=_event_signature(e.abi))): e
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
                event = topics[_hex(log["topics"][0])]
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
                        tx_hash=_hex(log["transactionHash"]),
                        block_hash=_hex(log["blockHash"]),
                        timestamp=times[block],
                    )
                )
        out.sort(key=lambda e: (e.block_number, e.log_index))
        return out

    def is_operator(self, address: str | None = None) -> bool:
        return bool(self.call("isOperator", _cs(address or self.account.address)))

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
            return bool(self.call("isKeyValidAt", participant_id, _cs(address), at))
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

    def block_at_time(self, timestamp: float) -> int:
        """The last block whose timestamp is at or before `timestamp` (Unix seconds).

        Raises:
            NotFound: `timestamp` is before the deployment block.
        """
        lo, hi = self.deployment_block, self.block_number()
        if self._block(lo)["timestamp"] > timestamp:
            raise NotFound(f"time {timestamp} is before the deployment (block {lo})")
        while lo < hi:  # invariant: block lo is at or before timestamp
            mid = (lo + hi + 1) // 2
            if self._block(mid)["timestamp"] <= timestamp:
                lo = mid
            else:
                hi = mid - 1
        return lo

    # -------------------------------------------------------------------------- checkpoints
    def latest_checkpoint(self) -> ChainCheckpoint | None:
        """The latest anchored checkpoint, or None before the first."""
        try:
            size, root, previous, block, timestamp, index = self.call("latestCheckpoint")
        except TransactionReverted as exc:
            if exc.error_name == "NoCheckpoint":
                return None
            raise
        return ChainCheckpoint(size, bytes(root), previous, block, timestamp, index)

    def checkpoint(self, size: int) -> ChainCheckpoint:
        """The checkpoint at `size`. Raises: NotFound."""
        found = self.find_checkpoint(size)
        if found is None:
            raise NotFound(f"no checkpoint of size {size} on chain")
        return found

    def find_checkpoint(self, size: int) -> ChainCheckpoint | None:
        try:
            root, previous, block, timestamp, index = self.call("checkpoint", size)
        except TransactionReverted as exc:
            if exc.error_name == "UnknownCheckpoint":
                return None
            raise
        return ChainCheckpoint(size, bytes(root), previous, block, timestamp, index)

    def checkpoint_count(self) -> int:
        return int(self.call("checkpointCount"))

    def covering_checkpoint(self, index: int, from_size: int = 0) -> ChainCheckpoint:
        """The first anchored checkpoint that covers leaf `index`: the chain's answer to "when
        was this record first anchored", walking back from the checkpoint at `from_size`
        (0: the latest).

        Raises:
            NotFound: no checkpoint at `from_size`, or none anchored covers `index` yet.
        """
        try:
            size, _ = self.call("coveringCheckpoint", index, from_size)
        except TransactionReverted as exc:
            if exc.error_name == "UnknownCheckpoint":
                raise NotFound(f"no checkpoint of size {from_size or 'any'} on chain") from exc
            if exc.error_name == "IndexOutOfRange":
                raise NotFound(f"no anchored checkpoint covers leaf {index} yet") from exc
            raise
        return self.checkpoint(size)

    def checkpoints(self) -> list[ChainCheckpoint]:
        """Every checkpoint, oldest first (walks the chain of previous sizes)."""
        out: list[ChainCheckpoint] = []
        cp = self.latest_checkpoint()
        while cp is not None:
            out.append(cp)
            cp = self.checkpoint(cp.previous_size) if cp.previous_size else None
        return out[::-1]

    def require_checkpoint(self, size: int, root: bytes) -> ChainCheckpoint:
        """Check that the chain anchors exactly (size, root).

        Raises:
            NotFound: nothing is anchored at `size`.
            VerificationError: another root is anchored at `size`.
        """
        cp = self.checkpoint(size)
        if cp.root != bytes(root):
            raise VerificationError(
                f"chain anchors root {_hex(cp.root)} at size {size}, expected {_hex(root)}"
            )
        return cp

    def check_anchor(
        self,
        size: int,
        root: bytes,
        *,
        chain_id: int | None = None,
        contract: str | None = None,
        tx_hash: str | None = None,
        block_number: int | None = None,
    ) -> Anchor:
        """Check a receipt's anchoring claims against chain state; return the chain's anchor.

        Each given claim must hold: this chain and contract, (size, root) anchored, in that
        block, by that transaction.

        Raises:
            NotFound: nothing is anchored at `size`.
            VerificationError: a claim differs from chain state.
        """
        if chain_id is not None and chain_id != self.chain_id:
            raise VerificationError(f"anchor names chain {chain_id}, this is chain {self.chain_id}")
        if contract is not None and _address(contract) != self.address:
            raise VerificationError(f"anchor names contract {contract}, this is {self.address}")
        self.require_checkpoint(size, root)
        anchor = self.anchor_of(size)
        if block_number is not None and block_number != anchor.block_number:
            raise VerificationError(
                f"checkpoint {size} is anchored in block {anchor.block_number}, not {block_number}"
            )
        if tx_hash is not None and tx_hash.lower() != anchor.tx_hash:
            raise VerificationError(
                f"checkpoint {size} was anchored by {anchor.tx_hash}, not {tx_hash}"
            )
        return anchor

    def verify_inclusion(
        self, size: int, index: int, leaf_hash: bytes, proof: Sequence[bytes]
    ) -> bytes:
        """Check an inclusion proof against the anchored checkpoint at `size`, on chain.

        Returns the checkpoint's root.

        Raises:
            NotFound: no checkpoint at `size`.
            VerificationError: the proof is malformed or leads to another root.
        """
        try:
            return bytes(self.call("verifyInclusion", size, index, leaf_hash, list(proof)))
        except TransactionReverted as exc:
            if exc.error_name == "UnknownCheckpoint":
                raise NotFound(f"no checkpoint of size {size} on chain") from exc
            if exc.error_name in {"IndexOutOfRange", "ProofLength", "InclusionRootMismatch"}:
                raise VerificationError(f"on-chain inclusion check failed: {exc}") from exc
            raise

    def anchor_of(self, size: int) -> Anchor:
        """Where the checkpoint at `size` was anchored, recovered from chain state alone.

        Raises:
            NotFound: no checkpoint at `size`.
        """
        cp = self.checkpoint(size)
        event = self.contract.events.CheckpointPublished()
        logs = self._rpc(
            "eth_getLogs",
            lambda: self.w3.eth.get_logs(
                {
                    "address": self.contract.address,
                    "fromBlock": cp.block_number,
                    "toBlock": cp.block_number,
                    "topics": [
                        _hex(keccak(text=_event_signature(event.abi))),
                        _hex(size.to_bytes(32, "big")),
                    ],
                }
            ),
        )
        if not logs:
            raise ChainError(
                f"checkpoint {size} is in storage at block {cp.block_number} without its event"
            )
        log = logs[-1]
        return Anchor(
            chain_id=self.chain_id,
            contract=self.address,
            size=size,
            root=cp.root,
            tx_hash=_hex(log["transactionHash"]),
            block_number=cp.block_number,
            block_hash=_hex(log["blockHash"]),
            timestamp=cp.timestamp,
        )

    def publish_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes] | ProofSource
    ) -> Anchor:
        """Anchor (size, root) and wait until `confirmations` blocks include it.

        `proof` is the consistency proof from the latest checkpoint on chain (empty for the
        first), or a function from that checkpoint's size to the proof: with a function the
        client can re-prove when a reorg took earlier checkpoints away, too.

        Idempotent: if the chain already anchors this exact (size, root), e.g. after a crash
        between sending and recording, its anchor is returned without a new transaction.

        Raises:
            CheckpointConflict: the chain anchors another root at `size`.
            TransactionReverted: the contract refused (NotOperator, SizeNotIncreasing,
                OldRootMismatch: not an extension of the anchored log, ...).
            ChainUnavailable: the node is unreachable, or confirmations did not come in time.
        """
        return self.wait_anchored(self.submit_checkpoint(size, root, proof))

    def submit_checkpoint(
        self, size: int, root: bytes, proof: Sequence[bytes] | ProofSource
    ) -> PendingCheckpoint:
        """The first half of `publish_checkpoint`: send it and wait for its receipt only.

        Hand the result to `wait_anchored` for the confirmations (a caller may record the
        transaction hash in between). Raises as `publish_checkpoint` does.
        """
        root = bytes(root)
        return PendingCheckpoint(size, root, proof, self._submit(size, root, proof))

    def _submit(self, size: int, root: bytes, proof: Sequence[bytes] | ProofSource) -> Anchor:
        latest = self.latest_checkpoint()
        if latest is not None and latest.size >= size:
            existing = self.find_checkpoint(size)
            if existing is not None and existing.root != root:
                raise CheckpointConflict(
                    f"chain anchors root {_hex(existing.root)} at size {size}, "
                    f"refusing to publish {_hex(root)}"
                )
            if existing is not None:
                return self.anchor_of(size)
        hashes = list(proof(latest.size if latest else 0) if callable(proof) else proof)
        try:
            tx = self.transact("publishCheckpoint", size, root, hashes)
        except TransactionReverted:
            # A concurrent or earlier attempt may have landed the very same checkpoint.
            existing = self.find_checkpoint(size)
            if existing is not None and existing.root == root:
                return self.anchor_of(size)
            raise
        return Anchor(
            chain_id=self.chain_id,
            contract=self.address,
            size=size,
            root=root,
            tx_hash=tx.tx_hash,
            block_number=tx.block_number,
            block_hash=tx.block_hash,
            timestamp=int(self._block(tx.block_number)["timestamp"]),
            gas_used=tx.gas_used,
        )

    def wait_anchored(self, pending: PendingCheckpoint) -> Anchor:
        """Wait until `confirmations` blocks include the checkpoint, re-publishing it (and
        updating `pending`) if a reorg drops it meanwhile.

        Raises:
            ChainUnavailable: confirmations did not come within `timeout`.
            TransactionReverted: re-publication was refused (e.g. a fixed proof no longer
                fits the chain's latest checkpoint: pass a ProofSource to avoid that).
        """
        deadline = time.monotonic() + self.timeout
        for delay in self._poll_delays(deadline, f"{self.confirmations} confirmations"):
            anchor = pending.anchor
            block = self._block_or_none(anchor.block_number)
            if block is not None and _hex(block["hash"]) == anchor.block_hash:
                # Its block is canonical: with depth 1 that is all we need to know.
                depth = 1 if self.confirmations == 1 else self.block_number() - block["number"] + 1
                if depth >= self.confirmations:
                    return anchor
                time.sleep(delay)
                continue
            # The block that held it is gone. The node may have re-included the transaction
            # elsewhere; otherwise publish again (our nonce may have been rolled back too).
            self.resync()
            existing = self.find_checkpoint(pending.size)
            if existing is not None and existing.root == pending.root:
                pending.anchor = self.anchor_of(pending.size)
            else:
                pending.republished += 1
                pending.anchor = self._submit(pending.size, pending.root, pending.proof)
        raise AssertionError("unreachable")  # _poll_delays raises at the deadline

    # -------------------------------------------------------------------------- chain state
    def block_number(self) -> int:
        return int(self._rpc("eth_blockNumber", lambda: self.w3.eth.block_number))

    def balance(self, address: str | None = None) -> int:
        who = to_checksum_address(address or self.account.address)
        return int(self._rpc("eth_getBalance", lambda: self.w3.eth.get_balance(who)))

    def _block(self, number: int) -> Any:
        return self._rpc("eth_getBlockByNumber", lambda: self.w3.eth.get_block(number))

    def _block_or_none(self, number: int) -> Any:
        """The block at `number`, or None when the chain is shorter (after a reorg)."""
        try:
            return self._block(number)
        except ChainError as exc:
            if isinstance(exc.__cause__, BlockNotFound | TesterBlockNotFound):
                return None
            raise

    def _resolve_block(self, block: int | None, timestamp: float | None) -> int:
        if block is not None and timestamp is not None:
            raise InputError("give a block or a timestamp, not both")
        if timestamp is not None:
            return self.block_at_time(timestamp)
        return self.block_number() if block is None else block

    def _check_code(self) -> None:
        code = bytes(
            self._rpc(
                "eth_getCode",
                lambda: self.w3.eth.get_code(to_checksum_address(self.address)),
            )
        )
        if not code:
            raise ContractMismatch(f"no contract at {self.address} on chain {self.chain_id}")
        if code != self.artifact.deployed_bytecode:
            raise ContractMismatch(
                f"the code at {self.address} is not this {self.artifact.name} build "
                f"(artifact source {self.artifact.source_sha256})"
            )

    # -------------------------------------------------------------------------- plumbing
    def _rpc(self, what: str, fn: Callable[[], T]) -> T:
        """Run one node request: reverts decoded, transient failures retried with backoff."""
        delays = self.retry.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except ChainError:
                raise
            except Exception as exc:
                if _errors.is_revert(exc):
                    raise _errors.reverted(exc, self._decoder, what) from exc
                if isinstance(exc, _errors.TRANSIENT) or _errors.http_transient(exc):
                    delay = next(delays, None)
                    if delay is None:
                        raise _errors.unavailable(what, exc, attempt) from exc
                    time.sleep(delay)
                    continue
                raise _errors.foreign(what, exc) from exc

    def call(self, fn_name: str, *args: Any) -> Any:
        """Low level: call any view of the contract by name (args as web3 takes them).

        Raises:
            TransactionReverted: the view reverted (its custom error decoded).
        """
        fn = getattr(self.contract.functions, fn_name)(*args)
        return self._rpc(fn_name, lambda: fn.call({"from": self.account.address}))

    def transact(self, fn_name: str, *args: Any) -> Tx:
        """Low level: send any contract function by name, as this client's account, and wait
        for its receipt. No client-side checks: the contract is the only judge.

        Raises:
            TransactionReverted: refused at gas estimation, or mined with status 0.
        """
        data = self.contract.encode_abi(fn_name, args=list(args))
        tx, _ = self._send({"to": to_checksum_address(self.address), "data": data}, fn_name)
        return tx

    def _send(self, fields: dict[str, Any], what: str) -> tuple[Tx, Any]:
        """Sign, send and mine one transaction; returns it with its raw receipt."""
        with self._send_lock:
            for attempt in (1, 2):
                tx: dict[str, Any] = {
                    **fields,
                    "from": self.account.address,
                    "value": 0,
                    "chainId": self.chain_id,
                }
                try:
                    if self._nonce is None:
                        self._nonce = self._rpc(
                            "eth_getTransactionCount",
                            lambda: self.w3.eth.get_transaction_count(
                                self.account.address, "pending"
                            ),
                        )
                    tx["nonce"] = self._nonce
                    params = cast(TxParams, tx)
                    estimate = self._rpc(
                        f"{what} (gas estimate)", partial(self.w3.eth.estimate_gas, params)
                    )
                    tx["gas"] = int(estimate * self.gas_margin) + self.gas_headroom
                    tx.update(self._fees())
                    signed = self.account.sign_transaction(tx)
                    tx_hash = _hex(signed.hash)
                    self._rpc(what, partial(self._send_raw, signed.raw_transaction))
                except ChainError as exc:
                    self._nonce = None  # resynchronise from the node
                    # Someone else sent with this key meanwhile: re-sign once with a fresh nonce.
                    if attempt == 1 and _errors.is_nonce_error(exc):
                        continue
                    raise
                self._nonce += 1
                break
        receipt = self._wait_receipt(tx_hash, what, nonce=tx["nonce"])
        mined = Tx(
            tx_hash=tx_hash,
            block_number=int(receipt["blockNumber"]),
            block_hash=_hex(receipt["blockHash"]),
            gas_used=int(receipt["gasUsed"]),
        )
        if receipt["status"] != 1:
            raise self._explain_failure(tx, mined, what)
        return mined, receipt

    def _send_raw(self, raw: bytes) -> None:
        try:
            self.w3.eth.send_raw_transaction(raw)
        except Exception as exc:
            # A retry after a lost response finds its own transaction already there.
            text = str(exc).lower()
            if "already known" in text or "already imported" in text:
                return
            raise

    def _fees(self) -> dict[str, int]:
        base = self._block_fee()
        tip = self.priority_fee
        if tip is None:
            cached, asked_at = self._tip
            if time.monotonic() - asked_at < TIP_TTL:
                tip = cached
            else:
                try:
                    tip = int(
                        self._rpc("eth_maxPriorityFeePerGas", lambda: self.w3.eth.max_priority_fee)
                    )
                except ChainUnavailable:
                    raise
                except ChainError:  # not every node implements it
                    tip = DEFAULT_TIP
                self._tip = (tip, time.monotonic())
        # Twice the base fee: the transaction stays includable through a few fuller blocks.
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": 2 * base + tip}

    def _block_fee(self) -> int:
        latest = self._rpc("eth_getBlockByNumber", lambda: self.w3.eth.get_block("latest"))
        return int(latest.get("baseFeePerGas", 0) or 0)

    def _wait_receipt(self, tx_hash: str, what: str, *, nonce: int | None = None) -> Any:
        """The receipt of `tx_hash`. While waiting, every `STALL_CHECK_S` seconds, make sure
        the transaction can still be mined: a node that lost blocks (restored from an older
        state) or its pool keeps a transaction whose nonce is now beyond the account's as
        "queued" forever, and waiting would never end.

        Raises:
            ChainUnavailable: no receipt within `timeout`, or the transaction cannot be mined
                (the nonce is read from the node again for the next one).
        """
        deadline = time.monotonic() + self.timeout
        stall_check = time.monotonic() + STALL_CHECK_S
        for delay in self._poll_delays(deadline, f"receipt of {what} {tx_hash}"):
            try:
                return self._rpc(
                    "eth_getTransactionReceipt",
                    lambda: self.w3.eth.get_transaction_receipt(tx_hash),  # type: ignore[arg-type]
                )
            except ChainError as exc:
                if not isinstance(exc.__cause__, TransactionNotFound):
                    raise
            if nonce is not None and time.monotonic() >= stall_check:
                stall_check = time.monotonic() + STALL_CHECK_S
                pending = self._rpc(
                    "eth_getTransactionCount",
                    lambda: self.w3.eth.get_transaction_count(self.account.address, "pending"),
                )
                if pending <= nonce:
                    self.resync()
                    raise ChainUnavailable(
                        f"{what} {tx_hash} cannot be mined: it has nonce {nonce} and the node "
                        f"expects {pending} (it lost blocks or dropped the transaction); the "
                        "next attempt reads the nonce again"
                    )
            time.sleep(delay)
        raise AssertionError("unreachable")

    def resync(self) -> None:
        """Read the account's nonce from the node before the next transaction (after the node
        lost blocks, or a transaction of ours was dropped)."""
        with self._send_lock:
            self._nonce = None

    def _poll_delays(self, deadline: float, what: str) -> Iterator[float]:
        delay = self.poll_interval
        while True:
            yield delay
            if time.monotonic() > deadline:
                raise ChainUnavailable(f"gave up waiting for {what} after {self.timeout}s")
            delay = min(delay * 2, self.max_poll_interval)

    def _explain_failure(self, tx: dict[str, Any], mined: Tx, what: str) -> TransactionReverted:
        """Why a mined transaction failed: replay it as a call in its block, whose number is
        what time-dependent checks (key validity) saw, to get the contract's custom error."""
        call = cast(TxParams, {k: tx[k] for k in ("from", "to", "data", "value", "gas") if k in tx})
        detail = "the replay succeeded, the state it ran on has changed"
        try:
            self._rpc(what, lambda: self.w3.eth.call(call, mined.block_number))
        except TransactionReverted as exc:
            if exc.error_name:
                exc.tx_hash = mined.tx_hash
                return exc
            detail = str(exc)  # no custom error: out of gas, typically
        except ChainError as exc:
            detail = f"could not replay it: {exc}"
        return TransactionReverted(
            f"{what} {mined.tx_hash} failed in block {mined.block_number} "
            f"(gas used {mined.gas_used} of {tx['gas']}): {detail}",
            tx_hash=mined.tx_hash,
        )


# ------------------------------------------------------------------------------------ helpers
def _cs(address: str) -> str:
    try:
        return to_checksum_address(address)
    except ValueError as exc:
        raise InputError(f"not an address: {address!r}") from exc


def _not_found(exc: TransactionReverted, error_name: str, message: str) -> LedgerError:
    """`NotFound` for the custom error that means "no such thing", else the revert itself."""
    return NotFound(message) if exc.error_name == error_name else exc


def _find_deployment(
    w3: Web3, deployer: str, artifact: Artifact, lookback: int = 16
) -> Deployment | None:
    """This contract build, deployed by `deployer` in one of its last `lookback` transactions."""
    from eth._utils.address import generate_contract_address
    from eth_typing import Address

    sender = to_checksum_address(deployer)
    nonce = int(w3.eth.get_transaction_count(sender))
    for n in range(nonce - 1, max(nonce - lookback, 0) - 1, -1):
        created = generate_contract_address(Address(bytes.fromhex(sender[2:])), n)
        address = to_checksum_address(created)
        if bytes(w3.eth.get_code(address)) != artifact.deployed_bytecode:
            continue
        lo, hi = 0, int(w3.eth.block_number)  # the first block with the code is the deployment's
        while lo < hi:
            mid = (lo + hi) // 2
            if w3.eth.get_code(address, mid):
                hi = mid
            else:
                lo = mid + 1
        logs = w3.eth.get_logs({"address": address, "fromBlock": lo, "toBlock": lo})
        return Deployment(
            chain_id=int(w3.eth.chain_id),
            contract=address.lower(),
            block_number=lo,
            tx_hash=_hex(logs[0]["transactionHash"]) if logs else "",
            deployer=sender.lower(),
        )
    return None


def _event_signature(abi: Any) -> str:
    return f"{abi['name']}({','.join(i['type'] for i in abi['inputs'])})"
