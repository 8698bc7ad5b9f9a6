"""A real app over a real database: a small plant with one API key per participant."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api.auth import create_api_key
from api.config import Settings
from api.main import create_app
from api.service import Service
from ledger.deployment import Deployment
from ledger.records import Record
from ledger.signing import Signer
from tests.conftest import postgres_schema

PLANT = [
    ("operator", "operator"),
    ("acme", "supplier"),
    ("nordic", "supplier"),
    ("line-3", "manufacturer"),
    ("tuv", "auditor"),
    ("fixit", "maintainer"),
    ("other-maint", "maintainer"),
    ("modelworks", "model_publisher"),
]


@dataclass
class Plant:
    client: TestClient
    service: Service
    keys: dict[str, str]
    signers: dict[str, Signer] = field(default_factory=dict)

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[who]}"}

    def signed(self, who: str, kind: str = "supplier_record", **payload: Any) -> dict[str, Any]:
        s = self.signers[who]
        rec = Record.new(kind, payload or {"lot": "L1"}, participant=who, address=s.address)
        return {
            "record": rec.to_json(),
            "signature": "0x" + s.sign(self.service.dep.domain, rec).hex(),
        }

    def submit(self, who: str, **kw: Any) -> httpx.Response:
        return self.client.post("/v1/records", json=self.signed(who, **kw), headers=self.as_(who))


def make_plant(home: Path, database_url: str | None = None) -> Plant:
    dep = Deployment.init(home, database_url=database_url)
    service = Service(dep, Settings(home=home, sequencer=False))
    keys: dict[str, str] = {}
    signers: dict[str, Signer] = {"operator": dep.signer("operator")}
    for pid, role in PLANT:
        if pid != "operator":
            dep.registry.add_participant(pid, pid.title(), [role])
            signers[pid] = Signer.generate()
            dep.registry.add_key(pid, signers[pid].address, valid_from_us=1)
        keys[pid] = create_api_key(dep.store, pid, role)
    client = TestClient(create_app(service))
    return Plant(client, service, keys, signers)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def plant(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Plant]:
    if request.param == "sqlite":
        p = make_plant(tmp_path / "home")
        yield p
        p.service.dep.close()
        return
    with postgres_schema(request.getfixturevalue("postgres_url")) as url:
        p = make_plant(tmp_path / "home", database_url=url)
        yield p
        p.service.dep.close()
