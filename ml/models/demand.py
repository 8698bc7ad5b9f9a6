"""Weekly demand: one network for every product, forecasting quantiles of the next weeks.

The input is the last `context` weeks of one product (fewer for a young product: the missing
weeks are zeros with a mask that says so), divided by the product's level (the mean of the
weeks it has, plus one unit, so a product that sold nothing is not divided by zero). Beside the
scaled weeks the network sees the mask, the log of the level (a product selling 2 units a week
is not a product selling 40 scaled down: its weeks are mostly noise and zeros) and which of the
last four weeks sold nothing. An N-BEATS-style stack of residual MLP blocks maps that to
`horizon x quantiles` outputs in level units; the quantiles are made non-crossing by
construction (the lowest, then softplus increments), and the forecast is multiplied back by the
level and floored at zero.

Trained across all products at once with the pinball (quantile) loss, the network learns what
each kind of history tends to do next, which a per-series model fitted to one product's 40 weeks
cannot: that is the point of a global model here. The median is the point forecast (it is what
minimises absolute error, the error MASE counts); the 5/95 % and 10/90 % quantiles bound the
90 % and 80 % intervals.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

RECENT_ZEROS = 4  # flags for the last weeks that sold nothing
SUMMARY = 3  # whole-history mean / level, share of weeks without a sale, naive scale / level


def history_summary(history: np.ndarray) -> np.ndarray:
    """(n, SUMMARY) raw summary of each row of `history` (n, T): mean, zero share, mean
    absolute week-to-week change (0 with fewer than two weeks)."""
    history = np.asarray(history, np.float64)
    n, t = history.shape
    out = np.zeros((n, SUMMARY), np.float32)
    if t:
        out[:, 0] = history.mean(axis=1)
        out[:, 1] = (history == 0).mean(axis=1)
    if t > 1:
        out[:, 2] = np.abs(np.diff(history, axis=1)).mean(axis=1)
    return out


@dataclass(frozen=True, kw_only=True)
class DemandConfig:
    context: int = 16  # weeks of history the network looks at
    horizon: int = 8  # weeks it forecasts
    quantiles: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
    width: int = 256
    blocks: int = 3
    summary: bool = True  # also see the whole history's mean, zero share and naive scale

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "quantiles": list(self.quantiles)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DemandConfig:
        return cls(**{**d, "quantiles": tuple(d["quantiles"])})

    @property
    def inputs(self) -> int:
        return 2 * self.context + 1 + RECENT_ZEROS + (SUMMARY if self.summary else 0)

    def quantile_index(self, q: float) -> int:
        for i, have in enumerate(self.quantiles):
            if abs(have - q) < 1e-9:
                return i
        raise ValueError(f"the model has no {q} quantile; it has {self.quantiles}")


@dataclass(frozen=True)
class Features:
    x: torch.Tensor  # (n, inputs)
    level: torch.Tensor  # (n, 1): what outputs are multiplied by


def features(
    values: torch.Tensor, mask: torch.Tensor, summary: torch.Tensor | None = None
) -> Features:
    """Network inputs for windows `values` (n, context), `mask` 1 where a week is known, and
    the whole history's `summary` (n, SUMMARY) from `history_summary`, if the model uses it."""
    known = mask.sum(1, keepdim=True).clamp(min=1)
    level = (values * mask).sum(1, keepdim=True) / known + 1.0
    zeros = ((values[:, -RECENT_ZEROS:] == 0) & (mask[:, -RECENT_ZEROS:] > 0)).float()
    parts = [values / level * mask, mask, torch.log(level), zeros]
    if summary is not None:
        parts.append(
            torch.stack(
                [summary[:, 0] / level[:, 0], summary[:, 1], summary[:, 2] / level[:, 0]], 1
            )
        )
    return Features(torch.cat(parts, dim=1), level)


class _Block(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.body(h)


class DemandNet(nn.Module):
    def __init__(self, config: DemandConfig) -> None:
        super().__init__()
        self.config = config
        self.inp = nn.Linear(config.inputs, config.width)
        self.blocks = nn.Sequential(*(_Block(config.width) for _ in range(config.blocks)))
        self.out = nn.Linear(config.width, config.horizon * len(config.quantiles))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Quantiles in level units, (n, horizon, quantiles), non-decreasing along the last."""
        c = self.config
        raw = self.out(torch.relu(self.blocks(self.inp(x)))).view(-1, c.horizon, len(c.quantiles))
        steps = nn.functional.softplus(raw[..., 1:])
        return torch.cat([raw[..., :1], raw[..., :1] + torch.cumsum(steps, dim=-1)], dim=-1)


def pinball(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, q: torch.Tensor):
    """Mean quantile loss over known targets: pred (n, h, Q), target and mask (n, h)."""
    err = target.unsqueeze(-1) - pred
    loss = torch.maximum(q * err, (q - 1) * err) * mask.unsqueeze(-1)
    return loss.sum() / (mask.sum() * len(q)).clamp(min=1)


def forecast_quantiles(
    net: DemandNet,
    values: np.ndarray,
    mask: np.ndarray,
    summary: np.ndarray,
    *,
    batch: int = 8192,
) -> np.ndarray:
    """Quantiles in units, (n, horizon, quantiles), floored at zero, for windows (n, context)
    of histories with `summary` (n, SUMMARY)."""
    net.eval()
    out = []
    use = net.config.summary
    with torch.inference_mode():
        for i in range(0, len(values), batch):
            f = features(
                torch.from_numpy(values[i : i + batch]),
                torch.from_numpy(mask[i : i + batch]),
                torch.from_numpy(summary[i : i + batch]) if use else None,
            )
            out.append((net(f.x) * f.level.unsqueeze(-1)).clamp(min=0).numpy())
    if not out:
        return np.zeros((0, net.config.horizon, len(net.config.quantiles)), np.float32)
    return np.concatenate(out)


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 30
    batch: int = 512
    lr: float = 2e-3
    weight_decay: float = 1e-4

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
