"""Predictions and inspections as records: a model's output wrapped, signed by the operator
and appended; an inspection verdict also captured as an EPCIS event linking back to it."""

from __future__ import annotations

from typing import Any

from ledger.records import Record, hex0x


def sign_prediction(
    service: Any, kind: str, payload: dict[str, Any], requested_by: str
) -> dict[str, Any]:
    """Wrap a model's output into a record signed by the operator and append it."""
    dep = service.dep
    operator = dep.config["operator"]
    signer = dep.signer(operator)
    record = Record.new(
        kind,
        {**payload, "requested_by": requested_by},
        participant=operator,
        address=signer.address,
    )
    signature = signer.sign(dep.domain, record)
    appended = service.submit(record, signature)
    return {
        "id": hex0x(appended.leaf_hash),
        "index": appended.index,
        "record": record.to_json(),
        "signature": hex0x(signature),
    }


def export_inspection(service: Any, signed: dict[str, Any], item: str) -> str:
    """Capture the verdict as an EPCIS ObjectEvent that links back to its record."""
    from ledger.epcis.export import RecordLink, inspection_event

    record = signed["record"]
    instance = item.startswith("urn:epc:id:")  # one item; otherwise a lot (EPC class)
    event = inspection_event(
        record["payload"],
        event_time=record["created_at"],
        epc=item if instance else None,
        epc_class=None if instance else item,
        record=RecordLink(signed["index"], bytes.fromhex(signed["id"][2:])),
        receipt_url=f"/v1/records/{signed['id']}/receipt",
    )
    result = service.capture_epcis(event)
    return str(result.events[0].event_id)
