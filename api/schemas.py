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


class ParticipantCreate(BaseModel):
    id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    name: str = Field(min_length=1, max_length=256)
    roles: list[str] = Field(min_length=1)
    address: str = Field(
        description="the participant's first signing key", pattern=r"^0x[0-9a-fA-F]{40}$"
    )


class ParticipantPublic(BaseModel):
    id: str
    name: str
    roles: list[str]
    keys: list[dict[str, Any]]


class ApiKeyCreate(BaseModel):
    role: str
    label: str = "default"


class ApiKeyPublic(BaseModel):
    participant: str
    role: str
    api_key: str = Field(description="shown once; only its hash is stored")


class AssignmentCreate(BaseModel):
    asset: str = Field(min_length=1, max_length=128)
    maintainer: str


class ErrorPublic(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    code: str
    detail: str
