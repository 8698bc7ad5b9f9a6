"""Chain fixtures: `env` runs a test on the embedded chain and, marked `node`, on anvil."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.chain.devnode import AnvilNode, find_anvil
from tests.conftest import missing
from tests.ledger.chain.testonly import ChainEnv


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    """A fresh anvil for the session (FORGEPROOF_ANVIL names the binary); skips without one."""
    if find_anvil() is None:
        missing("anvil not found: run `npm install` or set FORGEPROOF_ANVIL")
    node = AnvilNode.start()
    try:
        yield node.url
    finally:
        node.stop()


@pytest.fixture(scope="module")
def embedded_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChainEnv]:
    env = ChainEnv.embedded_at(tmp_path_factory.mktemp("chain"))
    try:
        yield env
    finally:
        env.close()


@pytest.fixture(scope="session")
def anvil_env(anvil_url: str) -> ChainEnv:
    return ChainEnv.anvil(anvil_url)


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.node)])
def env(request: pytest.FixtureRequest) -> ChainEnv:
    env: ChainEnv = request.getfixturevalue(f"{request.param}_env")
    return env


@pytest.fixture
def chain_dir(tmp_path: Path) -> Path:
    return tmp_path / "chain"
