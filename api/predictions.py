"""Predictions and inspections as records: a model's output wrapped, signed by the operator
and appended; an inspection verdict also captured as an EPCIS event linking back to it, and
its Grad-CAM overlay kept beside the record (`save_explanation`)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert, select

from api.tables import Explanation
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


def save_explanation(service: Any, leaf_index: int, png: bytes) -> None:
    """Keep an inspection's Grad-CAM overlay beside its record.

    The image is not part of the signed record (it would bloat every receipt); the record holds
    its SHA-256 (`explanation.gradcam_sha256`), so whoever serves the image checks it against
    the signature's digest first. Kept once per record: a second call for the same leaf keeps
    the first image, since the signed digest can only ever match one.
    """
    with service.dep.store.transaction() as conn:
        kept = conn.execute(
            select(Explanation.leaf_index).where(Explanation.leaf_index == leaf_index)
        ).first()
        if kept is None:
            conn.execute(insert(Explanation).values(leaf_index=leaf_index, png=png))


def load_explanation(service: Any, leaf_index: int) -> bytes | None:
    """The Grad-CAM overlay kept for record `leaf_index`, unchecked (None if none is kept):
    compare its SHA-256 with the signed record's before showing it to anyone."""
    with service.dep.store.reading() as conn:
        png = conn.execute(
            select(Explanation.png).where(Explanation.leaf_index == leaf_index)
        ).scalar()
    return bytes(png) if png is not None else None
