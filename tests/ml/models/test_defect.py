"""ml/models/defect.py: shapes, size and config round trip."""

from __future__ import annotations

import pytest
import torch

from ml.models.defect import DefectNet, DefectNetConfig, n_parameters


def test_forward_shapes_and_features() -> None:
    cfg = DefectNetConfig(input_size=64, stem_width=8, widths=(8, 16), blocks=(1, 2))
    model = DefectNet(cfg).eval()
    x = torch.randn(3, 1, 64, 64)
    f = model.features(x)
    assert f.shape == (3, 16, 16, 16)  # stem halves, second stage halves again
    logits = model(x)
    assert logits.shape == (3, 6)
    assert torch.allclose(logits, model.classify(f))


def test_default_model_is_compact() -> None:
    n = n_parameters(DefectNet(DefectNetConfig()))
    assert 300_000 <= n <= 1_000_000


def test_config_round_trip() -> None:
    cfg = DefectNetConfig(input_size=96, widths=(8, 16, 32), blocks=(1, 1, 2))
    d = cfg.to_dict()
    assert d["widths"] == [8, 16, 32]
    assert DefectNetConfig.from_dict(d) == cfg


def test_mismatched_stages_are_refused() -> None:
    with pytest.raises(ValueError, match="widths has 2 stages, blocks has 3"):
        DefectNet(DefectNetConfig(widths=(8, 16), blocks=(1, 1, 1)))


def test_fused_copy_is_the_same_function_without_batch_norm() -> None:
    torch.manual_seed(0)
    cfg = DefectNetConfig(input_size=64, stem_width=8, widths=(8, 16), blocks=(1, 2))
    model = DefectNet(cfg)
    model.train()
    for _ in range(3):  # give the batch norms statistics and the last gains a value
        model(torch.randn(8, 1, 64, 64))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(m.weight, 1.0, 0.3)
            torch.nn.init.normal_(m.bias, 0.0, 0.3)
    model.eval()
    fused = model.fused()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # original kept
    x = torch.randn(5, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-4)
