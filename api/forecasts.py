"""Demand forecasts as records: what the plant expects to order, per product and ISO week.

A `forecast` record is signed like a prediction (by whoever runs the plant's models, KIND_ROLES)
and cites a registered model manifest whose task is `demand`. Its payload is what the demand
model yields (`ml.forecast.DemandPredictor.forecast`), plus `requested_by`:

    {"kind": "demand_forecast", "model": "<name>", "model_manifest_digest": "0x<64 hex>",
     "product": "P17", "origin": "2026-W40", "weeks": ["2026-W40", ...],   # 1..8 weeks
     "point": [12.0, ...], "intervals": {"80": [[lo, hi], ...], "90": [...]},
     "input_digest": "0x<sha256>", "input_shape": [n_weeks], "scale": 2.31}

`check_forecast` runs before anything is appended (`Service.submit`), so a malformed forecast
changes nothing; every refusal is an `InputError` (422) naming the field. The suppliers assigned
to a forecast's product read it (`api.access`, `api.products`); it is settled per week by
`outcome` records (`api.outcomes`) and scored by `api.scorecards` (task `demand`).
"""

from __future__ import annotations

import math
import re
from datetime import date, timedelta
from typing import Any, TypeGuard

from ledger.errors import InputError

FORECAST_KIND = "forecast"
DEMAND_TASK = "demand"
PAYLOAD_KIND = "demand_forecast"
MAX_HORIZON = 8
MAX_PRODUCT = 128  # the width of record_tags.product
# Kinds whose payload `product` is tagged at append (record_tags.product): forecasts, the
# outcomes that settle them, and the assignments that name a product's suppliers.
PRODUCT_KINDS = frozenset({"forecast", "outcome", "product_assignment"})
_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
_DIGEST = re.compile(r"^0x[0-9a-f]{64}$")


def parse_week(label: Any, what: str = "week") -> date:
    """The Monday of ISO week `label` ("2026-W40").

    Raises:
        InputError: not an ISO week label, or a week the year does not have (W53).
    """
    m = _WEEK.match(label) if isinstance(label, str) else None
    if m is None:
        raise InputError(f"{what} is {label!r}, expected an ISO week label such as '2026-W40'")
    try:
        return date.fromisocalendar(int(m.group(1)), int(m.group(2)), 1)
    except ValueError:
        raise InputError(f"{what} is {label!r}, a week that year does not have") from None


def week_label(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def next_week(label: str) -> str:
    """The ISO week after `label`."""
    return week_label(parse_week(label) + timedelta(days=7))


def _number(x: Any) -> TypeGuard[float]:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def check_product(product: Any, what: str = "product") -> str:
    """Raises: InputError unless `product` is a non-empty string of at most 128 characters."""
    if not isinstance(product, str) or not product.strip() or len(product) > MAX_PRODUCT:
        raise InputError(
            f"{what} is {product!r}, expected a product code (1 to {MAX_PRODUCT} characters)"
        )
    return product


def check_forecast(payload: dict[str, Any]) -> None:
    """Check a forecast payload's shape (the model it cites is checked by the service).

    Raises:
        InputError: a field is missing or malformed; the message names it.
    """

    def bad(field: str, found: Any, expected: str) -> InputError:
        return InputError(f"forecast: payload.{field} is {found!r}, expected {expected}")

    if payload.get("kind") != PAYLOAD_KIND:
        raise bad("kind", payload.get("kind"), f"{PAYLOAD_KIND!r}")
    name = payload.get("model")
    if not isinstance(name, str) or not name:
        raise bad("model", name, "the model's name")
    digest = payload.get("model_manifest_digest")
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise bad("model_manifest_digest", digest, "0x and 64 lower-case hex digits")
    check_product(payload.get("product"), "forecast: payload.product")
    weeks = payload.get("weeks")
    if not isinstance(weeks, list) or not 1 <= len(weeks) <= MAX_HORIZON:
        raise bad("weeks", weeks, f"a list of 1 to {MAX_HORIZON} ISO week labels")
    origin = payload.get("origin")
    parse_week(origin, "forecast: payload.origin")
    expected = origin
    for i, week in enumerate(weeks):
        parse_week(week, f"forecast: payload.weeks[{i}]")
        if week != expected:
            raise bad(f"weeks[{i}]", week, f"{expected!r} (consecutive weeks from origin)")
        expected = next_week(week)
    n = len(weeks)
    point = payload.get("point")
    if not isinstance(point, list) or len(point) != n:
        raise bad("point", point, f"a list of {n} numbers, one per week")
    for i, x in enumerate(point):
        if not _number(x) or x < 0:
            raise bad(f"point[{i}]", x, "a finite number of units, at least 0")
    intervals = payload.get("intervals")
    if not isinstance(intervals, dict) or not intervals:
        raise bad("intervals", intervals, 'an object of levels, such as {"80": [[lo, hi], ...]}')
    for level, pairs in intervals.items():
        if not level.isdigit() or not 1 <= int(level) <= 99 or level != str(int(level)):
            raise bad("intervals", level, "levels named by a percentage from 1 to 99")
        if not isinstance(pairs, list) or len(pairs) != n:
            raise bad(f"intervals.{level}", pairs, f"a list of {n} [lo, hi] pairs, one per week")
        for i, pair in enumerate(pairs):
            if (
                not isinstance(pair, list)
                or len(pair) != 2
                or not all(_number(x) for x in pair)
                or pair[0] > pair[1]
            ):
                raise bad(f"intervals.{level}[{i}]", pair, "[lo, hi], finite numbers, lo <= hi")
    input_digest = payload.get("input_digest")
    if not isinstance(input_digest, str) or not _DIGEST.match(input_digest):
        raise bad("input_digest", input_digest, "0x and 64 lower-case hex digits (SHA-256)")
    shape = payload.get("input_shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)
    ):
        raise bad("input_shape", shape, "a non-empty list of positive integers")
    scale = payload.get("scale")
    if not _number(scale) or scale < 0:
        raise bad("scale", scale, "a finite number, at least 0 (the history's naive-1 MAE)")
    requested_by = payload.get("requested_by")
    if requested_by is not None and not isinstance(requested_by, str):
        raise bad("requested_by", requested_by, "a participant id")


def record_product(kind: str, payload: dict[str, Any]) -> str | None:
    """The product a record is about (tagged at append): a forecast's, an outcome's or an
    assignment's `product`, when it is a product code; None otherwise."""
    if kind not in PRODUCT_KINDS:
        return None
    product = payload.get("product")
    if isinstance(product, str) and product and len(product) <= MAX_PRODUCT:
        return product
    return None
