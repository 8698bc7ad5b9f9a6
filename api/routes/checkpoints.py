"""Checkpoints: the latest, all of them, and consistency proofs between sizes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from api.deps import CallerDep, ServiceDep
from api.routes._common import MAX_INDEX, cursor_int, encode_cursor
from api.schemas import CheckpointPublic, CheckpointsPublic, ConsistencyPublic
from api.views import us_to_time
from ledger.errors import NotFound
from ledger.log import Checkpoint, checkpoint_from_row
from ledger.records import hex0x
from ledger.store.models import CheckpointRow

router = APIRouter(prefix="/v1/checkpoints", tags=["checkpoints"])


def _public(cp: Checkpoint) -> dict[str, Any]:
    return {
        "size": cp.size,
        "root": hex0x(cp.root),
        "created_at": us_to_time(cp.created_us),
        "anchored": cp.anchored,
        "chain_id": cp.chain_id,
        "contract": cp.contract,
        "tx_hash": cp.tx_hash,
        "block_number": cp.block_number,
    }


@router.get("/latest", response_model=CheckpointPublic)
def latest(caller: CallerDep, service: ServiceDep) -> dict[str, Any]:
    """The newest checkpoint."""
    cp = service.dep.log.latest_checkpoint()
    if cp is None:
        raise NotFound("no checkpoint yet")
    return _public(cp)


@router.get("", response_model=CheckpointsPublic)
def list_checkpoints(
    caller: CallerDep,
    service: ServiceDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """All checkpoints, newest first."""
    before = cursor_int(cursor, "before")
    q = select(CheckpointRow).order_by(CheckpointRow.size.desc()).limit(limit + 1)
    if before is not None:
        q = q.where(CheckpointRow.size < before)
    with service.dep.store.reading() as conn:
        cps = [checkpoint_from_row(r) for r in conn.execute(q).all()]
    more = len(cps) > limit
    cps = cps[:limit]
    return {
        "data": [_public(c) for c in cps],
        "next_cursor": encode_cursor({"before": cps[-1].size}) if more else None,
    }


@router.get("/consistency", response_model=ConsistencyPublic)
def consistency(
    caller: CallerDep,
    service: ServiceDep,
    size1: Annotated[int, Query(alias="from", ge=1, le=MAX_INDEX)],
    size2: Annotated[int, Query(alias="to", ge=1, le=MAX_INDEX)],
) -> dict[str, Any]:
    """An RFC 6962 consistency proof from tree size `from` to tree size `to`."""
    log = service.dep.log
    proof = log.consistency_proof(size1, size2)
    return {
        "size1": size1,
        "size2": size2,
        "root1": hex0x(log.root(size1)),
        "root2": hex0x(log.root(size2)),
        "proof": [hex0x(h) for h in proof.hashes],
    }
