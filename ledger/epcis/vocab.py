"""Vocabulary: CBV values in their one stored form, times, and forgeproof's extension namespace.

CBV 2.0 values reach us in three spellings: the bare name JSON-LD uses (`shipping`), the
EPCIS 1.x URN (`urn:epcglobal:cbv:bizstep:shipping`) and the web URI
(`https://ref.gs1.org/cbv/BizStep-shipping`). The index and the query parameters use the bare
name, so any spelling finds the same events; values outside the CBV stay the URI given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

FP_PREFIX = "fp"
FP_NAMESPACE = "https://forgeproof.dev/epcis/"
"""IRI namespace of forgeproof's EPCIS extension fields (`fp:recordLeafHash`, ...). It names
terms; nothing needs to be served there."""

NEEDS_REVIEW = f"{FP_NAMESPACE}Disp-needs_review"
"""Disposition of a verdict a person must confirm. CBV 2.0 has no such disposition, and the
schema takes values outside the CBV only as URIs, so it lives in forgeproof's namespace."""

_CBV_FORMS = {
    "bizStep": ("urn:epcglobal:cbv:bizstep:", "https://ref.gs1.org/cbv/BizStep-", "cbv:BizStep-"),
    "disposition": ("urn:epcglobal:cbv:disp:", "https://ref.gs1.org/cbv/Disp-", "cbv:Disp-"),
}


def cbv_name(field: str, value: str) -> str:
    """The stored form of a bizStep or disposition value: the bare CBV name, or the URI."""
    for prefix in _CBV_FORMS[field]:
        if value.startswith(prefix):
            return value[len(prefix) :]
    if value.startswith("http://ref.gs1.org/cbv/"):
        return cbv_name(field, "https" + value[4:])
    return value


_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)


def time_us(value: str) -> int:
    """Microseconds since the Unix epoch of an RFC 3339 time with any offset.

    Digits beyond microseconds are dropped (EPCIS times carry milliseconds in practice).

    Raises:
        ValueError: not an RFC 3339 date-time.
    """
    m = _TIME.match(value)
    if m is None:
        raise ValueError(
            f"expected an RFC 3339 time like 2026-01-31T12:00:00.000+01:00, got {value!r}"
        )
    y, mo, d, h, mi, s = (int(g) for g in m.groups()[:6])
    frac = (m.group(7) or "").ljust(6, "0")[:6]
    if m.group(8):
        tz: timezone = UTC
    else:
        sign = -1 if m.group(9) == "-" else 1
        tz = timezone(sign * timedelta(hours=int(m.group(10)), minutes=int(m.group(11))))
    t = datetime(y, mo, d, h, mi, min(s, 59), int(frac), tzinfo=tz)
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    delta = t - epoch
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def format_time_us(us: int) -> str:
    """RFC 3339 UTC with milliseconds, the form EPCIS documents use: 2026-01-31T12:00:00.000Z."""
    t = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def prefixes(context: Any) -> dict[str, str]:
    """Prefix -> IRI for the simple term definitions of a `@context` value."""
    out: dict[str, str] = {}
    items = context if isinstance(context, list) else [context]
    for item in items:
        if isinstance(item, Mapping):
            for key, iri in item.items():
                if isinstance(iri, str) and not key.startswith("@"):
                    out[key] = iri
    return out


def extension(event: Mapping[str, Any], namespace: str, local: str, context: Any = None) -> Any:
    """The value of extension field `{namespace}local` in `event`, whatever prefix names it."""
    full = namespace + local
    if full in event:
        return event[full]
    ctx = event.get("@context", context)
    for prefix, iri in prefixes(ctx).items():
        if iri == namespace and f"{prefix}:{local}" in event:
            return event[f"{prefix}:{local}"]
    return None
