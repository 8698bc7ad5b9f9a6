"""Demand data: weekly units per product (UCI 396) and daily orders (UCI 409).

Both loaders refuse what a forecast cannot be made from, naming the row and column: a missing or
non-numeric value, a negative count, a week column out of order. Nothing is filled in: a gap in
a product's history is the plant's to explain, not the model's to guess.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ml.errors import MLInputError

PRODUCT_COLUMN = "Product_Code"
_WEEK = re.compile(r"^W(\d+)$")
DAILY_TARGET = "Target (Total orders)"
DAILY_COLUMNS = 13


@dataclass(frozen=True)
class WeeklySales:
    """Units per product and week, oldest week first."""

    path: Path | None
    products: list[str]
    units: np.ndarray  # (products, weeks) float32, >= 0

    @property
    def weeks(self) -> int:
        return int(self.units.shape[1])

    def history(self, product: str) -> np.ndarray:
        try:
            return self.units[self.products.index(product)]
        except ValueError:
            raise MLInputError(f"no product {product!r} in {self.path}") from None

    def head(self, weeks: int) -> WeeklySales:
        """The first `weeks` weeks only: what was known at the start of week `weeks`."""
        if not 1 <= weeks <= self.weeks:
            raise MLInputError(f"asked for the first {weeks} weeks of {self.weeks}")
        return WeeklySales(self.path, self.products, self.units[:, :weeks])


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MLInputError(f"{where}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise MLInputError(f"{where}: {text!r} is not a finite number")
    return value


def check_units(values: Sequence[float] | np.ndarray, where: str) -> np.ndarray:
    """A history of weekly units as float32, refusing missing, non-finite or negative values.

    Raises:
        MLInputError: naming the first bad week.
    """
    out = np.asarray(values, dtype=np.float64)
    if out.ndim != 1 or out.size == 0:
        raise MLInputError(f"{where}: expected a non-empty list of weekly units")
    for i, v in enumerate(out):
        if not math.isfinite(v):
            raise MLInputError(f"{where}, week {i}: {v} is missing or not finite")
        if v < 0:
            raise MLInputError(f"{where}, week {i}: {v:g} units is negative")
    return out.astype(np.float32)


def load_weekly(path: Path) -> WeeklySales:
    """Read Sales_Transactions_Dataset_Weekly.csv: `Product_Code`, `W0`..`Wn`, and any other
    columns (the source's normalised copies), which are ignored.

    Raises:
        MLInputError: no such file, no product or week columns, weeks out of order, a missing,
            non-numeric or negative value, or a product listed twice.
    """
    path = Path(path)
    if not path.is_file():
        raise MLInputError(f"{path}: no such file")
    with path.open(newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or PRODUCT_COLUMN not in header:
            raise MLInputError(f"{path}: no {PRODUCT_COLUMN} column in the header")
        cols = [(i, int(m.group(1))) for i, h in enumerate(header) if (m := _WEEK.match(h))]
        if not cols:
            raise MLInputError(f"{path}: no week columns (W0, W1, ...)")
        if [w for _, w in cols] != list(range(len(cols))):
            raise MLInputError(f"{path}: week columns are not W0..W{len(cols) - 1} in order")
        pid = header.index(PRODUCT_COLUMN)
        products: list[str] = []
        rows: list[list[float]] = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) < len(header):
                raise MLInputError(f"{path}:{line}: {len(row)} fields, expected {len(header)}")
            product = row[pid].strip()
            if not product:
                raise MLInputError(f"{path}:{line}: empty {PRODUCT_COLUMN}")
            values = []
            for i, week in cols:
                where = f"{path}:{line}, {product} W{week}"
                if row[i].strip() == "":
                    raise MLInputError(f"{where}: missing value")
                v = _number(row[i], where)
                if v < 0:
                    raise MLInputError(f"{where}: {v:g} units is negative")
                values.append(v)
            products.append(product)
            rows.append(values)
    if not rows:
        raise MLInputError(f"{path}: no products")
    if len(set(products)) != len(products):
        twice = sorted({p for p in products if products.count(p) > 1})
        raise MLInputError(f"{path}: products listed more than once: {', '.join(twice[:5])}")
    return WeeklySales(path, products, np.asarray(rows, dtype=np.float32))


@dataclass(frozen=True)
class DailyOrders:
    """The daily orders set: 60 working days, 12 inputs and the total."""

    path: Path
    columns: list[str]
    values: np.ndarray  # (days, 13) float64; the last column is the total

    @property
    def total(self) -> np.ndarray:
        return self.values[:, -1]


def load_daily(path: Path) -> DailyOrders:
    """Read Daily_Demand_Forecasting_Orders.csv (`;`-separated, 13 columns, total last).

    Raises:
        MLInputError: no such file, wrong columns, a missing or non-numeric value.
    """
    path = Path(path)
    if not path.is_file():
        raise MLInputError(f"{path}: no such file")
    with path.open(newline="") as f:
        reader = csv.reader(f, delimiter=";")
        header = next(reader, None)
        if not header or len(header) != DAILY_COLUMNS or header[-1] != DAILY_TARGET:
            raise MLInputError(
                f"{path}: expected {DAILY_COLUMNS} ';'-separated columns ending in {DAILY_TARGET!r}"
            )
        rows = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != DAILY_COLUMNS:
                raise MLInputError(f"{path}:{line}: {len(row)} fields, expected {DAILY_COLUMNS}")
            rows.append(
                [
                    _number(v, f"{path}:{line}, {header[i]!r}")
                    if v.strip()
                    else _missing(path, line, header[i])
                    for i, v in enumerate(row)
                ]
            )
    if not rows:
        raise MLInputError(f"{path}: no rows")
    return DailyOrders(path, header, np.asarray(rows, dtype=np.float64))


def _missing(path: Path, line: int, column: str) -> float:
    raise MLInputError(f"{path}:{line}, {column!r}: missing value")
