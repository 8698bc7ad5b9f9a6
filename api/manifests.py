"""Model manifests: registered as signed records (operator- or publisher-signed) before any
prediction may cite them; used by `POST /v1/models` and by `up` for the models it ships."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, select

from api.errors import ApiError
from api.tables import ModelRow
from api.views import us_to_time
from ledger.ingest import check_record
from ledger.records import hex0x
from ledger.registry import now_us
from ml.manifest import ModelManifest


def register_manifest(service: Any, record: Any, signature: bytes) -> dict[str, Any]:
    """Append a `model_manifest` record and index it by the manifest's digest."""
    if record.kind != "model_manifest":
        raise ApiError(
            422, "invalid_input", f"record kind is {record.kind!r}, expected 'model_manifest'"
        )
    try:
        manifest = ModelManifest.model_validate(record.payload)
    except ValueError as exc:
        raise ApiError(422, "invalid_manifest", f"payload is not a model manifest: {exc}") from None
    digest = manifest.digest()
    with service.dep.store.reading() as conn:
        known = conn.execute(select(ModelRow).where(ModelRow.digest == digest)).first()
    if known is not None:
        return manifest_public(service, known)
    accepted = check_record(record, signature, service.dep.domain, service.key_snapshot())
    # Looked up again under the log's lock, and logged and indexed in one transaction: two
    # registrations of one manifest at once (two servers starting together) log it once.
    with service.append_lock, service.dep.log.appending() as app:
        row = app.conn.execute(select(ModelRow).where(ModelRow.digest == digest)).first()
        if row is None:
            appended = app.add([accepted])[0]
            app.conn.execute(
                insert(ModelRow).values(
                    digest=digest,
                    name=manifest.name,
                    task=manifest.task,
                    leaf_index=appended.index,
                    publisher=record.producer.participant,
                    registered_us=now_us(),
                )
            )
            row = app.conn.execute(select(ModelRow).where(ModelRow.digest == digest)).one()
    return manifest_public(service, row)


def manifest_public(service: Any, row: Any) -> dict[str, Any]:
    stored = service.dep.log.get(row.leaf_index)
    record = json.loads(stored.canonical) if stored.canonical else {"payload": {}}
    return {
        "digest": row.digest,
        "name": row.name,
        "task": row.task,
        "publisher": row.publisher,
        "registered_at": us_to_time(row.registered_us),
        "record_id": hex0x(stored.leaf_hash),
        "manifest": record["payload"],
    }
