"""Machine-failure classifier: an ensemble of additive networks of learned soft thresholds.

AI4I's failure mechanisms are thresholds on one or two physical quantities at a time (heat
dissipation needs a small temperature margin *and* low speed; power outside a band; wear x
torque above a limit that depends on the product type). A plain MLP mixes every input in its
first layer and, with ~200 failures to learn from, smears those sharp boundaries; so does an
additive model built of small ReLU networks, whose steps are only as sharp as their weights
are large. Here the logit is a sum of learned *soft steps*:

    logit = w . type + b + sum_{j,k} a_jk s(d_jk e^l_jk (x_j - t_jk))
                         + sum_{(i,j) in pairs, m} c_m s(.. x_i ..) s(.. x_j ..)

with s the logistic function. Each unary unit is a step on one feature at a learned threshold
t with a learned steepness e^l and a fixed direction d = +/-1; each corner unit is the product
of two steps, a soft AND of a threshold on each feature of a pair. Thresholds start spread over
the data (half at quantiles, half evenly over the range, so the sparse tails where failures live
have some) and are moved by gradient descent; steepness starts high (a step a sixteenth of a
standard deviation wide) so that a boundary between two nearby rows can be drawn. The pairs are
not all 55 of them: `rank_pairs` scores each pair by how much of the unary model's residual it
explains (the FAST heuristic of explainable boosting machines) and training keeps the best few.
Every term is a function of at most two inputs, so each can be plotted on its own.

Members are trained on different folds of the training rows (their out-of-fold predictions
set the decision threshold, by the stated rule `platt_threshold` in ml/tasks/failure.py); the
prediction is the mean of their probabilities.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True, kw_only=True)
class FailureConfig:
    n_features: int = 14
    n_linear: int = 3  # the first n_linear inputs (one-hot product type) enter linearly
    thresholds: int = 32  # soft-step units per continuous feature
    pairs: tuple[tuple[int, int], ...] = ()  # feature pairs with corner units (chosen from data)
    corners: int = 4  # corner units per pair
    slope: float = 32.0  # initial steepness of every step, per unit of the (standardised) input
    members: int = 5

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pairs"] = [list(p) for p in self.pairs]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FailureConfig:
        d = dict(d)
        d["pairs"] = tuple((int(i), int(j)) for i, j in d.get("pairs", ()))
        return cls(**d)


class FailureNet(nn.Module):
    """One member: (batch, n_features) float32 -> (batch,) failure logit (see module doc)."""

    def __init__(self, config: FailureConfig) -> None:
        super().__init__()
        self.config = config
        n, k = config.n_features - config.n_linear, config.thresholds
        p, m = len(config.pairs), config.corners
        for i, j in config.pairs:
            if not config.n_linear <= i < j < config.n_features:
                raise ValueError(f"pair {(i, j)} is not two distinct continuous features")
        log_slope = float(np.log(config.slope))
        self.threshold = nn.Parameter(torch.linspace(-2, 2, k).repeat(n, 1))  # (n, k)
        self.log_slope = nn.Parameter(torch.full((n, k), log_slope))
        self.weight = nn.Parameter(torch.zeros(n, k))  # every term starts at zero
        self.direction: torch.Tensor
        self.register_buffer("direction", _random_sign(n, k))
        self.pair_index: torch.Tensor
        pair_index = torch.tensor(config.pairs, dtype=torch.long).view(p, 2) - config.n_linear
        self.register_buffer("pair_index", pair_index, persistent=False)
        self.corner_threshold = nn.Parameter(torch.zeros(p, m, 2))
        self.corner_log_slope = nn.Parameter(torch.full((p, m, 2), log_slope))
        self.corner_weight = nn.Parameter(torch.zeros(p, m))
        self.corner_direction: torch.Tensor
        self.register_buffer("corner_direction", _random_sign(p, m, 2))
        self.linear = nn.Linear(config.n_linear, 1)

    def init_thresholds(self, x: torch.Tensor, generator: torch.Generator | None = None) -> None:
        """Spread the thresholds over training inputs `x` (rows, n_features): per feature, half
        at evenly spaced quantiles and half evenly over the observed range; each corner unit
        starts at a random pick of its features' unary thresholds."""
        cont = x[:, self.config.n_linear :].double()
        k = self.config.thresholds
        quantiles = torch.quantile(cont, torch.linspace(0.02, 0.98, k // 2, dtype=cont.dtype), 0)
        lo, hi = cont.min(0).values, cont.max(0).values
        even = lo + (hi - lo) * torch.linspace(0, 1, k - k // 2 + 2, dtype=cont.dtype)[1:-1, None]
        grid = torch.cat([quantiles, even]).T.float()  # (n, k)
        with torch.no_grad():
            self.threshold.copy_(grid)
            if len(self.config.pairs):
                p, m = self.corner_threshold.shape[:2]
                pick = torch.randint(0, k, (p, m, 2), generator=generator)
                self.corner_threshold.copy_(grid[self.pair_index[:, None, :], pick])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cont = x[:, self.config.n_linear :]  # (batch, n)
        steep = self.direction * self.log_slope.exp()  # (n, k)
        steps = torch.sigmoid(steep * (cont[:, :, None] - self.threshold))  # (batch, n, k)
        logit = (steps * self.weight).sum(dim=(1, 2))
        if len(self.config.pairs):
            xy = cont[:, self.pair_index][:, :, None, :]  # (batch, p, 1, 2)
            steep2 = self.corner_direction * self.corner_log_slope.exp()  # (p, m, 2)
            corner = torch.sigmoid(steep2 * (xy - self.corner_threshold)).prod(dim=3)
            logit = logit + (corner * self.corner_weight).sum(dim=(1, 2))  # corner (batch, p, m)
        return logit + self.linear(x[:, : self.config.n_linear]).squeeze(-1)


class FailureEnsemble(nn.Module):
    """(batch, n_features) float32 -> (batch,) failure probability, the members' mean."""

    def __init__(self, config: FailureConfig) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(FailureNet(config) for _ in range(config.members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.sigmoid(m(x)) for m in self.members])  # (members, batch)
        return probs.mean(dim=0)


def rank_pairs(
    x: np.ndarray, labels: np.ndarray, prob: np.ndarray, *, n_linear: int, bins: int = 8
) -> list[tuple[int, int]]:
    """Continuous feature pairs, the most promising interaction first.

    Each pair's plane is cut into bins x bins quantile cells; its score is the sum over cells of
    (residual sum)^2 / (Bernoulli variance sum), the score statistic for giving every cell a
    term of its own on top of the model that predicted `prob` (a unary model).
    """
    n = x.shape[1]
    cells = np.empty((len(x), n), dtype=np.int64)
    for j in range(n_linear, n):
        edges = np.quantile(x[:, j], np.linspace(0, 1, bins + 1)[1:-1])
        cells[:, j] = np.searchsorted(edges, x[:, j])
    residual, variance = labels - prob, prob * (1 - prob)
    scored = []
    for i, j in itertools.combinations(range(n_linear, n), 2):
        cell = cells[:, i] * bins + cells[:, j]
        r = np.bincount(cell, residual, bins * bins)
        v = np.bincount(cell, variance, bins * bins) + 1e-9
        scored.append((float((r**2 / v).sum()), (i, j)))
    scored.sort(key=lambda s: -s[0])
    return [pair for _, pair in scored]


def _random_sign(*shape: int) -> torch.Tensor:
    return torch.where(torch.rand(*shape) < 0.5, -1.0, 1.0)
