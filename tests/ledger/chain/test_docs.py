"""docs/contract.md's receipt check, run as written against a real chain."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from tests.ledger.chain.testonly import ChainEnv
from tests.ledger.testonly.trees import MemoryTree

DOC = Path(__file__).resolve().parents[3] / "docs" / "contract.md"


def doc_snippet() -> dict[str, Any]:
    section = DOC.read_text().split("## Checking a receipt with ordinary tools")[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code, "no python block in the receipt section of docs/contract.md"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)
    return namespace


def test_documented_receipt_check(env: ChainEnv) -> None:
    check_receipt = doc_snippet()["check_receipt"]
    tree = MemoryTree().extend_to(513)
    client = env.deploy()
    client.publish_checkpoint(100, tree.root(100), [])
    anchor = client.publish_checkpoint(513, tree.root(513), tree.consistency(100, 513))
    receipt: dict[str, Any] = {
        "leaf_index": 150,
        "leaf_hash": "0x" + tree.leaf_hash(150).hex(),
        "inclusion_proof": ["0x" + h.hex() for h in tree.inclusion(150, 513)],
        "checkpoint": {"size": 513, "root": "0x" + tree.root(513).hex()},
        "anchor": {
            k: anchor.to_json()[k] for k in ("chain_id", "contract", "tx_hash", "block_number")
        },
    }
    assert check_receipt(env.w3, receipt) == tree.root(513)

    wrong_leaf = {**receipt, "leaf_hash": "0x" + tree.leaf_hash(151).hex()}
    with pytest.raises(Exception) as info:  # web3's own revert error: the snippet uses web3 only
        check_receipt(env.w3, wrong_leaf)
    selector = keccak(text="InclusionRootMismatch(bytes32,bytes32)")[:4]
    assert "0x" + selector.hex() in str(info.value) or "execution reverted" in str(info.value)
    moved = {**receipt, "anchor": {**receipt["anchor"], "block_number": anchor.block_number - 1}}
    with pytest.raises(ValueError, match="another block"):
        check_receipt(env.w3, moved)
