"""Fixtures for the EPCIS layer: a repository (log, registry, signing key) on each database,
the official GS1 examples, and a small generated plant captured once per database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.demo.synthetic import PlantConfig, PlantFacts, plant_document, plant_events
from ledger.epcis.capture import CaptureResult, capture
from ledger.log import Log
from ledger.signing import Signer
from ledger.store import Store, sqlite_url
from tests.ledger.conftest import DOMAIN, _postgres_store
from tests.ledger.testonly.registry import StaticRegistry

OPERATOR = "epcis-repository"


@dataclass
class Repo:
    """A store with an operator key: what the API hands the EPCIS layer."""

    store: Store
    log: Log
    registry: StaticRegistry
    signer: Signer

    def capture(self, document: Any) -> CaptureResult:
        return capture(
            self.log,
            document,
            signer=self.signer,
            participant=OPERATOR,
            domain=DOMAIN,
            keys=self.registry.snapshot(),
        )

    def counts(self) -> tuple[int, int, int]:
        """(records, indexed events, identifier links): what a refusal must leave alone."""
        with self.store.reading() as conn:
            records, events, links = (
                int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar_one())
                for t in ("records", "epcis_events", "epcis_links")
            )
        return records, events, links


def make_repo(store: Store) -> Repo:
    reg = StaticRegistry()
    reg.add_participant(OPERATOR, "EPCIS repository", ["operator"])
    signer = Signer.generate()
    reg.add_key(OPERATOR, signer.address)
    return Repo(store, Log(store), reg, signer)


@pytest.fixture
def repo(store: Store) -> Repo:
    return make_repo(store)


@pytest.fixture(scope="session")
def examples(vectors_dir: Path) -> dict[str, dict[str, Any]]:
    """The official GS1 EPCIS 2.0 examples (tests/vectors/epcis), by file name."""
    folder = vectors_dir / "epcis" / "examples"
    found = {p.name: json.loads(p.read_text()) for p in sorted(folder.glob("*.jsonld"))}
    assert len(found) >= 9, f"expected the 9 official examples, found {sorted(found)}"
    return found


# The one official example the official schema refuses (see test_validate.py).
SCHEMA_INVALID_EXAMPLE = "transformation_event_all_possible_fields.jsonld"


def repaired(doc: dict[str, Any]) -> dict[str, Any]:
    """The example without the `type` its sensorElement may not carry."""
    fixed = json.loads(json.dumps(doc))
    for event in fixed["epcisBody"]["eventList"]:
        for element in event.get("sensorElementList", []):
            element.pop("type", None)
    return fixed


SMALL_PLANT = PlantConfig(
    runs=8,
    stages=4,
    raw_lot_uses=3,
    merge_p=0.5,
    runs_per_pallet=3,
    nonconformant_p=0.08,
    review_p=0.05,
    rare_model_p=0.08,
    seed=11,
)


@dataclass
class CapturedPlant:
    repo: Repo
    facts: PlantFacts
    events: list[dict[str, Any]]
    result: CaptureResult


def module_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Store]:
    """A store for read-only tests, on the database `request.param` names."""
    if request.param == "sqlite":
        store = Store.open(sqlite_url(tmp_path_factory.mktemp("epcis") / "ledger.db"))
        yield store
        store.close()
    else:
        yield from _postgres_store(request.getfixturevalue("postgres_url"))


DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session", params=DATABASES)
def plant(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CapturedPlant]:
    """The small plant's history, captured and checkpointed once per session and database.
    Tests only read it."""
    for store in module_store(request, tmp_path_factory):
        repo = make_repo(store)
        facts = PlantFacts()
        events = list(plant_events(SMALL_PLANT, facts))
        result = repo.capture(plant_document(events))
        repo.log.checkpoint()
        yield CapturedPlant(repo, facts, events, result)
