"""Capture: every official example round-trips; refusals store nothing; captures are
atomic and idempotent; error declarations; events signed by their producers."""

from __future__ import annotations

import copy
from typing import Any

import pytest

import ledger.epcis.capture as capture_module
from ledger.epcis.capture import capture, capture_signed
from ledger.epcis.errors import SchemaViolation, UnsupportedEpcis
from ledger.epcis.hashid import event_hash_id, stored_hash_id
from ledger.epcis.query import get_event, query_events
from ledger.errors import InputError, KeyNotAuthorized, SignatureError
from ledger.receipts import build_receipt, verify_receipt
from ledger.records import Record
from ledger.signing import Signer
from tests.ledger.conftest import DOMAIN
from tests.ledger.epcis.conftest import SCHEMA_INVALID_EXAMPLE, Repo, repaired

EXAMPLES = [
    "Example_9.6.1-ObjectEvent-with-error-declaration.jsonld",
    "Example_9.6.1-ObjectEvent.jsonld",
    "Example_9.6.2-ObjectEvent.jsonld",
    "Example_9.6.3-AggregationEvent.jsonld",
    "Example_9.6.4-TransformationEvent.jsonld",
    "SensorDataExample1.jsonld",
    "SensorDataExample2.jsonld",
    "SensorDataExample3.jsonld",
    SCHEMA_INVALID_EXAMPLE,
]


def test_the_list_covers_every_official_example(examples: dict[str, Any]) -> None:
    assert sorted(EXAMPLES) == sorted(examples)


@pytest.mark.parametrize("name", EXAMPLES)
def test_official_example_round_trips(repo: Repo, examples: dict[str, Any], name: str) -> None:
    doc = examples[name]
    if name == SCHEMA_INVALID_EXAMPLE:
        with pytest.raises(SchemaViolation, match=r"sensorElementList\[0\]"):
            repo.capture(doc)
        assert repo.counts() == (0, 0, 0)
        doc = repaired(doc)
    result = repo.capture(doc)
    sent = doc["epcisBody"]["eventList"]
    assert result.new == len(sent) and repo.log.size == len(sent)
    for original, captured in zip(sent, result.events, strict=True):
        assert captured.event_id == event_hash_id(original, doc["@context"])
        back, ref = get_event(repo.store, captured.event_id)
        assert ref.leaf_index == captured.leaf_index and ref.leaf_hash == captured.leaf_hash
        # What the repository adds: the document's context, recordTime, and the hash ID as
        # eventID where the producer gave none. Everything else comes back as sent.
        assert back.pop("@context") == doc["@context"]
        assert back.pop("recordTime")
        if "eventID" not in original:
            assert back.pop("eventID") == captured.event_id
        assert back == original
        # Stored with sorted keys (RFC 8785): recomputed, it gives the stored form's ID, which
        # is the captured one unless entries of its lists put their type first.
        assert event_hash_id({"@context": doc["@context"], **back}) == ref.stored_event_id
        assert ref.stored_event_id == stored_hash_id(original, doc["@context"])
        assert get_event(repo.store, ref.stored_event_id)[1] == ref  # found by either ID
    page = query_events(repo.store, {})
    assert [r.event_id for r in page.refs] == [e.event_id for e in result.events]


def test_capture_is_idempotent(repo: Repo, examples: dict[str, Any]) -> None:
    doc = examples["Example_9.6.1-ObjectEvent.jsonld"]
    first = repo.capture(doc)
    counts = repo.counts()
    again = repo.capture(copy.deepcopy(doc))
    assert again.new == 0 and all(e.duplicate for e in again.events)
    assert [(e.event_id, e.leaf_index, e.leaf_hash) for e in again.events] == [
        (e.event_id, e.leaf_index, e.leaf_hash) for e in first.events
    ]
    assert repo.counts() == counts and repo.log.size == 2
    # One event alone, then in a document with a new one; and the same event twice at once.
    single = {"@context": doc["@context"], **doc["epcisBody"]["eventList"][1]}
    assert repo.capture(single).events[0].duplicate
    other = examples["Example_9.6.2-ObjectEvent.jsonld"]["epcisBody"]["eventList"][0]
    twice = copy.deepcopy(doc)
    twice["epcisBody"]["eventList"] = [other, doc["epcisBody"]["eventList"][0], other]
    mixed = repo.capture(twice)
    assert [e.duplicate for e in mixed.events] == [False, True, True]
    assert mixed.events[0].leaf_index == mixed.events[2].leaf_index == 2
    assert repo.log.size == 3


def test_a_bad_event_refuses_the_whole_document(repo: Repo, examples: dict[str, Any]) -> None:
    doc = copy.deepcopy(examples["Example_9.6.1-ObjectEvent.jsonld"])
    doc["epcisBody"]["eventList"][1]["eventTime"] = "2005-13-01T00:00:00Z"
    with pytest.raises(SchemaViolation) as caught:
        repo.capture(doc)
    assert caught.value.complaints[0].path == "$.epcisBody.eventList[1].eventTime"
    assert repo.counts() == (0, 0, 0)
    doc["epcisBody"]["eventList"][1]["eventTime"] = "2005-04-04T20:33:31.116-06:00"
    doc["@context"] = [*doc["@context"], "https://example.com/private-context.jsonld"]
    with pytest.raises(UnsupportedEpcis, match="private-context"):
        repo.capture(doc)
    assert repo.counts() == (0, 0, 0)


def test_a_failure_inside_the_transaction_leaves_nothing(
    repo: Repo, examples: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("disk full")

    # Fault injection: the records are appended, then indexing fails in the same transaction.
    monkeypatch.setattr(capture_module, "write_index", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        repo.capture(examples["Example_9.6.1-ObjectEvent.jsonld"])
    monkeypatch.undo()
    assert repo.counts() == (0, 0, 0) and repo.log.size == 0
    assert repo.capture(examples["Example_9.6.1-ObjectEvent.jsonld"]).new == 2
    assert repo.log.size == repo.log.committed_size() == 2


def test_an_unregistered_key_stores_nothing(repo: Repo, examples: dict[str, Any]) -> None:
    with pytest.raises(KeyNotAuthorized):
        capture(
            repo.log,
            examples["Example_9.6.1-ObjectEvent.jsonld"],
            signer=Signer.generate(),
            participant="epcis-repository",
            domain=DOMAIN,
            keys=repo.registry.snapshot(),
        )
    assert repo.counts() == (0, 0, 0)


def test_error_declarations(repo: Repo, examples: dict[str, Any]) -> None:
    plain = repo.capture(examples["Example_9.6.1-ObjectEvent.jsonld"])
    declared = repo.capture(examples["Example_9.6.1-ObjectEvent-with-error-declaration.jsonld"])
    first, second = declared.events
    # Same hash ID (errorDeclaration is outside it), but a new statement: logged once.
    assert first.event_id == plain.events[0].event_id and not first.duplicate
    assert first.leaf_index == 2 and second.duplicate and repo.log.size == 3
    back, ref = get_event(repo.store, first.event_id)
    assert back["errorDeclaration"]["reason"] == "incorrect_data"
    assert ref.leaf_index == 0 and ref.error_declared_by == 2
    again = repo.capture(examples["Example_9.6.1-ObjectEvent-with-error-declaration.jsonld"])
    assert all(e.duplicate for e in again.events) and again.events[0].leaf_index == 2
    assert repo.log.size == 3


def test_receipts_of_captured_events_verify(repo: Repo, examples: dict[str, Any]) -> None:
    result = repo.capture(examples["Example_9.6.3-AggregationEvent.jsonld"])
    repo.log.checkpoint()
    receipt = build_receipt(repo.log, result.events[0].leaf_index, DOMAIN)
    assert receipt["record"]["kind"] == "epcis_event"
    assert receipt["record"]["payload"]["parentID"] == "urn:epc:id:sscc:0614141.1234567890"
    assert verify_receipt(receipt).ok


def _signed(repo: Repo, payload: dict[str, Any], kind: str = "epcis_event") -> Any:
    signer = Signer.generate()
    if "supplier" not in {p.id for p in repo.registry.participants()}:
        repo.registry.add_participant("supplier", "Supplier", ["supplier"])
    repo.registry.add_key("supplier", signer.address)
    record = Record.new(kind, payload, participant="supplier", address=signer.address)
    return record, signer.sign(DOMAIN, record)


def test_events_signed_by_their_producers(repo: Repo, examples: dict[str, Any]) -> None:
    doc = examples["Example_9.6.4-TransformationEvent.jsonld"]
    event = {"@context": doc["@context"], **doc["epcisBody"]["eventList"][0]}
    del event["eventID"]
    record, signature = _signed(repo, event)
    keys = repo.registry.snapshot()
    result = capture_signed(repo.log, [(record, signature)], domain=DOMAIN, keys=keys)
    assert result.new == 1
    assert repo.log.get(0).record() == record  # stored exactly as signed: no eventID added
    again = capture_signed(repo.log, [(record, signature)], domain=DOMAIN, keys=keys)
    assert again.events[0].duplicate and repo.log.size == 1

    wrong_kind, sig = _signed(repo, event, kind="note")
    with pytest.raises(InputError, match="submission 0: record kind is 'note'"):
        capture_signed(repo.log, [(wrong_kind, sig)], domain=DOMAIN, keys=repo.registry.snapshot())
    bad_event, sig = _signed(repo, {**event, "action": "ADD"})
    with pytest.raises(SchemaViolation) as caught:
        capture_signed(repo.log, [(bad_event, sig)], domain=DOMAIN, keys=repo.registry.snapshot())
    assert caught.value.complaints[0].path.startswith("$[0].record.payload")
    other = {**event, "eventTime": "2013-10-31T14:58:57.591Z"}
    good, good_sig = _signed(repo, other)
    forged = good_sig[:10] + bytes([good_sig[10] ^ 1]) + good_sig[11:]
    with pytest.raises(SignatureError):
        capture_signed(repo.log, [(good, forged)], domain=DOMAIN, keys=repo.registry.snapshot())
    assert repo.counts()[0] == 1


def test_an_event_is_found_under_the_reference_id_and_once_in_any_key_order(
    repo: Repo, examples: dict[str, Any]
) -> None:
    """Issue #14, finding 3: the ID is the reference implementation's on the document as
    captured (another repository computes the same), and the same event written with its
    list entries in another key order is still the same event."""
    doc = examples["Example_9.6.2-ObjectEvent.jsonld"]
    [reference] = _reference_ids(doc)
    first = repo.capture(doc)
    event = {"@context": doc["@context"], **doc["epcisBody"]["eventList"][0]}
    assert first.events[0].event_id == reference and not first.events[0].duplicate
    assert get_event(repo.store, reference)[1].leaf_index == first.events[0].leaf_index
    value_first = copy.deepcopy(event)
    value_first["sourceList"] = [
        {"source": s["source"], "type": s["type"]} for s in event["sourceList"]
    ]
    value_first["destinationList"] = [
        {"destination": d["destination"], "type": d["type"]} for d in event["destinationList"]
    ]
    again = repo.capture(value_first)
    assert again.events[0].duplicate and again.events[0].event_id == reference
    assert repo.log.size == 1


def _reference_ids(doc: dict[str, Any]) -> list[str]:
    """GS1's epcis-event-hash-generator on the document exactly as given, offline."""
    from epcis_event_hash_generator import hash_generator, json_to_py
    from pyld import jsonld

    from ledger.epcis.hashid import load_document

    previous = jsonld.get_document_loader()
    jsonld.set_document_loader(load_document)
    json_to_py._namespaces.clear()
    try:
        events = json_to_py.event_list_from_epcis_document_json(copy.deepcopy(doc))
        return list(hash_generator.epcis_hashes_from_events(events))
    finally:
        jsonld.set_document_loader(previous)
