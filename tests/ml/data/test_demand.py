"""The demand loaders: the shipped sets load whole, and what a forecast cannot be made from is
refused by row and column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.data.demand import check_units, load_daily, load_weekly
from ml.errors import MLInputError
from ml.shipped import SAMPLES

WEEKLY = SAMPLES / "demand" / "Sales_Transactions_Dataset_Weekly.csv"
DAILY = SAMPLES / "demand" / "Daily_Demand_Forecasting_Orders.csv"


def test_the_weekly_set_loads_whole() -> None:
    sales = load_weekly(WEEKLY)
    assert sales.units.shape == (811, 52)
    assert sales.units.dtype == np.float32
    assert sales.products[:2] == ["P1", "P2"]
    assert sales.history("P1")[:5].tolist() == [11, 12, 10, 8, 13]  # the file's first row
    assert (sales.units >= 0).all()
    assert sales.head(44).units.shape == (811, 44)


def test_the_daily_set_loads_whole() -> None:
    daily = load_daily(DAILY)
    assert daily.values.shape == (60, 13)
    assert daily.columns[-1] == "Target (Total orders)"
    assert daily.total[0] == pytest.approx(539.577)


def _weekly(tmp_path: Path, rows: list[str], header: str = "Product_Code,W0,W1,W2") -> Path:
    path = tmp_path / "weekly.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize(
    ("rows", "header", "message"),
    [
        (["P1,1,,3"], None, r"weekly.csv:2, P1 W1: missing value"),
        (["P1,1,x,3"], None, r"P1 W1: 'x' is not a number"),
        (["P1,1,nan,3"], None, r"P1 W1: 'nan' is not a finite number"),
        (["P1,1,-2,3"], None, r"P1 W1: -2 units is negative"),
        (["P1,1,2"], None, r"weekly.csv:2: 3 fields, expected 4"),
        (["P1,1,2,3", "P1,4,5,6"], None, r"products listed more than once: P1"),
        ([",1,2,3"], None, r"weekly.csv:2: empty Product_Code"),
        (["P1,1,2,3"], "Product_Code,W0,W2,W1", r"not W0..W2 in order"),
        (["P1,1,2,3"], "Code,W0,W1,W2", r"no Product_Code column"),
        ([], None, r"no products"),
    ],
)
def test_a_bad_weekly_file_is_refused_by_row_and_column(
    tmp_path: Path, rows: list[str], header: str | None, message: str
) -> None:
    path = _weekly(tmp_path, rows, header or "Product_Code,W0,W1,W2")
    with pytest.raises(MLInputError, match=message):
        load_weekly(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MLInputError, match="no such file"):
        load_weekly(tmp_path / "nope.csv")
    with pytest.raises(MLInputError, match="no such file"):
        load_daily(tmp_path / "nope.csv")


def test_a_bad_daily_file_is_refused(tmp_path: Path) -> None:
    lines = DAILY.read_text().splitlines()
    cells = lines[3].split(";")
    cells[4] = ""
    path = tmp_path / "daily.csv"
    path.write_text("\n".join([lines[0], lines[1], ";".join(cells)]) + "\n")
    with pytest.raises(MLInputError, match=r"daily.csv:3, 'Order type A': missing value"):
        load_daily(path)
    path.write_text("a;b\n1;2\n")
    with pytest.raises(MLInputError, match="expected 13"):
        load_daily(path)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ([1.0, float("nan")], r"week 1: nan is missing or not finite"),
        ([1.0, float("inf")], r"week 1: inf is missing or not finite"),
        ([-1.0], r"week 0: -1 units is negative"),
        ([], r"non-empty list"),
    ],
)
def test_a_history_is_checked_week_by_week(values: list[float], message: str) -> None:
    with pytest.raises(MLInputError, match=message):
        check_units(values, "history of P9")
