"""Request and response bodies, in families: XCreate, XPublic, XsPublic(data, next_cursor)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class RecordCreate(BaseModel):
    """A record signed by its producer (EIP-712), as `forgeproof sign` writes it."""

    record: dict[str, Any] = Field(
        description="the record envelope: kind, payload, producer, created_at, salt"
    )
    signature: str = Field(
        description="0x-prefixed 65-byte EIP-712 signature", examples=["0x" + "00" * 65]
    )


class RecordAccepted(BaseModel):
    status: Literal["accepted", "duplicate"]
    id: str = Field(description="the record's leaf hash, 0x-prefixed")
    index: int = Field(description="position in the log")


class RecordPublic(BaseModel):
    id: str
    index: int
    kind: str
    participant: str
    signer: str
    created_at: str
    appended_at: str
    erased: bool
    record: dict[str, Any] | None = Field(description="null once erased")
    signature: str


class RecordsPublic(BaseModel):
    data: list[RecordPublic]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null at the end"
    )


class ReceiptPublic(BaseModel):
    status: Literal["pending", "checkpointed", "anchored"]
    receipt: dict[str, Any] | None = Field(
        description="the receipt (docs/receipt.md); null while pending"
    )


class VerifyRequest(BaseModel):
    receipt: dict[str, Any]


class CheckPublic(BaseModel):
    name: str
    status: Literal["ok", "failed", "skipped"]
    detail: str


class VerdictPublic(BaseModel):
    ok: bool
    checks: list[CheckPublic]


class CheckpointPublic(BaseModel):
    size: int
    root: str
    created_at: str
    anchored: bool
    chain_id: int | None = None
    contract: str | None = None
    tx_hash: str | None = None
    block_number: int | None = None


class CheckpointsPublic(BaseModel):
    data: list[CheckpointPublic]
    next_cursor: str | None


class ConsistencyPublic(BaseModel):
    size1: int
    size2: int
    root1: str
    root2: str
    proof: list[str]


_ADDRESS = r"^0x[0-9a-fA-F]{40}$"
_SIGNATURE = r"^0x[0-9a-fA-F]{130}$"


class ParticipantCreate(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    name: str = Field(min_length=1, max_length=256)
    roles: list[str] = Field(min_length=1)
    address: str = Field(description="the participant's first signing key", pattern=_ADDRESS)
    key_proof: str = Field(
        description="the key's EIP-712 KeyBinding signature over (id, address, nonce 0): "
        "proof that its holder consents",
        pattern=_SIGNATURE,
    )


class KeyAdd(BaseModel):
    address: str = Field(description="the key to bind", pattern=_ADDRESS)
    key_proof: str = Field(description="the new key's KeyBinding signature", pattern=_SIGNATURE)
    authorization: str = Field(
        description="a currently valid key's KeyChange signature (addKey = address)",
        pattern=_SIGNATURE,
    )


class KeyRotate(BaseModel):
    old: str | None = Field(
        None, description="the key to replace (default: the only unrevoked one)", pattern=_ADDRESS
    )
    address: str = Field(description="the new key", pattern=_ADDRESS)
    key_proof: str = Field(description="the new key's KeyBinding signature", pattern=_SIGNATURE)
    authorization: str = Field(
        description="a currently valid key's KeyChange signature (addKey = new, revokeKey = old)",
        pattern=_SIGNATURE,
    )


class KeyRevoke(BaseModel):
    authorization: str | None = Field(
        None,
        description="a currently valid key's KeyChange signature (revokeKey = address); "
        "required unless the caller is an operator",
        pattern=_SIGNATURE,
    )


class RolesUpdate(BaseModel):
    roles: list[str] = Field(description="the participant's roles from now on; [] suspends it")


class KeyPublic(BaseModel):
    address: str
    valid_from_block: int
    revoked_from_block: int | None
    valid_from: str
    revoked_at: str | None
    added_by: str | None = Field(description="the key (or operator) that consented to it")
    revoked_by: str | None


class ParticipantPublic(BaseModel):
    id: str
    name: str
    roles: list[str]
    registered_block: int
    keys: list[KeyPublic]


class KeyChangeMessages(BaseModel):
    """What to sign for a key change, as eth_signTypedData_v4 takes it."""

    participant: str
    nonce: int
    key_binding: dict[str, Any] | None = Field(
        description="for the new key to sign (the key_proof); null when no key is added"
    )
    key_change: dict[str, Any] = Field(
        description="for a currently valid key of the participant to sign (the authorization)"
    )


class ApiKeyCreate(BaseModel):
    role: str
    label: str = Field("default", max_length=128)
    expires_at: str | None = Field(None, description="RFC 3339; default: never")


class ApiKeyIssue(ApiKeyCreate):
    participant: str


class ApiKeyPublic(BaseModel):
    id: str
    participant: str
    role: str
    label: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None
    api_key: str | None = Field(None, description="the secret: shown once, when created")


class AssignmentCreate(BaseModel):
    asset: str = Field(min_length=1, max_length=128)
    maintainer: str


class ProductAssignmentCreate(BaseModel):
    product: str = Field(min_length=1, max_length=128, description="product code")
    supplier: str = Field(description="a participant holding the supplier role")


class ProductAssignmentPublic(BaseModel):
    product: str
    supplier: str
    record_index: int = Field(description="leaf index of the operator-signed assignment record")
    record_id: str | None = Field(None, description="its leaf hash (when just made)")


class ErrorPublic(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    code: str
    detail: str
