"""Transaction plumbing: one account talking to one contract on one chain, through any Web3.

Every transaction is signed locally (eth-account) and sent raw, on both kinds of chain, with a
locally tracked nonce (re-read from the node, and the transaction re-signed once, when someone
else used the key meanwhile), an `eth_estimateGas` limit plus margin, and EIP-1559 fees. A
transaction counts only once its receipt says status 1; while waiting for the receipt the
client checks that the transaction can still be mined, and a failed one is replayed as a call
to name the contract's custom error.

Every node request goes through `_rpc`: reverts become `TransactionReverted` (with the
contract's custom error name), unreachable nodes `ChainUnavailable` after retries with
exponential backoff (`RetryPolicy`, run by `ledger.retry`), anything else `ChainError`.

`Transactor` is the base of `ChainClient`; `registry` and `checkpoints` add the contract's
operations on top of it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, Self, TypeVar, cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import BlockNotFound as TesterBlockNotFound
from web3 import Web3
from web3.exceptions import BlockNotFound, TransactionNotFound
from web3.types import TxParams

from ledger.chain import _errors
from ledger.chain._wire import checksum, hex0x, wire_address
from ledger.chain.artifact import Artifact, load_artifact
from ledger.errors import (
    ChainError,
    ChainUnavailable,
    ContractMismatch,
    InputError,
    NotFound,
    TransactionReverted,
)
from ledger.retry import Backoff, NotYet, call_with_retry, is_not_yet
from ledger.signing import Domain

T = TypeVar("T")

DEFAULT_TIP = 10**9  # wei per gas, when the node has no suggestion
# Gas added to every limit: nodes estimate against the latest block, a transaction runs in the
# next one, and the registry's writes cost more in a block of their own (a new entry in the
# list of registry blocks, a new step in a role history: ~22k gas each) than in the block the
# estimate saw when it already held one. Only gas used is paid for.
GAS_HEADROOM = 50_000
TIP_TTL = 30.0  # seconds a node's tip suggestion is reused
STALL_CHECK_S = 2.0  # while waiting for a receipt: how often to check it can still be mined
# A nonce refused by the node (someone else sent with this key): re-sign once, at once.
NONCE_RETRY = Backoff(initial=0.0, cap=0.0, attempts=2)
NO_ADDRESS = "0x" + "00" * 20  # what a client that is not attached to a contract (yet) names


@dataclass(frozen=True)
class Tx:
    """A mined, successful transaction."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient failures (connection refused, timeouts, HTTP 5xx).

    Attributes:
        attempts: requests in all, the first included.
        initial_delay: seconds before the second; each later delay doubles, up to `max_delay`.
    """

    attempts: int = 5
    initial_delay: float = 0.05
    max_delay: float = 2.0

    @property
    def backoff(self) -> Backoff:
        """This policy as `ledger.retry.call_with_retry` takes it."""
        # At least one attempt, whatever `attempts` says.
        attempts = max(self.attempts, 1)
        return Backoff(initial=self.initial_delay, cap=self.max_delay, attempts=attempts)

    def delays(self) -> Iterator[float]:
        """The waits between attempts: `attempts - 1` of them."""
        return self.backoff.delays()


class Transactor:
    """The ProvenanceLedger contract on one chain, acting as one account (the operator's key):
    calls, signed transactions and chain state.

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
            InputError: fewer than 1 confirmation, or a malformed address.
            ContractMismatch: there is no code, or other code, at `address`.
            ChainUnavailable: the node cannot be reached.
        """
        if confirmations < 1:
            raise InputError(f"confirmations must be at least 1, got {confirmations}")
        self.w3 = w3
        self.account: LocalAccount = Account.from_key(private_key)
        self.artifact = artifact or load_artifact()
        self.address = wire_address(address)
        self.deployment_block = deployment_block
        self.confirmations = confirmations
        self.retry = retry or RetryPolicy()
        self.poll_interval = poll_interval
        self.max_poll_interval = max_poll_interval
        self.timeout = timeout
        self.gas_margin = gas_margin
        self.gas_headroom = gas_headroom
        self.priority_fee = priority_fee
        self.contract = w3.eth.contract(address=checksum(self.address), abi=self.artifact.abi)
        self._decoder = _errors.ErrorDecoder(self.artifact.abi)
        self._send_lock = threading.RLock()
        self._nonce: int | None = None
        self._tip: tuple[int, float] = (DEFAULT_TIP, -float("inf"))
        self._closers: list[Callable[[], None]] = []
        self.chain_id: int = self._rpc("eth_chainId", lambda: w3.eth.chain_id)
        if check_code:
            self._check_code()

    @property
    def domain(self) -> Domain:
        """The EIP-712 domain of this deployment: its records and key changes are signed in it."""
        return Domain(self.chain_id, self.address)

    def close(self) -> None:
        """Release what the preset opened (the embedded chain's database and lock)."""
        while self._closers:
            self._closers.pop()()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------------- calls
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
        tx, _ = self._send({"to": checksum(self.address), "data": data}, fn_name)
        return tx

    def _rpc(self, what: str, fn: Callable[[], T]) -> T:
        """Run one node request: reverts decoded, transient failures retried with backoff."""
        try:
            return call_with_retry(
                fn,
                backoff=self.retry.backoff,
                transient=_errors.is_transient,
                give_up=lambda exc, attempts: _errors.unavailable(what, exc, attempts),
            )
        except ChainError:
            raise
        except Exception as exc:
            if _errors.is_revert(exc):
                raise _errors.reverted(exc, self._decoder, what) from exc
            raise _errors.foreign(what, exc) from exc

    def _poll(self, fn: Callable[[], T], what: str) -> T:
        """`fn()` until it stops raising NotYet, polling every `poll_interval` at first and
        doubling up to `max_poll_interval`.

        Raises:
            ChainUnavailable: still not there after `timeout` seconds.
        """
        return call_with_retry(
            fn,
            backoff=Backoff(
                initial=self.poll_interval,
                cap=self.max_poll_interval,
                attempts=None,
                deadline=self.timeout,
            ),
            transient=is_not_yet,
            give_up=lambda _, __: ChainUnavailable(
                f"gave up waiting for {what} after {self.timeout}s"
            ),
        )

    # -------------------------------------------------------------------------- transactions
    def _send(self, fields: dict[str, Any], what: str) -> tuple[Tx, Any]:
        """Sign, send and mine one transaction; returns it with its raw receipt."""
        with self._send_lock:
            # Someone else sent with this key meanwhile: re-sign once with a fresh nonce.
            tx, tx_hash = call_with_retry(
                partial(self._sign_and_send, fields, what),
                backoff=NONCE_RETRY,
                transient=lambda exc: isinstance(exc, ChainError) and _errors.is_nonce_error(exc),
            )
        receipt = self._wait_receipt(tx_hash, what, nonce=tx["nonce"])
        mined = Tx(
            tx_hash=tx_hash,
            block_number=int(receipt["blockNumber"]),
            block_hash=hex0x(receipt["blockHash"]),
            gas_used=int(receipt["gasUsed"]),
        )
        if receipt["status"] != 1:
            raise self._explain_failure(tx, mined, what)
        return mined, receipt

    def _sign_and_send(self, fields: dict[str, Any], what: str) -> tuple[dict[str, Any], str]:
        """One attempt at sending: nonce, gas and fees filled in, signed, handed to the node.
        Returns the transaction and its hash. Call with `_send_lock` held."""
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
                    lambda: self.w3.eth.get_transaction_count(self.account.address, "pending"),
                )
            tx["nonce"] = self._nonce
            params = cast(TxParams, tx)
            estimate = self._rpc(
                f"{what} (gas estimate)", partial(self.w3.eth.estimate_gas, params)
            )
            tx["gas"] = int(estimate * self.gas_margin) + self.gas_headroom
            tx.update(self._fees())
            signed = self.account.sign_transaction(tx)
            self._rpc(what, partial(self._send_raw, signed.raw_transaction))
        except ChainError:
            self._nonce = None  # resynchronise from the node
            raise
        self._nonce += 1
        return tx, hex0x(signed.hash)

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
        stall_check = time.monotonic() + STALL_CHECK_S

        def receipt() -> Any:
            nonlocal stall_check
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
            raise NotYet

        return self._poll(receipt, f"receipt of {what} {tx_hash}")

    def resync(self) -> None:
        """Read the account's nonce from the node before the next transaction (after the node
        lost blocks, or a transaction of ours was dropped)."""
        with self._send_lock:
            self._nonce = None

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

    # -------------------------------------------------------------------------- chain state
    def block_number(self) -> int:
        return int(self._rpc("eth_blockNumber", lambda: self.w3.eth.block_number))

    def balance(self, address: str | None = None) -> int:
        who = checksum(address or self.account.address)
        return int(self._rpc("eth_getBalance", lambda: self.w3.eth.get_balance(who)))

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
        code = bytes(self._rpc("eth_getCode", lambda: self.w3.eth.get_code(checksum(self.address))))
        if not code:
            raise ContractMismatch(f"no contract at {self.address} on chain {self.chain_id}")
        if code != self.artifact.deployed_bytecode:
            raise ContractMismatch(
                f"the code at {self.address} is not this {self.artifact.name} build "
                f"(artifact source {self.artifact.source_sha256})"
            )
