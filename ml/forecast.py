"""Demand forecasts from a trained weekly model: the inference side of ml/tasks/demand.py.

`DemandPredictor` loads a model directory once (weights checked against the manifest) and turns
product histories into forecast payloads, the content of the `forecast` records the ledger signs:
the next weeks' median and 80 / 90 % intervals, labelled with ISO weeks, with the history's
digest and length and MASE's scale, so a settled forecast can be scored from the log alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ml.data.demand import check_units
from ml.errors import ManifestError, MLInputError
from ml.manifest import ModelManifest, input_digest, load_manifest, load_tensors
from ml.models.demand import (
    SUMMARY,
    DemandConfig,
    DemandNet,
    forecast_quantiles,
    history_summary,
)

MIN_HISTORY = 4  # weeks a product needs before it gets a forecast or a training window
LEVELS = (80, 90)  # the intervals a forecast carries, in percent


def context_window(history: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """The last `context` weeks of each row of `history` (n, T), left-padded with zeros and
    a mask when T < context."""
    n, t = history.shape
    values = np.zeros((n, context), np.float32)
    mask = np.zeros((n, context), np.float32)
    k = min(t, context)
    if k:
        values[:, context - k :] = history[:, t - k :]
        mask[:, context - k :] = 1
    return values, mask


def forecast(net: DemandNet, histories: Sequence[np.ndarray]) -> np.ndarray:
    """Quantile forecasts (products, horizon, quantiles) in units from each product's history
    (oldest week first; histories may differ in length: those of one length are prepared
    together, and every product goes through the network in one batch)."""
    context = net.config.context
    values = np.zeros((len(histories), context), np.float32)
    mask = np.zeros((len(histories), context), np.float32)
    summary = np.zeros((len(histories), SUMMARY), np.float32)
    rows = [np.asarray(h, np.float32) for h in histories]
    by_length: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_length.setdefault(len(row), []).append(i)
    for idx in by_length.values():
        block = np.stack([rows[i] for i in idx])
        values[idx], mask[idx] = context_window(block, context)
        summary[idx] = history_summary(block)
    return forecast_quantiles(net, values, mask, summary)


def naive_scale(history: np.ndarray) -> np.ndarray:
    """MASE's scale: the mean absolute week-to-week change of each history (n, T)."""
    history = np.atleast_2d(history)
    if history.shape[1] < 2:
        return np.zeros(len(history))
    return np.abs(np.diff(history.astype(np.float64), axis=1)).mean(axis=1)


@dataclass(frozen=True)
class Forecasts:
    """One method's forecasts from one origin: point (n, h) and interval bounds per level."""

    point: np.ndarray
    intervals: dict[int, tuple[np.ndarray, np.ndarray]]


def quantile_forecasts(net_out: np.ndarray, config: DemandConfig) -> Forecasts:
    point = net_out[..., config.quantile_index(0.5)]
    intervals = {}
    for level in LEVELS:
        tail = (1 - level / 100) / 2
        intervals[level] = (
            net_out[..., config.quantile_index(round(tail, 4))],
            net_out[..., config.quantile_index(round(1 - tail, 4))],
        )
    return Forecasts(point, intervals)


def iso_weeks_after(last_week: str, n: int) -> list[str]:
    """The `n` ISO week labels (YYYY-Www) after `last_week`.

    Raises:
        MLInputError: `last_week` is not an ISO week label.
    """
    try:
        year, week = last_week.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
    except ValueError:
        raise MLInputError(
            f"last week {last_week!r}: expected an ISO week such as 2026-W39"
        ) from None
    out = []
    for k in range(1, n + 1):
        y, w, _ = (monday + timedelta(weeks=k)).isocalendar()
        out.append(f"{y}-W{w:02d}")
    return out


def last_complete_week(today: date | None = None) -> str:
    y, w, _ = ((today or date.today()) - timedelta(weeks=1)).isocalendar()
    return f"{y}-W{w:02d}"


class DemandPredictor:
    """A loaded weekly demand model."""

    task: ClassVar[str] = "demand"

    def __init__(self, *, manifest: ModelManifest, net: DemandNet) -> None:
        self.manifest = manifest
        self.manifest_digest = manifest.digest()
        self.net = net.eval()

    @classmethod
    def from_dir(cls, model_dir: Path) -> DemandPredictor:
        """Load and verify a model directory written by `train --task demand`.

        Raises:
            ManifestError: missing files, digest mismatch, or not a demand model.
        """
        manifest = load_manifest(Path(model_dir))
        if manifest.task != cls.task:
            raise ManifestError(
                f"{model_dir}: a {manifest.task!r} model, expected a {cls.task!r} model"
            )
        net = DemandNet(DemandConfig.from_dict(manifest.config["model"]))
        net.load_state_dict(load_tensors(Path(model_dir)))
        return cls(manifest=manifest, net=net)

    def forecast(
        self,
        histories: Mapping[str, Sequence[float] | np.ndarray],
        *,
        last_week: str,
        horizon: int = 8,
    ) -> list[dict[str, Any]]:
        """One forecast payload per product (in the order given) from its weekly history,
        oldest week first, whose last week is `last_week`: the next `horizon` weeks' median
        and 80 / 90 % intervals, the history's digest and length, and MASE's scale (its mean
        absolute week-to-week change) for the settlement.

        Raises:
            MLInputError: a history is shorter than MIN_HISTORY weeks or has a missing,
                non-finite or negative week; `horizon` is outside 1..8; `last_week` is not an
                ISO week.
        """
        h_max = self.net.config.horizon
        if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= h_max:
            raise MLInputError(f"horizon {horizon!r}: expected 1..{h_max} weeks")
        weeks = iso_weeks_after(last_week, horizon)
        products = list(histories)
        checked = []
        for p in products:
            h = check_units(histories[p], f"history of {p}")
            if len(h) < MIN_HISTORY:
                raise MLInputError(f"history of {p}: {len(h)} weeks, at least {MIN_HISTORY} needed")
            checked.append(h)
        f = quantile_forecasts(forecast(self.net, checked), self.net.config)
        out = []
        for i, p in enumerate(products):
            out.append(
                {
                    "kind": "demand_forecast",
                    "model": self.manifest.name,
                    "model_manifest_digest": self.manifest_digest,
                    "product": p,
                    "origin": weeks[0],
                    "weeks": weeks,
                    "point": [round(float(v), 3) for v in f.point[i, :horizon]],
                    "intervals": {
                        str(lv): [
                            [round(float(lo[i, k]), 3), round(float(hi[i, k]), 3)]
                            for k in range(horizon)
                        ]
                        for lv, (lo, hi) in f.intervals.items()
                    },
                    "input_digest": input_digest(checked[i]),
                    "input_shape": [len(checked[i])],
                    "scale": round(float(naive_scale(checked[i])[0]), 6),
                }
            )
        return out
