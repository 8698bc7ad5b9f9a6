"""ChainClient: the ProvenanceLedger contract seen from Python, on any EVM chain.

Two presets and one plain constructor:

    ChainClient.embedded(path)                      eth-tester/py-evm, persisted under `path`
    ChainClient.from_url(url, private_key=...)      any JSON-RPC node (anvil, geth, a testnet)
    ChainClient(w3, private_key=..., address=...)   a Web3 you built, attached to a deployment

`ChainClient` is a façade over one module per job, each a layer of the class:

    transactions   signing, nonces, fees, gas, receipts, stalls, retries (`Transactor`)
    registry       participants, keys, roles and the registry's events
    checkpoints    publishing checkpoints (through reorgs), reading them, checking anchors
    deploy         deploying, finding an earlier deployment, attaching (the presets)

Errors from web3, eth-tester and HTTP are translated on the way up (`_errors`): reverts
become `TransactionReverted` (with the contract's custom error name), unreachable nodes
`ChainUnavailable` after retries with exponential backoff, anything else `ChainError`.
"""

from __future__ import annotations

from ledger.chain.checkpoints import (
    Anchor,
    ChainCheckpoint,
    CheckpointOps,
    PendingCheckpoint,
    ProofSource,
)
from ledger.chain.deploy import DEPLOYMENT_FILE, Deployer, Deployment, contract_address
from ledger.chain.registry import (
    ROLE_BITS,
    ChainKey,
    ChainParticipant,
    RegistryEvent,
    RegistryOps,
    bits_to_roles,
    roles_to_bits,
)
from ledger.chain.transactions import RetryPolicy, Tx

# What this module exported before it was split: callers import them from here, too.
__all__ = [
    "DEPLOYMENT_FILE",
    "ROLE_BITS",
    "Anchor",
    "ChainCheckpoint",
    "ChainClient",
    "ChainKey",
    "ChainParticipant",
    "Deployment",
    "PendingCheckpoint",
    "ProofSource",
    "RegistryEvent",
    "RetryPolicy",
    "Tx",
    "bits_to_roles",
    "contract_address",
    "roles_to_bits",
]


class ChainClient(Deployer, RegistryOps, CheckpointOps):
    """The ProvenanceLedger contract on one chain, acting as one account (the operator's key).

    Constructed as `Transactor` says (see its `__init__` for every option), or through the
    presets. Thread-safe: transactions are serialised (one nonce sequence), calls may run in
    parallel except on the embedded chain, whose provider serialises everything.
    """
