"""Model manifests: registered as signed records before any prediction may cite them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from api.deps import CallerDep, Publisher, ScorecardReader, ServiceDep
from api.errors import forbidden
from api.manifests import manifest_public, register_manifest
from api.schemas import RecordCreate
from api.scorecards import bundle, scorecard
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


def _scored(digest: str, caller: ScorecardReader, service: ServiceDep) -> None:
    """A publisher answers for its own models: it reads their scorecards, not its rivals'."""
    with service.dep.store.reading() as conn:
        row = conn.execute(select(ModelRow.publisher).where(ModelRow.digest == digest)).first()
    if row is None:
        raise NotFound(f"no model with manifest digest {digest}")
    if caller.role == "model_publisher" and row.publisher != caller.participant:
        raise forbidden("a model publisher reads the scorecards of its own models")


@router.get("/{digest}/scorecard")
def get_scorecard(digest: str, caller: ScorecardReader, service: ServiceDep) -> dict[str, Any]:
    """How the model's signed promises held, from the log: errors, interval coverage with its
    confidence interval, F1/PR-AUC or accuracy and calibration; overall, per month, per asset."""
    _scored(digest, caller, service)
    return scorecard(service, digest)


@router.get("/{digest}/scorecard/bundle")
def get_scorecard_bundle(
    digest: str, caller: ScorecardReader, service: ServiceDep
) -> dict[str, Any]:
    """`forgeproof-scorecard/1`: the scorecard over the latest checkpoint with the receipts of
    every prediction and outcome it used (docs/examples/recompute_scorecard.py checks it)."""
    _scored(digest, caller, service)
    return bundle(service, digest)


@router.get("/{digest}/training")
def get_training(digest: str, caller: ScorecardReader, service: ServiceDep) -> dict[str, Any]:
    """A federated model's training chain, walked over the log: every round's record and every
    update it aggregated, with their receipts (keys and roles at the time, anchors). The
    aggregates and the weights are checked by `forgeproof verify-training` on the model's
    directory (docs/federated.md)."""
    from api.federation.verify import training_report

    _scored(digest, caller, service)
    return training_report(service, digest)
