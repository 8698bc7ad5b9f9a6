from __future__ import annotations

import torch

from ml.models.rul import RULConfig, RULNet


def test_shapes_and_config_round_trip() -> None:
    config = RULConfig(n_features=28, window=60, input_pool=2)
    net = RULNet(config).eval()
    out = net(torch.zeros(7, 60, 28))
    assert out.shape == (7,)
    assert RULConfig.from_dict(config.to_dict()) == config


def test_odd_windows_and_strides_build() -> None:
    for window, strides in ((31, (1, 2)), (40, (1, 2, 2)), (15, (1,))):
        config = RULConfig(n_features=14, window=window, strides=strides, input_pool=1)
        assert RULNet(config)(torch.zeros(2, window, 14)).shape == (2,)


def test_output_is_scaled_to_cycles() -> None:
    torch.manual_seed(0)
    a = RULNet(RULConfig(target_scale=1.0)).eval()
    b = RULNet(RULConfig(target_scale=125.0)).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(3, a.config.window, a.config.n_features)
    torch.testing.assert_close(b(x), 125.0 * a(x))
