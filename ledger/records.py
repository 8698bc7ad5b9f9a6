"""The record envelope, its canonical bytes, and the salted commitment the log stores.

    canonical = RFC 8785 JSON of the whole envelope (salt included)
    commitment = SHA-256(canonical)              32 bytes, hides the payload (salt: 256 bits)
    leaf_hash  = SHA-256(0x00 || commitment)     the RFC 6962 leaf the log and chain see

Deleting a record's envelope (payload and salt) erases it: its leaf hash stays in the tree, so
every other proof stays valid, and nothing about the payload can be recovered from the leaf.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime
from typing import Annotated, Any

import rfc8785
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ledger.canonical import fast_canonical_json
from ledger.errors import InputError
from ledger.merkle import hash_leaf

KINDS = (
    "prediction",
    "inspection",
    "epcis_event",
    "model_manifest",
    "participant",
    "supplier_record",
    "note",
)
"""Kinds in use; other lower-case identifiers are accepted, so new kinds need no migration."""

# What the log accepts it must always be able to serve: a payload nested deeper than any
# serialiser on the way out can follow (pydantic's stops near 255 levels) would be logged for
# good and fail every read after (a "poison record"). Bounded before anything is logged.
MAX_PAYLOAD_DEPTH = 32  # nested objects and arrays, the payload object itself being 1
MAX_RECORD_BYTES = 1024 * 1024  # RFC 8785 canonical JSON of the whole record

_RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
_HEX32 = re.compile(r"^0x[0-9a-f]{64}$")
_ADDRESS = re.compile(r"^0x[0-9a-f]{40}$")


def _utc_time(v: str) -> str:
    if not _RFC3339_UTC.fullmatch(v):
        raise ValueError(f"expected an RFC 3339 UTC time like 2026-01-31T12:00:00Z, got {v!r}")
    parse_time(v)  # also rejects impossible dates such as February 30
    return v


def _hex32(v: str) -> str:
    if not _HEX32.fullmatch(v):
        raise ValueError(f"expected 0x and 64 lower-case hex digits, got {v!r}")
    return v


def _address(v: str) -> str:
    if not _ADDRESS.fullmatch(v):
        raise ValueError(f"expected a 0x-prefixed lower-case 20-byte address, got {v!r}")
    return v


def _servable(v: dict[str, Any]) -> dict[str, Any]:
    """The payload, if whatever reads it back can canonicalise it again: nested at most
    MAX_PAYLOAD_DEPTH deep, and no float that RFC 8785 writes as an integer beyond JSON's
    safe range (a float from 2**53 to 1e21 is written as digits, which read back as an integer
    no RFC 8785 implementation takes). Walked without recursion."""
    stack: list[tuple[Any, int]] = [(v, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_PAYLOAD_DEPTH:
            raise ValueError(f"nested deeper than {MAX_PAYLOAD_DEPTH} levels")
        for c in node.values() if isinstance(node, dict) else node:
            if isinstance(c, dict | list):
                stack.append((c, depth + 1))
            elif isinstance(c, float) and 2**53 <= abs(c) < 1e21:
                raise ValueError(
                    f"{c!r} is written as an integer beyond 2**53 and would not read back as "
                    "this number: send it as a string"
                )
    return v


UtcTime = Annotated[str, AfterValidator(_utc_time)]
Hex32 = Annotated[str, AfterValidator(_hex32)]
Address = Annotated[str, AfterValidator(_address)]


def parse_time(v: str) -> datetime:
    return datetime.fromisoformat(v.replace("Z", "+00:00"))


def format_time(t: datetime) -> str:
    """RFC 3339 UTC with a Z, microseconds only when present."""
    t = t.astimezone(UTC)
    s = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        s += f".{t.microsecond:06d}"
    return s + "Z"


def utc_now() -> str:
    return format_time(datetime.now(UTC))


class Producer(BaseModel):
    """Who made a record: a participant of the registry and the key it signed with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    participant: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    address: Address


class Record(BaseModel):
    """A signed statement about the plant: a prediction, an inspection, an EPCIS event, ..."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    payload: Annotated[dict[str, Any], AfterValidator(_servable)]
    producer: Producer
    created_at: UtcTime
    salt: Hex32

    @classmethod
    def new(
        cls,
        kind: str,
        payload: dict[str, Any],
        *,
        participant: str,
        address: str,
        created_at: str | None = None,
    ) -> Record:
        """A fresh record with a random 32-byte salt, stamped now unless told otherwise.

        Raises:
            InputError: a field is malformed, or the payload nests too deep.
        """
        try:
            return cls(
                kind=kind,
                payload=payload,
                producer=Producer(participant=participant, address=address.lower()),
                created_at=created_at or utc_now(),
                salt="0x" + secrets.token_hex(32),
            )
        except ValidationError as exc:
            raise InputError(f"not a valid record: {_explain(exc)}") from None

    @classmethod
    def parse(cls, data: Any) -> Record:
        """Validate a decoded JSON object, raising InputError that names every bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise InputError(f"not a valid record: {_explain(exc)}") from None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def canonical_bytes(self) -> bytes:
        """RFC 8785 canonical JSON of the envelope.

        Raises:
            InputError: the payload holds something JSON cannot carry exactly (NaN, huge ints),
                or the record is over MAX_RECORD_BYTES.
        """
        producer = self.producer
        # The envelope as `model_dump()` gives it, without its cost: for plain JSON types
        # (the only ones the fast path takes) the two are equal; anything else falls through.
        fast = fast_canonical_json(
            {
                "created_at": self.created_at,
                "kind": self.kind,
                "payload": self.payload,
                "producer": {"address": producer.address, "participant": producer.participant},
                "salt": self.salt,
            }
        )
        if fast is None:
            try:
                # Python mode: JSON mode would quietly turn NaN into null.
                fast = rfc8785.dumps(self.model_dump())
            except (rfc8785.CanonicalizationError, ValueError, TypeError) as exc:
                raise InputError(f"payload cannot be canonicalised: {exc}") from None
        if len(fast) > MAX_RECORD_BYTES:
            raise InputError(
                f"record is {len(fast):,} bytes as canonical JSON, at most {MAX_RECORD_BYTES:,}"
            )
        return fast

    def commitment(self) -> bytes:
        return commitment(self.canonical_bytes())

    def leaf_hash(self) -> bytes:
        return hash_leaf(self.commitment())


def commitment(canonical: bytes) -> bytes:
    """SHA-256 of a record's canonical bytes: the data of its log leaf."""
    return hashlib.sha256(canonical).digest()


def leaf_hash_of(canonical: bytes) -> bytes:
    return hash_leaf(commitment(canonical))


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def hex0x(b: bytes) -> str:
    return "0x" + b.hex()


def unhex(v: str, *, size: int | None = None, what: str = "value") -> bytes:
    """Decode 0x-prefixed hex, raising InputError that says what was expected."""
    if not isinstance(v, str) or not v.startswith("0x"):
        raise InputError(f"{what}: expected 0x-prefixed hex, got {v!r:.80}")
    try:
        b = bytes.fromhex(v[2:])
    except ValueError:
        raise InputError(f"{what}: not hex: {v!r:.80}") from None
    if size is not None and len(b) != size:
        raise InputError(f"{what}: {len(b)} bytes, expected {size}")
    return b
