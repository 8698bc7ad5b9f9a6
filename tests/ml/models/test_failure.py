from __future__ import annotations

import numpy as np
import pytest
import torch

from ml.models.failure import FailureConfig, FailureEnsemble, FailureNet, rank_pairs


def _shaped(config: FailureConfig, seed: int = 0) -> FailureNet:
    """A member whose terms are not all zero (training starts them at zero)."""
    torch.manual_seed(seed)
    net = FailureNet(config).eval()
    net.init_thresholds(torch.randn(200, config.n_features))
    with torch.no_grad():
        net.weight.normal_()
        net.corner_weight.normal_()
        net.log_slope.fill_(0.0)  # gentle steps, so finite differences see them
        net.corner_log_slope.fill_(0.0)
    return net


def test_ensemble_averages_member_probabilities() -> None:
    torch.manual_seed(0)
    config = FailureConfig(n_features=11, pairs=((3, 5), (4, 9)), members=3)
    model = FailureEnsemble(config).eval()
    x = torch.randn(5, 11)
    probs = model(x)
    assert probs.shape == (5,)
    assert ((probs > 0) & (probs < 1)).all()
    manual = torch.stack([torch.sigmoid(m(x)) for m in model.members]).mean(0)
    torch.testing.assert_close(probs, manual)
    assert FailureConfig.from_dict(model.config.to_dict()) == model.config


def test_member_is_a_sum_of_unary_terms_and_chosen_pairs() -> None:
    """No term sees three inputs (the mixed third difference is 0), and only the configured
    pairs interact (the mixed second difference of any other pair is 0)."""
    config = FailureConfig(n_features=7, n_linear=2, pairs=((2, 4), (4, 6)), members=1)
    net = _shaped(config)
    x = torch.randn(4, 7)

    def f(*moved: int) -> torch.Tensor:
        y = x.clone()
        for i in moved:
            y[:, i] += 0.8
        return net(y)

    def second(a: int, b: int) -> torch.Tensor:
        return f(a, b) - f(a) - f(b) + f()

    with torch.no_grad():
        a, b, c = 2, 4, 6
        third = f(a, b, c) - f(a, b) - f(a, c) - f(b, c) + f(a) + f(b) + f(c) - f()
        torch.testing.assert_close(third, torch.zeros(4), atol=1e-5, rtol=0)
        assert second(2, 4).abs().max() > 1e-3 and second(4, 6).abs().max() > 1e-3
        torch.testing.assert_close(second(2, 6), torch.zeros(4), atol=1e-5, rtol=0)
        torch.testing.assert_close(second(3, 5), torch.zeros(4), atol=1e-5, rtol=0)


def test_a_steep_step_draws_a_sharp_boundary() -> None:
    """One unit with the default steepness separates rows a tenth of a unit apart."""
    net = FailureNet(FailureConfig(n_features=4, n_linear=1, thresholds=2)).eval()
    with torch.no_grad():
        net.threshold.zero_()
        net.direction.fill_(1.0)
        net.weight.zero_()
        net.weight[0, 0] = 10.0
        net.linear.bias.fill_(-5.0)
    x = torch.zeros(2, 4)
    x[:, 1] = torch.tensor([-0.1, 0.1])
    logits = net(x).detach()
    assert logits[0] < -3 and logits[1] > 3


def test_thresholds_cover_the_training_range() -> None:
    config = FailureConfig(n_features=3, n_linear=1, thresholds=8, pairs=((1, 2),))
    net = FailureNet(config)
    x = torch.randn(1000, 3) * torch.tensor([1.0, 2.0, 0.5])
    net.init_thresholds(x)
    for j in (1, 2):
        t = net.threshold[j - 1].detach()
        lo, hi = x[:, j].min(), x[:, j].max()
        assert (t > lo).all() and (t < hi).all()
        assert t.max() - t.min() > 0.5 * (hi - lo)  # evenly spread units reach the tails
    grid = set(net.threshold.detach().flatten().tolist())
    assert set(net.corner_threshold.detach().flatten().tolist()) <= grid


def test_pairs_must_be_distinct_continuous_features() -> None:
    with pytest.raises(ValueError, match="pair"):
        FailureNet(FailureConfig(n_features=5, n_linear=2, pairs=((1, 3),)))
    with pytest.raises(ValueError, match="pair"):
        FailureNet(FailureConfig(n_features=5, n_linear=2, pairs=((3, 3),)))


def test_rank_pairs_finds_the_interaction_a_unary_model_misses() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 6))
    labels = ((x[:, 2] > 0.8) & (x[:, 4] < -0.5)).astype(float)  # a corner on (2, 4)
    prob = np.full(len(x), labels.mean())  # a model that knows nothing
    ranked = rank_pairs(x, labels, prob, n_linear=1)
    assert ranked[0] == (2, 4)
    assert len(ranked) == 10 and len(set(ranked)) == 10
