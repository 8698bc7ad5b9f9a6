"""ml/gradcam.py: the map points where the class evidence is, and the PNG is stable."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image
from torch import nn

from ml.gradcam import grad_cam, overlay_png


def head_for(weights: torch.Tensor) -> nn.Module:
    """Global average pooling then a fixed linear layer: (b, c, h, w) -> (b, classes)."""
    lin = nn.Linear(weights.shape[1], weights.shape[0], bias=False)
    with torch.no_grad():
        lin.weight.copy_(weights)

    class Head(nn.Module):
        def forward(self, f: torch.Tensor) -> torch.Tensor:
            return lin(f.mean(dim=(2, 3)))

    return Head()


def test_cam_peaks_where_the_class_channel_fires() -> None:
    # Channel 0 supports class 0 and fires top-left; channel 1 supports class 1, bottom-right.
    f = torch.zeros(2, 2, 8, 8)
    f[:, 0, 1, 1] = 5.0
    f[:, 1, 6, 6] = 5.0
    head = head_for(torch.tensor([[1.0, -1.0], [-1.0, 1.0]]))
    cams, logits = grad_cam(head, f, torch.tensor([0, 1]), (64, 64))
    assert cams.shape == (2, 64, 64) and logits.shape == (2, 2)
    assert float(cams.max()) == 1.0 and float(cams.min()) == 0.0
    y0, x0 = np.unravel_index(int(cams[0].argmax()), (64, 64))
    y1, x1 = np.unravel_index(int(cams[1].argmax()), (64, 64))
    assert y0 < 20 and x0 < 20  # top-left for class 0
    assert y1 > 44 and x1 > 44  # bottom-right for class 1


def test_cam_is_zero_without_positive_evidence() -> None:
    f = torch.ones(1, 1, 4, 4)
    cams, _ = grad_cam(head_for(torch.tensor([[-1.0]])), f, torch.tensor([0]), (16, 16))
    assert torch.equal(cams, torch.zeros(1, 16, 16))


def test_overlay_png_is_rgb_sized_and_deterministic() -> None:
    img = np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)
    cam = np.linspace(0, 1, 50 * 50).reshape(50, 50)
    png = overlay_png(img, cam)
    assert png == overlay_png(img, cam)
    # Float noise below 8-bit precision does not change the bytes.
    assert png == overlay_png(img, cam + 1e-6 * (cam < 0.99))
    decoded = Image.open(io.BytesIO(png))
    assert decoded.size == (200, 200) and decoded.mode == "RGB"
    assert len(png) < 150_000
