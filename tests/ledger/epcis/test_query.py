"""SimpleEventQuery semantics, paging, and a cross-check against a naive reference."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from ledger.epcis.errors import QueryParameterError
from ledger.epcis.query import get_event, parse_query, query_events
from ledger.epcis.validate import complaints
from ledger.epcis.vocab import cbv_name, time_us
from ledger.errors import NotFound
from tests.ledger.epcis.conftest import DATABASES, CapturedPlant, Repo, make_repo, module_store

CONTEXT = ["https://ref.gs1.org/standards/epcis/epcis-context.jsonld"]
ITEM1 = "urn:epc:id:sgtin:0614141.107346.1"
ITEM2 = "urn:epc:id:sgtin:0614141.107346.2"
LOT1 = "urn:epc:class:lgtin:4012345.011111.L1"
CASE = "urn:epc:id:sscc:0614141.0000000001"


def _ev(kind: str, time: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "eventTime": time, "eventTimeZoneOffset": "+00:00", **fields}


EVENTS = [
    _ev("ObjectEvent", "2026-01-01T10:00:00+01:00", epcList=[ITEM1, ITEM2], action="ADD",
        bizStep="commissioning", disposition="active",
        readPoint={"id": "urn:epc:id:sgln:0614141.00001.0"}),
    _ev("ObjectEvent", "2026-01-01T10:00:00Z", quantityList=[{"epcClass": LOT1, "quantity": 5}],
        action="OBSERVE", bizStep="https://ref.gs1.org/cbv/BizStep-shipping"),
    _ev("AggregationEvent", "2026-01-01T11:00:00Z", parentID=CASE, childEPCs=[ITEM1],
        childQuantityList=[{"epcClass": LOT1}], action="ADD", bizStep="packing"),
    _ev("TransformationEvent", "2026-01-01T12:00:00Z", inputEPCList=[ITEM2],
        inputQuantityList=[{"epcClass": LOT1, "quantity": 1}],
        outputEPCList=["urn:epc:id:sgtin:4012345.022222.9"],
        outputQuantityList=[{"epcClass": "urn:epc:class:lgtin:4012345.022222.L9"}],
        bizStep="commissioning"),
    _ev("AssociationEvent", "2026-01-01T13:00:00Z", parentID="urn:epc:id:giai:4012345.M1",
        childEPCs=[ITEM1], action="ADD"),
    _ev("ObjectEvent", "2026-01-01T14:00:00Z", epcList=[CASE], action="OBSERVE",
        bizStep="shipping", disposition="in_transit"),
]  # fmt: skip


def _capture(repo: Repo) -> Repo:
    doc = {
        "@context": CONTEXT,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-01-02T00:00:00Z",
        "epcisBody": {"eventList": EVENTS},
    }
    assert repo.capture(doc).new == len(EVENTS)
    return repo


@pytest.fixture(scope="module", params=DATABASES)
def indexed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Repo]:
    """The six events above, captured once per database; tests only read."""
    for store in module_store(request, tmp_path_factory):
        yield _capture(make_repo(store))


def _run(repo: Repo, params: dict[str, Any]) -> list[int]:
    page = query_events(repo.store, params, per_page=1000)
    assert complaints(page.document) == []  # every answer is a valid EPCISQueryDocument
    assert page.next_page_token is None
    return [r.leaf_index for r in page.refs]


@pytest.mark.parametrize(
    ("params", "want"),
    [
        ({}, [0, 1, 2, 3, 4, 5]),
        ({"eventType": "ObjectEvent"}, [0, 1, 5]),
        ({"eventType": "AggregationEvent|TransformationEvent"}, [2, 3]),
        ({"eventType": ["AggregationEvent", "TransformationEvent"]}, [2, 3]),
        ({"GE_eventTime": "2026-01-01T11:00:00Z"}, [2, 3, 4, 5]),  # GE: inclusive
        ({"LT_eventTime": "2026-01-01T11:00:00Z"}, [0, 1]),  # LT: exclusive
        ({"GE_eventTime": "2026-01-01T12:00:00+01:00"}, [2, 3, 4, 5]),  # offsets count
        ({"GE_eventTime": "2026-01-01T09:00:00Z", "LT_eventTime": "2026-01-01T09:00:00.001Z"}, [0]),
        ({"EQ_bizStep": "shipping"}, [1, 5]),  # bare name and web URI spellings are one
        ({"EQ_bizStep": "urn:epcglobal:cbv:bizstep:shipping"}, [1, 5]),
        ({"EQ_bizStep": "https://ref.gs1.org/cbv/BizStep-shipping|packing"}, [1, 2, 5]),
        ({"EQ_disposition": "in_transit"}, [5]),
        ({"EQ_action": "ADD"}, [0, 2, 4]),
        ({"EQ_readPoint": "urn:epc:id:sgln:0614141.00001.0"}, [0]),
        ({"MATCH_epc": ITEM1}, [0, 2, 4]),  # epcList and childEPCs, not inputs
        ({"MATCH_epc": "urn:epc:idpat:sgtin:0614141.107346.*"}, [0, 2, 4]),
        ({"MATCH_epc": [ITEM1, CASE]}, [0, 2, 4, 5]),
        ({"MATCH_anyEPC": ITEM2}, [0, 3]),
        ({"MATCH_anyEPC": CASE}, [2, 5]),
        ({"MATCH_parentID": CASE}, [2]),
        ({"MATCH_parentID": "urn:epc:idpat:sscc:0614141.*"}, [2]),
        ({"MATCH_parentID": "urn:epc:idpat:sscc:*.*"}, [2]),
        ({"MATCH_inputEPC": ITEM2}, [3]),
        ({"MATCH_outputEPC": "urn:epc:idpat:sgtin:4012345.022222.*"}, [3]),
        ({"MATCH_outputEPC": "urn:epc:idpat:sgtin:4012345.022222.9"}, [3]),
        ({"MATCH_epcClass": "urn:epc:idpat:sgtin:4012345.011111.*"}, [1, 2]),
        ({"MATCH_inputEPCClass": LOT1}, [3]),
        ({"MATCH_outputEPCClass": "urn:epc:idpat:sgtin:4012345.022222.*"}, [3]),
        ({"MATCH_anyEPCClass": "urn:epc:idpat:sgtin:4012345.*.*"}, [1, 2, 3]),
        ({"MATCH_epc": "urn:epc:idpat:sgtin:0614141.107346.3"}, []),
        ({"eventType": "ObjectEvent", "MATCH_anyEPC": CASE}, [5]),
        ({"MATCH_anyEPC": ITEM1, "EQ_action": "ADD", "GE_eventTime": "2026-01-01T12:00:00Z"}, [4]),
        ({"orderDirection": "DESC", "EQ_bizStep": "commissioning"}, [3, 0]),
    ],
)
def test_parameter_semantics(indexed: Repo, params: dict[str, Any], want: list[int]) -> None:
    assert _run(indexed, params) == want


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"EQ_bizstep": "x"}, "unknown query parameter(s) EQ_bizstep"),
        ({"GE_eventTime": "yesterday"}, "GE_eventTime: expected an RFC 3339 time"),
        ({"GE_eventTime": ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"]}, "expected one"),
        ({"MATCH_epc": "urn:epc:idpat:sgtin:*.107346.1"}, "a field follows a '*'"),
        ({"MATCH_epc": "urn:epc:idpat:sgtin:0614141.1*.*"}, "'*' must stand alone"),
        ({"MATCH_epc": "urn:epc:idpat:sgtin"}, "not an EPC pattern URI"),
        ({"eventType": "ThingEvent"}, "eventType: 'ThingEvent' is not one of"),
        ({"perPage": "0"}, "perPage: expected 1 to 1000"),
        ({"perPage": "\u00b2"}, "perPage: expected 1 to 1000"),  # isdigit, yet not for int()
        ({"orderBy": "eventTime"}, "only recordTime"),
        ({"EQ_action": ""}, "expected at least one value"),
        ({"EQ_action": 5}, "expected a string or a list of strings"),
        ({"nextPageToken": "garbage"}, "not a page token of ours"),
    ],
)
def test_bad_parameters_are_refused(indexed: Repo, params: dict[str, Any], message: str) -> None:
    with pytest.raises(QueryParameterError, match=re.escape(message)):
        query_events(indexed.store, params)


def test_pages(indexed: Repo) -> None:
    seen: list[int] = []
    token = None
    pages = 0
    while True:
        page = query_events(indexed.store, {"perPage": "4"}, per_page=2, page_token=token)
        assert complaints(page.document) == []
        seen += [r.leaf_index for r in page.refs]
        pages += 1
        token = page.next_page_token
        if token is None:
            break
        # The REST binding's way: perPage and nextPageToken as parameters.
        same = query_events(indexed.store, {"perPage": "2", "nextPageToken": token})
        following = query_events(indexed.store, {}, per_page=2, page_token=token)
        assert same.refs == following.refs
    assert seen == [0, 1, 2, 3, 4, 5] and pages == 3
    first = query_events(indexed.store, {"eventType": "ObjectEvent"}, per_page=1)
    assert first.next_page_token is not None
    with pytest.raises(QueryParameterError, match="belongs to a different query"):
        query_events(
            indexed.store, {"eventType": "AggregationEvent"}, page_token=first.next_page_token
        )
    down = query_events(indexed.store, {"orderDirection": "DESC"}, per_page=4)
    rest = query_events(
        indexed.store, {"orderDirection": "DESC"}, per_page=4, page_token=down.next_page_token
    )
    assert [r.leaf_index for r in down.refs + rest.refs] == [5, 4, 3, 2, 1, 0]


def test_new_events_appear_on_later_pages(repo: Repo) -> None:
    indexed = _capture(repo)
    page = query_events(indexed.store, {}, per_page=6)
    assert page.next_page_token is None and len(page.refs) == 6
    first = query_events(indexed.store, {}, per_page=5)
    extra = {"@context": CONTEXT, **_ev("ObjectEvent", "2026-01-03T00:00:00Z",
             epcList=[ITEM1], action="OBSERVE")}  # fmt: skip
    indexed.capture(extra)
    rest = query_events(indexed.store, {}, per_page=5, page_token=first.next_page_token)
    assert [r.leaf_index for r in rest.refs] == [5, 6]


def test_record_time_and_get_event(indexed: Repo) -> None:
    page = query_events(indexed.store, {"LT_recordTime": "2000-01-01T00:00:00Z"})
    assert page.refs == []
    event, ref = get_event(indexed.store, query_events(indexed.store, {}).refs[3].event_id)
    assert event["type"] == "TransformationEvent" and ref.leaf_index == 3
    with pytest.raises(NotFound):
        get_event(indexed.store, "ni:///sha-256;" + "0" * 64 + "?ver=CBV2.0")


def test_parse_query_normalises() -> None:
    q, per_page, token = parse_query(
        {"EQ_bizStep": "urn:epcglobal:cbv:bizstep:inspecting", "perPage": "7"}
    )
    assert q.equals["EQ_bizStep"] == ("inspecting",) and per_page == 7 and token is None


# --- cross-check against a naive reference over the plant ------------------------------------

_FIELDS = {
    "MATCH_epc": ("epcList", "childEPCs"),
    "MATCH_anyEPC": ("epcList", "childEPCs", "inputEPCList", "outputEPCList", "parentID"),
    "MATCH_epcClass": ("quantityList", "childQuantityList"),
    "MATCH_inputEPCClass": ("inputQuantityList",),
    "MATCH_outputEPCClass": ("outputQuantityList",),
    "MATCH_anyEPCClass": (
        "quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList",
    ),
}  # fmt: skip


def _ids(event: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for f in fields:
        v = event.get(f)
        if isinstance(v, str):
            out.append(v)  # parentID
        elif isinstance(v, list):
            out.extend(item["epcClass"] if isinstance(item, dict) else item for item in v)
    return out


def _matches(value: str, pattern: str, class_level: bool) -> bool:
    """EPC pattern matching written the slow, obvious way."""
    if not pattern.startswith("urn:epc:idpat:"):
        return value == pattern
    scheme, fields = pattern[len("urn:epc:idpat:") :].split(":")
    want = fields.split(".")
    candidates = [f"urn:epc:id:{scheme}:"]
    if class_level:
        candidates = ["urn:epc:class:lgtin:", f"urn:epc:idpat:{scheme}:"]
    for prefix in candidates:
        if value.startswith(prefix):
            got = value[len(prefix) :].split(".")
            if len(got) == len(want) and all(w in ("*", g) for w, g in zip(want, got, strict=True)):
                return True
    return False


def _naive(events: list[dict[str, Any]], params: dict[str, str]) -> list[int]:
    out = []
    for i, e in enumerate(events):
        ok = True
        for name, value in params.items():
            if name == "eventType":
                ok &= e["type"] == value
            elif name == "GE_eventTime":
                ok &= time_us(e["eventTime"]) >= time_us(value)
            elif name == "LT_eventTime":
                ok &= time_us(e["eventTime"]) < time_us(value)
            elif name in ("EQ_bizStep", "EQ_disposition"):
                field = name[3:]
                ok &= field in e and cbv_name(field, e[field]) == cbv_name(field, value)
            else:
                cls = "Class" in name
                ok &= any(_matches(v, value, cls) for v in _ids(e, _FIELDS[name]))
        if ok:
            out.append(i)
    return out


@pytest.mark.parametrize(
    "params",
    [
        {"EQ_bizStep": "inspecting", "EQ_disposition": "non_conformant"},
        {
            "eventType": "TransformationEvent",
            "MATCH_inputEPCClass": "urn:epc:idpat:sgtin:9000002.*.*",
        },
        {"MATCH_anyEPCClass": "urn:epc:idpat:sgtin:4012345.000002.*"},
        {"MATCH_epcClass": "urn:epc:idpat:sgtin:4012345.099999.*", "EQ_bizStep": "inspecting"},
        {"MATCH_outputEPCClass": "urn:epc:class:lgtin:4012345.000003.B0000004"},
        {"MATCH_epc": "urn:epc:idpat:sscc:4012345.*", "GE_eventTime": "2026-01-05T07:00:00Z"},
        {"MATCH_anyEPC": "urn:epc:idpat:sscc:4012345.*", "LT_eventTime": "2026-01-05T09:00:00Z"},
        {"EQ_bizStep": "commissioning", "LT_eventTime": "2026-01-05T08:00:00+01:00"},
    ],
)
def test_agrees_with_a_naive_reference(plant: CapturedPlant, params: dict[str, str]) -> None:
    want = _naive(plant.events, params)
    assert want, "a cross-check that selects nothing proves little"
    got = query_events(plant.repo.store, params, per_page=1000)
    # The plant was captured in one document, so leaf index = position in the history.
    assert [r.leaf_index for r in got.refs] == want
