"""Split-conformal prediction intervals for a regressor, Mondrian by predicted value.

Calibration: residuals r = truth - prediction on held-out engines (never seen in training or
early stopping). For a level 1 - a, the interval is

    [prediction + q_lo, prediction + q_hi],  q_lo = the floor((n + 1) a/2)-th smallest r,
                                             q_hi = the ceil((n + 1)(1 - a/2))-th smallest r,

which covers a new exchangeable point with probability >= 1 - a (equal-tailed split conformal,
Vovk et al. 2005; Lei et al. 2018). Residuals are skewed (RUL errors shrink near failure and
the target is capped), so the two tails are kept apart, and calibration is done separately per
bin of the *predicted* value (Mondrian conformal): coverage then holds within each bin, and
near-failure intervals are narrower than mid-life ones. Bins with too few residuals for a level
fall back to the pooled residuals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ml.errors import ConformalError


def _tails(residuals: np.ndarray, level: float) -> tuple[float, float] | None:
    """(q_lo, q_hi) for `level`, or None when there are too few residuals for it."""
    n = len(residuals)
    alpha = 1.0 - level
    k_lo = math.floor((n + 1) * alpha / 2)  # 1-based rank of the lower quantile
    k_hi = math.ceil((n + 1) * (1 - alpha / 2))
    if k_lo < 1 or k_hi > n:
        return None
    r = np.sort(residuals)
    return float(r[k_lo - 1]), float(r[k_hi - 1])


@dataclass(frozen=True)
class ConformalIntervals:
    """Calibrated offsets per level and predicted-value bin."""

    levels: tuple[float, ...]
    edges: tuple[float, ...]  # inner bin edges on the predicted value, ascending
    offsets: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    # offsets["0.8"][b] = (q_lo, q_hi) for bin b; keys are levels as strings (JSON-friendly)
    n_calibration: int = 0
    lower: float | None = None  # clip intervals to the target's range
    upper: float | None = None

    @classmethod
    def calibrate(
        cls,
        predictions: np.ndarray,
        truth: np.ndarray,
        *,
        levels: Sequence[float] = (0.8, 0.9),
        edges: Sequence[float] = (),
        lower: float | None = None,
        upper: float | None = None,
    ) -> ConformalIntervals:
        """Fit offsets from held-out predictions and their true values.

        Raises:
            ConformalError: shapes differ, a level is not in (0, 1), or there are too few
                residuals overall for a level.
        """
        pred = np.asarray(predictions, dtype=np.float64).ravel()
        true = np.asarray(truth, dtype=np.float64).ravel()
        if pred.shape != true.shape:
            raise ConformalError(f"{len(pred)} predictions but {len(true)} true values")
        for level in levels:
            if not 0.0 < level < 1.0:
                raise ConformalError(f"level {level} is not in (0, 1)")
        if list(edges) != sorted(edges):
            raise ConformalError(f"bin edges {list(edges)} are not ascending")
        resid = true - pred
        bins = np.searchsorted(np.asarray(edges, dtype=np.float64), pred, side="right")
        offsets: dict[str, list[tuple[float, float]]] = {}
        for level in levels:
            pooled = _tails(resid, level)
            if pooled is None:
                raise ConformalError(
                    f"{len(resid)} calibration residuals are too few for a {level:.0%} interval"
                )
            offsets[str(level)] = [
                _tails(resid[bins == b], level) or pooled for b in range(len(edges) + 1)
            ]
        return cls(
            levels=tuple(levels),
            edges=tuple(float(e) for e in edges),
            offsets=offsets,
            n_calibration=len(resid),
            lower=lower,
            upper=upper,
        )

    def interval(self, predictions: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) arrays for `level`, which must be one of the calibrated levels."""
        key = str(level)
        if key not in self.offsets:
            raise ConformalError(f"level {level} was not calibrated; have {list(self.levels)}")
        pred = np.asarray(predictions, dtype=np.float64)
        bins = np.searchsorted(np.asarray(self.edges), pred, side="right")
        table = np.asarray(self.offsets[key])  # (n_bins, 2)
        lo = pred + table[bins, 0]
        hi = pred + table[bins, 1]
        if self.lower is not None:
            lo, hi = np.maximum(lo, self.lower), np.maximum(hi, self.lower)
        if self.upper is not None:
            lo, hi = np.minimum(lo, self.upper), np.minimum(hi, self.upper)
        return lo, hi

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "split conformal, equal-tailed, Mondrian by predicted value",
            "levels": list(self.levels),
            "edges": list(self.edges),
            "offsets": {
                k: [[round(a, 6), round(b, 6)] for a, b in v] for k, v in self.offsets.items()
            },
            "n_calibration": self.n_calibration,
            "lower": self.lower,
            "upper": self.upper,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ConformalIntervals:
        return cls(
            levels=tuple(float(x) for x in d["levels"]),
            edges=tuple(float(x) for x in d["edges"]),
            offsets={k: [(float(a), float(b)) for a, b in v] for k, v in d["offsets"].items()},
            n_calibration=int(d["n_calibration"]),
            lower=d.get("lower"),
            upper=d.get("upper"),
        )


def coverage(lo: np.ndarray, hi: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of true values inside [lo, hi]."""
    t = np.asarray(truth, dtype=np.float64)
    if len(t) == 0:
        raise ConformalError("coverage of zero points is undefined")
    return float(np.mean((t >= lo) & (t <= hi)))
