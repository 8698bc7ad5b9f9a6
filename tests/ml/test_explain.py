from __future__ import annotations

import hashlib

import numpy as np
import torch
from torch import nn

from ml.explain import (
    attribution_digest,
    integrated_gradients,
    summarize_features,
    summarize_window,
)
from ml.models.rul import RULConfig, RULNet


def test_completeness_attributions_sum_to_output_change() -> None:
    torch.manual_seed(0)
    net = RULNet(RULConfig(n_features=4, window=10, strides=(1,), input_pool=1)).eval()
    x = np.random.default_rng(0).normal(size=(3, 10, 4)).astype(np.float32)
    attr, delta = integrated_gradients(net, x, n_steps=64)
    assert attr.shape == x.shape and attr.dtype == np.float32
    with torch.no_grad():
        gap = (net(torch.from_numpy(x)) - net(torch.zeros(3, 10, 4))).numpy()
    np.testing.assert_allclose(attr.reshape(3, -1).sum(axis=1), gap, rtol=0.02, atol=0.05)
    assert np.abs(delta).max() < 0.05 * np.abs(gap).max() + 0.05


def test_linear_model_attribution_is_exact() -> None:
    lin = nn.Linear(3, 1, bias=True)
    with torch.no_grad():
        lin.weight[:] = torch.tensor([[2.0, -1.0, 0.0]])
    model = nn.Sequential(lin, nn.Flatten(0))
    attr, _ = integrated_gradients(model, np.array([[1.0, 3.0, 5.0]], np.float32))
    np.testing.assert_allclose(attr[0], [2.0, -3.0, 0.0], atol=1e-5)
    summary = summarize_features(attr[0], ["a", "b", "c"], top=2)
    assert [f["feature"] for f in summary["top_features"]] == ["b", "a"]
    assert summary["top_features"][0] == {"feature": "b", "share": 0.6, "direction": "lowers"}


def test_window_summary_pools_channels_and_names_cycles() -> None:
    attr = np.zeros((4, 4), np.float32)  # 4 steps; channels s1, s2, s1-base, s2-base
    attr[3, 0] = 1.0
    attr[2, 2] = 2.0
    attr[0, 1] = -0.5
    s = summarize_window(attr, ["s1", "s2", "s1", "s2"], [None, 7, 8, 9], top=2)
    assert s["top_sensors"][0] == {
        "sensor": "s1",
        "share": round(3 / 3.5, 4),
        "direction": "raises",
    }
    assert s["top_time_steps"][0] == {"offset": -1, "cycle": 8, "share": round(2 / 3.5, 4)}
    assert (
        s["attribution_sha256"] == "0x" + hashlib.sha256(attr.astype("<f4").tobytes()).hexdigest()
    )


def test_digest_commits_to_every_value() -> None:
    a = np.zeros((60, 28), np.float32)
    b = a.copy()
    b[59, 27] = np.float32(1e-7)
    assert attribution_digest(a) != attribution_digest(b)
    assert attribution_digest(a) == attribution_digest(a.astype(np.float64))
