"""Small helpers shared by routes: ids, cursors, times."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from api.errors import ApiError
from ledger.log import Log, StoredRecord


def time_to_us(value: str, name: str) -> int:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            422, "invalid_request", f"{name}: expected an RFC 3339 time, got {value!r}"
        ) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1_000_000)


def encode_cursor(data: dict[str, Any]) -> str:
    return (
        base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode())
        .decode()
        .rstrip("=")
    )


# Leaf indexes and tree sizes fit a signed 64-bit column on every database.
MAX_INDEX = 2**63 - 1


def cursor_int(cursor: str | None, key: str) -> int | None:
    """The position a cursor this service issued carries under `key` (None without a cursor).

    Raises:
        ApiError: 422 invalid_cursor, for anything this service would not have issued.
    """
    data = decode_cursor(cursor)
    if not data:
        return None
    value = data.get(key)
    if type(value) is not int or not 0 <= value <= MAX_INDEX or set(data) != {key}:
        raise ApiError(422, "invalid_cursor", "cursor is not one this service issued")
    return value


def decode_cursor(cursor: str | None) -> dict[str, Any]:
    if not cursor:
        return {}
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
        if not isinstance(data, dict):
            raise ValueError
        return data
    except ValueError:
        raise ApiError(422, "invalid_cursor", "cursor is not one this service issued") from None


def lookup(log: Log, id: str) -> StoredRecord:
    """A record by leaf hash (0x...) or index."""
    if id.startswith("0x"):
        try:
            leaf = bytes.fromhex(id[2:])
        except ValueError:
            raise ApiError(422, "invalid_id", f"{id!r} is not a 0x leaf hash") from None
        if len(leaf) != 32:
            raise ApiError(422, "invalid_id", f"leaf hash is {len(leaf)} bytes, expected 32")
        return log.find(leaf)
    if not (id.isascii() and id.isdigit()):  # isdigit alone accepts superscripts
        raise ApiError(422, "invalid_id", f"{id[:80]!r} is neither a leaf index nor a 0x leaf hash")
    if len(id) > 19 or int(id) > MAX_INDEX:
        raise ApiError(422, "invalid_id", f"leaf index {id[:24]}... is beyond any log's size")
    return log.get(int(id))
