"""Where a C-MAPSS test file cuts its engines, estimated from the test file itself.

A test file holds each engine's history up to some cycle before its failure; the true remaining
life is held back, so the cut is not known per engine. What is known is the distribution of
the observed lengths. Model the cut as a share of life, `f ~ Beta(a, b)`, independent of the
engine: an engine of life L is observed for `t = round(f L)` cycles (clipped to
[min_cycles, L - 1]). With L drawn from the training file's lives, (a, b) are fitted so that
the distribution of t matches the test file's observed lengths (1-Wasserstein distance,
deterministic: a fixed grid of Beta quantiles crossed with every training life).

Validation and conformal calibration then cut held-out training engines the same way, so the
metrics and the intervals are judged on the distribution of cuts a test file presents (about 63 %
of life on FD001 and FD002, where cutting uniformly over the life averages 50 %). No label of
the test file is used: only how many rows each of its engines has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, stats

_GRID = 200  # Beta quantiles per training life when fitting


def _lengths(values: Iterable[int]) -> np.ndarray:
    return np.asarray(sorted(int(v) for v in values), dtype=np.float64)


@dataclass(frozen=True)
class Truncation:
    """Cuts at a Beta(a, b) share of life; Beta(1, 1) (uniform) when no test file was seen."""

    a: float
    b: float
    min_cycles: int
    fitted_on: dict[str, Any]

    @classmethod
    def uniform(cls, min_cycles: int, why: str) -> Truncation:
        return cls(a=1.0, b=1.0, min_cycles=min_cycles, fitted_on={"note": why})

    @classmethod
    def fit(
        cls,
        train_lives: Iterable[int],
        test_lengths: Iterable[int],
        *,
        min_cycles: int,
        source: str = "",
    ) -> Truncation:
        """Fit (a, b) so that cuts of the training lives look like the test lengths."""
        lives = _lengths(train_lives)
        observed = _lengths(test_lengths)
        u = (np.arange(_GRID) + 0.5) / _GRID

        def simulated(a: float, b: float) -> np.ndarray:
            f = stats.beta.ppf(u, a, b)
            t = np.rint(np.outer(lives, f))
            return np.clip(t, min_cycles, lives[:, None] - 1).ravel()

        def loss(p: np.ndarray) -> float:
            a, b = np.exp(p)
            return float(stats.wasserstein_distance(simulated(a, b), observed))

        # A coarse grid first (the loss is not convex far from the optimum), then polish.
        grid = np.log(np.geomspace(0.3, 20, 16))
        start = min(((x, y) for x in grid for y in grid), key=lambda p: loss(np.array(p)))
        res = optimize.minimize(loss, np.array(start), method="Nelder-Mead",
                                options={"xatol": 1e-4, "fatol": 1e-4})  # fmt: skip
        a, b = (float(v) for v in np.exp(res.x))
        ks = stats.ks_2samp(simulated(a, b), observed)
        return cls(
            a=round(a, 6),
            b=round(b, 6),
            min_cycles=min_cycles,
            fitted_on={
                "test_file": source,
                "test_engines": len(observed),
                "training_lives": len(lives),
                "wasserstein_cycles": round(float(res.fun), 3),
                "ks_statistic": round(float(ks.statistic), 4),
                "ks_p_value": round(float(ks.pvalue), 4),
                "mean_share_of_life": round(a / (a + b), 4),
            },
        )

    def cuts(
        self, lives: dict[int, int], seed: int, *, n: int, stream: int
    ) -> dict[int, np.ndarray]:
        """`n` cut points per engine (the last observed cycle), from the seed and stream."""
        rng = np.random.default_rng([seed, stream])
        out = {}
        for unit, life in sorted(lives.items()):
            f = rng.beta(self.a, self.b, size=n)
            out[unit] = np.clip(np.rint(f * life), self.min_cycles, life - 1).astype(np.int64)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": "cut = round(f * life), f ~ Beta(a, b), clipped to [min_cycles, life - 1]",
            "a": self.a,
            "b": self.b,
            "min_cycles": self.min_cycles,
            "fitted_on": self.fitted_on,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Truncation:
        return cls(
            a=float(d["a"]),
            b=float(d["b"]),
            min_cycles=int(d["min_cycles"]),
            fitted_on=dict(d.get("fitted_on", {})),
        )
