"""Verification of receipts against this deployment: every check named."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import CallerDep, ServiceDep
from api.errors import ApiError
from api.receipts import chain_known
from api.schemas import VerdictPublic, VerifyRequest
from api.service import Service
from ledger.receipts import AnchorSource, KeySource, loads_strict, verify_receipt

router = APIRouter(prefix="/v1/verify", tags=["verification"])

# The body is read by hand, strictly (duplicate keys refused, as a receipt must be read); this
# is the schema FastAPI would have published for it.
_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": VerifyRequest.model_json_schema()}},
    }
}


@router.post("", response_model=VerdictPublic, openapi_extra=_BODY)
async def verify(request: Request, caller: CallerDep, service: ServiceDep) -> dict:
    """Check a receipt (`{"receipt": ...}`, or a receipt response as GET .../receipt answers):
    canonical hash, signature, the signer's key on chain when the record was first anchored,
    inclusion, checkpoint, anchor."""
    del caller  # any participant may verify; nothing is revealed beyond the receipt itself
    parsed: Any = loads_strict(await request.body())
    if not isinstance(parsed, dict) or not isinstance(parsed.get("receipt"), dict):
        raise ApiError(422, "invalid_request", "expected a JSON object with a receipt object")
    body = VerifyRequest(receipt=parsed["receipt"])
    sources = [service.anchor_source, service.key_source]
    # With the chain's answers remembered, verifying is about a millisecond of CPU: done on the
    # loop, requests are served in order, where 32 pool threads queueing for the GIL served
    # some after a second or more (p99 1.4 s -> 0.24 s at 32 clients). A chain call still to
    # make goes to the thread pool.
    if chain_known(sources, body.receipt):
        return verdict_of(body, service)
    return await run_in_threadpool(verdict_of, body, service)


def verdict_of(
    body: VerifyRequest,
    service: Service,
    *,
    key_source: KeySource | None = None,
    anchor_source: AnchorSource | None = None,
) -> dict:
    """The route's answer (also api/fastpost.py's): every check, by name. The chain checks are
    the service's unless given (the fast path passes them wrapped, see there)."""
    verdict = verify_receipt(
        body.receipt,
        key_source=key_source or service.key_source,
        checkpoint_source=service.checkpoint_source,
        anchor_source=anchor_source or service.anchor_source,
        expected_domain=service.dep.domain,
    )
    return {"ok": verdict.ok, "checks": [c.__dict__ for c in verdict.checks]}
