"""Input profiles: what a model's training inputs looked like, and a check of new inputs.

A profile is fitted on the training split of a model only (never on validation or test data)
and stored beside the weights in `input_profile.json`, whose SHA-256 the manifest commits
(`input_profile_sha256`), so the manifest digest that predictions cite covers it. It holds:

  * per-feature ranges (min, max) and quantiles, and the missing-value rate;
  * an out-of-distribution (OOD) score: the Mahalanobis distance of a feature vector to the
    training distribution (shrunk covariance on standardised features; for images, the distance
    to the nearest class centre with one shared covariance, on the CNN's pooled features, as in
    Lee et al. 2018), with a threshold at the `OOD_QUANTILE` quantile of the training scores;
  * task specifics: for sensor windows, which sensors are never constant over a full window in
    training (so a constant one is stuck); for images, size, channels and intensity statistics.

`check_*` returns an `InputCheck`: "pass", or "flag" with one reason per failed test. A check
never raises on strange values; it describes them. Its result goes into the prediction payload
(`input_check`), so it is signed with the prediction.

    profile = load_profile(model_dir, manifest)       # None for a model without one
    check = profile.check_window(rows)                # WindowProfile, rows (n, 26)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ml.errors import ManifestError

PROFILE_FILE = "input_profile.json"
OOD_QUANTILE = 0.995  # threshold: this quantile of the training inputs' OOD scores
RANGE_MARGIN = 0.1  # a value may lie this fraction of the training range beyond min / max
QUANTILES = (0.001, 0.01, 0.05, 0.5, 0.95, 0.99, 0.999)
SHRINKAGE = 0.1  # covariance shrinkage towards its diagonal (chosen on validation images)
STUCK_MIN_ROWS = 10  # a sensor is only called stuck over at least this many rows
STUCK_MAX_TRAIN_RATE = 0.001  # ... and only if training windows had it constant this rarely
ROW_BLOCK = 4096  # RowProfile.check_batch works through rows in blocks of this many
HISTORY_BLOCK_ROWS = 2048  # check_histories works through engines in blocks of about this many rows
DIGITS = 6  # significant digits of floats in the stored profile (reproducible JSON)


@dataclass(frozen=True)
class InputCheck:
    """The result of checking one input against a profile (what a payload commits)."""

    status: Literal["pass", "flag"]
    reasons: list[str]
    ood_score: float | None  # None when the score cannot be computed (missing values)
    threshold: float

    @classmethod
    def of(cls, reasons: list[str], score: float | None, threshold: float) -> InputCheck:
        return cls("flag" if reasons else "pass", reasons, score, threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reasons": list(self.reasons),
            "ood_score": None if self.ood_score is None else round(self.ood_score, 4),
            "threshold": round(self.threshold, 4),
        }


@dataclass(frozen=True)
class BatchCheck:
    """Checks of a batch: which inputs are flagged and their scores; `result(i)` spells out
    input i's check (reasons are only worked out for flagged inputs)."""

    flagged: np.ndarray  # (n,) bool
    scores: np.ndarray  # (n,) OOD scores, NaN where not computable
    threshold: float
    explain: Callable[[int], InputCheck]

    def __len__(self) -> int:
        return len(self.flagged)

    def result(self, i: int) -> InputCheck:
        if self.flagged[i]:
            return self.explain(i)
        return InputCheck("pass", [], float(self.scores[i]), self.threshold)

    def results(self) -> list[InputCheck]:
        return [self.result(i) for i in range(len(self))]


_BLAS: Any = None  # threadpoolctl's controller of the loaded BLAS, made on first use


def _one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """BLAS on one thread for the products of a check: they are small (d <= 192), so threads
    cost more than they save, and on a busy machine a waiting BLAS thread pool multiplies the
    time (4 ms instead of 0.1 ms for a (4096, 31) x (31, 31) product on two shared cores).
    Results do not depend on the thread count. threadpoolctl comes with scikit-learn."""
    global _BLAS
    if _BLAS is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:  # pragma: no cover - a dependency of scikit-learn
            _BLAS = False
        else:
            _BLAS = ThreadpoolController()
    if _BLAS is False:
        return contextlib.nullcontext()
    return _BLAS.limit(limits=1, user_api="blas")


def _cumsum_rows(a: np.ndarray, chunk: int = 8) -> None:
    """Cumulative sums down the rows of a C-contiguous (n, k) array, in place, chunk by chunk:
    within chunks of `chunk` rows by whole-row additions (vectorised across the k columns),
    then the chunks' running totals; about twice as fast as np.cumsum along axis 0, which
    walks the rows one element at a time. Same sums, added in another order."""
    n, k = a.shape
    whole = n - n % chunk
    if whole:
        v = a[:whole].reshape(-1, chunk, k)
        for i in range(1, chunk):
            v[:, i] += v[:, i - 1]
        totals = np.cumsum(v[:, -1], axis=0)
        v[1:] += totals[:-1, None, :]
    for i in range(max(whole, 1), n):
        a[i] += a[i - 1]


def _r(a: np.ndarray | float) -> Any:
    """Floats rounded to `DIGITS` significant digits, as JSON-able lists."""
    arr = np.asarray(a, dtype=np.float64)
    out = np.vectorize(lambda v: float(f"{v:.{DIGITS}g}"), otypes=[np.float64])(arr)
    return out.tolist()


# -- building blocks ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranges:
    """Per-feature min, max and quantiles of training values, and their missing-value rate."""

    names: tuple[str, ...]
    lo: np.ndarray  # (d,)
    hi: np.ndarray  # (d,)
    quantiles: dict[str, np.ndarray]  # "0.5" -> (d,)
    missing_rate: np.ndarray  # (d,)

    @classmethod
    def fit(cls, values: np.ndarray, names: Sequence[str]) -> Ranges:
        """`values` (n, d) training values; NaN counts as missing."""
        missing = np.isnan(values).mean(axis=0)
        q = np.nanquantile(values, QUANTILES, axis=0)  # (len(QUANTILES), d)
        return cls(
            names=tuple(names),
            lo=np.asarray(_r(np.nanmin(values, axis=0))),
            hi=np.asarray(_r(np.nanmax(values, axis=0))),
            quantiles={str(p): np.asarray(_r(q[i])) for i, p in enumerate(QUANTILES)},
            missing_rate=np.asarray(_r(missing)),
        )

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        margin = RANGE_MARGIN * (self.hi - self.lo)
        # Inputs may arrive as float32 (the service's rows): a constant must still match.
        slack = 1e-6 * np.maximum(1.0, np.maximum(np.abs(self.lo), np.abs(self.hi)))
        return self.lo - margin - slack, self.hi + margin + slack

    def reasons(self, values: np.ndarray, what: str = "rows") -> list[str]:
        """One reason per feature with missing or out-of-range values in `values` (m, d)."""
        out = []
        lo, hi = self.bounds()
        nan = np.isnan(values)
        for j in np.flatnonzero(nan.any(axis=0)):
            out.append(f"{self.names[j]} missing in {int(nan[:, j].sum())} of {len(values)} {what}")
        with np.errstate(invalid="ignore"):
            off = (values < lo) | (values > hi)
        for j in np.flatnonzero(off.any(axis=0)):
            v = values[off[:, j], j]
            worst = float(v[np.argmax(np.abs(v - (self.lo[j] + self.hi[j]) / 2))])
            out.append(
                f"{self.names[j]} = {worst:.6g} outside the training range "
                f"[{self.lo[j]:.6g}, {self.hi[j]:.6g}] in {int(off[:, j].sum())} of "
                f"{len(values)} {what}"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "min": self.lo.tolist(),
            "max": self.hi.tolist(),
            "quantiles": {k: v.tolist() for k, v in self.quantiles.items()},
            "missing_rate": self.missing_rate.tolist(),
            "margin": RANGE_MARGIN,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Ranges:
        return cls(
            names=tuple(d["names"]),
            lo=np.asarray(d["min"], dtype=np.float64),
            hi=np.asarray(d["max"], dtype=np.float64),
            quantiles={k: np.asarray(v, dtype=np.float64) for k, v in d["quantiles"].items()},
            missing_rate=np.asarray(d["missing_rate"], dtype=np.float64),
        )


@dataclass(frozen=True)
class Mahalanobis:
    """Distance to the nearest of k centres under one shared, shrunk covariance.

    Features are standardised with the training mean and std first; a feature constant in
    training gets std 1, so any change of it adds to the distance.
    """

    features: str  # what the feature vector is, for the reader of a manifest
    mean: np.ndarray  # (d,)
    std: np.ndarray  # (d,)
    centers: np.ndarray  # (k, d) in standardised units
    precision: np.ndarray  # (d, d)
    threshold: float
    quantile: float

    @classmethod
    def fit(cls, x: np.ndarray, features: str, labels: np.ndarray | None = None) -> Mahalanobis:
        """`x` (n, d) training feature vectors; `labels` (n,) class of each (None: one class)."""
        x = np.asarray(x, dtype=np.float64)
        mean = np.asarray(_r(x.mean(axis=0)))
        sd = x.std(axis=0)
        std = np.asarray(_r(np.where(sd > 1e-9, sd, 1.0)))
        z = (x - mean) / std
        groups = np.zeros(len(z), np.int64) if labels is None else np.asarray(labels)
        keys = np.unique(groups)
        centers = np.stack([z[groups == g].mean(axis=0) for g in keys])
        resid = z - centers[np.searchsorted(keys, groups)]
        cov = resid.T @ resid / max(1, len(z) - len(keys))
        cov = (1 - SHRINKAGE) * cov + SHRINKAGE * np.diag(np.diag(cov)) + 1e-6 * np.eye(len(cov))
        precision = np.asarray(_r(np.linalg.inv(cov)))
        precision = (precision + precision.T) / 2
        found = cls(features, mean, std, np.asarray(_r(centers)), precision, 0.0, OOD_QUANTILE)
        scores = found.reference_score(x)
        threshold = float(_r(np.quantile(scores, OOD_QUANTILE)))
        return cls(features, mean, std, found.centers, precision, threshold, OOD_QUANTILE)

    def score(self, x: np.ndarray) -> np.ndarray:
        """(m, d) -> (m,) distances; rows with NaN score NaN.

        Computed as |x W - v_k|, with W = diag(1 / std) L and v_k = (mean / std + c_k) L for
        the Cholesky factor L of the precision (L L' = precision): one matrix product for all
        centres, on one BLAS thread. Equal to the textbook form (`reference_score`, which the
        fit uses for its threshold) to float rounding."""
        x = np.asarray(x, dtype=np.float64)
        if self._whitening is None:  # a precision that is not positive definite (rounded)
            return self.reference_score(x)
        w, v = self._whitening
        with _one_blas_thread():
            y = x @ w  # (m, d)
        if len(v) == 1:
            y -= v[0]
            return np.sqrt(np.einsum("md,md->m", y, y))
        best = np.full(len(x), np.inf)
        diff = np.empty_like(y)
        for vk in v:
            np.subtract(y, vk, out=diff)
            np.minimum(best, np.einsum("md,md->m", diff, diff), out=best)
        return np.sqrt(best)

    def reference_score(self, x: np.ndarray) -> np.ndarray:
        """`score` as the textbook quadratic form of the standardised difference to each
        centre: what the fitted threshold is computed with, so it does not depend on the
        rounding of the faster form."""
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        best = np.full(len(z), np.inf)
        for c in self.centers:
            diff = z - c  # (m, d)
            best = np.minimum(best, np.einsum("md,de,me->m", diff, self.precision, diff))
        return np.sqrt(np.maximum(best, 0.0))

    @functools.cached_property
    def _whitening(self) -> tuple[np.ndarray, np.ndarray] | None:
        try:
            chol = np.linalg.cholesky(self.precision)  # lower: precision = chol chol'
        except np.linalg.LinAlgError:
            return None
        w = chol / self.std[:, None]
        v = (self.mean / self.std + self.centers) @ chol  # (k, d)
        return np.ascontiguousarray(w), v

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "mahalanobis",
            "features": self.features,
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "centers": self.centers.tolist(),
            "precision": self.precision.tolist(),
            "shrinkage": SHRINKAGE,
            "quantile": self.quantile,
            "threshold": self.threshold,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Mahalanobis:
        return cls(
            features=d["features"],
            mean=np.asarray(d["mean"], dtype=np.float64),
            std=np.asarray(d["std"], dtype=np.float64),
            centers=np.asarray(d["centers"], dtype=np.float64),
            precision=np.asarray(d["precision"], dtype=np.float64),
            threshold=float(d["threshold"]),
            quantile=float(d["quantile"]),
        )


def _ood_reason(score: float, ood: Mahalanobis) -> list[str]:
    if np.isfinite(score) and score <= ood.threshold:
        return []
    return [
        f"out-of-distribution score {score:.4g} above the threshold {ood.threshold:.4g} "
        f"(the {ood.quantile:.1%} quantile of training inputs)"
    ]


# -- sensor windows (RUL) ---------------------------------------------------------------------


@dataclass(frozen=True)
class WindowProfile:
    """Profile of C-MAPSS rows: ranges of the 3 settings and 21 sensors, stuck sensors, and
    the OOD score of a window summary (mean and std over the window of each profiled sensor,
    plus the settings' means)."""

    window: int
    ranges: Ranges  # the 24 columns after unit and cycle
    summary_sensors: tuple[str, ...]
    stuck_checked: tuple[str, ...]  # sensors never constant over a full training window
    ood: Mahalanobis
    fitted_on: dict[str, Any]

    kind: str = "window"

    @staticmethod
    def _columns() -> tuple[str, ...]:
        from ml.data.cmapss import SENSOR_NAMES, SETTING_NAMES

        return (*SETTING_NAMES, *SENSOR_NAMES)

    @classmethod
    def summaries(cls, windows: np.ndarray, sensors: Sequence[str]) -> np.ndarray:
        """(n, w, 24) windows of settings + sensors -> (n, 3 + 2 len(sensors)) summaries."""
        cols = cls._columns()
        idx = [cols.index(s) for s in sensors]
        x = windows[:, :, idx]
        return np.concatenate([windows[:, :, :3].mean(axis=1), x.mean(axis=1), x.std(axis=1)], 1)

    @classmethod
    def fit(
        cls,
        rows: np.ndarray,
        *,
        window: int,
        sensors: Sequence[str],
        min_cycles: int,
        fitted_on: dict[str, Any],
        step: int = 1,
    ) -> WindowProfile:
        """Fit on training rows (n, 26) of whole engines: every window ending at
        `min_cycles`, `min_cycles + step`, ... of every engine (the last `window` rows, fewer
        early in life, as a prediction sees them)."""
        cols = cls._columns()
        units = rows[:, 0]
        starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1], True])
        summaries, full = [], []
        for a, b in itertools.pairwise(starts):
            values = rows[a:b, 2:]
            for end in range(min_cycles, b - a + 1, step):
                w = values[max(0, end - window) : end]
                summaries.append(cls.summaries(w[None], sensors)[0])
                if len(w) == window:
                    full.append(w)
        fulls = np.stack(full)  # (m, window, 24)
        constant = (np.ptp(fulls, axis=1) == 0).mean(axis=0)  # (24,) rate per column
        stuck = tuple(s for s in sensors if constant[cols.index(s)] <= STUCK_MAX_TRAIN_RATE)
        names = [f"mean {c}" for c in cols[:3]]
        names += [f"mean {s}" for s in sensors] + [f"std {s}" for s in sensors]
        return cls(
            window=window,
            ranges=Ranges.fit(rows[:, 2:], cols),
            summary_sensors=tuple(sensors),
            stuck_checked=stuck,
            ood=Mahalanobis.fit(
                np.stack(summaries),
                "window summary: " + ", ".join(names),
            ),
            fitted_on=fitted_on,
        )

    def check_window(self, rows: np.ndarray) -> InputCheck:
        """Check one engine's rows (n, 26: unit, cycle, settings, sensors), oldest first: all
        rows against the ranges, the last `window` rows for stuck sensors and the OOD score."""
        values = np.asarray(rows, dtype=np.float64)[:, 2:]
        reasons = self.ranges.reasons(values)
        last = values[-self.window :]
        cols = self._columns()
        if len(last) >= STUCK_MIN_ROWS:
            ptp = np.ptp(last, axis=0)
            for s in self.stuck_checked:
                if ptp[cols.index(s)] == 0:
                    reasons.append(
                        f"{s} stuck: constant at {last[0, cols.index(s)]:.6g} over the last "
                        f"{len(last)} cycles (never so in training windows)"
                    )
        score = float(self.ood.score(self.summaries(last[None], self.summary_sensors))[0])
        reasons += _ood_reason(score, self.ood)
        return InputCheck.of(reasons, score if np.isfinite(score) else None, self.ood.threshold)

    def check_windows(self, windows: np.ndarray) -> BatchCheck:
        """Batched check of full windows (n, window, 26), float32 or float64: one pass for
        min / max (ranges, stuck sensors, NaN), one for the summary; reasons are spelt out
        (by `check_window`) only for flagged windows, on demand. What the bench measures."""
        values = np.asarray(windows)[:, :, 2:]  # (n, window, 24)
        lo, hi = self.ranges.bounds()
        vmin, vmax = values.min(axis=1), values.max(axis=1)  # (n, 24); NaN propagates
        with np.errstate(invalid="ignore"):
            off = ~((vmin >= lo) & (vmax <= hi)).all(axis=1)
        cols = self._columns()
        idx = [cols.index(s) for s in self.stuck_checked]
        stuck = ((vmax - vmin)[:, idx] == 0).any(axis=1)
        scores = self.ood.score(self._fast_summaries(values))
        with np.errstate(invalid="ignore"):
            flagged = off | stuck | ~(scores <= self.ood.threshold)
        return BatchCheck(
            flagged=np.asarray(flagged, dtype=bool),
            scores=scores,
            threshold=self.ood.threshold,
            explain=lambda i: self.check_window(np.asarray(windows[i], dtype=np.float64)),
        )

    def check_histories(
        self, rows: np.ndarray, ends: Mapping[int, np.ndarray], *, baseline: int = 0
    ) -> BatchCheck:
        """Batched check of the windows of engine histories, as a fleet is scored: `rows`
        (n, 26) the rows of whole engines (unit, cycle, settings, sensors; an engine's rows
        contiguous, oldest first), `ends` the cycle counts (1-based, from the engine's first
        row) at which each engine is scored, as `Preprocessing.windows` takes them; results
        in that order. Window k of engine u at end e is the input `check_window` sees for
        `history[:e][used]`, where `used` is its first `baseline` rows (range-checked only)
        and its last `window` rows (`Preprocessing.used_rows`; `baseline=0`: the window alone).

        Consecutive windows overlap in all but one row, so each raw row is read once: a row is
        checked against the ranges (and for NaN) once, and each window's verdicts come from
        running sums: of out-of-range rows, of the summary columns and their squares (centred
        on the training medians; a window with a non-finite value has no score), and, for
        stuck sensors, of the rows where a sensor's value changes. O(rows + windows), not
        O(windows x window). Flags and scores match `check_window`'s (scores to float
        rounding); the reasons of a flagged window are `check_window`'s own, on demand."""
        arr = np.asarray(rows)
        units = arr[:, 0]
        bounds = np.flatnonzero(np.r_[True, units[1:] != units[:-1], True])
        first = {int(units[a]): (int(a), int(b)) for a, b in itertools.pairwise(bounds)}
        # Engines in `ends` order, in blocks of about HISTORY_BLOCK_ROWS rows, each checked on
        # its own: the temporaries stay small (in cache, and reused by the allocator rather
        # than faulted in afresh from the OS at every call).
        blocks: list[list[tuple[int, int, np.ndarray]]] = [[]]
        size = 0
        for unit, cut in ends.items():
            a, b = first[int(unit)]
            e = np.asarray(cut, dtype=np.int64)
            if len(e) and (e.min() < 1 or e.max() > b - a):
                raise ValueError(f"engine {unit}: ends must lie in 1..{b - a}")
            if size and size + b - a > HISTORY_BLOCK_ROWS:
                blocks.append([])
                size = 0
            blocks[-1].append((a, b, e))
            size += b - a
        flagged, scores, where = [], [], []
        for block in filter(None, blocks):
            f, sc = self._check_block(arr, block, baseline)
            flagged.append(f)
            scores.append(sc)
            for a, _, e in block:  # (start of the engine's rows, window end) of each window
                where.append(np.stack([np.full(len(e), a), a + e], axis=1))
        if not where:
            empty = np.zeros(0)
            return BatchCheck(np.zeros(0, bool), empty, self.ood.threshold, self._no_window)
        at = np.concatenate(where)

        def explain(i: int) -> InputCheck:
            a, e = (int(v) for v in at[i])
            used = np.union1d(
                np.arange(a, min(a + baseline, e)), np.arange(max(a, e - self.window), e)
            )
            return self.check_window(np.asarray(arr[used], dtype=np.float64))

        return BatchCheck(
            np.concatenate(flagged), np.concatenate(scores), self.ood.threshold, explain
        )

    def _check_block(
        self, arr: np.ndarray, block: list[tuple[int, int, np.ndarray]], baseline: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """`check_histories` of the engines in `block` ((first row, end row, window ends) of
        each, in `arr`): flags and OOD scores of their windows, in order."""
        if all(b == a for (_, b, _), (a, _, _) in itertools.pairwise(block)):  # one stretch
            values = np.array(arr[block[0][0] : block[-1][1], 2:], dtype=np.float64)
        else:
            values = np.concatenate([arr[a:b, 2:] for a, b, _ in block], dtype=np.float64)
        offsets = np.cumsum([0] + [b - a for a, b, _ in block])
        e = np.concatenate([o + cut for o, (_, _, cut) in zip(offsets, block, strict=False)])
        origin = np.repeat(offsets[:-1], [len(cut) for _, _, cut in block])
        s = np.maximum(origin, e - self.window)
        head = np.minimum(origin + baseline, e)  # baseline rows: origin .. head
        length = e - s
        # Ranges and NaN: every row once; a window's baseline rows before its window count too.
        lo, hi = self.ranges.bounds()
        with np.errstate(invalid="ignore"):
            bad = ~((values >= lo) & (values <= hi)).all(axis=1)
        nbad = np.concatenate([[0], np.cumsum(bad)])
        off = (nbad[e] - nbad[s] > 0) | (nbad[np.minimum(head, s)] - nbad[origin] > 0)
        # Constant columns: a column is constant over [s, e) when no row s + 1 .. e - 1 differs
        # from the one before (NaN never equals, so counts as a change, as it makes ptp NaN):
        # a running count of changes. Stuck: a checked sensor constant over >= STUCK_MIN_ROWS.
        cols = self._columns()
        sensors = [cols.index(c) for c in self.summary_sensors]
        watched = sorted({*sensors, *(cols.index(c) for c in self.stuck_checked)})
        x = values[:, watched]
        changes = np.zeros(x.shape, np.int32)
        changes[1:] = x[1:] != x[:-1]
        _cumsum_rows(changes)
        constant = changes[e - 1] == changes[s]  # (windows, len(watched))
        where = {c: i for i, c in enumerate(watched)}
        stuck_at = [where[cols.index(c)] for c in self.stuck_checked]
        stuck = (length >= STUCK_MIN_ROWS) & constant[:, stuck_at].any(axis=1)
        # The summary (means of the settings, mean and std of the summary sensors) from one
        # running sum of the values, centred on the training medians, and of the sensors'
        # squares; a constant column has std 0 exactly (a difference of sums would leave
        # rounding noise); a window with a non-finite value has no summary.
        k = len(sensors)
        ref = self.ranges.quantiles["0.5"][[0, 1, 2, *sensors]]
        sums = np.zeros((len(values) + 1, 3 + 2 * k))
        picked = [0, 1, 2, *sensors]

        def fill() -> np.ndarray:
            d = sums[1:]
            np.subtract(values[:, picked], ref, out=d[:, : 3 + k])
            np.square(d[:, 3 : 3 + k], out=d[:, 3 + k :])
            return d

        fill()
        _cumsum_rows(sums)
        finite = None  # a NaN or inf anywhere leaves the grand total non-finite: look then
        if not np.isfinite(sums[-1]).all():
            d = fill()
            finite = np.isfinite(d).all(axis=1)
            d[~finite] = 0.0
            _cumsum_rows(sums)
        # In place, column blocks of one array: window means of d (3 + k), of the squares (k);
        # then the summary itself: means + ref, and the std in place of the mean square.
        summary = np.take(sums, e, axis=0)
        summary -= np.take(sums, s, axis=0)
        summary /= length[:, None]
        mean, var = summary[:, 3 : 3 + k], summary[:, 3 + k :]
        var -= mean * mean
        np.maximum(var, 0.0, out=var)
        var[constant[:, [where[c] for c in sensors]]] = 0.0
        np.sqrt(var, out=var)
        summary[:, : 3 + k] += ref
        if finite is not None:
            bad_rows = np.concatenate([[0], np.cumsum(~finite)])
            summary[bad_rows[e] - bad_rows[s] > 0] = np.nan
        scores = self.ood.score(summary)
        with np.errstate(invalid="ignore"):
            flagged = off | stuck | ~(scores <= self.ood.threshold)
        return np.asarray(flagged, bool), scores

    @staticmethod
    def _no_window(i: int) -> InputCheck:
        raise IndexError(i)

    def _fast_summaries(self, values: np.ndarray) -> np.ndarray:
        """`summaries` of (n, w, 24) values, centred on the training medians first, so the
        variance keeps its precision in float32."""
        cols = self._columns()
        idx = [0, 1, 2] + [cols.index(s) for s in self.summary_sensors]
        ref = self.ranges.quantiles["0.5"][idx].astype(values.dtype)
        d = values[:, :, idx] - ref  # (n, w, 3 + k)
        mean = d.mean(axis=1)
        var = np.maximum((d * d).mean(axis=1) - mean * mean, 0.0)
        k = len(self.summary_sensors)
        out = np.concatenate([mean + ref, np.sqrt(var[:, 3:])], axis=1).astype(np.float64)
        assert out.shape[1] == 3 + 2 * k
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "window": self.window,
            "ranges": self.ranges.to_dict(),
            "summary_sensors": list(self.summary_sensors),
            "stuck_checked": list(self.stuck_checked),
            "stuck_rule": f"constant over >= {STUCK_MIN_ROWS} window rows; checked for sensors "
            f"constant in <= {STUCK_MAX_TRAIN_RATE:.1%} of full training windows",
            "ood": self.ood.to_dict(),
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WindowProfile:
        return cls(
            window=int(d["window"]),
            ranges=Ranges.from_dict(d["ranges"]),
            summary_sensors=tuple(d["summary_sensors"]),
            stuck_checked=tuple(d["stuck_checked"]),
            ood=Mahalanobis.from_dict(d["ood"]),
            fitted_on=d["fitted_on"],
        )


# -- tabular rows (failure) -------------------------------------------------------------------


@dataclass(frozen=True)
class RowProfile:
    """Profile of AI4I rows: product types seen, ranges of the 5 process values, and the OOD
    score of the model's own scaled features (so a swap that keeps each value in range but
    breaks their relations, e.g. process below air temperature, still stands out)."""

    types: tuple[int, ...]
    ranges: Ranges
    ood: Mahalanobis
    fitted_on: dict[str, Any]

    kind: str = "rows"

    @staticmethod
    def features(raw: np.ndarray) -> np.ndarray:
        from ml.data import ai4i

        return ai4i.engineer(np.asarray(raw, dtype=np.float64))

    @classmethod
    def fit(cls, raw: np.ndarray, *, fitted_on: dict[str, Any]) -> RowProfile:
        """`raw` (n, 6) training rows: type index, then the 5 process values."""
        from ml.data import ai4i

        return cls(
            types=tuple(sorted({int(t) for t in raw[:, 0]})),
            ranges=Ranges.fit(raw[:, 1:], ai4i.PROCESS_COLUMNS),
            ood=Mahalanobis.fit(
                cls.features(raw), "engineered model features: " + ", ".join(ai4i.FEATURE_NAMES)
            ),
            fitted_on=fitted_on,
        )

    def check_rows(self, raw: np.ndarray) -> list[InputCheck]:
        """One check per row of `raw` (n, 6)."""
        return self.check_batch(raw).results()

    def check_batch(self, raw: np.ndarray) -> BatchCheck:
        """Vectorised check of rows (n, 6); reasons are worked out for flagged rows only."""
        raw = np.asarray(raw, dtype=np.float64)
        scores = np.full(len(raw), np.nan)
        ok = np.zeros(len(raw), bool)
        lo, hi = self.ranges.bounds()
        # In blocks of rows: the temporaries stay small (in cache, and reused by the allocator
        # rather than faulted in afresh from the OS at every call).
        for i in range(0, len(raw), ROW_BLOCK):
            block = raw[i : i + ROW_BLOCK]
            finite = np.isfinite(block).all(axis=1)
            if finite.all():
                scores[i : i + len(block)] = self.ood.score(self.features(block))
            elif finite.any():
                scores[i : i + len(block)][finite] = self.ood.score(self.features(block[finite]))
            known = np.isin(block[:, 0], self.types)
            with np.errstate(invalid="ignore"):
                fits = ((block[:, 1:] >= lo) & (block[:, 1:] <= hi)).all(axis=1)
                ok[i : i + len(block)] = (
                    finite & known & fits & (scores[i : i + len(block)] <= self.ood.threshold)
                )
        return BatchCheck(
            flagged=~ok,
            scores=scores,
            threshold=self.ood.threshold,
            explain=lambda i: self._explain(raw[i], float(scores[i])),
        )

    def _explain(self, row: np.ndarray, score: float) -> InputCheck:
        reasons = self.ranges.reasons(row[None, 1:], "values")
        finite = bool(np.isfinite(row).all())
        if finite and int(row[0]) not in self.types:
            reasons.append(f"product type index {int(row[0])} not seen in training")
        if finite:
            reasons += _ood_reason(score, self.ood)
        return InputCheck.of(reasons, score if finite else None, self.ood.threshold)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "types": list(self.types),
            "ranges": self.ranges.to_dict(),
            "ood": self.ood.to_dict(),
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RowProfile:
        return cls(
            types=tuple(int(t) for t in d["types"]),
            ranges=Ranges.from_dict(d["ranges"]),
            ood=Mahalanobis.from_dict(d["ood"]),
            fitted_on=d["fitted_on"],
        )


# -- images (defect) --------------------------------------------------------------------------

IMAGE_STATS = ("mean", "std", "p01", "p50", "p99")


def image_stats(images: np.ndarray) -> np.ndarray:
    """(n, h, w) uint8 -> (n, 5) per-image intensity mean, std, and the 1 %, 50 % and 99 %
    quantiles (the lowest grey level whose cumulative share reaches the level), all from one
    histogram per image."""
    from PIL import Image

    arr = np.ascontiguousarray(images, dtype=np.uint8)
    n = int(np.prod(arr.shape[1:]))
    # PIL counts grey levels over the bytes themselves (np.bincount widens each to 64 bits).
    hist = np.array([Image.fromarray(image).histogram() for image in arr], dtype=np.int64)
    hist = hist.reshape(len(arr), 256)
    levels = np.arange(256, dtype=np.float64)
    mean = hist @ levels / n
    var = np.maximum(hist @ (levels * levels) / n - mean * mean, 0.0)
    cdf = np.cumsum(hist, axis=1)
    q = [np.argmax(cdf >= p * n, axis=1) for p in (0.01, 0.5, 0.99)]
    return np.stack([mean, np.sqrt(var), *q], axis=1).astype(np.float64)


@dataclass(frozen=True)
class ImageProfile:
    """Profile of inspection images: size, channels, per-image intensity statistics, and the
    OOD score of the CNN's pooled last-stage features (nearest class centre)."""

    size: tuple[int, int]
    channels: int
    stats: Ranges
    ood: Mahalanobis
    fitted_on: dict[str, Any]

    kind: str = "image"

    @classmethod
    def fit(
        cls,
        images: np.ndarray,
        features: np.ndarray,
        labels: np.ndarray,
        *,
        fitted_on: dict[str, Any],
    ) -> ImageProfile:
        """`images` (n, h, w) uint8 training images, `features` (n, c) their pooled CNN
        features, `labels` (n,) their classes."""
        return cls(
            size=(int(images.shape[1]), int(images.shape[2])),
            channels=1,
            stats=Ranges.fit(image_stats(images), IMAGE_STATS),
            ood=Mahalanobis.fit(features, "CNN last-stage features, global average pooled", labels),
            fitted_on=fitted_on,
        )

    def check_images(self, images: np.ndarray, features: np.ndarray) -> list[InputCheck]:
        """One check per image (n, h, w) uint8 with its pooled features (n, c)."""
        stats = image_stats(images)
        scores = self.ood.score(features)
        lo, hi = self.stats.bounds()
        ok = ((stats >= lo) & (stats <= hi)).all(axis=1) & (scores <= self.ood.threshold)
        out = []
        for i in range(len(images)):
            if ok[i] and tuple(images[i].shape) == self.size:
                out.append(InputCheck("pass", [], float(scores[i]), self.ood.threshold))
                continue
            reasons = []
            if tuple(images[i].shape) != self.size:
                reasons.append(f"image is {images[i].shape}, expected {self.size}")
            reasons += self.stats.reasons(stats[i : i + 1], "images")
            reasons += _ood_reason(float(scores[i]), self.ood)
            out.append(InputCheck.of(reasons, float(scores[i]), self.ood.threshold))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "size": list(self.size),
            "channels": self.channels,
            "intensity": self.stats.to_dict(),
            "ood": self.ood.to_dict(),
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageProfile:
        return cls(
            size=(int(d["size"][0]), int(d["size"][1])),
            channels=int(d["channels"]),
            stats=Ranges.from_dict(d["intensity"]),
            ood=Mahalanobis.from_dict(d["ood"]),
            fitted_on=d["fitted_on"],
        )


Profile = WindowProfile | RowProfile | ImageProfile
_KINDS: dict[str, Any] = {"window": WindowProfile, "rows": RowProfile, "image": ImageProfile}


# -- files ------------------------------------------------------------------------------------


def profile_bytes(profile: Profile) -> bytes:
    """The profile file's exact bytes (sorted keys, 2-space indent, newline at the end)."""
    return (json.dumps(profile.to_dict(), indent=1, sort_keys=True) + "\n").encode()


def profile_from_dict(d: dict[str, Any]) -> Profile:
    try:
        kind = _KINDS[d["kind"]]
    except KeyError:
        raise ManifestError(
            f"input profile kind is {d.get('kind')!r}, expected one of {', '.join(_KINDS)}"
        ) from None
    profile: Profile = kind.from_dict(d)
    return profile


def load_profile(model_dir: Path, digest: str | None) -> Profile | None:
    """The profile a manifest commits (`digest`, its `input_profile_sha256`), checked.

    Raises:
        ManifestError: the manifest commits a profile whose file is missing or differs.
    """
    if digest is None:
        return None
    path = Path(model_dir) / PROFILE_FILE
    if not path.is_file():
        raise ManifestError(f"{model_dir}: manifest commits an input profile, no {PROFILE_FILE}")
    data = path.read_bytes()
    found = "0x" + hashlib.sha256(data).hexdigest()
    if found != digest:
        raise ManifestError(f"{path}: SHA-256 is {found}, manifest says {digest}")
    return profile_from_dict(json.loads(data))
