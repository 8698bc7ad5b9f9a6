"""Participants, keys, API keys and asset assignments: the operator administers them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import insert

from api.auth import create_api_key
from api.deps import CallerDep, Operator, ServiceDep
from api.errors import forbidden
from api.routes._common import us_to_time
from api.schemas import (
    ApiKeyCreate,
    ApiKeyPublic,
    AssignmentCreate,
    ParticipantCreate,
    ParticipantPublic,
)
from ledger.registry import Participant
from ledger.store.models import AssetAssignment

router = APIRouter(prefix="/v1/participants", tags=["participants"])


def _public(service: ServiceDep, p: Participant) -> dict[str, Any]:
    keys = [
        {
            "address": k.address,
            "valid_from": us_to_time(k.valid_from_us),
            "revoked_at": us_to_time(k.revoked_us) if k.revoked_us else None,
        }
        for k in service.dep.registry.keys(p.id)
    ]
    return {"id": p.id, "name": p.name, "roles": sorted(p.roles), "keys": keys}


@router.get("", response_model=list[ParticipantPublic])
def list_participants(caller: CallerDep, service: ServiceDep) -> list[dict[str, Any]]:
    """The registry: participants, roles and key history (public within the deployment)."""
    return [_public(service, p) for p in service.dep.registry.participants()]


@router.post("", status_code=201, response_model=ParticipantPublic)
def add_participant(
    body: ParticipantCreate, caller: Operator, service: ServiceDep
) -> dict[str, Any]:
    """Register a participant with its first signing key."""
    reg = service.dep.registry
    p = reg.add_participant(body.id, body.name, body.roles)
    reg.add_key(p.id, body.address.lower())
    service.registry_changed()
    return _public(service, p)


@router.post("/{participant}/keys/rotate", response_model=ParticipantPublic)
def rotate_key(
    participant: str, body: dict[str, str], caller: CallerDep, service: ServiceDep
) -> dict[str, Any]:
    """Replace the participant's keys by `{"address": ...}`, effective now (operator or self)."""
    if caller.role != "operator" and caller.participant != participant:
        raise forbidden("only the operator or the participant itself may rotate its key")
    reg = service.dep.registry
    reg.rotate_key(participant, body.get("address", "").lower())
    service.registry_changed()
    return _public(service, reg.participant(participant))


@router.post("/{participant}/keys/{address}/revoke", response_model=ParticipantPublic)
def revoke_key(
    participant: str, address: str, caller: CallerDep, service: ServiceDep
) -> dict[str, Any]:
    """Revoke a key now (operator or self): nothing it signs is accepted any more."""
    if caller.role != "operator" and caller.participant != participant:
        raise forbidden("only the operator or the participant itself may revoke its key")
    reg = service.dep.registry
    if all(k.address != address.lower() for k in reg.keys(participant)):
        raise forbidden(f"{address} is not a key of {participant}")
    reg.revoke_key(address)
    service.registry_changed()
    return _public(service, reg.participant(participant))


@router.post("/{participant}/api-keys", status_code=201, response_model=ApiKeyPublic)
def add_api_key(
    participant: str, body: ApiKeyCreate, caller: Operator, service: ServiceDep
) -> dict[str, Any]:
    """Issue an API key for a participant acting in one of its roles."""
    token = create_api_key(service.dep.store, participant, body.role, body.label)
    return {"participant": participant, "role": body.role, "api_key": token}


@router.post("/assignments", status_code=201)
def assign_asset(body: AssignmentCreate, caller: Operator, service: ServiceDep) -> dict[str, str]:
    """Assign an asset to a maintenance partner: it will see that asset's predictions."""
    p = service.dep.registry.participant(body.maintainer)
    if "maintainer" not in p.roles:
        raise forbidden(f"{body.maintainer} is not a maintainer")
    with service.dep.store.transaction() as conn:
        conn.execute(insert(AssetAssignment).values(asset=body.asset, maintainer=body.maintainer))
    return {"asset": body.asset, "maintainer": body.maintainer}
