"""forgeproof's output, read by implementations that are not forgeproof's.

A running service (the real app over a real deployment on the embedded chain) produces
receipts, EPCIS query documents, events and an auditor's export; then:

- ethers 6 (node) recovers every receipt's signer with the receipt's domain as given, and an
  RFC 8785 / RFC 9162 verifier written here in JavaScript checks its leaf and inclusion proof;
- ajv (node), not the validator the service uses, validates every EPCIS document the service
  emits against GS1's EPCIS 2.0 schema, and every receipt against docs/receipt.schema.json;
- GS1's epcis-event-hash-generator, driven directly, recomputes every event ID: on the captured
  documents (the IDs the service reports) and on the export's stored events.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from api.demo.synthetic import PlantConfig, PlantFacts, plant_document, plant_events
from ledger.sequencer import Sequencer
from tests.api.conftest import Plant, close_plant, make_plant

REPO = Path(__file__).resolve().parents[2]
VECTORS = REPO / "tests" / "vectors"
HERE = Path(__file__).parent
EPCIS_SCHEMA = REPO / "ledger" / "epcis" / "schema" / "EPCIS-JSON-Schema.json"
pytestmark = pytest.mark.node


def _need_node() -> str:
    node = shutil.which("node")
    missing = [
        p for p in ("ethers", "ajv", "ajv-formats") if not (REPO / "node_modules" / p).is_dir()
    ]
    if node is None or missing:
        why = "node is not installed" if node is None else f"npm packages missing: {missing}"
        missing(f"{why} (npm install)")
    return node


def node(script: str, items: list[Any], *args: str) -> list[dict[str, Any]]:
    done = subprocess.run(
        [_need_node(), str(HERE / script), *args],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == len(items), done.stdout
    return lines


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """What a plant's service hands out: receipts, query pages, events, an export."""
    plant: Plant = make_plant(tmp_path_factory.mktemp("conformance") / "home")
    try:
        facts = PlantFacts()
        events = list(plant_events(PlantConfig(runs=3, stages=3, raw_lot_uses=2, seed=8), facts))
        document = plant_document(events)
        op = plant.as_("operator")
        captured = plant.client.post("/v1/epcis/capture", json=document, headers=op).json()
        examples = sorted((VECTORS / "epcis" / "examples").glob("*.jsonld"))
        gs1 = [json.loads(p.read_text()) for p in examples if "all_possible" not in p.name]
        for doc in gs1:
            r = plant.client.post("/v1/epcis/capture", json=doc, headers=op)
            assert r.status_code == 201, r.text
            doc["_captured"] = r.json()
        for i in range(4):
            assert plant.submit("acme", lot=f"L{i}", qty=i + 0.5).status_code == 201
            assert plant.predict(f"engine-{i}", rul=10 * i).status_code == 201
        assert plant.service.chain is not None
        Sequencer(plant.service.dep.log, plant.service.chain).step(force=True)
        tuv = plant.as_("tuv")
        size = plant.service.dep.log.committed_size()
        receipts = []
        for i in range(size):
            got = plant.client.get(f"/v1/records/{i}/receipt", headers=tuv).json()
            assert got["status"] == "anchored"
            receipts.append(got["receipt"])
        pages = []
        link: str | None = "/v1/epcis/events?perPage=25"
        while link:
            page = plant.client.get(link, headers=tuv)
            pages.append(page.json())
            link = page.headers.get("link", "").split(">")[0].lstrip("<") or None
        export = plant.client.get(
            "/v1/genealogy/audit", params={"id": facts.finished[-1]}, headers=tuv
        ).json()
        yield {
            "receipts": receipts,
            "pages": pages,
            "export": export,
            "document": document,
            "captured": captured,
            "gs1": gs1,
        }
    finally:
        close_plant(plant)


def test_ethers_recovers_every_signer_with_the_domain_as_given(outputs: Any) -> None:
    receipts = outputs["receipts"]
    for receipt, seen in zip(receipts, node("receipts.mjs", receipts), strict=True):
        assert "error" not in seen, seen
        assert seen["recovered"] == receipt["record"]["producer"]["address"], seen
        assert seen["leaf_ok"] and seen["inclusion_ok"], seen


def test_a_domain_not_as_published_means_another_signer_and_is_refused(outputs: Any) -> None:
    """Issue #14, finding 1: `verify` filled in a missing name and version and ignored extra
    fields, and said "verified" where ethers, given the same file, recovered another signer."""
    from ledger.receipts import verify_receipt

    good = outputs["receipts"][0]
    variants = []
    for change in (
        lambda d: d.pop("name"),
        lambda d: (d.pop("name"), d.pop("version")),
        lambda d: d.update(salt="0x" + "11" * 32),
        lambda d: d.update(version="2"),
    ):
        bad = copy.deepcopy(good)
        change(bad["domain"])
        variants.append(bad)
    for bad, seen in zip(variants, node("receipts.mjs", variants), strict=True):
        assert seen.get("recovered") != good["record"]["producer"]["address"], seen
        verdict = verify_receipt(bad)
        assert not verdict.ok and verdict.failed[0].name == "format", bad["domain"]


def _as_document(events: list[dict[str, Any]]) -> dict[str, Any]:
    contexts = {json.dumps(e.get("@context")) for e in events}
    return {
        "@context": json.loads(contexts.pop()) if len(contexts) == 1 else [],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-12-05T00:00:00Z",
        "epcisBody": {
            "eventList": [{k: v for k, v in e.items() if k != "@context"} for e in events]
        },
    }


def test_ajv_validates_every_epcis_document_the_service_emits(outputs: Any) -> None:
    docs = list(outputs["pages"])
    exported = [item["receipt"]["record"]["payload"] for item in outputs["export"]["events"]]
    docs += [_as_document([e]) for e in exported]
    broken = copy.deepcopy(docs[-1])
    broken["epcisBody"]["eventList"][0]["action"] = "SHOUT"  # the checker can say no
    seen_all = node("schemas.mjs", [*docs, broken], str(EPCIS_SCHEMA), "draft7")
    assert not seen_all.pop()["valid"]
    for doc, seen in zip(docs, seen_all, strict=True):
        assert seen["valid"], (seen["errors"], json.dumps(doc)[:300])
    assert (
        sum(
            len(p["epcisBody"]["queryResults"]["resultsBody"]["eventList"])
            for p in outputs["pages"]
        )
        > 50
    )


def test_ajv_validates_every_receipt_against_the_published_schema(outputs: Any) -> None:
    schema = str(REPO / "docs" / "receipt.schema.json")
    receipts = outputs["receipts"]
    assert all(s["valid"] for s in node("schemas.mjs", receipts, schema, "2020"))
    bad = copy.deepcopy(receipts[0])
    bad["domain"]["salt"] = "0x" + "00" * 32
    upper = copy.deepcopy(receipts[0])
    upper["leaf_hash"] = upper["leaf_hash"].upper().replace("0X", "0x")
    text = copy.deepcopy(receipts[0])
    text["domain"]["chainId"] = str(text["domain"]["chainId"])
    assert not any(s["valid"] for s in node("schemas.mjs", [bad, upper, text], schema, "2020"))


def _gs1_ids(doc: dict[str, Any]) -> list[str]:
    """GS1's generator on a document exactly as given, offline (context URLs mapped to the
    copies GS1 publishes, shipped beside the schema)."""
    from epcis_event_hash_generator import hash_generator, json_to_py
    from pyld import jsonld

    files = {
        "https://ref.gs1.org/standards/epcis/epcis-context.jsonld": "epcis-context.jsonld",
        "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld": "epcis-context.jsonld",
        "https://gs1.github.io/EPCIS/epcis-context.jsonld": "epcis-context.jsonld",
        "https://gs1.github.io/EPCIS/epcis-context-simple.jsonld": "epcis-context-simple.jsonld",
    }

    def loader(url: str, options: Any = None) -> dict[str, Any]:
        text = (EPCIS_SCHEMA.parent / files[url]).read_text()
        return {"contextUrl": None, "documentUrl": url, "document": json.loads(text)}

    previous = jsonld.get_document_loader()
    jsonld.set_document_loader(loader)
    json_to_py._namespaces.clear()
    try:
        events = json_to_py.event_list_from_epcis_document_json(copy.deepcopy(doc))
        return list(hash_generator.epcis_hashes_from_events(events))
    finally:
        json_to_py._namespaces.clear()
        jsonld.set_document_loader(previous)


def test_gs1s_generator_agrees_with_every_event_id(outputs: Any) -> None:
    """Issue #14, finding 3: on the captured documents the service reports exactly GS1's IDs
    (GS1's own examples included, whose lists put type first); on the export, every stored
    event hashes to its storedEventID."""
    captured = [e["eventID"] for e in outputs["captured"]["events"]]
    doc = {k: v for k, v in outputs["document"].items() if k != "_captured"}
    assert captured == _gs1_ids(doc)
    for example in outputs["gs1"]:
        got = example.pop("_captured")
        assert [e["eventID"] for e in got["events"]] == _gs1_ids(example)
    for item in outputs["export"]["events"]:
        payload = item["receipt"]["record"]["payload"]
        [recomputed] = _gs1_ids(_as_document([payload]))
        assert recomputed == item["summary"]["storedEventID"]
