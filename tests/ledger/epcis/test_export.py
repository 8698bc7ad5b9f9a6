"""Predictions and inspections as EPCIS events, linked to their records and receipts."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.epcis.capture import capture
from ledger.epcis.errors import SchemaViolation
from ledger.epcis.export import (
    RecordLink,
    disposition_of,
    inspection_event,
    maintenance_event,
    sensor_elements,
)
from ledger.epcis.genealogy import recall_by_model
from ledger.epcis.hashid import event_hash_id
from ledger.epcis.query import query_events
from ledger.epcis.validate import complaints
from ledger.epcis.vocab import NEEDS_REVIEW
from ledger.errors import InputError
from ledger.ingest import check_record
from ledger.receipts import build_receipt, verify_receipt
from ledger.records import Record
from tests.ledger.conftest import DOMAIN
from tests.ledger.epcis.conftest import OPERATOR, Repo

DIGEST = "0x" + "5a" * 32
LOT = "urn:epc:class:lgtin:4012345.000123.B42"
ITEM = "urn:epc:id:sgtin:4012345.000123.1001"
STATION = "urn:epc:id:sgln:4012345.00001.7"


def defect_prediction(**overrides: Any) -> dict[str, Any]:
    """The shape of a defect model's record (ml/inspection.py)."""
    return {
        "task": "defect",
        "image": "plate-0042.jpg",
        "image_sha256": "ab" * 32,
        "probabilities": {"crazing": 0.01, "scratches": 0.97, "patches": 0.02},
        "verdict": "scratches",
        "confidence": 0.97,
        "needs_review": False,
        "model_manifest_digest": DIGEST,
        **overrides,
    }


def rul_prediction() -> dict[str, Any]:
    return {
        "task": "rul",
        "engine_id": 7,
        "input_sha256": "cd" * 32,
        "rul": {"point": 112.4, "intervals": {"0.9": [96.0, 131.5], "0.5": [105.2, 119.0]}},
        "explanation": {"method": "integrated-gradients", "sha256": "ef" * 32},
        "model_manifest_digest": DIGEST,
    }


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        ({}, "non_conformant"),  # a defect class is a defect
        ({"verdict": "ok"}, "conformant"),
        ({"needs_review": True}, NEEDS_REVIEW),
        ({"verdict": "ok", "needs_review": True}, NEEDS_REVIEW),
    ],
)
def test_dispositions(overrides: dict[str, Any], want: str) -> None:
    prediction = defect_prediction(**overrides)
    assert disposition_of(prediction) == want
    event = inspection_event(prediction, event_time="2026-03-01T08:00:00Z", epc_class=LOT)
    assert event["disposition"] == want and event["bizStep"] == "inspecting"
    assert complaints(event) == []


def test_inspection_event_fields_and_link() -> None:
    link = RecordLink(leaf_index=12, leaf_hash=bytes(range(32)))
    event = inspection_event(
        defect_prediction(),
        event_time="2026-03-01T09:00:00.250+01:00",
        time_zone_offset="+01:00",
        epc=ITEM,
        read_point=STATION,
        record=link,
        receipt_url="https://forgeproof.example/receipts/12",
    )
    assert event["epcList"] == [ITEM] and event["readPoint"] == {"id": STATION}
    assert event["fp:modelManifestDigest"] == DIGEST and event["fp:verdict"] == "scratches"
    assert event["fp:recordLeafIndex"] == 12
    assert event["fp:recordLeafHash"] == "0x" + bytes(range(32)).hex()
    assert event["fp:receipt"].endswith("/12")
    assert disposition_of({"verdict": "pass"}, conformant_verdicts={"pass"}) == "conformant"


def test_inspection_refusals() -> None:
    with pytest.raises(InputError, match="exactly one of epc"):
        inspection_event(
            defect_prediction(), event_time="2026-03-01T08:00:00Z", epc=ITEM, epc_class=LOT
        )
    with pytest.raises(InputError, match="string verdict"):
        inspection_event({"error": "unreadable image"}, event_time="2026-03-01T08:00:00Z", epc=ITEM)
    with pytest.raises(SchemaViolation) as caught:
        inspection_event(defect_prediction(), event_time="March 1st", epc=ITEM)
    assert caught.value.complaints[0].path == "$.eventTime"


def test_maintenance_event_carries_its_readings() -> None:
    readings = [
        {"time": "2026-03-01T07:00:00Z", "type": "Temperature", "value": 642.3, "uom": "KEL",
         "fp:sensor": "T24"},
        {"time": "2026-03-01T07:00:00Z", "type": "Pressure", "value": 21.6, "uom": "PS",
         "fp:sensor": "P30"},
        {"time": "2026-03-01T08:00:00Z", "type": "Temperature", "value": 643.0, "uom": "KEL",
         "fp:sensor": "T24"},
    ]  # fmt: skip
    event = maintenance_event(
        rul_prediction(),
        asset="urn:epc:id:giai:4012345.ENGINE7",
        readings=readings,
        event_time="2026-03-01T08:00:05Z",
        disposition="needs_replacement",
    )
    elements = event["sensorElementList"]
    assert [e["sensorMetadata"]["time"] for e in elements] == [
        "2026-03-01T07:00:00Z",
        "2026-03-01T08:00:00Z",
    ]
    assert [len(e["sensorReport"]) for e in elements] == [2, 1]
    assert elements[0]["sensorReport"][1] == {
        "type": "Pressure", "value": 21.6, "uom": "PS", "fp:sensor": "P30"
    }  # fmt: skip
    assert event["fp:rulPoint"] == 112.4 and event["fp:inputSha256"] == "cd" * 32
    assert event["bizStep"] == "sensor_reporting" and complaints(event) == []
    assert event_hash_id(event).startswith("ni:///sha-256;")  # nested fp:rul hashes fine
    assert len(sensor_elements([{"type": "Speed", "value": 1.0}])) == 1
    with pytest.raises(InputError, match="needs the readings"):
        maintenance_event(
            rul_prediction(), asset=ITEM, readings=[], event_time="2026-03-01T08:00:00Z"
        )
    with pytest.raises(InputError, match="reading 0 has no type"):
        sensor_elements([{"value": 1.0}])
    with pytest.raises(InputError, match=r"rul\.point"):
        maintenance_event(
            {"rul": {}}, asset=ITEM, readings=readings, event_time="2026-03-01T08:00:00Z"
        )


def test_prediction_to_event_to_receipts(repo: Repo) -> None:
    """The API's path: log the prediction, export it as an event, capture that."""
    prediction = defect_prediction(needs_review=True)
    record = Record.new("prediction", prediction, participant=OPERATOR, address=repo.signer.address)
    keys = repo.registry.snapshot()
    accepted = check_record(record, repo.signer.sign(DOMAIN, record), DOMAIN, keys)
    (logged,) = repo.log.append([accepted])
    event = inspection_event(
        prediction,
        event_time="2026-03-01T08:00:00Z",
        epc_class=LOT,
        record=RecordLink(logged.index, logged.leaf_hash),
    )
    result = capture(
        repo.log, event, signer=repo.signer, participant=OPERATOR, domain=DOMAIN, keys=keys
    )
    repo.log.checkpoint()
    event_receipt = build_receipt(repo.log, result.events[0].leaf_index, DOMAIN)
    prediction_receipt = build_receipt(
        repo.log, event_receipt["record"]["payload"]["fp:recordLeafIndex"], DOMAIN
    )
    assert verify_receipt(event_receipt).ok and verify_receipt(prediction_receipt).ok
    assert (
        event_receipt["record"]["payload"]["fp:recordLeafHash"] == prediction_receipt["leaf_hash"]
    )
    assert prediction_receipt["record"]["payload"] == prediction
    # Indexed: found by disposition and by model version.
    page = query_events(repo.store, {"EQ_bizStep": "inspecting", "EQ_disposition": NEEDS_REVIEW})
    assert [r.leaf_index for r in page.refs] == [result.events[0].leaf_index]
    assert recall_by_model(repo.store, DIGEST).seeds == [LOT]
