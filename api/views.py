"""How the service shows a stored record: one shape for the API's responses and for webhook
deliveries (`api/delivery.py`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ledger.log import StoredRecord
from ledger.records import format_time, hex0x


def us_to_time(us: int) -> str:
    return format_time(datetime.fromtimestamp(us / 1e6, UTC))


def record_public(s: StoredRecord) -> dict[str, Any]:
    return {
        "id": hex0x(s.leaf_hash),
        "index": s.index,
        "kind": s.kind,
        "participant": s.participant,
        "signer": s.signer,
        "created_at": us_to_time(s.created_us),
        "appended_at": us_to_time(s.appended_us),
        "erased": s.canonical is None,
        "record": json.loads(s.canonical) if s.canonical is not None else None,
        "signature": hex0x(s.signature),
    }
