"""Fixtures for the ledger: a store on SQLite and (marked `postgres`) on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ledger.ingest import Accepted, check_record
from ledger.records import Record
from ledger.signing import Domain, Signer
from ledger.store import Store, sqlite_url
from tests.conftest import postgres_schema
from tests.ledger.testonly.registry import StaticRegistry

DOMAIN = Domain(chain_id=131277322940537, verifying_contract="0x" + "ab" * 20)


@dataclass(frozen=True)
class JcsVector:
    """One RFC 8785 known answer from tests/vectors/rfc8785."""

    name: str
    value: Any  # the parsed input
    output: bytes  # the expected canonical bytes
    output_hex: bytes  # the same, from the vector's hex file


def rfc8785_vectors(vectors_dir: Path) -> list[JcsVector]:
    import json

    root = vectors_dir / "rfc8785"
    vectors = [
        JcsVector(
            name=p.stem,
            value=json.loads(p.read_text(encoding="utf-8")),
            output=(root / "output" / p.name).read_bytes().rstrip(b"\n"),
            output_hex=bytes.fromhex((root / "outhex" / f"{p.stem}.txt").read_text()),
        )
        for p in sorted((root / "input").glob("*.json"))
    ]
    assert len(vectors) >= 6, f"{root}: expected the RFC 8785 vectors, found {len(vectors)}"
    return vectors


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        s = Store.open(sqlite_url(tmp_path / "ledger.db"))
        yield s
        s.close()
        return
    url = request.getfixturevalue("postgres_url")
    yield from _postgres_store(url)


def _postgres_store(url: str) -> Iterator[Store]:
    with postgres_schema(url) as schema_url:
        s = Store.open(schema_url)
        try:
            yield s
        finally:
            s.close()


@dataclass
class Plant:
    """A registry with a few participants and their signers."""

    store: Store
    registry: StaticRegistry
    signers: dict[str, Signer]

    def record(
        self, who: str = "supplier-a", kind: str = "note", **payload: Any
    ) -> tuple[Record, bytes]:
        signer = self.signers[who]
        rec = Record.new(kind, payload or {"n": 1}, participant=who, address=signer.address)
        return rec, signer.sign(DOMAIN, rec)

    def accepted(self, n: int, who: str = "supplier-a") -> list[Accepted]:
        keys = self.registry.snapshot()
        out = []
        for i in range(n):
            rec, sig = self.record(who, lot=f"LOT-{i}")
            out.append(check_record(rec, sig, DOMAIN, keys))
        return out


@pytest.fixture
def plant(store: Store) -> Plant:
    reg = StaticRegistry()
    signers = {}
    for pid, role in [("operator", "operator"), ("supplier-a", "supplier"), ("auditor", "auditor")]:
        reg.add_participant(pid, pid.title(), [role])
        signers[pid] = Signer.generate()
        reg.add_key(pid, signers[pid].address)
    return Plant(store, reg, signers)
