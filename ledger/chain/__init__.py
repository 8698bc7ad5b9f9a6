"""The chain side of forgeproof: the ProvenanceLedger contract and a client for it.

    from ledger.chain import ChainClient
    chain = ChainClient.embedded("var/chain")  # or .from_url(url, private_key=...)
    anchor = chain.publish_checkpoint(size, root, proof)

See docs/contract.md for the contract and how to check receipts against it with ordinary tools,
and `ledger.chain.client` for how the client is put together.
"""

from ledger.chain.artifact import Artifact, load_artifact
from ledger.chain.client import (
    DEPLOYMENT_FILE,
    ROLE_BITS,
    Anchor,
    ChainCheckpoint,
    ChainClient,
    ChainKey,
    ChainParticipant,
    Deployment,
    PendingCheckpoint,
    ProofSource,
    RegistryEvent,
    RetryPolicy,
    Tx,
    bits_to_roles,
    contract_address,
    roles_to_bits,
)

__all__ = [
    "DEPLOYMENT_FILE",
    "ROLE_BITS",
    "Anchor",
    "Artifact",
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
    "load_artifact",
    "roles_to_bits",
]
