"""ml/truncation.py: where a test file cuts its engines, fitted from its lengths alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.tasks.rul import MIN_CYCLES, fit_truncation, manifest_truncation
from ml.truncation import Truncation


def _lives(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(128, 362, size=n)


@pytest.mark.parametrize(("a", "b"), [(2.3, 1.3), (1.0, 1.0), (4.0, 2.0)])
def test_fit_recovers_the_share_of_life_that_cut_the_engines(a: float, b: float) -> None:
    lives = _lives(400, 1)
    rng = np.random.default_rng(2)
    cuts = np.clip(np.rint(rng.beta(a, b, size=4000) * rng.choice(lives, 4000)), 15, None)
    fitted = Truncation.fit(lives, cuts.astype(int), min_cycles=15, source="synthetic")
    # The mean share of life is what moves the metrics; it is pinned down well.
    assert fitted.a / (fitted.a + fitted.b) == pytest.approx(a / (a + b), abs=0.02)
    assert fitted.fitted_on["wasserstein_cycles"] < 3.0
    assert fitted.fitted_on["ks_p_value"] > 0.01


def test_fit_tells_a_late_cut_from_an_early_one() -> None:
    lives = _lives(200, 3)
    early = Truncation.fit(lives, (lives * 0.3).astype(int), min_cycles=15)
    late = Truncation.fit(lives, (lives * 0.8).astype(int), min_cycles=15)
    share = lambda t: t.a / (t.a + t.b)  # noqa: E731
    assert share(early) < 0.4 < 0.7 < share(late)


def test_cuts_lie_in_life_and_repeat_from_the_seed() -> None:
    t = Truncation(a=0.5, b=0.5, min_cycles=15, fitted_on={})  # mass at both ends
    lives = {1: 128, 2: 200, 3: 16}
    cuts = t.cuts(lives, seed=7, n=500, stream=2)
    for unit, life in lives.items():
        assert cuts[unit].min() >= 15 and cuts[unit].max() <= life - 1
    again = t.cuts(lives, seed=7, n=500, stream=2)
    assert all(np.array_equal(cuts[u], again[u]) for u in lives)
    other = t.cuts(lives, seed=7, n=500, stream=5)
    assert not np.array_equal(cuts[2], other[2])


def test_round_trip_and_the_fallbacks(cmapss_dir: Path, tmp_path: Path) -> None:
    t = Truncation(a=2.0, b=1.5, min_cycles=15, fitted_on={"test_file": "x"})
    assert Truncation.from_dict(t.to_dict()) == t
    # No test file beside the training file: cuts uniform over life, and said so.
    from ml.data.cmapss import read_trajectories

    traj = read_trajectories(cmapss_dir / "train_FD001.txt")
    flat = fit_truncation(traj, traj.engine_ids(), tmp_path / "none" / "test_FD001.txt")
    assert (flat.a, flat.b) == (1.0, 1.0) and "not found" in flat.fitted_on["note"]
    fitted = fit_truncation(traj, traj.engine_ids(), cmapss_dir / "test_FD001.txt")
    assert fitted.fitted_on["test_file"] == "test_FD001.txt"
    # A manifest from before the truncation model existed is evaluated with uniform cuts.
    old = manifest_truncation({}, MIN_CYCLES)
    assert (old.a, old.b) == (1.0, 1.0)
