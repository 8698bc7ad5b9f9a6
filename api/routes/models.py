"""Model manifests: registered as signed records before any prediction may cite them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import CallerDep, Publisher, ServiceDep
from api.errors import forbidden
from api.manifests import manifest_public, register_manifest
from api.schemas import RecordCreate
from api.tables import ModelRow
from ledger.errors import NotFound
from ledger.ingest import parse_submission

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelPublic(BaseModel):
    digest: str
    name: str
    task: str
    publisher: str
    registered_at: str
    record_id: str
    manifest: dict[str, Any]


@router.post("", status_code=201, response_model=ModelPublic)
def register_model(body: RecordCreate, caller: Publisher, service: ServiceDep) -> dict[str, Any]:
    """Register a model manifest (a `model_manifest` record signed by its publisher)."""
    record, signature = parse_submission(body.model_dump())
    if record.producer.participant != caller.participant:
        raise forbidden("a manifest is registered by the publisher that signed it")
    return register_manifest(service, record, signature)


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
    return [manifest_public(service, r) for r in rows]


@router.get("/{digest}", response_model=ModelPublic)
def get_model(digest: str, caller: CallerDep, service: ServiceDep) -> dict[str, Any]:
    """One registered model by manifest digest."""
    with service.dep.store.reading() as conn:
        row = conn.execute(select(ModelRow).where(ModelRow.digest == digest)).first()
    if row is None:
        raise NotFound(f"no model with manifest digest {digest}")
    return manifest_public(service, row)
