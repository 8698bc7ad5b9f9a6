"""CBV 2.0 event hash IDs: the reference implementation, offline, one event at a time."""

from __future__ import annotations

import copy
import json
import socket
from typing import Any

import pytest
from epcis_event_hash_generator import hash_generator, json_to_py
from pyld import jsonld

from ledger.epcis.errors import UnsupportedEpcis
from ledger.epcis.hashid import (
    CONTEXTS,
    event_hash_id,
    hash_ids,
    is_hash_id,
    load_document,
    prehash,
    stored_hash_id,
)

SIMPLE = "https://gs1.github.io/EPCIS/epcis-context-simple.jsonld"


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _document_level(doc: dict[str, Any], *, sort_keys: bool = False) -> list[str]:
    """The package's own document-level computation, on the document as given (or with its
    keys sorted), with our offline loader."""
    previous = jsonld.get_document_loader()
    jsonld.set_document_loader(load_document)
    json_to_py._namespaces.clear()
    try:
        copied = json.loads(json.dumps(doc, sort_keys=sort_keys))
        events = json_to_py.event_list_from_epcis_document_json(copied)
        return list(hash_generator.epcis_hashes_from_events(events))
    finally:
        jsonld.set_document_loader(previous)


def test_every_official_example_hashes_offline_as_the_package_does(
    examples: dict[str, Any], offline: None
) -> None:
    """The reference implementation's IDs of GS1's examples, byte for byte: what any other
    repository running it on the same documents computes."""
    ids = set()
    differ = 0
    for name, doc in examples.items():
        events = doc["epcisBody"]["eventList"]
        ours = [event_hash_id(e, doc["@context"]) for e in events]
        assert ours == _document_level(doc), name
        stored = [stored_hash_id(e, doc["@context"]) for e in events]
        assert stored == _document_level(doc, sort_keys=True), name
        assert [hash_ids(e, doc["@context"]) for e in events] == list(
            zip(ours, stored, strict=True)
        )
        differ += sum(a != b for a, b in zip(ours, stored, strict=True))
        assert all(is_hash_id(i) for i in ours)
        ids.update(ours)
    # 9.6.1 appears twice (with and without an error declaration, which the hash ignores).
    assert len(ids) == sum(len(d["epcisBody"]["eventList"]) for d in examples.values()) - 2
    # The events whose bizTransactionList / sourceList / destinationList put type first.
    assert differ == 6


def test_example_event_ids_are_not_cbv_2_hash_ids(examples: dict[str, Any]) -> None:
    """The eventIDs written in GS1's examples predate the final CBV 2.0 algorithm (which
    maps EPC URNs to GS1 Digital Link URIs before hashing): recorded here, so nobody mistakes
    them for test vectors."""
    doc = examples["Example_9.6.1-ObjectEvent.jsonld"]
    event = doc["epcisBody"]["eventList"][0]
    assert is_hash_id(event["eventID"])
    assert event_hash_id(event, doc["@context"]) != event["eventID"]
    pre = prehash(event, doc["@context"])
    assert "epc=https://id.gs1.org/01/10614141073464/21/2017" in pre
    assert pre.startswith("eventType=ObjectEventeventTime=2005-04-04T02:33:31.116Z")


def test_the_reference_id_follows_key_order_the_stored_one_does_not(
    examples: dict[str, Any],
) -> None:
    """The reference implementation hashes the entries of bizTransactionList, sourceList and
    destinationList in the key order given; the stored form sorts them, so the value comes
    before its type as CBV 2.0 rule 13 wants."""
    doc = examples["Example_9.6.2-ObjectEvent.jsonld"]
    event = copy.deepcopy(doc["epcisBody"]["eventList"][0])
    as_given = event_hash_id(event, doc["@context"])
    stored = stored_hash_id(event, doc["@context"])
    assert as_given != stored
    event["sourceList"] = [{"source": s["source"], "type": s["type"]} for s in event["sourceList"]]
    event["destinationList"] = [
        {"destination": d["destination"], "type": d["type"]} for d in event["destinationList"]
    ]
    assert event_hash_id(event, doc["@context"]) == stored  # value first: the two agree
    assert stored_hash_id(event, doc["@context"]) == stored
    assert hash_ids(event, doc["@context"]) == (stored, stored)
    pre = prehash(event, doc["@context"])
    assert (
        "source=https://id.gs1.org/414/4012345002256type=https://ref.gs1.org/cbv/SDT-location"
        in pre
    )


def _base(examples: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    doc = examples["Example_9.6.1-ObjectEvent.jsonld"]
    return copy.deepcopy(doc["epcisBody"]["eventList"][1]), doc["@context"]


def test_same_event_in_another_spelling_has_the_same_id(examples: dict[str, Any]) -> None:
    event, ctx = _base(examples)
    want = event_hash_id(event, ctx)
    respelled = dict(reversed(list(event.items())))  # key order
    respelled["bizTransactionList"] = list(reversed(event["bizTransactionList"]))
    # the same instant in UTC; another prefix for the same extension namespace
    respelled["eventTime"] = "2005-04-05T02:33:31.116Z"
    respelled["ext:myField"] = respelled.pop("example:myField")
    ctx2 = [SIMPLE, {"ext": "http://ns.example.com/epcis/"}]
    respelled["bizStep"] = "https://ref.gs1.org/cbv/BizStep-receiving"
    respelled["eventID"] = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"  # not hashed
    respelled["recordTime"] = "2030-01-01T00:00:00Z"  # not hashed
    assert event_hash_id(respelled, ctx2) == want
    # the event's own @context counts as the document's would
    assert event_hash_id({"@context": ctx2, **respelled}) == want


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.update(eventTime="2005-04-04T20:33:31.117-06:00"),
        lambda e: e.update(disposition="in_transit"),
        lambda e: e.update(epcList=["urn:epc:id:sgtin:0614141.107346.2019"]),
        lambda e: e.update({"example:myField": "changed"}),
        lambda e: e.pop("bizLocation"),
    ],
)
def test_any_change_changes_the_id(examples: dict[str, Any], change: Any) -> None:
    event, ctx = _base(examples)
    before = event_hash_id(event, ctx)
    change(event)
    assert event_hash_id(event, ctx) != before


def test_unknown_contexts_are_refused_without_network(
    examples: dict[str, Any], offline: None
) -> None:
    event, _ = _base(examples)
    with pytest.raises(UnsupportedEpcis, match="cannot be resolved offline"):
        event_hash_id(event, ["https://example.com/context.jsonld"])
    with pytest.raises(UnsupportedEpcis, match=r"not valid JSON-LD.*example\.com/c"):
        event_hash_id(event, [SIMPLE, {"@import": "https://example.com/c"}])
    with pytest.raises(UnsupportedEpcis, match="protected term"):
        event_hash_id(event, [SIMPLE, {"type": "https://example.com/type"}])
    with pytest.raises(UnsupportedEpcis, match="no @context"):
        event_hash_id(event)


def test_the_loader_serves_only_shipped_contexts() -> None:
    for url in CONTEXTS:
        doc = load_document(url)
        assert "@context" in doc["document"] and doc["documentUrl"] == url
    with pytest.raises(jsonld.JsonLdError):
        load_document("https://example.com/context.jsonld")


def test_the_package_state_is_left_as_found(examples: dict[str, Any]) -> None:
    event, ctx = _base(examples)
    copied = json.loads(json.dumps(event))
    before = jsonld.get_document_loader()
    event_hash_id(event, ctx)
    assert jsonld.get_document_loader() is before
    assert json_to_py._namespaces == {}
    assert event == copied  # the package rewrites what it is given; ours is not touched
