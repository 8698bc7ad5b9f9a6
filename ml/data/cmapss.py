"""NASA C-MAPSS turbofan trajectories: parse, check, normalise and cut into windows.

File layout (all subsets FD001..FD004): space-separated text, one row per engine cycle, 26
numbers: unit, cycle, 3 operating settings, 21 sensors. Rows of one engine are contiguous and
its cycles count up by one. Training files run each engine to failure; test files stop some
cycles before it.

Preprocessing, all fitted on training engines only:
  * operating conditions: multi-condition subsets (FD002, FD004) fly six discrete regimes; the
    regimes are found by k-means on the three settings and each sensor is z-scored with the
    mean and std of its own regime, which removes the regime from the signal and leaves wear;
  * target: piecewise-linear remaining useful life, min(cycles to failure, cap) — early in life
    wear is invisible, so a cap (125) is the usual target (Heimes 2008);
  * windows: the last `window` cycles before a prediction point; engines shorter than the window
    (FD002's test set has 21-cycle engines) are padded at the front with their first cycle,
    down to `min_cycles`.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ml.errors import MLInputError

N_COLUMNS = 26
SETTING_NAMES = ("setting_1", "setting_2", "setting_3")
SENSOR_NAMES = tuple(f"s{i}" for i in range(1, 22))
COLUMN_NAMES = ("unit", "cycle", *SETTING_NAMES, *SENSOR_NAMES)

# The 14 sensors that move with wear in FD001; the other 7 are constant (or two-valued) at sea
# level. The same 14 are the usual choice for every subset once regimes are normalised away.
INFORMATIVE_SENSORS = (
    "s2", "s3", "s4", "s7", "s8", "s9", "s11", "s12", "s13", "s14", "s15", "s17", "s20", "s21",
)  # fmt: skip

# A row belongs to an operating condition when every setting is this close to its centre
# (altitude in kft, Mach, throttle resolver angle). Regime noise in the data is ~0.01 / 0.001 /
# 0; the regimes themselves are >= 5 kft / 0.1 Mach / 40 deg apart.
SETTING_TOLERANCE = np.array([1.0, 0.05, 1.0])


@dataclass(frozen=True)
class Layout:
    """What a subset is known to contain (C-MAPSS readme)."""

    conditions: int
    fault_modes: int


LAYOUTS: dict[str, Layout] = {
    "FD001": Layout(conditions=1, fault_modes=1),
    "FD002": Layout(conditions=6, fault_modes=1),
    "FD003": Layout(conditions=1, fault_modes=2),
    "FD004": Layout(conditions=6, fault_modes=2),
}


def subset_layout(subset: str) -> Layout:
    """The layout of a subset name such as "FD002".

    Raises:
        MLInputError: the name is not one of FD001..FD004.
    """
    try:
        return LAYOUTS[subset.upper()]
    except KeyError:
        raise MLInputError(
            f"unknown C-MAPSS subset layout {subset!r}; expected one of {', '.join(LAYOUTS)}"
        ) from None


def subset_files(data_dir: Path, subset: str) -> tuple[Path, Path]:
    """(train_FD00x.txt, test_FD00x.txt) in `data_dir`; the test file may not exist."""
    name = subset.upper()
    subset_layout(name)
    train = data_dir / f"train_{name}.txt"
    if not train.is_file():
        raise FileNotFoundError(f"{train}: no such file (expected the C-MAPSS {name} train file)")
    return train, data_dir / f"test_{name}.txt"


@dataclass(frozen=True)
class Trajectories:
    """The rows of one C-MAPSS file, checked. `rows` keeps all 26 columns as parsed."""

    path: Path
    rows: np.ndarray  # (n_rows, 26) float64
    lines: np.ndarray  # (n_rows,) 1-based line number of each row in the file

    @property
    def units(self) -> np.ndarray:
        return self.rows[:, 0].astype(np.int64)

    @property
    def settings(self) -> np.ndarray:
        return self.rows[:, 2:5]  # (n_rows, 3)

    def sensors(self, names: Sequence[str]) -> np.ndarray:
        idx = [5 + SENSOR_NAMES.index(n) for n in names]
        return self.rows[:, idx]  # (n_rows, len(names))

    def engine_ids(self) -> list[int]:
        units = self.units
        starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
        return [int(u) for u in units[starts]]

    def engine_slices(self) -> dict[int, slice]:
        """unit -> slice of its rows (rows of a unit are contiguous, checked on read)."""
        units = self.units
        bounds = np.flatnonzero(np.r_[True, units[1:] != units[:-1], True])
        return {int(units[a]): slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)}

    def select(self, units: Sequence[int]) -> Trajectories:
        """The rows of the given engines, in file order."""
        mask = np.isin(self.units, np.asarray(units))
        return Trajectories(path=self.path, rows=self.rows[mask], lines=self.lines[mask])


def parse_trajectories(text: str, path: Path) -> Trajectories:
    """Parse C-MAPSS text; `path` names the source in error messages.

    Raises:
        MLInputError: a line has the wrong number of columns or a non-number, a value is NaN or
            infinite, unit or cycle is not a positive integer, an engine's rows are split, or
            its cycles do not count up by one. The message names the file and line.
    """
    tokens: list[str] = []
    line_numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue  # blank lines (the files end with one) carry nothing
        if len(parts) != N_COLUMNS:
            raise MLInputError(
                f"{path}:{number}: expected {N_COLUMNS} columns (unit, cycle, 3 settings, "
                f"21 sensors), found {len(parts)}"
            )
        tokens.extend(parts)
        line_numbers.append(number)
    if not line_numbers:
        raise MLInputError(f"{path}: no data rows (expected C-MAPSS rows of {N_COLUMNS} numbers)")
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        for i, number in enumerate(line_numbers):
            for col, tok in enumerate(tokens[i * N_COLUMNS : (i + 1) * N_COLUMNS]):
                try:
                    float(tok)
                except ValueError:
                    raise MLInputError(
                        f"{path}:{number}: column {col + 1} ({COLUMN_NAMES[col]}) is {tok!r}, "
                        "expected a number"
                    ) from None
        raise
    rows = values.reshape(-1, N_COLUMNS)
    lines = np.asarray(line_numbers, dtype=np.int64)
    _check_rows(rows, lines, path)
    return Trajectories(path=path, rows=rows, lines=lines)


def trajectories_from_rows(rows: np.ndarray, source: str) -> Trajectories:
    """Check in-memory rows (n_rows, 26) like a file; errors name `source` and row number."""
    arr = np.asarray(rows, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != N_COLUMNS:
        raise MLInputError(
            f"{source}: expected rows of {N_COLUMNS} columns (unit, cycle, 3 settings, "
            f"21 sensors), found an array of shape {arr.shape}"
        )
    if len(arr) == 0:
        raise MLInputError(f"{source}: no rows")
    lines = np.arange(1, len(arr) + 1)
    _check_rows(arr, lines, Path(source))
    return Trajectories(path=Path(source), rows=arr, lines=lines)


def read_trajectories(path: Path) -> Trajectories:
    """Read and check a C-MAPSS file (see `parse_trajectories` for what is checked)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return parse_trajectories(path.read_text(), path)


def _check_rows(rows: np.ndarray, lines: np.ndarray, path: Path) -> None:
    finite = np.isfinite(rows)
    if not finite.all():
        i, col = np.argwhere(~finite)[0]
        raise MLInputError(
            f"{path}:{lines[i]}: column {col + 1} ({COLUMN_NAMES[col]}) is {rows[i, col]}, "
            "expected a finite number"
        )
    for col, name in ((0, "unit"), (1, "cycle")):
        bad = (rows[:, col] != np.round(rows[:, col])) | (rows[:, col] < 1)
        if bad.any():
            i = int(np.argmax(bad))
            raise MLInputError(
                f"{path}:{lines[i]}: {name} is {rows[i, col]:g}, expected a positive integer"
            )
    units, cycles = rows[:, 0], rows[:, 1]
    same = units[1:] == units[:-1]
    # Within an engine the cycle counts up by one; a new engine must be one not seen before.
    bad_step = same & (cycles[1:] != cycles[:-1] + 1)
    if bad_step.any():
        i = int(np.argmax(bad_step)) + 1
        raise MLInputError(
            f"{path}:{lines[i]}: engine {units[i]:g} cycle {cycles[i]:g} follows cycle "
            f"{cycles[i - 1]:g}, expected {cycles[i - 1] + 1:g}"
        )
    starts = np.flatnonzero(np.r_[True, ~same])
    seen: set[float] = set()
    for i in starts:
        if units[i] in seen:
            raise MLInputError(
                f"{path}:{lines[i]}: rows of engine {units[i]:g} resume here after other engines; "
                "expected each engine's rows in one block"
            )
        seen.add(units[i])


@dataclass(frozen=True)
class OperatingConditions:
    """Regime centres in settings space, found on training rows."""

    centers: np.ndarray  # (k, 3)

    @classmethod
    def fit(
        cls, traj: Trajectories, k: int, *, subset: str = "", seed: int = 0
    ) -> OperatingConditions:
        """Find `k` regimes with k-means; every row must lie within tolerance of its centre.

        Raises:
            MLInputError: the rows do not form `k` tight regimes (wrong subset layout).
        """
        settings = traj.settings
        if k == 1:
            centers = settings.mean(axis=0, keepdims=True)
        else:
            from sklearn.cluster import KMeans

            scale = np.maximum(settings.std(axis=0), 1e-6)
            km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(settings / scale)
            labels = km.labels_
            centers = np.stack([settings[labels == j].mean(axis=0) for j in range(k)])
            order = np.lexsort(centers.T[::-1])  # stable order: by altitude, Mach, TRA
            centers = centers[order]
        found = cls(centers=centers)
        found.assign(traj, layout=subset or f"{k} condition(s)")
        return found

    def assign(self, traj: Trajectories, *, layout: str = "", strict: bool = True) -> np.ndarray:
        """Regime index of every row, shape (n_rows,): the nearest regime. Not `strict`, a row
        outside tolerance of every regime gets its nearest one too (an input check flags it).

        Raises:
            MLInputError: `strict` and a row is outside tolerance of every regime (names file
                and line).
        """
        settings = traj.settings
        # (n_rows, k): largest per-setting distance, in units of the tolerance
        dist = np.abs(settings[:, None, :] - self.centers[None, :, :]) / SETTING_TOLERANCE
        worst = dist.max(axis=2)
        labels = worst.argmin(axis=1)
        off = worst[np.arange(len(labels)), labels] > 1.0
        if strict and off.any():
            i = int(np.argmax(off))
            near = self.centers[labels[i]]
            raise MLInputError(
                f"{traj.path}:{traj.lines[i]}: operating settings "
                f"({', '.join(f'{v:g}' for v in settings[i])}) match none of the "
                f"{len(self.centers)} operating condition(s) of {layout or 'the model'} "
                f"(nearest ({', '.join(f'{v:.3g}' for v in near)})); "
                "expected a file of the same subset layout"
            )
        return labels

    def to_dict(self) -> dict[str, Any]:
        return {"centers": self.centers.round(6).tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OperatingConditions:
        return cls(centers=np.asarray(d["centers"], dtype=np.float64))


@dataclass(frozen=True)
class Normalizer:
    """Per-condition z-scores of the chosen sensors, fitted on training rows."""

    sensors: tuple[str, ...]
    conditions: OperatingConditions
    mean: np.ndarray  # (k, n_sensors)
    std: np.ndarray  # (k, n_sensors)

    @classmethod
    def fit(
        cls, traj: Trajectories, conditions: OperatingConditions, sensors: Sequence[str]
    ) -> Normalizer:
        labels = conditions.assign(traj)
        values = traj.sensors(sensors)
        k = len(conditions.centers)
        mean = np.zeros((k, len(sensors)))
        std = np.ones((k, len(sensors)))
        for j in range(k):
            rows = values[labels == j]
            if len(rows) < 2:
                raise MLInputError(
                    f"{traj.path}: operating condition {j} has {len(rows)} training rows, "
                    "expected at least 2 to fit its scaler"
                )
            mean[j] = rows.mean(axis=0)
            s = rows.std(axis=0)
            std[j] = np.where(s > 1e-8, s, 1.0)  # a constant sensor carries no wear signal
        return cls(sensors=tuple(sensors), conditions=conditions, mean=mean, std=std)

    def transform(self, traj: Trajectories, *, strict: bool = True) -> np.ndarray:
        """Normalised features of every row, float32 (n_rows, n_sensors); `strict` as in
        `OperatingConditions.assign`."""
        labels = self.conditions.assign(traj, strict=strict)
        values = traj.sensors(self.sensors)
        return ((values - self.mean[labels]) / self.std[labels]).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sensors": list(self.sensors),
            "conditions": self.conditions.to_dict(),
            "mean": self.mean.round(8).tolist(),
            "std": self.std.round(8).tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Normalizer:
        return cls(
            sensors=tuple(d["sensors"]),
            conditions=OperatingConditions.from_dict(d["conditions"]),
            mean=np.asarray(d["mean"], dtype=np.float64),
            std=np.asarray(d["std"], dtype=np.float64),
        )


def rul_target(length: int, cap: float) -> np.ndarray:
    """Piecewise-linear RUL of a run-to-failure engine at each of its cycles, (length,)."""
    return np.minimum(np.arange(length - 1, -1, -1, dtype=np.float32), cap)


def pad_front(features: np.ndarray, window: int) -> np.ndarray:
    """Prepend `window - 1` copies of the first row so every end point has a full window."""
    pad = np.repeat(features[:1], window - 1, axis=0)
    return np.concatenate([pad, features], axis=0)


def windows_ending_at(features: np.ndarray, ends: np.ndarray, window: int) -> np.ndarray:
    """Windows of one engine ending at cycle counts `ends` (1-based, a window covers cycles
    end-window+1..end), padded at the front where end < window. (len(ends), window, F)."""
    padded = pad_front(features, window)  # row i of features is row i + window - 1 here
    idx = ends[:, None] - 1 + np.arange(window)[None, :]  # (n, window) in padded rows
    return padded[idx]


def check_length(traj: Trajectories, unit: int, rows: slice, min_cycles: int) -> None:
    n = rows.stop - rows.start
    if n < min_cycles:
        raise MLInputError(
            f"{traj.path}:{traj.lines[rows.stop - 1]}: engine {unit} has {n} cycles, "
            f"expected at least {min_cycles} to form a window"
        )


@dataclass(frozen=True)
class Preprocessing:
    """Everything between a raw file and model inputs; stored in the model manifest.

    Model input channels: the normalised sensors over the window, then (when
    `baseline_cycles` > 0) the same sensors minus the engine's own baseline — their mean over
    its first `baseline_cycles` cycles (fewer if it has not run that long). Engines start with
    different wear and manufacturing scatter; the difference to its own early life separates
    an engine's degradation from where it started.
    """

    normalizer: Normalizer
    window: int
    min_cycles: int
    cap: float
    baseline_cycles: int = 0

    @property
    def channels(self) -> list[str]:
        """Name of every input channel (what an explanation attributes to)."""
        sensors = list(self.normalizer.sensors)
        if self.baseline_cycles:
            return sensors + [f"{s} - baseline" for s in sensors]
        return sensors

    @property
    def channel_sensors(self) -> list[str]:
        """The sensor each input channel is made from."""
        sensors = list(self.normalizer.sensors)
        return sensors * 2 if self.baseline_cycles else sensors

    def features(self, traj: Trajectories, *, strict: bool = True) -> np.ndarray:
        """(n_rows, n_sensors) float32 normalised features of every row."""
        return self.normalizer.transform(traj, strict=strict)

    def _engine_windows(self, feats: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """Model inputs of one engine (its feature rows) at cycle counts `ends`."""
        x = windows_ending_at(feats, ends, self.window)  # (n, window, n_sensors)
        if not self.baseline_cycles:
            return x
        k = np.minimum(ends, self.baseline_cycles)
        early = np.cumsum(feats[: self.baseline_cycles], axis=0, dtype=np.float64)
        base = (early[k - 1] / k[:, None]).astype(np.float32)  # (n, n_sensors)
        return np.concatenate([x, x - base[:, None, :]], axis=2)  # (n, window, 2 n_sensors)

    def windows(self, traj: Trajectories, ends: dict[int, np.ndarray]) -> np.ndarray:
        """Inputs of the given engines at the given cycle counts (1-based, counted from the
        engine's first row in the file), concatenated in `ends` order. (n, window, channels)."""
        feats = self.features(traj)
        slices = traj.engine_slices()
        out = [
            self._engine_windows(feats[slices[u]], np.asarray(e, dtype=np.int64))
            for u, e in ends.items()
        ]
        if not out:
            return np.zeros((0, self.window, len(self.channels)), np.float32)
        return np.concatenate(out)

    def used_rows(self, n: int) -> np.ndarray:
        """Indices of the rows of an n-cycle engine that its last input depends on: the first
        `baseline_cycles` and the last `window`, in order, each once."""
        last = np.arange(max(0, n - self.window), n)
        first = np.arange(min(self.baseline_cycles, n))
        return np.union1d(first, last)

    def last_windows(self, traj: Trajectories, *, strict: bool = True) -> LastWindows:
        """The input ending at each engine's last row: what a prediction for it sees. Not
        `strict`, rows off every operating condition are normalised with the nearest one.

        Raises:
            MLInputError: an engine has fewer than `min_cycles` rows, or (with a baseline)
                does not start at cycle 1. The message names file and line.
        """
        slices = traj.engine_slices()
        for unit, rows in slices.items():
            check_length(traj, unit, rows, self.min_cycles)
            first = traj.rows[rows.start, 1]
            if self.baseline_cycles and first != 1:
                raise MLInputError(
                    f"{traj.path}:{traj.lines[rows.start]}: engine {unit} starts at cycle "
                    f"{first:g}, expected its history from cycle 1 (the model compares the "
                    f"window with the engine's first {self.baseline_cycles} cycles)"
                )
        feats = self.features(traj, strict=strict)
        inputs, raw, cycles = [], [], []
        for s in slices.values():
            n = s.stop - s.start
            inputs.append(self._engine_windows(feats[s], np.array([n]))[0])
            raw.append(traj.rows[s][self.used_rows(n)].astype(np.float32))  # (rows used, 26)
            real = [int(c) for c in traj.rows[max(s.start, s.stop - self.window) : s.stop, 1]]
            cycles.append([None] * (self.window - len(real)) + real)
        return LastWindows(units=list(slices), inputs=np.stack(inputs), raw=raw, cycles=cycles)

    def to_dict(self) -> dict[str, Any]:
        return {
            "normalizer": self.normalizer.to_dict(),
            "window": self.window,
            "min_cycles": self.min_cycles,
            "cap": self.cap,
            "baseline_cycles": self.baseline_cycles,
            "channels": self.channels,
            "padding": "front, repeating the engine's first cycle",
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Preprocessing:
        return cls(
            normalizer=Normalizer.from_dict(d["normalizer"]),
            window=int(d["window"]),
            min_cycles=int(d["min_cycles"]),
            cap=float(d["cap"]),
            baseline_cycles=int(d.get("baseline_cycles", 0)),
        )


@dataclass(frozen=True)
class LastWindows:
    """One model input per engine, with what a prediction record needs to cite it."""

    units: list[int]
    inputs: np.ndarray  # (n_engines, window, channels) float32, normalised and padded
    raw: list[np.ndarray]  # per engine (rows used, 26) float32: the raw rows the input depends on
    cycles: list[list[int | None]]  # per engine, the cycle of each window row (None: padding)
