"""The committed contract artifacts (ledger/chain/build/*.json, package data compiled from
contracts/*.sol): ABI and bytecode, no compiler.

`python -m ledger.chain.compile` writes them; everything at runtime reads them from here,
through importlib.resources, so an installed wheel has them as much as a checkout does.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from ledger.errors import ChainError

BUILD_DIR = Path(str(files("ledger.chain") / "build"))


@dataclass(frozen=True)
class Artifact:
    """A compiled contract: what a client needs to deploy it and talk to it."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    deployed_bytecode: bytes
    compiler_version: str
    source_sha256: str


@functools.cache
def load_artifact(name: str = "ProvenanceLedger", build_dir: Path = BUILD_DIR) -> Artifact:
    """Read `build_dir/<name>.json`.

    Raises:
        ChainError: the artifact is missing or malformed (run `python -m ledger.chain.compile`).
    """
    path = build_dir / f"{name}.json"
    try:
        data = json.loads(path.read_text())
        return Artifact(
            name=data["contractName"],
            abi=data["abi"],
            bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
            deployed_bytecode=bytes.fromhex(data["deployedBytecode"].removeprefix("0x")),
            compiler_version=data["compiler"]["version"],
            source_sha256=data["sourceSha256"],
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ChainError(
            f"contract artifact {path} is unreadable ({exc}); run `python -m ledger.chain.compile`"
        ) from exc
