"""Predictions and inspections as EPCIS 2.0 events, linked to their ledger records.

A quality verdict becomes an ObjectEvent (action OBSERVE, bizStep `inspecting`) about the
item or lot inspected, with disposition

- `conformant` when the verdict is one of `CONFORMANT_VERDICTS`,
- `non_conformant` for any other verdict (a defect model's verdict names the defect),
- `https://forgeproof.dev/epcis/Disp-needs_review` when the prediction says `needs_review`.
  CBV 2.0 has no disposition for "a person must look at this", and the schema takes values
  outside the CBV only as URIs, so it is forgeproof's own term (`vocab.NEEDS_REVIEW`).

A maintenance prediction becomes an ObjectEvent (bizStep `sensor_reporting`) about the asset,
whose `sensorElementList` holds the readings the model used.

Links, as extension fields in forgeproof's namespace (`fp:` = `https://forgeproof.dev/epcis/`;
the schema requires extension names to be URIs, and the CBV hash ID covers them):

| field | value |
|---|---|
| `fp:recordLeafIndex`, `fp:recordLeafHash` | the prediction's record in the log; |
| | `build_receipt(log, index, domain)` gives its receipt, the hash pins which record |
| `fp:receipt` | where the receipt can be fetched (optional URL, e.g. the API's) |
| `fp:modelManifestDigest` | the model manifest that judged; indexed, for recall by model version |
| `fp:inputSha256`, `fp:imageSha256` | digest of the model's input |
| `fp:verdict`, `fp:confidence`, `fp:rulPoint`, `fp:rul` | the prediction itself |

`certificationInfo` was the other candidate; the standard reserves it for certificates about
the objects (organic, halal, ...), not for proofs about the event, so it is left to them.
The events come out schema-valid (checked before they are returned) and capture as is.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.epcis.hashid import DEFAULT_CONTEXT
from ledger.epcis.validate import validate
from ledger.epcis.vocab import FP_NAMESPACE, FP_PREFIX, NEEDS_REVIEW
from ledger.errors import InputError

CONTEXT: list[Any] = [DEFAULT_CONTEXT, {FP_PREFIX: FP_NAMESPACE}]
CONFORMANT_VERDICTS = frozenset({"conformant", "ok", "pass", "good", "no_defect"})


@dataclass(frozen=True, slots=True)
class RecordLink:
    """The ledger record an exported event speaks for."""

    leaf_index: int
    leaf_hash: bytes

    def fields(self, receipt_url: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "fp:recordLeafIndex": self.leaf_index,
            "fp:recordLeafHash": "0x" + self.leaf_hash.hex(),
        }
        if receipt_url is not None:
            out["fp:receipt"] = receipt_url
        return out


def disposition_of(
    prediction: Mapping[str, Any], conformant_verdicts: Collection[str] = CONFORMANT_VERDICTS
) -> str:
    """`conformant`, `non_conformant`, or `NEEDS_REVIEW` for a quality verdict.

    Raises:
        InputError: the prediction has no verdict (an error record, say).
    """
    if prediction.get("needs_review") is True:
        return NEEDS_REVIEW
    verdict = prediction.get("verdict")
    if not isinstance(verdict, str):
        raise InputError(f"expected a prediction with a string verdict, got {verdict!r}")
    return "conformant" if verdict in conformant_verdicts else "non_conformant"


def _what(
    epc: str | None, epc_class: str | None, quantity: float | None, uom: str | None
) -> dict[str, Any]:
    if (epc is None) == (epc_class is None):
        raise InputError("name exactly one of epc (an item) or epc_class (a lot)")
    if epc is not None:
        return {"epcList": [epc]}
    q: dict[str, Any] = {"epcClass": epc_class}
    if quantity is not None:
        q["quantity"] = quantity
    if uom is not None:
        q["uom"] = uom
    return {"quantityList": [q]}


def _common(
    event_time: str, time_zone_offset: str, read_point: str | None, biz_location: str | None
) -> dict[str, Any]:
    out: dict[str, Any] = {"eventTime": event_time, "eventTimeZoneOffset": time_zone_offset}
    if read_point is not None:
        out["readPoint"] = {"id": read_point}
    if biz_location is not None:
        out["bizLocation"] = {"id": biz_location}
    return out


def _digest(prediction: Mapping[str, Any]) -> dict[str, Any]:
    digest = prediction.get("model_manifest_digest")
    return {} if digest is None else {"fp:modelManifestDigest": digest}


def _checked(event: dict[str, Any]) -> dict[str, Any]:
    validate(event)  # raises SchemaViolation naming the field built from a bad argument
    return event


def inspection_event(
    prediction: Mapping[str, Any],
    *,
    event_time: str,
    epc: str | None = None,
    epc_class: str | None = None,
    quantity: float | None = None,
    uom: str | None = None,
    time_zone_offset: str = "+00:00",
    read_point: str | None = None,
    biz_location: str | None = None,
    record: RecordLink | None = None,
    receipt_url: str | None = None,
    conformant_verdicts: Collection[str] = CONFORMANT_VERDICTS,
) -> dict[str, Any]:
    """An inspecting ObjectEvent for a quality verdict, with its own `@context`.

    Args:
        prediction: `{image_sha256, probabilities, verdict, confidence, needs_review,
            model_manifest_digest, ...}` (a defect model's record), or a person's inspection
            with at least `verdict`.
        event_time: when the inspection happened (RFC 3339).
        epc, epc_class, quantity, uom: what was inspected: one item, or a lot (class) with an
            optional quantity.
        record: the prediction's record in the log.
        receipt_url: where its receipt can be fetched.

    Raises:
        InputError: no verdict, or not exactly one of epc / epc_class.
        SchemaViolation: an argument makes the event invalid (a time or URI, say).
    """
    event: dict[str, Any] = {
        "@context": CONTEXT,
        "type": "ObjectEvent",
        **_common(event_time, time_zone_offset, read_point, biz_location),
        **_what(epc, epc_class, quantity, uom),
        "action": "OBSERVE",
        "bizStep": "inspecting",
        "disposition": disposition_of(prediction, conformant_verdicts),
        **_digest(prediction),
        "fp:verdict": prediction["verdict"],
    }
    for key, name in (("confidence", "fp:confidence"), ("image_sha256", "fp:imageSha256")):
        if prediction.get(key) is not None:
            event[name] = prediction[key]
    if record is not None:
        event.update(record.fields(receipt_url))
    return _checked(event)


def sensor_elements(readings: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Readings grouped into sensor elements: consecutive readings with the same `time`
    share one element (`sensorMetadata.time`); every other key of a reading is a
    sensorReport field (`type`, `value`, `uom`, `deviceID`, or an extension like `fp:sensor`).

    Raises:
        InputError: no readings, or a reading without `type`.
    """
    if not readings:
        raise InputError("a maintenance event needs the readings its prediction used")
    elements: list[dict[str, Any]] = []
    current: object = object()
    for n, reading in enumerate(readings):
        if "type" not in reading:
            raise InputError(f"reading {n} has no type (a GS1 measurement type or a URI)")
        time = reading.get("time")
        report = {k: v for k, v in reading.items() if k != "time"}
        if time != current or not elements:
            element: dict[str, Any] = {"sensorReport": []}
            if time is not None:
                element["sensorMetadata"] = {"time": time}
            elements.append(element)
            current = time
        elements[-1]["sensorReport"].append(report)
    return elements


def maintenance_event(
    prediction: Mapping[str, Any],
    *,
    asset: str,
    readings: Sequence[Mapping[str, Any]],
    event_time: str,
    time_zone_offset: str = "+00:00",
    read_point: str | None = None,
    biz_location: str | None = None,
    disposition: str | None = None,
    record: RecordLink | None = None,
    receipt_url: str | None = None,
) -> dict[str, Any]:
    """A sensor_reporting ObjectEvent for a remaining-useful-life prediction.

    Args:
        prediction: `{input_sha256, rul: {point, intervals}, explanation,
            model_manifest_digest, ...}` (an RUL model's record).
        asset: the machine's identifier (`urn:epc:id:giai:...`, say).
        readings: the sensor readings the model used, in order (see `sensor_elements`).
        disposition: optional, e.g. `needs_replacement` when the RUL calls for it.

    Raises:
        InputError: no readings, or a prediction without `rul.point`.
        SchemaViolation: an argument makes the event invalid.
    """
    rul = prediction.get("rul")
    if not isinstance(rul, Mapping) or not isinstance(rul.get("point"), int | float):
        raise InputError(f"expected a prediction with rul.point, got rul={rul!r:.80}")
    event: dict[str, Any] = {
        "@context": CONTEXT,
        "type": "ObjectEvent",
        **_common(event_time, time_zone_offset, read_point, biz_location),
        "epcList": [asset],
        "action": "OBSERVE",
        "bizStep": "sensor_reporting",
        "sensorElementList": sensor_elements(readings),
        **_digest(prediction),
        "fp:rulPoint": rul["point"],
        "fp:rul": dict(rul),
    }
    if disposition is not None:
        event["disposition"] = disposition
    if prediction.get("input_sha256") is not None:
        event["fp:inputSha256"] = prediction["input_sha256"]
    if record is not None:
        event.update(record.fields(receipt_url))
    return _checked(event)
