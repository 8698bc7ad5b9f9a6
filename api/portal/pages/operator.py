"""The operator's page: participants and their signing keys as the chain holds them, API keys
(issue, revoke), checkpoints with their anchor transactions, registered model manifests.

Signing keys change only with signatures an API key cannot make (see api/routes/participants.py):
the page shows them; binding and revoking them stays with `forgeproof participants`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Request, Response

from api.deps import ServiceDep
from api.portal import web
from api.portal.sessions import Session
from api.routes import checkpoints as api_checkpoints
from api.routes import models as api_models
from api.routes import participants as api_participants
from api.schemas import ApiKeyIssue
from api.service import Service
from ledger.registry import ROLES

router = APIRouter(prefix="/portal/operator", include_in_schema=False)
OperatorSession = Annotated[Session, web.require_role("operator")]  # as api.deps.Operator


@router.get("")
def operator_page(request: Request, session: OperatorSession, service: ServiceDep) -> Response:
    return _render(request, session, service)


@router.post("/api-keys")
def issue_api_key(
    request: Request,
    session: web.CsrfDep,
    service: ServiceDep,
    participant: Annotated[str, Form()],
    role: Annotated[str, Form()],
    label: Annotated[str, Form(max_length=128)] = "portal",
) -> Response:
    """Issue a key; its secret is on this response only (never in a URL, never stored)."""
    web.check_role(session, "operator")
    body = ApiKeyIssue(participant=participant, role=role, label=label or "portal", expires_at=None)
    issued = api_participants.issue(body, session.caller, service)
    return _render(request, session, service, issued=issued, status=201)


@router.post("/api-keys/{key_id}/revoke")
def revoke_api_key(
    request: Request, key_id: str, session: web.CsrfDep, service: ServiceDep
) -> Response:
    web.check_role(session, "operator")
    revoked = api_participants.revoke(key_id, session.caller, service)
    return _render(request, session, service, revoked=revoked)


def _render(
    request: Request, session: Session, service: Service, *, status: int = 200, **extra: Any
) -> Response:
    caller = session.caller
    checkpoints = api_checkpoints.list_checkpoints(caller, service, cursor=None, limit=20)
    return web.render(
        request,
        "operator.html",
        session,
        status=status,
        participants=api_participants.list_participants(caller, service),
        api_keys=api_participants.list_keys(caller, service),
        checkpoints=checkpoints["data"],
        models=api_models.list_models(caller, service, task=None),
        roles=ROLES,
        explorer=service.dep.chain_url,
        **extra,
    )
