"""Registering participants of a test deployment the way the product does: on chain first."""

from __future__ import annotations

from ledger.chain import ChainClient
from ledger.deployment import Deployment, save_key
from ledger.signing import Signer


def enrol(
    dep: Deployment,
    participant: str,
    roles: list[str],
    *,
    chain: ChainClient | None = None,
    name: str | None = None,
) -> Signer:
    """Register `participant` on the deployment's chain with a fresh key kept in HOME/keys;
    opens (and closes) the chain unless one is given."""
    signer = Signer.generate()
    save_key(dep.home, participant, signer)
    own = chain is None
    chain = chain or dep.open_chain()
    try:
        dep.writer(chain).enrol(participant, name or participant.title(), roles, signer)
    finally:
        if own:
            chain.close()
    return signer
