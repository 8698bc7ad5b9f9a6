"""Integrated-gradients explanations (captum), summarised and committed by digest.

Integrated gradients (Sundararajan et al. 2017) attributes f(x) - f(baseline) to each input
element; the attributions sum to that difference (completeness), which is what makes them an
honest account of one prediction. The baseline is the all-zeros input: after normalisation
that is the training mean of every sensor in the engine's own operating condition, i.e. "an
average engine" — attributions say how this engine's deviations from it moved the prediction.

A prediction record carries a short summary (top sensors / time steps / features with their
share of the total absolute attribution) plus the SHA-256 of the full attribution tensor, so
the complete explanation can be stored elsewhere and later shown to be the one committed.
Digest bytes: the attribution array as float32, little-endian, C order (for a window:
time-major, i.e. all sensors of the oldest step first), no header.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

DEFAULT_STEPS = 32


def integrated_gradients(
    model: nn.Module,
    inputs: np.ndarray,
    *,
    n_steps: int = DEFAULT_STEPS,
    internal_batch_size: int = 2048,
) -> tuple[np.ndarray, np.ndarray]:
    """Attributions for each input against a zero baseline.

    Args:
        model: maps (batch, ...) float32 to (batch,) scalars; put in eval mode here.
        inputs: (batch, ...) float32 model inputs.
    Returns:
        (attributions with the shape of `inputs`, float32; convergence delta per input, i.e.
        sum(attributions) - (f(x) - f(0)), which is small when n_steps suffices).
    """
    from captum.attr import IntegratedGradients

    model.eval()
    x = torch.as_tensor(np.ascontiguousarray(inputs, dtype=np.float32))
    ig = IntegratedGradients(model)
    attr, delta = ig.attribute(
        x,
        baselines=torch.zeros_like(x),
        n_steps=n_steps,
        internal_batch_size=internal_batch_size,
        return_convergence_delta=True,
    )
    return attr.detach().numpy().astype(np.float32), delta.detach().numpy()


def attribution_digest(attributions: np.ndarray) -> str:
    """0x-prefixed SHA-256 of one attribution array (float32 little-endian, C order)."""
    data = np.ascontiguousarray(attributions, dtype="<f4").tobytes()
    return "0x" + hashlib.sha256(data).hexdigest()


def _shares(weights: np.ndarray) -> np.ndarray:
    total = float(weights.sum())
    return weights / total if total > 0 else np.zeros_like(weights)


def summarize_window(
    attributions: np.ndarray,
    channel_sensors: Sequence[str],
    cycles: Sequence[int | None],
    *,
    top: int = 3,
) -> dict[str, Any]:
    """Summary of one window's attributions, shape (window, n_channels).

    `channel_sensors[c]` names the sensor channel c is made from (channels of one sensor are
    pooled); `cycles[i]` is the engine cycle of window row i, None for front padding. Shares
    are of the total absolute attribution; `offset` counts back from the last cycle (0).
    """
    a = np.abs(attributions.astype(np.float64))  # (window, n_channels)
    names = list(dict.fromkeys(channel_sensors))  # sensors in first-seen order
    index = np.array([names.index(s) for s in channel_sensors])
    by_sensor = _shares(np.bincount(index, weights=a.sum(axis=0), minlength=len(names)))
    signed = np.bincount(index, weights=attributions.sum(axis=0), minlength=len(names))
    by_step = _shares(a.sum(axis=1))
    window = a.shape[0]
    top_sensors = [
        {
            "sensor": names[j],
            "share": round(float(by_sensor[j]), 4),
            "direction": "lowers" if signed[j] < 0 else "raises",
        }
        for j in np.argsort(-by_sensor, kind="stable")[:top]
    ]
    top_steps = [
        {"offset": int(i) - (window - 1), "cycle": cycles[i], "share": round(float(by_step[i]), 4)}
        for i in np.argsort(-by_step, kind="stable")[:top]
    ]
    return {
        "method": "integrated_gradients",
        "baseline": "training mean per operating condition",
        "top_sensors": top_sensors,
        "top_time_steps": top_steps,
        "attribution_shape": list(attributions.shape),
        "attribution_sha256": attribution_digest(attributions),
    }


def summarize_features(
    attributions: np.ndarray, names: Sequence[str], *, top: int = 3
) -> dict[str, Any]:
    """Summary of one row's attributions over named features, shape (n_features,)."""
    a = np.abs(attributions.astype(np.float64))
    shares = _shares(a)
    return {
        "method": "integrated_gradients",
        "baseline": "training mean of every feature",
        "top_features": [
            {
                "feature": names[j],
                "share": round(float(shares[j]), 4),
                "direction": "lowers" if attributions[j] < 0 else "raises",
            }
            for j in np.argsort(-shares, kind="stable")[:top]
        ],
        "attribution_shape": list(attributions.shape),
        "attribution_sha256": attribution_digest(attributions),
    }
