"""Contract tests run on the embedded chain: py-evm executes the same bytecode as anvil."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.chain import ChainClient
from tests.ledger.chain.testonly import ChainEnv


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainEnv]:
    env = ChainEnv.embedded_at(tmp_path_factory.mktemp("chain"))
    try:
        yield env
    finally:
        env.close()


@pytest.fixture
def ledger(env: ChainEnv) -> ChainClient:
    """A freshly deployed ProvenanceLedger, its deployer's key the only operator key."""
    return env.deploy()
