"""Verification of receipts against this deployment: every check named."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CallerDep, ServiceDep
from api.schemas import VerdictPublic, VerifyRequest
from ledger.receipts import log_checkpoint_source, verify_receipt

router = APIRouter(prefix="/v1/verify", tags=["verification"])


@router.post("", response_model=VerdictPublic)
def verify(body: VerifyRequest, caller: CallerDep, service: ServiceDep) -> dict:
    """Check a receipt: canonical hash, signature, key valid then, inclusion, checkpoint, chain."""
    del caller  # any participant may verify; nothing is revealed beyond the receipt itself
    verdict = verify_receipt(
        body.receipt,
        keys=service.key_snapshot(),
        checkpoint_source=log_checkpoint_source(service.dep.log),
        anchor_source=service.extras.get("anchor_source"),
        expected_domain=service.dep.domain,
    )
    return {"ok": verdict.ok, "checks": [c.__dict__ for c in verdict.checks]}
