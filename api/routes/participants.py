"""Participants, signing keys, API keys, asset and product assignments.

Signing keys live in the contract (docs/contract.md): every change here is a contract
transaction that the contract judges, and it needs signatures an API key cannot make:

- the new key's `KeyBinding` signature (proof of possession), for every key bound;
- a currently valid key's `KeyChange` signature (the participant's consent), for every add,
  rotation, and revocation asked by the participant itself.

`GET /v1/participants/{id}/key-change` hands out both messages to sign. The service sends the
transactions with the operator's key, so it never lends the operator's on-chain powers to an
API key: it refuses to bind a key without the participant's consent (recovery of a participant
without keys is `forgeproof participants recover`, with the operator's key file), and to grant
or take away the operator role. Auditors and maintainers change no signing keys here.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import insert, select

from api.auth import ApiKeyInfo, Caller, issue_api_key, list_api_keys, revoke_api_key
from api.deps import CallerDep, Operator, ServiceDep, require
from api.errors import ApiError, forbidden
from api.products import assign_product, readable_assignments
from api.routes._common import time_to_us
from api.schemas import (
    ApiKeyCreate,
    ApiKeyIssue,
    ApiKeyPublic,
    AssignmentCreate,
    KeyAdd,
    KeyChangeMessages,
    KeyPublic,
    KeyRevoke,
    KeyRotate,
    ParticipantCreate,
    ParticipantPublic,
    ProductAssignmentCreate,
    ProductAssignmentPublic,
    RolesUpdate,
)
from api.service import Service
from api.tables import AssetAssignment
from api.views import us_to_time
from ledger.errors import Conflict, InputError
from ledger.records import unhex
from ledger.registry import WRITING_ROLES, KeyInfo, Participant
from ledger.signing import key_binding_typed_data, key_change_typed_data

router = APIRouter(prefix="/v1/participants", tags=["participants"])
api_keys_router = APIRouter(prefix="/v1/api-keys", tags=["participants"])

ADDRESS = r"^0x[0-9a-fA-F]{40}$"
# Who may ask for a change of a participant's signing keys: roles that sign records.
KeyHolder = Annotated[Caller, Depends(require(*sorted(WRITING_ROLES)))]
# Who may list product assignments: those who read every forecast, and suppliers (their own).
ProductReader = Annotated[
    Caller, Depends(require("operator", "manufacturer", "auditor", "supplier"))
]


def _key(k: KeyInfo) -> KeyPublic:
    return KeyPublic(
        address=k.address,
        valid_from_block=k.valid_from,
        revoked_from_block=k.revoked_from,
        valid_from=us_to_time(k.valid_from_us),
        revoked_at=us_to_time(k.revoked_us) if k.revoked_us else None,
        added_by=k.added_by,
        revoked_by=k.revoked_by,
    )


def _public(service: Service, p: Participant) -> ParticipantPublic:
    return ParticipantPublic(
        id=p.id,
        name=p.name,
        roles=sorted(p.roles),
        registered_block=p.registered_block,
        keys=[_key(k) for k in service.dep.registry.keys(p.id)],
    )


def _sig(value: str | None, what: str) -> bytes:
    if value is None:
        return b""
    return unhex(value, size=65, what=what)


def _own_keys(service: Service, caller: Caller, participant: str) -> None:
    if caller.role != "operator" and caller.participant != participant:
        raise forbidden(f"only {participant} itself or an operator may change its keys")
    if "operator" in service.dep.registry.participant(participant).roles:
        raise forbidden(
            "an operator's keys change with the operator's key file "
            "(`forgeproof participants rotate`), not through the API"
        )


@router.get("", response_model=list[ParticipantPublic])
def list_participants(caller: CallerDep, service: ServiceDep) -> list[ParticipantPublic]:
    """The registry as the chain holds it: participants, roles and key history."""
    return [_public(service, p) for p in service.dep.registry.participants()]


# Declared before /{participant}, which would otherwise take its path.
@router.get("/product-assignments", response_model=list[ProductAssignmentPublic])
def list_product_assignments(caller: ProductReader, service: ServiceDep) -> list[dict[str, Any]]:
    """Products and their suppliers: all of them for roles that read every record, a
    supplier's own products to a supplier (not who else supplies them)."""
    with service.dep.store.reading() as conn:
        return readable_assignments(conn, caller)


@router.get("/{participant}", response_model=ParticipantPublic)
def get_participant(participant: str, caller: CallerDep, service: ServiceDep) -> ParticipantPublic:
    """One participant of the registry."""
    return _public(service, service.dep.registry.participant(participant))


@router.post("", status_code=201, response_model=ParticipantPublic)
def add_participant(
    body: ParticipantCreate, caller: Operator, service: ServiceDep
) -> ParticipantPublic:
    """Register a participant with its first signing key (a contract transaction)."""
    if "operator" in body.roles:
        raise forbidden("the operator role is granted with the operator's key, not through the API")
    writer = service.writer()
    p = writer.register(
        body.id, body.name, body.roles, body.address, _sig(body.key_proof, "key_proof")
    )
    service.registry_changed()
    return _public(service, p)


@router.post("/{participant}/roles", response_model=ParticipantPublic)
def set_roles(
    participant: str, body: RolesUpdate, caller: Operator, service: ServiceDep
) -> ParticipantPublic:
    """Replace a participant's roles ([] suspends it: it signs nothing new)."""
    current = service.dep.registry.participant(participant)
    if ("operator" in body.roles) != ("operator" in current.roles):
        raise forbidden("the operator role is granted or removed with the operator's key only")
    p = service.writer().set_roles(participant, body.roles)
    service.registry_changed()
    return _public(service, p)


@router.get("/{participant}/key-change", response_model=KeyChangeMessages)
def key_change_messages(
    participant: str,
    caller: KeyHolder,
    service: ServiceDep,
    add: Annotated[
        str | None, Query(description="key to bind", pattern=r"^0x[0-9a-fA-F]{40}$")
    ] = None,
    revoke: Annotated[
        str | None, Query(description="key to revoke", pattern=r"^0x[0-9a-fA-F]{40}$")
    ] = None,
) -> KeyChangeMessages:
    """The EIP-712 messages to sign for the participant's next key change (its current nonce)."""
    _own_keys(service, caller, participant)
    if add is None and revoke is None:
        raise ApiError(422, "invalid_request", "name a key to add, to revoke, or both")
    writer = service.writer()
    nonce = writer.nonce(participant)
    domain = writer.domain
    return KeyChangeMessages(
        participant=participant,
        nonce=nonce,
        key_binding=key_binding_typed_data(domain, participant, add, nonce) if add else None,
        key_change=key_change_typed_data(domain, participant, nonce, add=add, revoke=revoke),
    )


@router.post("/{participant}/keys", status_code=201, response_model=ParticipantPublic)
def add_key(
    participant: str, body: KeyAdd, caller: KeyHolder, service: ServiceDep
) -> ParticipantPublic:
    """Bind another signing key, with its proof of possession and the participant's consent."""
    _own_keys(service, caller, participant)
    service.writer().add_key(
        participant,
        body.address,
        _sig(body.key_proof, "key_proof"),
        _sig(body.authorization, "authorization"),
    )
    service.registry_changed()
    return _public(service, service.dep.registry.participant(participant))


@router.post("/{participant}/keys/rotate", response_model=ParticipantPublic)
def rotate_key(
    participant: str, body: KeyRotate, caller: KeyHolder, service: ServiceDep
) -> ParticipantPublic:
    """Replace a key by a new one in one transaction, with the new key's proof of possession and
    the consent of a currently valid key."""
    _own_keys(service, caller, participant)
    old = body.old
    if old is None:
        active = [k.address for k in service.dep.registry.keys(participant) if k.active]
        if len(active) != 1:
            raise InputError(
                f"{participant} has {len(active)} unrevoked keys: name the one to replace (old)"
            )
        old = active[0]
    owner = service.dep.registry.state().keys.get(old.lower())
    if owner is None or owner.participant != participant:
        raise forbidden(f"{old} is not a key of {participant}")
    service.writer().rotate_key(
        old,
        body.address,
        _sig(body.key_proof, "key_proof"),
        _sig(body.authorization, "authorization"),
    )
    service.registry_changed()
    return _public(service, service.dep.registry.participant(participant))


@router.post("/{participant}/keys/{address}/revoke", response_model=ParticipantPublic)
def revoke_key(
    participant: str,
    address: str,
    caller: KeyHolder,
    service: ServiceDep,
    body: KeyRevoke | None = None,
) -> ParticipantPublic:
    """Revoke a key from the current block on: by an operator, or by the participant with a
    valid key's consent. What it signed and was anchored before stays valid."""
    _own_keys(service, caller, participant)
    owner = service.dep.registry.state().keys.get(address.lower())
    if owner is None or owner.participant != participant:
        raise forbidden(f"{address} is not a key of {participant}")
    authorization = _sig(body.authorization if body else None, "authorization")
    if caller.role != "operator" and not authorization:
        raise ApiError(
            422,
            "authorization_required",
            "a revocation asked by the participant needs the consent of one of its valid keys "
            f"(authorization; see GET /v1/participants/{participant}/key-change)",
        )
    service.writer().revoke_key(address, authorization)
    service.registry_changed()
    return _public(service, service.dep.registry.participant(participant))


# ------------------------------------------------------------------------------------ API keys
def _api_key(info: ApiKeyInfo, token: str | None = None) -> ApiKeyPublic:
    return ApiKeyPublic(
        id=info.id,
        participant=info.participant,
        role=info.role,
        label=info.label,
        created_at=us_to_time(info.created_us),
        expires_at=us_to_time(info.expires_us) if info.expires_us else None,
        revoked_at=us_to_time(info.revoked_us) if info.revoked_us else None,
        api_key=token,
    )


def _issue(service: Service, participant: str, body: ApiKeyCreate) -> ApiKeyPublic:
    expires = time_to_us(body.expires_at, "expires_at") if body.expires_at else None
    token, info = issue_api_key(
        service.dep.store,
        participant,
        body.role,
        body.label,
        expires_us=expires,
        registry=service.dep.registry,
    )
    return _api_key(info, token)


@router.post("/{participant}/api-keys", status_code=201, response_model=ApiKeyPublic)
def add_api_key(
    participant: str, body: ApiKeyCreate, caller: Operator, service: ServiceDep
) -> ApiKeyPublic:
    """Issue an API key for a participant acting in one of its roles (the secret is shown once)."""
    return _issue(service, participant, body)


@api_keys_router.post("", status_code=201, response_model=ApiKeyPublic)
def issue(body: ApiKeyIssue, caller: Operator, service: ServiceDep) -> ApiKeyPublic:
    """Issue an API key (the secret is shown once; only its hash is kept)."""
    return _issue(service, body.participant, body)


@api_keys_router.get("", response_model=list[ApiKeyPublic])
def list_keys(caller: CallerDep, service: ServiceDep) -> list[ApiKeyPublic]:
    """API keys without their secrets: every one for an operator, the caller's own otherwise."""
    participant = None if caller.role == "operator" else caller.participant
    return [_api_key(k) for k in list_api_keys(service.dep.store, participant)]


@api_keys_router.post("/{key_id}/revoke", response_model=ApiKeyPublic)
def revoke(key_id: str, caller: CallerDep, service: ServiceDep) -> ApiKeyPublic:
    """Revoke an API key (an operator any, others their own): refused everywhere within 1 s."""
    participant = None if caller.role == "operator" else caller.participant
    info = revoke_api_key(service.dep.store, key_id, participant=participant)
    service.api_keys.forget()
    return _api_key(info)


# ------------------------------------------------------------------------------------ assets
@router.post("/assignments", status_code=201)
def assign_asset(body: AssignmentCreate, caller: Operator, service: ServiceDep) -> dict[str, str]:
    """Assign an asset to a maintenance partner: it will see that asset's predictions and
    inspections."""
    p = service.dep.registry.participant(body.maintainer)
    if "maintainer" not in p.roles:
        raise forbidden(f"{body.maintainer} is not a maintainer")
    with service.dep.store.transaction() as conn:
        exists = conn.execute(
            select(AssetAssignment).where(
                AssetAssignment.asset == body.asset,
                AssetAssignment.maintainer == body.maintainer,
            )
        ).first()
        if exists is not None:
            raise Conflict(f"{body.asset} is already assigned to {body.maintainer}")
        conn.execute(insert(AssetAssignment).values(asset=body.asset, maintainer=body.maintainer))
    return {"asset": body.asset, "maintainer": body.maintainer}


# ------------------------------------------------------------------------------------ products
@router.post("/product-assignments", status_code=201, response_model=ProductAssignmentPublic)
def assign_product_route(
    body: ProductAssignmentCreate, caller: Operator, service: ServiceDep
) -> dict[str, Any]:
    """Assign a product to a supplier: it will read that product's demand forecasts (and get
    them by webhook). Logged as an operator-signed `product_assignment` record, so a demand
    scorecard's per-supplier figures can be recomputed from receipts; 409 if already so."""
    return assign_product(service, body.product, body.supplier)


__all__ = ["api_keys_router", "router"]
