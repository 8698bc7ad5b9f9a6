"""Machine-failure classifier: an ensemble of pairwise additive networks over process features.

AI4I's failure mechanisms are thresholds on one or two physical quantities at a time (heat
dissipation needs a small temperature margin *and* low speed; power outside a band; wear x
torque above a limit that depends on the product type). A plain MLP mixes every input in its
first layer and, with ~200 failures to learn from, smears those sharp boundaries. Here the
logit is a sum of small networks, one per feature and one per pair of features (a neural
GA2M): each term can draw a sharp one- or two-dimensional boundary and nothing else, which is
exactly the structure of the mechanisms, and each term can be plotted on its own. The one-hot
product type enters linearly. Members are trained on different folds of the training rows
(their out-of-fold predictions choose the decision threshold); the prediction is the mean of
their probabilities.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True, kw_only=True)
class FailureConfig:
    n_features: int = 14
    n_linear: int = 3  # the first n_linear inputs (one-hot product type) enter linearly
    hidden: int = 8  # width of each per-pair term
    members: int = 3

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """Input pairs with a term of their own: every feature alone, then every pair."""
        cont = range(self.n_linear, self.n_features)
        return [(i, i) for i in cont] + list(itertools.combinations(cont, 2))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FailureConfig:
        return cls(**d)


class FailureNet(nn.Module):
    """One member: (batch, n_features) float32 -> (batch,) failure logit.

    logit = w . x[:n_linear] + b + sum over pairs p of f_p(x[i_p], x[j_p]), each f_p a
    2 -> hidden -> hidden -> 1 ReLU network; all P terms run as one batched einsum.
    """

    def __init__(self, config: FailureConfig) -> None:
        super().__init__()
        self.config = config
        pairs = config.pairs
        p, h = len(pairs), config.hidden
        self.index: torch.Tensor
        self.register_buffer("index", torch.tensor(pairs, dtype=torch.long), persistent=False)
        # Random first-layer weights and biases spread each term's kinks over the inputs' range.
        self.w1 = nn.Parameter(torch.randn(p, 2, h) * 0.7)
        self.b1 = nn.Parameter(torch.randn(p, h) * 0.5)
        self.w2 = nn.Parameter(torch.randn(p, h, h) / h**0.5)
        self.b2 = nn.Parameter(torch.zeros(p, h))
        self.w3 = nn.Parameter(torch.zeros(p, h))  # every term starts at zero
        self.linear = nn.Linear(config.n_linear, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pairs = x[:, self.index]  # (batch, P, 2)
        h = torch.relu(torch.einsum("bpi,pih->bph", pairs, self.w1) + self.b1)  # (batch, P, h)
        h = torch.relu(torch.einsum("bpi,pih->bph", h, self.w2) + self.b2)  # (batch, P, h)
        terms = (h * self.w3).sum(dim=2)  # (batch, P)
        return terms.sum(dim=1) + self.linear(x[:, : self.config.n_linear]).squeeze(-1)


class FailureEnsemble(nn.Module):
    """(batch, n_features) float32 -> (batch,) failure probability, the members' mean."""

    def __init__(self, config: FailureConfig) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(FailureNet(config) for _ in range(config.members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.stack([torch.sigmoid(m(x)) for m in self.members])  # (members, batch)
        return probs.mean(dim=0)
