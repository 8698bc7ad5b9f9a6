"""Deploying the contract, finding it again, and attaching to it: the client's presets.

    ChainClient.embedded(path)                      eth-tester/py-evm, persisted under `path`
    ChainClient.from_url(url, private_key=...)      any JSON-RPC node (anvil, geth, a testnet)
    ChainClient.deploy(w3, private_key=...)         a new contract on a Web3 you built

Where a contract lives is kept as `Deployment` (deployment.json next to the chain state, or a
file the caller names). A crash between a deployment's receipt and writing that file must not
lead to a second contract: before deploying, the presets look for this contract build among
the deployer's recent CREATE addresses (`contract_address`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Self

import rlp
from eth_account import Account
from eth_utils import keccak, to_canonical_address
from web3 import Web3

from ledger.chain._wire import checksum, hex0x, wire_address
from ledger.chain.artifact import Artifact, load_artifact
from ledger.chain.transactions import NO_ADDRESS, Transactor
from ledger.errors import ChainError, ContractMismatch

DEPLOYMENT_FILE = "deployment.json"
LOOKBACK = 16  # the deployer's last transactions searched for an earlier deployment


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
        """Raises: ChainError: the file is missing or malformed."""
        try:
            data = json.loads(path.read_text())
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise ChainError(f"deployment file {path} is unreadable: {exc}") from exc


def contract_address(sender: str, nonce: int) -> str:
    """The address of the contract that `sender` creates with its transaction number `nonce`
    (CREATE, not CREATE2): the last 20 bytes of keccak256(rlp([sender, nonce])), in the
    project's lower-case 0x form.

    Raises:
        InputError: `sender` is not an address.
        ValueError: a negative nonce.
    """
    if nonce < 0:
        raise ValueError(f"a nonce is never negative, got {nonce}")
    sender_bytes = to_canonical_address(checksum(sender))
    return hex0x(keccak(rlp.encode([sender_bytes, nonce]))[12:])


def find_deployment(
    w3: Web3, deployer: str, artifact: Artifact, lookback: int = LOOKBACK
) -> Deployment | None:
    """This contract build, deployed by `deployer` in one of its last `lookback` transactions,
    or None. Raw web3 calls: the caller retries and translates what they raise."""
    sender = checksum(deployer)
    nonce = int(w3.eth.get_transaction_count(sender))
    for n in range(nonce - 1, max(nonce - lookback, 0) - 1, -1):
        address = checksum(contract_address(sender, n))
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
            tx_hash=hex0x(logs[0]["transactionHash"]) if logs else "",
            deployer=sender.lower(),
        )
    return None


class Deployer(Transactor):
    """The presets of `ChainClient`: deploy, or find and attach to, the ProvenanceLedger."""

    @classmethod
    def embedded(
        cls,
        path: str | Path,
        *,
        private_key: str | bytes | None = None,
        operator_id: str = "operator",
        operator_name: str = "forgeproof operator",
        **options: Any,
    ) -> Self:
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
    ) -> Self:
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
    ) -> tuple[Self, Deployment]:
        """Deploy a new ProvenanceLedger; the sender becomes the first operator's key."""
        artifact = options.pop("artifact", None) or load_artifact()
        bootstrap = cls(  # not attached to anything: it lends its transaction plumbing
            w3,
            private_key=private_key,
            address=NO_ADDRESS,
            check_code=False,
            artifact=artifact,
            **options,
        )
        factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
        data = factory.constructor(operator_id, operator_name).data_in_transaction
        tx, receipt = bootstrap._send({"data": data}, "deploy ProvenanceLedger")
        contract = receipt.get("contractAddress")
        if not contract:
            raise ChainError(f"deployment {tx.tx_hash} produced no contract address")
        deployment = Deployment(
            chain_id=bootstrap.chain_id,
            contract=wire_address(contract),
            block_number=tx.block_number,
            tx_hash=tx.tx_hash,
            deployer=bootstrap.account.address.lower(),
        )
        client = cls(
            w3,
            private_key=private_key,
            address=deployment.contract,
            deployment_block=deployment.block_number,
            artifact=artifact,
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
    ) -> Self:
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
            w3, private_key=private_key, address=NO_ADDRESS, check_code=False, **options
        )
        found = probe._rpc(
            "looking for an earlier deployment",
            lambda: find_deployment(w3, probe.account.address, artifact),
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

    def with_account(self, private_key: str | bytes) -> Self:
        """The same contract and chain, acting as another account (a participant's key)."""
        return type(self)(
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
