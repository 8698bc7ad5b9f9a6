"""ml/models/defect.py: shapes, size and config round trip."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from ml.gradcam import grad_cam
from ml.models.defect import (
    DefectEnsemble,
    DefectNet,
    DefectNetConfig,
    build_model,
    n_parameters,
)

SMALL = DefectNetConfig(input_size=64, stem_width=8, widths=(8, 16), blocks=(1, 2))


def _trained_looking(seed: int, cfg: DefectNetConfig = SMALL) -> DefectNet:
    """A net whose batch norms have statistics and non-trivial gains, in eval mode."""
    torch.manual_seed(seed)
    model = DefectNet(cfg)
    model.train()
    for _ in range(3):
        model(torch.randn(8, 1, cfg.input_size, cfg.input_size))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(m.weight, 1.0, 0.3)
            torch.nn.init.normal_(m.bias, 0.0, 0.3)
    return model.eval()


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
    model = _trained_looking(0)
    fused = model.fused()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # original kept
    x = torch.randn(5, 1, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-4)


def test_ensemble_averages_its_members_logits() -> None:
    nets = [_trained_looking(seed) for seed in (1, 2, 3)]
    ensemble = DefectEnsemble.of(nets).eval()
    assert ensemble.config == replace(SMALL, members=3)
    x = torch.randn(4, 1, 64, 64)
    with torch.no_grad():
        want = torch.stack([net(x) for net in nets]).mean(dim=0)
        torch.testing.assert_close(ensemble(x), want)
        f = ensemble.features(x)
        assert f.shape == (4, 3 * 16, 16, 16)
        torch.testing.assert_close(ensemble.classify(f), want)
        torch.testing.assert_close(ensemble.fused()(x), want, atol=1e-5, rtol=1e-4)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in ensemble.fused().modules())
    # Copies: training the ensemble further would not move the nets it came from.
    assert ensemble.members[0].stem[0].weight is not nets[0].stem[0].weight


def test_grad_cam_of_an_ensemble_of_one_net_twice_is_that_nets() -> None:
    """The ensemble's Grad-CAM is that of its averaged logit over all members' feature maps:
    two copies of a net halve each gradient and double the maps, so the map is the net's own."""
    net = _trained_looking(4)
    twice = DefectEnsemble.of([net, net]).eval()
    x = torch.randn(3, 1, 64, 64)
    classes = torch.tensor([0, 2, 5])
    with torch.no_grad():
        f1, f2 = net.features(x), twice.features(x)
    cam1, logits1 = grad_cam(net.classify, f1, classes, (200, 200))
    cam2, logits2 = grad_cam(twice.classify, f2, classes, (200, 200))
    torch.testing.assert_close(logits2, logits1)
    torch.testing.assert_close(cam2, cam1, atol=1e-5, rtol=1e-4)


def test_ensemble_configs_are_checked() -> None:
    other = DefectNetConfig(input_size=64, stem_width=8, widths=(8, 32), blocks=(1, 2))
    with pytest.raises(ValueError, match="members differ in config"):
        DefectEnsemble.of([_trained_looking(0), _trained_looking(1, other)])
    with pytest.raises(ValueError, match="2 or more members"):
        DefectEnsemble(SMALL)
    with pytest.raises(ValueError, match="is a DefectEnsemble"):
        DefectNet(DefectNetConfig(members=2))
    assert isinstance(build_model(SMALL), DefectNet)
    three = DefectNetConfig.from_dict({**SMALL.to_dict(), "members": 3})
    assert isinstance(build_model(three), DefectEnsemble) and len(build_model(three).members) == 3
    # A manifest from before ensembles has no "members" key: one net.
    old = {k: v for k, v in SMALL.to_dict().items() if k != "members"}
    assert DefectNetConfig.from_dict(old) == SMALL
