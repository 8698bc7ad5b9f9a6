from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from ml.data.ai4i import (
    FEATURE_NAMES,
    LEAKAGE_COLUMNS,
    Scaler,
    engineer,
    parse_rows,
    read_rows,
    stratified_folds,
)
from ml.errors import MLInputError
from tests.ml.conftest import AI4I_SAMPLE

HEADER = (
    "UDI,Product ID,Type,Air temperature [K],Process temperature [K],Rotational speed [rpm],"
    "Torque [Nm],Tool wear [min],Machine failure,TWF,HDF,PWF,OSF,RNF\n"
)
ROW = "1,M14860,M,298.1,308.6,1551,42.8,0,0,0,0,0,0,0\n"


def test_sample_parses_and_keeps_line_numbers() -> None:
    rows = read_rows(AI4I_SAMPLE, require_labels=True)
    assert len(rows) == 300
    assert rows.labels is not None and rows.labels.sum() == 40
    assert rows.lines[0] == 2
    assert rows.raw.shape == (300, 6)


def test_features_exclude_ids_and_failure_modes() -> None:
    for name in (*LEAKAGE_COLUMNS, "UDI", "Product ID", "Machine failure"):
        assert name not in FEATURE_NAMES
    # Flipping every failure-mode flag leaves the inputs unchanged.
    a = parse_rows(HEADER + ROW, Path("a.csv"), require_labels=True)
    b = parse_rows(
        HEADER + ROW.replace("0,0,0,0,0,0\n", "0,1,1,1,1,1\n"), Path("b.csv"), require_labels=True
    )
    np.testing.assert_array_equal(engineer(a.raw), engineer(b.raw))


def test_engineered_features_are_physical() -> None:
    rows = parse_rows(HEADER + ROW, Path("a.csv"), require_labels=True)
    f = engineer(rows.raw)[0]
    named = dict(zip(FEATURE_NAMES, f, strict=True))
    assert named["type_M"] == 1 and named["type_L"] == 0
    assert named["temperature difference [K]"] == pytest.approx(10.5)
    assert named["power [W]"] == pytest.approx(42.8 * 1551 * 2 * math.pi / 60)
    assert named["wear x torque [min Nm]"] == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (HEADER + "1,M1,M,298.1,308.6,1551,42.8\n", r"a\.csv:2: expected 14 columns .* found 7"),
        (HEADER + ROW.replace("298.1", "nan"), r"a\.csv:2: Air temperature \[K\] is 'nan'"),
        (
            HEADER + ROW.replace("298.1", ""),
            r"a\.csv:2: Air temperature \[K\] is '', expected a number",
        ),
        (HEADER + ROW + ROW.replace(",M,", ",X,"), r"a\.csv:3: Type is 'X'"),
        (
            HEADER + ROW.replace("0,0,0,0,0,0\n", "2,0,0,0,0,0\n"),
            r"a\.csv:2: Machine failure is '2'",
        ),
        (HEADER.replace("Torque [Nm],", "") + ROW, r"a\.csv:1: header lacks 'Torque \[Nm\]'"),
        (HEADER, r"a\.csv: no data rows"),
        ("", r"a\.csv: empty file"),
    ],
)
def test_bad_rows_name_file_line_and_problem(text: str, message: str) -> None:
    with pytest.raises(MLInputError, match=message):
        parse_rows(text, Path("a.csv"), require_labels=True)


def test_labels_optional_for_prediction() -> None:
    header = (
        "Product ID,Type,Air temperature [K],Process temperature [K],"
        "Rotational speed [rpm],Torque [Nm],Tool wear [min]\n"
    )
    rows = parse_rows(header + "M1,L,298,308,1500,40,10\n", Path("p.csv"), require_labels=False)
    assert rows.labels is None and rows.ids == ["M1"]
    with pytest.raises(MLInputError, match="header lacks 'Machine failure'"):
        parse_rows(header + "M1,L,298,308,1500,40,10\n", Path("p.csv"), require_labels=True)


def test_scaler_and_folds() -> None:
    rows = read_rows(AI4I_SAMPLE, require_labels=True)
    assert rows.labels is not None
    f = engineer(rows.raw)
    scaler = Scaler.fit(f)
    z = scaler.transform(f)
    np.testing.assert_allclose(z[:, 3:].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(Scaler.from_dict(scaler.to_dict()).transform(f), z)
    folds = stratified_folds(rows.labels, 5, seed=0)
    assert sorted(np.concatenate(folds).tolist()) == list(range(300))
    assert [int(rows.labels[f].sum()) for f in folds] == [8] * 5
