"""ml/calibration.py: temperature scaling, ECE and the review threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.calibration import (
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    plot_reliability,
    reliability,
)
from ml.errors import CalibrationError


def sampled(n: int, temperature: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits z and labels drawn from softmax(z / temperature): the true T is known."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 6, generator=g) * 3
    y = torch.multinomial(torch.softmax(z / temperature, dim=1), 1, generator=g)[:, 0]
    return z, y


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_temperature_recovers_the_generating_temperature(true_t: float) -> None:
    z, y = sampled(6000, true_t)
    assert fit_temperature(z, y) == pytest.approx(true_t, rel=0.08)


def test_temperature_scaling_reduces_ece_of_overconfident_logits() -> None:
    z, y = sampled(4000, 2.0)
    before = expected_calibration_error(torch.softmax(z, 1), y)
    t = fit_temperature(z, y)
    z2, y2 = sampled(4000, 2.0, seed=1)  # fresh data from the same source
    after = expected_calibration_error(torch.softmax(z2 / t, 1), y2)
    assert before > 0.1 and after < 0.03


def test_ece_known_answer() -> None:
    # Two bins used: conf 0.9 (2 right of 2 -> gap 0.1) and conf 0.6 (1 right of 2 -> gap 0.1).
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 0, 0, 1])
    assert expected_calibration_error(probs, labels, bins=10) == pytest.approx(0.1)
    rel = reliability(probs, labels, bins=10)
    assert rel.count.sum() == 4 and rel.count[8] == 2 and rel.count[5] == 2


def test_confidence_one_lands_in_top_bin() -> None:
    rel = reliability(np.array([[1.0, 0.0]]), np.array([0]), bins=10)
    assert rel.count[-1] == 1 and rel.ece == 0.0


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=200), st.integers(0, 10_000))
def test_ece_is_between_zero_and_one(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(4), size=n)
    y = rng.integers(0, 4, n)
    assert 0.0 <= expected_calibration_error(p, y) <= 1.0


def test_choose_threshold_refuses_the_least_confident_until_risk_is_met() -> None:
    # 100 examples: 97 right at 0.999, three wrong at 0.6, 0.7 and 0.995.
    conf = np.array([0.999] * 97 + [0.6, 0.7, 0.995])
    labels = np.array([0] * 97 + [1, 1, 1])
    probs = np.stack([conf, 1 - conf], axis=1)
    # 0.995 is wrong but confident: accepting it gives 1/98 > 1% risk, so it must be refused.
    assert choose_threshold(probs, labels, target_risk=0.01) == pytest.approx(0.999)
    # At 2% it is accepted (1/98), but not 0.7 as well (2/99).
    assert choose_threshold(probs, labels, target_risk=0.02) == pytest.approx(0.995)
    # A looser target accepts everything: the threshold is the lowest confidence.
    assert choose_threshold(probs, labels, target_risk=0.5) == pytest.approx(0.6)


def test_choose_threshold_honours_calibrated_risk_without_errors() -> None:
    # No errors at all, but confidences say ~5% of the low ones would be wrong.
    conf = np.array([0.999] * 50 + [0.9] * 50)
    probs = np.stack([conf, 1 - conf], axis=1)
    labels = np.zeros(100, dtype=int)
    assert choose_threshold(probs, labels, target_risk=0.01) == pytest.approx(0.999)
    assert choose_threshold(probs, labels, target_risk=0.06) == pytest.approx(0.9)


def test_choose_threshold_sends_all_to_review_when_nothing_meets_target() -> None:
    probs = np.array([[0.5, 0.5], [0.6, 0.4]])
    assert choose_threshold(probs, np.array([1, 1]), target_risk=0.01) == 1.0


@pytest.mark.parametrize("bad", ["empty", "mismatch"])
def test_calibration_refuses_vacuous_input(bad: str) -> None:
    probs = np.zeros((0, 2)) if bad == "empty" else np.ones((3, 2)) / 2
    labels = np.zeros(0 if bad == "empty" else 2, dtype=int)
    with pytest.raises(CalibrationError):
        expected_calibration_error(probs, labels)
    with pytest.raises(CalibrationError):
        fit_temperature(torch.as_tensor(probs), torch.as_tensor(labels))


def test_plot_reliability_writes_png(tmp_path: Path) -> None:
    z, y = sampled(500, 1.0)
    path = tmp_path / "r.png"
    plot_reliability(reliability(torch.softmax(z, 1), y), path, title="synthetic")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
