"""AI4I 2020 predictive-maintenance CSV (UCI 601): parse, check and engineer features.

The target is `Machine failure`. The five failure-mode columns (TWF, HDF, PWF, OSF, RNF) are
what *defines* a failure and `UDI` / `Product ID` identify rows, so none of them is ever a model
input. Inputs are the machine type and the five process variables plus three physically
motivated features: the heat-dissipation margin (process minus air temperature), mechanical
power (torque x angular speed) and overstrain (tool wear x torque), the last also split by
product type (one column per type), since each type tolerates a different strain.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.errors import MLInputError

ID_COLUMN = "Product ID"
TYPE_COLUMN = "Type"
PROCESS_COLUMNS = (
    "Air temperature [K]",
    "Process temperature [K]",
    "Rotational speed [rpm]",
    "Torque [Nm]",
    "Tool wear [min]",
)
TARGET_COLUMN = "Machine failure"
LEAKAGE_COLUMNS = ("TWF", "HDF", "PWF", "OSF", "RNF")
TYPES = ("L", "M", "H")

# The raw input of one row, in this order, is what a prediction's input digest covers.
RAW_INPUT_NAMES = ("type_index", *PROCESS_COLUMNS)
FEATURE_NAMES = (
    "type_L",
    "type_M",
    "type_H",
    *PROCESS_COLUMNS,
    "temperature difference [K]",
    "power [W]",
    "wear x torque [min Nm]",
    "wear x torque, type L [min Nm]",
    "wear x torque, type M [min Nm]",
    "wear x torque, type H [min Nm]",
)


@dataclass(frozen=True)
class Rows:
    """Checked AI4I rows. `labels` is None when the file has no `Machine failure` column."""

    path: Path
    ids: list[str]
    raw: np.ndarray  # (n, 6) float64: type index (L=0, M=1, H=2), then PROCESS_COLUMNS
    labels: np.ndarray | None  # (n,) int64 in {0, 1}
    lines: np.ndarray  # (n,) 1-based line numbers

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx: np.ndarray) -> Rows:
        return Rows(
            path=self.path,
            ids=[self.ids[i] for i in idx],
            raw=self.raw[idx],
            labels=None if self.labels is None else self.labels[idx],
            lines=self.lines[idx],
        )


def parse_rows(text: str, path: Path, *, require_labels: bool) -> Rows:
    """Parse AI4I CSV text; `path` names the source in error messages.

    The header must name `Product ID`, `Type` and the five process columns (and `Machine
    failure` when `require_labels`); other columns (UDI, the failure modes) are read past.

    Raises:
        MLInputError: a header column is missing, a row has the wrong number of columns, a
            type is not L/M/H, a value is empty, not a number, NaN or infinite, or a label is
            not 0/1. The message names the file and line.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise MLInputError(f"{path}: empty file, expected an AI4I 2020 CSV header") from None
    header = [h.strip() for h in header]
    needed = [ID_COLUMN, TYPE_COLUMN, *PROCESS_COLUMNS] + (
        [TARGET_COLUMN] if require_labels else []
    )
    missing = [c for c in needed if c not in header]
    if missing:
        raise MLInputError(
            f"{path}:1: header lacks {', '.join(repr(c) for c in missing)}; found "
            f"{', '.join(repr(h) for h in header)}"
        )
    col = {name: header.index(name) for name in header}
    has_labels = TARGET_COLUMN in col
    ids: list[str] = []
    raw: list[list[float]] = []
    labels: list[int] = []
    lines: list[int] = []
    for number, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise MLInputError(
                f"{path}:{number}: expected {len(header)} columns as in the header, "
                f"found {len(row)}"
            )
        kind = row[col[TYPE_COLUMN]].strip()
        if kind not in TYPES:
            raise MLInputError(f"{path}:{number}: Type is {kind!r}, expected one of L, M, H")
        values = [float(TYPES.index(kind))]
        for name in PROCESS_COLUMNS:
            values.append(_number(row[col[name]], path, number, name))
        if has_labels:
            label = row[col[TARGET_COLUMN]].strip()
            if label not in ("0", "1"):
                raise MLInputError(
                    f"{path}:{number}: {TARGET_COLUMN} is {label!r}, expected 0 or 1"
                )
            labels.append(int(label))
        ids.append(row[col[ID_COLUMN]].strip())
        raw.append(values)
        lines.append(number)
    if not ids:
        raise MLInputError(f"{path}: no data rows after the header")
    return Rows(
        path=path,
        ids=ids,
        raw=np.asarray(raw, dtype=np.float64),
        labels=np.asarray(labels, dtype=np.int64) if has_labels else None,
        lines=np.asarray(lines, dtype=np.int64),
    )


DEV_CSV = "ai4i2020_dev.csv"


def dev_csv(data: Path) -> Path:
    """`data`/ai4i2020/ai4i2020_dev.csv, the development rows (`data` is like ../shared/data).

    Raises:
        FileNotFoundError: the file is not there.
    """
    path = Path(data) / "ai4i2020" / DEV_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected {DEV_CSV} under {data}/ai4i2020)")
    return path


def read_rows(path: Path, *, require_labels: bool) -> Rows:
    """Read and check an AI4I CSV file (see `parse_rows`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return parse_rows(path.read_text(), path, require_labels=require_labels)


def read_failure_modes(path: Path) -> np.ndarray:
    """(n, 5) int64: the failure-mode columns TWF, HDF, PWF, OSF, RNF of an AI4I CSV, for
    analysing the target only (they define it: never a model input).

    Raises:
        MLInputError: a mode column is missing or a value is not 0/1.
    """
    path = Path(path)
    reader = csv.reader(io.StringIO(path.read_text()))
    header = [h.strip() for h in next(reader, [])]
    missing = [c for c in LEAKAGE_COLUMNS if c not in header]
    if missing:
        raise MLInputError(f"{path}:1: header lacks {', '.join(missing)}")
    cols = [header.index(c) for c in LEAKAGE_COLUMNS]
    out = []
    for number, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        values = [row[i].strip() for i in cols]
        if any(v not in ("0", "1") for v in values):
            raise MLInputError(f"{path}:{number}: failure modes {values}, expected 0 or 1")
        out.append([int(v) for v in values])
    return np.asarray(out, dtype=np.int64).reshape(-1, len(LEAKAGE_COLUMNS))


# The data generator's stated rules for the three threshold mechanisms (UCI 601's description):
HDF_MARGIN_K = 8.6  # heat dissipation: process - air temperature below this ...
HDF_SPEED_RPM = 1380  # ... and rotational speed below this
PWF_POWER_W = (3500.0, 9000.0)  # power failure outside this band
OSF_STRAIN_MIN_NM = (11000.0, 12000.0, 13000.0)  # overstrain limit for types L, M, H


def generator_rules(raw: np.ndarray) -> np.ndarray:
    """(n, 3) bool: whether each row meets the stated HDF, PWF, OSF conditions. The
    temperature margin is rounded to 0.1 K, the resolution of the recorded temperatures."""
    kind = raw[:, 0].astype(np.int64)
    air, process, speed, torque, wear = (raw[:, i] for i in range(1, 6))
    margin = np.round(process - air, 1)
    power = torque * speed * (2 * math.pi / 60)
    hdf = (margin < HDF_MARGIN_K) & (speed < HDF_SPEED_RPM)
    pwf = (power < PWF_POWER_W[0]) | (power > PWF_POWER_W[1])
    osf = wear * torque > np.asarray(OSF_STRAIN_MIN_NM)[kind]
    return np.stack([hdf, pwf, osf], axis=1)


def _number(text: str, path: Path, line: int, name: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise MLInputError(f"{path}:{line}: {name} is {text!r}, expected a number") from None
    if not math.isfinite(value):
        raise MLInputError(f"{path}:{line}: {name} is {text!r}, expected a finite number")
    return value


def engineer(raw: np.ndarray) -> np.ndarray:
    """Model features from raw inputs: (n, 6) -> (n, len(FEATURE_NAMES)) float64."""
    kind = raw[:, 0].astype(np.int64)
    air, process, speed, torque, wear = (raw[:, i] for i in range(1, 6))
    onehot = np.eye(len(TYPES))[kind]  # (n, 3)
    power = torque * speed * (2 * math.pi / 60)  # N m x rad/s = W
    strain = wear * torque
    extra = np.stack([process - air, power, strain], axis=1)  # (n, 3)
    # Overstrain limits differ by product type, so strain also gets one column per type.
    by_type = onehot * strain[:, None]  # (n, 3)
    return np.concatenate([onehot, raw[:, 1:], extra, by_type], axis=1)


@dataclass(frozen=True)
class Scaler:
    """z-scores of the engineered features, fitted on training rows only."""

    mean: np.ndarray  # (n_features,)
    std: np.ndarray  # (n_features,)

    @classmethod
    def fit(cls, features: np.ndarray) -> Scaler:
        std = features.std(axis=0)
        return cls(mean=features.mean(axis=0), std=np.where(std > 1e-12, std, 1.0))

    def transform(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        return cls(mean=np.asarray(d["mean"]), std=np.asarray(d["std"]))


def stratified_folds(labels: Sequence[int] | np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Row indices of `k` stratified folds (each row in exactly one)."""
    from sklearn.model_selection import StratifiedKFold

    y = np.asarray(labels)
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return [test for _, test in skf.split(np.zeros(len(y)), y)]
