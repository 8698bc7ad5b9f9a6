"""Drift check: the vendored standards files are still byte for byte those in ../shared/standards.

The conformance tests read tests/vectors (and ledger/epcis/schema) and never skip; this check
needs ../shared and skips without it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO

# Folders copied whole from ../shared/standards, and single files copied from it.
TREES = ("rfc6962", "rfc8785", "epcis/examples")
FILES = ("epcis/LICENSE",)
# Shipped with the code rather than under tests/vectors.
SCHEMA_DIR = REPO / "ledger" / "epcis" / "schema"
SCHEMA_FILES = (
    "EPCIS-JSON-Schema.json",
    "epcis-context.jsonld",
    "epcis-context-simple.jsonld",
    "LICENSE",
)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("tree", TREES)
def test_vendored_tree_is_the_shared_one(vectors_dir: Path, shared_dir: Path, tree: str) -> None:
    ours = _files(vectors_dir / tree)
    theirs = _files(shared_dir / "standards" / tree)
    assert ours, f"tests/vectors/{tree} is empty"
    assert sorted(ours) == sorted(theirs), tree
    changed = [name for name in ours if ours[name] != theirs[name]]
    assert changed == [], f"tests/vectors/{tree}: differ from ../shared/standards/{tree}"


@pytest.mark.parametrize("name", FILES)
def test_vendored_file_is_the_shared_one(vectors_dir: Path, shared_dir: Path, name: str) -> None:
    assert (vectors_dir / name).read_bytes() == (shared_dir / "standards" / name).read_bytes()


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_shipped_epcis_schema_is_the_shared_one(shared_dir: Path, name: str) -> None:
    ours = (SCHEMA_DIR / name).read_bytes()
    assert ours == (shared_dir / "standards" / "epcis" / name).read_bytes()
