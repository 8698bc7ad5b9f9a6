"""Model manifests: registered as signed records before any prediction may cite them."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import insert, select

from api.deps import CallerDep, Publisher, ServiceDep
from api.errors import ApiError, forbidden
from api.routes._common import us_to_time
from api.schemas import RecordCreate
from api.tables import ModelRow
from ledger.errors import NotFound
from ledger.ingest import check_record, parse_submission
from ledger.records import hex0x
from ledger.registry import now_us
from ml.manifest import ModelManifest

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelPublic(BaseModel):
    digest: str
    name: str
    task: str
    publisher: str
    registered_at: str
    record_id: str
    manifest: dict[str, Any]


def register(service: Any, record: Any, signature: bytes) -> dict[str, Any]:
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
        return _public(service, known)
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
    return _public(service, row)


def _public(service: Any, row: Any) -> dict[str, Any]:
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


@router.post("", status_code=201, response_model=ModelPublic)
def register_model(body: RecordCreate, caller: Publisher, service: ServiceDep) -> dict[str, Any]:
    """Register a model manifest (a `model_manifest` record signed by its publisher)."""
    record, signature = parse_submission(body.model_dump())
    if record.producer.participant != caller.participant:
        raise forbidden("a manifest is registered by the publisher that signed it")
    return register(service, record, signature)


@router.get("", response_model=list[ModelPublic])
def list_models(
    caller: CallerDep, service: ServiceDep, task: str | None = None
) -> list[dict[str, Any]]:
    """Registered models, newest first: digest, metrics, who registered them."""
    q = select(ModelRow).order_by(ModelRow.registered_us.desc())
    if task:
        q = q.where(ModelRow.task == task)
    with service.dep.store.reading() as conn:
        rows = conn.execute(q).all()
    return [_public(service, r) for r in rows]


@router.get("/{digest}", response_model=ModelPublic)
def get_model(digest: str, caller: CallerDep, service: ServiceDep) -> dict[str, Any]:
    """One registered model by manifest digest."""
    with service.dep.store.reading() as conn:
        row = conn.execute(select(ModelRow).where(ModelRow.digest == digest)).first()
    if row is None:
        raise NotFound(f"no model with manifest digest {digest}")
    return _public(service, row)
