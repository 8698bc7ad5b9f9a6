"""An eth-tester / py-evm chain whose state survives a process restart.

py-evm keeps everything (headers, bodies, receipts, state trie nodes, the canonical head) in one
key-value store. Here that store is a dict written through to SQLite, committed in one
transaction after every mined block: on restart the chain resumes at the last committed block,
with the same contract address, storage and receipts. A crash between two commits loses at
most the block being mined, whose transaction the caller never saw confirmed.

A lock file keeps a second process from opening the same chain: two writers would each mine
their own block N+1 and corrupt the history.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any

from eth.abc import BlockHeaderAPI, SignedTransactionAPI, StateAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.memory import MemoryDB
from eth.db.chain import ChainDB
from eth.estimators.gas import binary_gas_search_intrinsic_tolerance
from eth.exceptions import CanonicalHeadNotFound
from eth.vm.forks import PragueVM
from eth.vm.spoof import SpoofTransaction
from eth_account import Account
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.backends.pyevm.main import (
    generate_genesis_state_for_keys,
    get_default_account_keys,
    get_default_genesis_params,
)
from eth_typing import BlockNumber
from eth_utils import to_checksum_address
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider

from ledger.errors import ChainError, ChainUnavailable

CHAIN_DB = "chain.sqlite"
LOCK_FILE = "chain.lock"


def _one_pass_gas_estimate(state: StateAPI, transaction: SignedTransactionAPI) -> int:
    """Gas estimate from one run at the block gas limit, confirmed by one run at the estimate.

    py-evm's default binary search executes a transaction about 13 times; a checkpoint with its
    on-chain proof check takes tens of milliseconds each in the Python EVM. What the run
    consumed, plus the 2300 gas an SSTORE must see left (EIP-2200), is enough unless some call
    needs more than 63/64 of what remains; the confirming run checks that, and if it fails we
    fall back to the full search.
    """
    snapshot = state.snapshot()
    try:
        maximum = SpoofTransaction(transaction, gas=state.gas_limit, gas_price=0)
        computation = state.apply_transaction(maximum)  # type: ignore[arg-type]
        if computation.is_error:
            raise computation.error
        # An SSTORE needs more than 2300 gas left (EIP-2200) even though it consumes less.
        consumed = state.gas_limit - computation.get_gas_remaining() + 2300
    finally:
        state.revert(snapshot)
    snapshot = state.snapshot()
    try:
        exact = SpoofTransaction(transaction, gas=consumed, gas_price=0)
        fits = not state.apply_transaction(exact).is_error  # type: ignore[arg-type]
    finally:
        state.revert(snapshot)
    if fits:
        return int(consumed)
    return int(binary_gas_search_intrinsic_tolerance(state, transaction))


class _TesterChain(MiningChain):
    """eth-tester's own post-merge test chain (same chain id and fork), rebuilt so that it can
    be reopened from an existing database instead of always starting from genesis."""

    chain_id = 131277322940537
    vm_configuration = ((BlockNumber(0), PragueVM),)
    gas_estimator = staticmethod(_one_pass_gas_estimate)

    def create_header_from_parent(
        self, parent_header: BlockHeaderAPI, **header_params: Any
    ) -> BlockHeaderAPI:
        # Keep the gas limit constant, as eth-tester does.
        header_params["gas_limit"] = parent_header.gas_limit
        return super().create_header_from_parent(parent_header, **header_params)

    def get_transaction_builder(self) -> Any:
        return super().get_vm().get_transaction_builder()


class _WriteThroughDB(MemoryDB):
    """py-evm's key-value store: a dict in memory, written through to SQLite on `commit`."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed block survives power loss too, not only a killed process.
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
        )
        super().__init__(dict(self._conn.execute("SELECT k, v FROM kv")))
        self._dirty: dict[bytes, bytes | None] = {}

    def __setitem__(self, key: bytes, value: bytes) -> None:
        super().__setitem__(key, value)
        self._dirty[key] = value

    def __delitem__(self, key: bytes) -> None:
        super().__delitem__(key)
        self._dirty[key] = None

    def commit(self) -> None:
        """Persist every write since the last commit, all or nothing."""
        if not self._dirty:
            return
        puts = [(k, v) for k, v in self._dirty.items() if v is not None]
        deletes = [(k,) for k, v in self._dirty.items() if v is None]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", puts)
            self._conn.executemany("DELETE FROM kv WHERE k = ?", deletes)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        self._dirty.clear()

    def close(self) -> None:
        self._conn.close()


class PersistentBackend(PyEVMBackend):
    """eth-tester's py-evm backend over a `_WriteThroughDB`, committed after every block."""

    def __init__(self, db: _WriteThroughDB) -> None:
        self._db = db
        super().__init__()

    def reset_to_genesis(
        self,
        genesis_params: Any = None,
        genesis_state: Any = None,
        num_accounts: Any = None,
        vm_configuration: Any = None,
        mnemonic: Any = None,
        hd_path: Any = None,
    ) -> None:
        # The funded accounts are eth-tester's fixed test keys; they are derived, not stored.
        self.account_keys = get_default_account_keys(quantity=num_accounts)
        base_db = AtomicDB(self._db)
        try:
            ChainDB(base_db).get_canonical_head()
        except CanonicalHeadNotFound:
            self.chain = _TesterChain.from_genesis(
                base_db,
                get_default_genesis_params(),
                generate_genesis_state_for_keys(self.account_keys),
            )
        else:
            self.chain = _TesterChain(base_db)
        self._db.commit()

    def mine_blocks(self, num_blocks: int = 1, coinbase: Any = None) -> tuple[bytes, ...]:
        args = (num_blocks,) if coinbase is None else (num_blocks, coinbase)
        hashes: tuple[bytes, ...] = super().mine_blocks(*args)
        self._db.commit()
        return hashes

    def revert_to_snapshot(self, snapshot: Any) -> None:
        super().revert_to_snapshot(snapshot)
        self._db.commit()


class EmbeddedChain:
    """An EthereumTester whose chain lives in `directory`; holds the directory's lock."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._lock_fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise ChainUnavailable(
                f"embedded chain {directory} is open in another process"
            ) from exc
        try:
            self._db = _WriteThroughDB(directory / CHAIN_DB)
            self.backend = PersistentBackend(self._db)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.tester = EthereumTester(backend=self.backend)

    def close(self) -> None:
        """Release the database and the lock (everything is already committed)."""
        if self._lock_fd < 0:
            return
        self._db.close()
        os.close(self._lock_fd)
        self._lock_fd = -1


def faucet_key(i: int) -> bytes:
    """eth-tester's i-th funded test account key (0..9): the integers 1..10, big-endian."""
    if not 0 <= i < 10:
        raise ValueError(f"eth-tester has test accounts 0..9, not {i}")
    return (i + 1).to_bytes(32, "big")


class _LockedTesterProvider(EthereumTesterProvider):
    """eth-tester is not thread-safe: one request at a time, whoever the caller."""

    def __init__(self, tester: EthereumTester) -> None:
        super().__init__(tester)
        self._lock = threading.RLock()

    def make_request(self, method: Any, params: Any) -> Any:
        with self._lock:
            return super().make_request(method, params)


def locked_provider(tester: EthereumTester) -> EthereumTesterProvider:
    return _LockedTesterProvider(tester)


def fund_from_faucet(w3: Web3, address: str, minimum: int = 10**21) -> None:
    """Top `address` up to at least `minimum` wei from eth-tester's last test account.

    The last one, so that the first (the default operator key) keeps nonce 0 for its
    deployment and the contract address stays predictable.
    """
    checksum = to_checksum_address(address)
    if w3.eth.get_balance(checksum) >= minimum:
        return
    faucet = Account.from_key(faucet_key(9))
    base_fee = int(w3.eth.get_block("latest").get("baseFeePerGas", 0) or 0)
    tx = {
        "from": faucet.address,
        "to": checksum,
        "value": 10 * minimum,
        "gas": 21000,
        "nonce": w3.eth.get_transaction_count(faucet.address),
        "chainId": w3.eth.chain_id,
        "maxFeePerGas": 2 * base_fee + 1,
        "maxPriorityFeePerGas": 1,
    }
    w3.eth.send_raw_transaction(faucet.sign_transaction(tx).raw_transaction)
    if w3.eth.get_balance(checksum) < minimum:
        raise ChainError(f"could not fund {address} from the embedded chain's test accounts")
