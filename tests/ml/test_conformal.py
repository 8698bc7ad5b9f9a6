from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.conformal import ConformalIntervals, coverage
from ml.errors import ConformalError


def noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Predictions whose error grows with the predicted value, skewed to one side."""
    rng = np.random.default_rng(seed)
    pred = rng.uniform(0, 125, size=n)
    true = pred + (1 + pred / 20) * rng.gamma(2.0, 2.0, size=n) - 4
    return pred, true


def test_coverage_is_near_nominal_on_fresh_data() -> None:
    pred, true = noisy(4000, seed=0)
    ci = ConformalIntervals.calibrate(pred, true, levels=(0.8, 0.9), edges=(40, 80))
    fresh_pred, fresh_true = noisy(20000, seed=1)
    for level in (0.8, 0.9):
        lo, hi = ci.interval(fresh_pred, level)
        assert abs(coverage(lo, hi, fresh_true) - level) < 0.02
        # Mondrian bins: coverage also holds within each predicted-value bin.
        for a, b in ((0, 40), (40, 80), (80, 125)):
            m = (fresh_pred >= a) & (fresh_pred < b)
            assert abs(coverage(lo[m], hi[m], fresh_true[m]) - level) < 0.035


def test_bins_make_intervals_adaptive() -> None:
    pred, true = noisy(4000, seed=2)
    ci = ConformalIntervals.calibrate(pred, true, levels=(0.9,), edges=(40, 80))
    lo, hi = ci.interval(np.array([10.0, 110.0]), 0.9)
    assert (hi - lo)[0] < (hi - lo)[1]  # errors grow with the prediction, so do the intervals


def test_clipping_and_round_trip() -> None:
    pred, true = noisy(500, seed=3)
    ci = ConformalIntervals.calibrate(pred, true, edges=(40, 80), lower=0.0, upper=125.0)
    lo, hi = ci.interval(np.array([0.0, 125.0]), 0.9)
    assert lo.min() >= 0 and hi.max() <= 125
    again = ConformalIntervals.from_dict(ci.to_dict())
    np.testing.assert_allclose(again.interval(pred, 0.8), ci.interval(pred, 0.8), atol=1e-5)


def test_refuses_what_it_cannot_guarantee() -> None:
    with pytest.raises(ConformalError, match="too few for a 90% interval"):
        ConformalIntervals.calibrate(np.zeros(5), np.ones(5), levels=(0.9,))
    with pytest.raises(ConformalError, match="not in"):
        ConformalIntervals.calibrate(np.zeros(50), np.ones(50), levels=(1.5,))
    with pytest.raises(ConformalError, match="3 predictions but 2 true values"):
        ConformalIntervals.calibrate(np.zeros(3), np.ones(2))
    ci = ConformalIntervals.calibrate(np.zeros(50), np.ones(50), levels=(0.8,))
    with pytest.raises(ConformalError, match="was not calibrated"):
        ci.interval(np.zeros(2), 0.9)
    with pytest.raises(ConformalError, match="zero points"):
        coverage(np.zeros(0), np.zeros(0), np.zeros(0))


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(20, 300),
    level=st.sampled_from([0.5, 0.8, 0.9]),
    seed=st.integers(0, 2**32 - 1),
)
def test_calibration_points_are_covered_at_least_nominally(n: int, level: float, seed: int) -> None:
    # On its own calibration set the split-conformal interval covers >= level of the points
    # (the finite-sample quantile rounds outwards).
    rng = np.random.default_rng(seed)
    pred = rng.normal(size=n)
    true = pred + rng.standard_t(3, size=n)
    try:
        ci = ConformalIntervals.calibrate(pred, true, levels=(level,))
    except ConformalError:
        assert n < 2 / (1 - level)  # too few points is the only acceptable refusal
        return
    lo, hi = ci.interval(pred, level)
    assert coverage(lo, hi, true) >= level - 1e-9
