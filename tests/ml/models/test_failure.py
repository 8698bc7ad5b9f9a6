from __future__ import annotations

import torch

from ml.models.failure import FailureConfig, FailureEnsemble, FailureNet


def test_ensemble_averages_member_probabilities() -> None:
    torch.manual_seed(0)
    model = FailureEnsemble(FailureConfig(n_features=11, members=3)).eval()
    x = torch.randn(5, 11)
    probs = model(x)
    assert probs.shape == (5,)
    assert ((probs > 0) & (probs < 1)).all()
    manual = torch.stack([torch.sigmoid(m(x)) for m in model.members]).mean(0)
    torch.testing.assert_close(probs, manual)
    assert FailureConfig.from_dict(model.config.to_dict()) == model.config


def test_member_is_a_sum_of_pairwise_terms() -> None:
    """No term sees three inputs: the mixed third difference over any three features is 0."""
    torch.manual_seed(1)
    config = FailureConfig(n_features=7, n_linear=2, members=1)
    net = FailureNet(config).eval()
    with torch.no_grad():
        net.w3.normal_()  # terms start at zero; give them a shape
    assert len(config.pairs) == 5 + 10
    x = torch.randn(4, 7)

    def f(*moved: int) -> torch.Tensor:
        y = x.clone()
        for i in moved:
            y[:, i] += 0.8
        return net(y)

    with torch.no_grad():
        a, b, c = 2, 4, 6
        third = f(a, b, c) - f(a, b) - f(a, c) - f(b, c) + f(a) + f(b) + f(c) - f()
        second = f(a, b) - f(a) - f(b) + f()
    torch.testing.assert_close(third, torch.zeros(4), atol=1e-5, rtol=0)
    assert second.abs().max() > 1e-3  # but pairs do interact
