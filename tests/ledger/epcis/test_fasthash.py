"""The fast CBV 2.0 pre-hash (ledger.epcis.fasthash) against GS1's reference implementation:
the same string, byte for byte, wherever the fast path answers; the reference wherever not."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.demo.synthetic import PlantConfig, plant_events
from ledger.epcis import hashid
from ledger.epcis.errors import UnsupportedEpcis
from ledger.epcis.fasthash import covered, fast_prehash
from ledger.epcis.hashid import (
    DEFAULT_CONTEXT,
    event_hash_id,
    hash_ids,
    prehash,
    reference_path,
    reference_prehash,
    split_context,
    stored_hash_id,
)
from tests.ledger.epcis.conftest import SCHEMA_INVALID_EXAMPLE

FULL_URLS = [u for u, name in hashid.CONTEXTS.items() if name == "epcis-context.jsonld"]
EX = "http://ns.example.com/epcis/"
CONTEXT = [DEFAULT_CONTEXT, {"ex": EX}, {"ex2": "urn:example:ns2:"}]


def reference(event: dict[str, Any], context: Any) -> str | None:
    """The reference's pre-hash, or None where it refuses the event."""
    body, ctx = split_context(event, context)
    try:
        return reference_prehash(body, ctx)
    except UnsupportedEpcis:
        return None


def check(event: dict[str, Any], context: Any) -> bool:
    """Asserts the fast path agrees with the reference (in the key order given and sorted);
    returns whether it covered the event."""
    answered = False
    for e in (event, json.loads(json.dumps(event, sort_keys=True))):
        body, ctx = split_context(e, context)
        fast = fast_prehash(copy.deepcopy(body), ctx)
        assert body == split_context(e, context)[0]  # nothing was modified
        if fast is not None:
            answered = True
            assert covered(body, ctx)
            expected = reference(e, context)
            if expected is None and _carries(e):
                continue  # the package drops such events; the port carries (see below)
            assert fast == expected, json.dumps(e)
        elif covered(body, ctx):
            # Covered, but the port failed where the package fails too ("inf", ...): the
            # reference refuses it.
            assert reference(e, context) is None, json.dumps(e)
    return answered


_FRACTION = re.compile(r"T\d\d:\d\d:\d\d\.(\d+)")


def _carries(event: dict[str, Any]) -> bool:
    """Whether a time stamp in the event rounds up to the next second at milliseconds."""
    return any(int(f[:6].ljust(6, "0")) >= 999_500 for f in _FRACTION.findall(json.dumps(event)))


def test_a_time_stamp_that_rounds_to_the_next_second() -> None:
    """GS1's package cannot round .9995 s and up to milliseconds (datetime.replace with a
    million microseconds raises) and drops the event; the fast path carries into the next
    second, so such an event gets an ID instead of being refused (it once failed the demo:
    inspections are stamped with the record's microseconds)."""
    event = {"@context": CONTEXT, **BASE, "eventTime": "2026-12-06T15:47:12.999732Z"}
    body, ctx = split_context(event, None)
    assert reference(event, None) is None
    fast = fast_prehash(body, ctx)
    assert fast is not None and "eventTime=2026-12-06T15:47:13.000Z" in fast
    assert event_hash_id(event).startswith("ni:///sha-256;")
    # Just below the carry, both agree (milliseconds round half to even, as the package does).
    below = {**event, "eventTime": "2026-12-06T15:47:12.999499Z"}
    assert "eventTime=2026-12-06T15:47:12.999Z" in fast_prehash(*split_context(below, None))
    assert check(below, None)


def full(doc: dict[str, Any], url: str = DEFAULT_CONTEXT) -> list[Any]:
    """The example's context with GS1's full context in place of the simple one."""
    return [url, *doc["@context"][1:]]


def test_every_official_example_under_the_full_context(examples: dict[str, Any]) -> None:
    answered = 0
    for name, doc in examples.items():
        for i, event in enumerate(doc["epcisBody"]["eventList"]):
            ok = check(event, full(doc, FULL_URLS[i % len(FULL_URLS)]))
            # Extensions inside sensor elements (and an undeclared prefix): the reference's.
            assert ok == (name != SCHEMA_INVALID_EXAMPLE), name
            answered += ok
    assert answered == sum(len(d["epcisBody"]["eventList"]) for d in examples.values()) - 1


def test_the_all_fields_example_without_its_sensor_elements(examples: dict[str, Any]) -> None:
    """ILMD (nested extension objects and arrays, cbvmda), persistentDisposition, the three
    pair lists in both key orders, quantities with and without uom: all on the fast path."""
    doc = examples[SCHEMA_INVALID_EXAMPLE]
    event = {k: v for k, v in doc["epcisBody"]["eventList"][0].items() if k != "sensorElementList"}
    assert check(event, full(doc))
    flipped = copy.deepcopy(event)
    for key in ("bizTransactionList", "sourceList", "destinationList"):
        flipped[key] = [dict(reversed(list(e.items()))) for e in flipped[key]]
    assert check(flipped, full(doc))
    with_sensors = {
        **event,
        "sensorElementList": [
            {
                "sensorMetadata": {
                    "time": "2019-04-02T13:05:00.000+02:00",
                    "deviceID": "urn:epc:id:giai:4000001.111",
                },
                "sensorReport": [
                    {"type": "gs1:Temperature", "value": 26, "uom": "CEL", "component": "x"},
                    {"type": "Humidity", "exception": "ALARM_CONDITION", "booleanValue": True},
                ],
            }
        ],
    }
    assert check(with_sensors, full(doc))


def test_official_examples_as_published_take_the_reference(examples: dict[str, Any]) -> None:
    """The examples' own context is epcis-context-simple.jsonld: not covered, so the IDs are
    the package's, as before."""
    for doc in examples.values():
        for event in doc["epcisBody"]["eventList"]:
            body, ctx = split_context(event, doc["@context"])
            assert not covered(body, ctx)
            assert fast_prehash(body, ctx) is None
            assert prehash(event, doc["@context"]) == reference_prehash(body, ctx)


def test_every_generated_plant_event() -> None:
    """Thousands of events of the synthetic plant (the benchmark's and the demo's), each
    covered and equal to the reference, IDs included."""
    events = list(plant_events(PlantConfig(runs=130, stages=10, suppliers=5, seed=5)))
    assert len(events) > 3000
    for event in events:
        body, ctx = split_context(event)
        fast = fast_prehash(body, ctx)
        assert fast is not None
        assert fast == reference_prehash(body, ctx), json.dumps(event)
    for event in events[:300]:
        ids = hash_ids(*split_context(event))
        with reference_path():
            assert hash_ids(*split_context(event)) == ids
        assert event_hash_id(event) == ids[0]
        assert stored_hash_id(event) == ids[1]


UNCOVERED: list[tuple[str, dict[str, Any], Any]] = [
    ("simple context", {}, ["https://gs1.github.io/EPCIS/epcis-context-simple.jsonld"]),
    ("no GS1 context", {}, [{"ex": EX}]),
    ("@vocab in a prefix map", {}, [DEFAULT_CONTEXT, {"@vocab": EX}]),
    ("prefix named like a scheme", {}, [DEFAULT_CONTEXT, {"urn": EX}]),
    ("prefix redefining a GS1 term", {}, [DEFAULT_CONTEXT, {"cbv": EX}]),
    ("unknown field", {"myField": "x"}, CONTEXT),
    ("undeclared prefix", {"example:myField": "x"}, CONTEXT),
    (
        "extension in readPoint",
        {"readPoint": {"id": "urn:epc:id:sgln:4012345.00001.0", "ex:a": "1"}},
        CONTEXT,
    ),
    (
        "bizTransaction without type",
        {"bizTransactionList": [{"bizTransaction": "urn:epcglobal:cbv:bt:0614141073467:1152"}]},
        CONTEXT,
    ),
    (
        "sensor element type",
        {
            "sensorElementList": [
                {
                    "type": "epcis:SensorElement",
                    "sensorReport": [{"type": "Temperature", "value": 1}],
                }
            ]
        },
        CONTEXT,
    ),
    ("null value", {"ex:a": None}, CONTEXT),
    ("a vocabulary value that is a term", {"bizStep": "cbv"}, CONTEXT),
    ("a blank node", {"readPoint": {"id": "_:b0"}}, CONTEXT),
    ("a list in a list", {"ex:a": [["1"]]}, CONTEXT),
    ("a comment", {"ex:a": {"rdfs:comment": "c"}}, CONTEXT),
    ("an extension event type", {"type": "ex:MyEvent"}, CONTEXT),
]


@pytest.mark.parametrize(("what", "change", "context"), UNCOVERED, ids=[u[0] for u in UNCOVERED])
def test_uncovered_events_take_the_reference(
    what: str, change: dict[str, Any], context: Any
) -> None:
    event = {**BASE, **change}
    body, ctx = body_ctx(event, context)
    assert not covered(body, ctx)
    assert fast_prehash(body, ctx) is None
    try:
        expected: str | Exception = hashid.event_hash_id(event, context)
    except (UnsupportedEpcis, IndexError) as exc:  # what the reference does with it
        expected = exc
    with reference_path():
        try:
            again: str | Exception = hashid.event_hash_id(event, context)
        except (UnsupportedEpcis, IndexError) as exc:
            again = exc
    assert type(expected) is type(again)
    if isinstance(expected, str):
        assert expected == again


def body_ctx(event: dict[str, Any], context: Any) -> tuple[dict[str, Any], Any]:
    body = {k: v for k, v in event.items() if k != "@context"}
    return body, context


def test_reference_path_never_takes_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"@context": CONTEXT, **BASE}
    fast = event_hash_id(event)
    monkeypatch.setattr(hashid, "fast_prehash", lambda *a: pytest.fail("fast path taken"))
    with reference_path():
        assert event_hash_id(event) == fast


def test_the_fast_path_is_taken_when_covered(monkeypatch: pytest.MonkeyPatch) -> None:
    event = {"@context": CONTEXT, **BASE}
    expected = event_hash_id(event)
    monkeypatch.setattr(hashid, "reference_prehash", lambda *a: pytest.fail("reference run"))
    assert event_hash_id(event) == expected


BASE: dict[str, Any] = {
    "type": "ObjectEvent",
    "eventTime": "2024-03-01T10:00:00.123+01:00",
    "eventTimeZoneOffset": "+01:00",
    "epcList": ["urn:epc:id:sgtin:4012345.011111.987"],
    "action": "OBSERVE",
    "bizStep": "shipping",
}


# -- hypothesis: generated events ------------------------------------------------------------

BIZ_STEPS = [
    "shipping",
    "receiving",
    "inspecting",
    "commissioning",
    "custom_step",
    "urn:epcglobal:cbv:bizstep:shipping",
    "https://ref.gs1.org/cbv/BizStep-packing",
    "cbv:BizStep-holding",
    "https://example.com/steps/wash",
    "ex:wash",
]
DISPOSITIONS = [
    "in_progress",
    "conformant",
    "non_conformant",
    "active",
    "urn:epcglobal:cbv:disp:in_transit",
    "https://ref.gs1.org/cbv/Disp-damaged",
    "https://forgeproof.dev/epcis/Disp-needs_review",
]
WORDS = [
    "shipping",
    "conformant",
    "po",
    "x",
    "KGM",
    "Temperature",
    "owning_party",
    "10",
    "10.50",
    "+3",
    "true",
    "ex:thing",
    "urn:epcglobal:cbv:btt:po",
    " padded ",
    "",
    "2024-01-01T00:00:00Z",
    "inf",
    "did_not_occur",
    "1e3",
]


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    y = draw(st.integers(1950, 2090))
    mo, d = draw(st.integers(1, 12)), draw(st.integers(1, 28))
    h, mi, s = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
    frac = draw(st.sampled_from(["", ".5", ".123", ".999", ".9995", ".0005", ".123456", ".999999"]))
    tz = draw(st.sampled_from(["Z", "+00:00", "-00:00", "+05:30", "-11:45", "+14:00", "-03:00"]))
    odd = draw(st.sampled_from([None] * 8 + ["lower", "space", "nanos", "naive"]))
    text = f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}{frac}{tz}"
    if odd == "lower":
        text = text.replace("T", "t")
    elif odd == "space":
        text = text.replace("T", " ")
    elif odd == "nanos":
        text = text.replace(tz, ".123456789" + tz) if not frac else text
    elif odd == "naive":
        text = text[: -len(tz)] + "+23:59"
    return text


epcs = st.one_of(
    st.builds(
        lambda c, i, s: f"urn:epc:id:sgtin:{c}.{i}.{s}",
        st.sampled_from(["4012345", "0614141"]),
        st.sampled_from(["011111", "077777"]),
        st.integers(1, 10**6),
    ),
    st.builds(lambda n: f"urn:epc:id:sscc:4012345.{n:010d}", st.integers(0, 10**9)),
    st.builds(lambda n: f"https://id.gs1.org/01/04012345111118/21/{n}", st.integers(1, 999)),
    st.sampled_from(
        [
            "urn:epc:id:giai:4012345.M1",
            "urn:epc:idpat:sgtin:4012345.066666.*",
            "urn:example:thing:1",
            "ex2:thing",
        ]
    ),
)
classes = st.one_of(
    st.builds(lambda n: f"urn:epc:class:lgtin:4012345.011111.L{n}", st.integers(1, 50)),
    st.sampled_from(
        ["urn:epc:idpat:sgtin:4012345.066666.*", "https://id.gs1.org/01/04012345111118/10/L1"]
    ),
)
numbers = st.one_of(
    st.integers(0, 10**6),
    st.sampled_from([10.0, 0.5, 1e-7, 2.50, 1e21, 123.456, -0.0]),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.sampled_from(WORDS), numbers, st.booleans(), st.text(max_size=6))
extension_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(
            st.one_of(
                scalars,
                st.dictionaries(st.sampled_from(["ex:a", "ex2:b", "ex:cList"]), inner, max_size=2),
            ),
            max_size=3,
        ),
        st.dictionaries(
            st.sampled_from(["ex:a", "ex2:b", "ex:type", "cbvmda:lotNumber", "ex:inputEPC"]),
            inner,
            max_size=3,
        ),
    ),
    max_leaves=6,
)
extensions = st.dictionaries(
    st.sampled_from(["ex:note", "ex:myList", "ex2:count", "ex:flag", "ex:eventTime", "ex:obj"]),
    extension_values,
    max_size=3,
)


def pair(name: str, types: list[str]) -> Any:
    def build(value: str, kind: str, flip: bool) -> dict[str, str]:
        return {name: value, "type": kind} if flip else {"type": kind, name: value}

    return st.builds(build, epcs, st.sampled_from(types), st.booleans())


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": draw(
            st.sampled_from(
                [
                    "ObjectEvent",
                    "AggregationEvent",
                    "TransformationEvent",
                    "AssociationEvent",
                    "TransactionEvent",
                ]
            )
        )
    }
    event["eventTime"] = draw(timestamps())
    event["eventTimeZoneOffset"] = draw(st.sampled_from(["+00:00", "-05:00", "+05:30"]))
    opt: dict[str, Any] = {
        "recordTime": timestamps(),
        "eventID": st.sampled_from(
            ["urn:uuid:7c2a6e2a-1111-4b8a-9c1e-0a0b0c0d0e0f", "ni:///sha-256;ab?ver=CBV2.0"]
        ),
        "epcList": st.lists(epcs, max_size=4),
        "childEPCs": st.lists(epcs, max_size=3),
        "inputEPCList": st.lists(epcs, max_size=3),
        "outputEPCList": st.lists(epcs, max_size=3),
        "parentID": epcs,
        "quantityList": st.lists(
            st.fixed_dictionaries(
                {"epcClass": classes},
                optional={"quantity": numbers, "uom": st.sampled_from(["KGM", "LTR", "10"])},
            ),
            max_size=3,
        ),
        "inputQuantityList": st.lists(
            st.fixed_dictionaries({"epcClass": classes, "quantity": numbers}), max_size=2
        ),
        "outputQuantityList": st.lists(
            st.fixed_dictionaries({"epcClass": classes, "quantity": numbers}), max_size=2
        ),
        "childQuantityList": st.lists(
            st.fixed_dictionaries({"epcClass": classes, "quantity": numbers}), max_size=2
        ),
        "action": st.sampled_from(["ADD", "OBSERVE", "DELETE"]),
        "transformationID": st.sampled_from(
            ["urn:epc:id:gdti:0614141.12345.400", "https://example.com/x/1"]
        ),
        "bizStep": st.sampled_from(BIZ_STEPS),
        "disposition": st.sampled_from(DISPOSITIONS),
        "persistentDisposition": st.fixed_dictionaries(
            {},
            optional={
                "set": st.lists(st.sampled_from(DISPOSITIONS), max_size=2),
                "unset": st.lists(st.sampled_from(DISPOSITIONS), max_size=2),
            },
        ),
        "readPoint": st.fixed_dictionaries(
            {
                "id": st.sampled_from(
                    [
                        "urn:epc:id:sgln:4012345.00001.0",
                        "https://id.gs1.org/414/4012345000009",
                        "ex:line1",
                        "relative-id",
                    ]
                )
            }
        ),
        "bizLocation": st.fixed_dictionaries(
            {
                "id": st.sampled_from(
                    ["urn:epc:id:sgln:0614141.00888.0", "https://example.com/site/1"]
                )
            }
        ),
        "bizTransactionList": st.lists(
            pair(
                "bizTransaction",
                [
                    "po",
                    "inv",
                    "urn:epcglobal:cbv:btt:desadv",
                    "https://example.com/btt/x",
                    "cbv:BTT-bol",
                ],
            ),
            max_size=3,
        ),
        "sourceList": st.lists(
            pair(
                "source",
                ["owning_party", "location", "https://ref.gs1.org/cbv/SDT-possessing_party"],
            ),
            max_size=3,
        ),
        "destinationList": st.lists(
            pair("destination", ["owning_party", "possessing_party", "location"]), max_size=3
        ),
        "sensorElementList": st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "sensorMetadata": st.fixed_dictionaries(
                        {},
                        optional={
                            "time": timestamps(),
                            "startTime": timestamps(),
                            "deviceID": epcs,
                            "bizRules": st.just("https://example.com/rules"),
                        },
                    ),
                    "sensorReport": st.lists(
                        st.fixed_dictionaries(
                            {
                                "type": st.sampled_from(
                                    [
                                        "Temperature",
                                        "Speed",
                                        "gs1:Humidity",
                                        "https://example.com/m/x",
                                    ]
                                )
                            },
                            optional={
                                "value": numbers,
                                "uom": st.sampled_from(["CEL", "RPM", "KGM"]),
                                "time": timestamps(),
                                "booleanValue": st.booleans(),
                                "stringValue": st.sampled_from(WORDS),
                                "component": st.sampled_from(
                                    ["x", "latitude", "https://example.com/c"]
                                ),
                                "exception": st.sampled_from(
                                    ["ALARM_CONDITION", "ERROR_CONDITION"]
                                ),
                                "deviceID": epcs,
                                "minValue": numbers,
                                "percRank": numbers,
                                "chemicalSubstance": st.just(
                                    "https://identifiers.org/inchikey:CZMRCDWAGMRECN-UGDNZRGBSA-N"
                                ),
                                "hexBinaryValue": st.just("f0f0f0"),
                            },
                        ),
                        max_size=3,
                    ),
                },
            ),
            max_size=2,
        ),
        "errorDeclaration": st.fixed_dictionaries(
            {"declarationTime": timestamps()},
            optional={
                "reason": st.sampled_from(
                    ["did_not_occur", "incorrect_data", "https://example.com/r"]
                ),
                "correctiveEventIDs": st.lists(
                    st.just("urn:uuid:404d95fc-9457-4a51-bd6a-0bba133845a8"), max_size=1
                ),
                "ex:why": scalars,
            },
        ),
        "ilmd": extensions,
        "certificationInfo": st.sampled_from(["https://example.com/cert/1", "urn:example:cert"]),
    }
    chosen = draw(st.lists(st.sampled_from(sorted(opt)), unique=True, max_size=9))
    for key in chosen:
        event[key] = draw(opt[key])
    event.update(draw(extensions))
    items = list(event.items())
    order = draw(st.permutations(range(len(items))))
    return {items[i][0]: items[i][1] for i in order}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events(), st.sampled_from([CONTEXT, [{"ex": EX}, DEFAULT_CONTEXT, {"ex2": "urn:example:ns2:"}]])
)
def test_generated_events_hash_as_the_reference_does(event: dict[str, Any], context: Any) -> None:
    check(event, context)


def test_generated_events_are_mostly_covered() -> None:
    """The property above is not vacuous: most generated events take the fast path. A fixed
    draw (91 of 150 covered): hypothesis's random draws ranged from 57 % to over 70 %, and a
    60 % bar on them failed one run in two."""
    answered = []

    @settings(max_examples=150, deadline=None, database=None, derandomize=True)
    @given(events())
    def run(event: dict[str, Any]) -> None:
        answered.append(check(event, CONTEXT))

    run()
    assert sum(answered) > 0.5 * len(answered), f"{sum(answered)} of {len(answered)}"
