"""The committed artifacts match their sources; runtime code needs only the artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.chain import compile as solc
from ledger.chain import load_artifact
from tests.conftest import missing


@pytest.mark.parametrize("name", solc.CONTRACTS)
def test_artifact_is_not_stale(name: str) -> None:
    """Source digest, settings and compiler version: fails as soon as the .sol is edited."""
    assert solc.stale_reasons(name) == [], "run `python -m ledger.chain.compile`"
    artifact = load_artifact(name)
    assert artifact.compiler_version.startswith(solc.SOLC_VERSION + "+")
    assert artifact.bytecode.endswith(artifact.deployed_bytecode[-53:])  # same metadata hash


def test_stale_reasons_notice_an_edit(tmp_path: Path) -> None:
    committed = json.loads(solc.artifact_path("ProvenanceLedger").read_text())
    (tmp_path / "ProvenanceLedger.json").write_text(
        json.dumps({**committed, "sourceSha256": "0x" + "00" * 32})
    )
    [reason] = solc.stale_reasons("ProvenanceLedger", tmp_path)
    assert reason.startswith("source digest is 0x")


@pytest.mark.slow
def test_recompiling_reproduces_the_artifacts() -> None:
    """With solc-js at hand, a fresh compile gives byte-identical artifacts."""
    if solc.find_solcjs() is None:
        missing("solc-js not installed (npm install)")
    for name, artifact in solc.compile_all().items():
        committed = json.loads(solc.artifact_path(name).read_text())
        assert artifact["bytecode"] == committed["bytecode"], name
        assert artifact["deployedBytecode"] == committed["deployedBytecode"], name
        assert artifact == committed, name


def test_runtime_does_not_load_the_compiler() -> None:
    code = (
        "import sys, ledger.chain, ledger.chain.client, ledger.chain._embedded; "
        "sys.exit('solcx' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(solc.REPO)}
    assert subprocess.run([sys.executable, "-c", code], env=env, cwd=solc.REPO).returncode == 0
