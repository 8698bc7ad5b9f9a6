"""Grad-CAM explanations (Selvaraju et al., ICCV 2017) as small PNG overlays.

The map weighs the last convolutional stage's feature maps by the spatial mean of the gradient
of the chosen class's logit, sums them, keeps the positive part and upsamples it to the image:
bright regions are where evidence for the verdict was found. The PNG is deterministic for a
given image and model (fixed colour map, no timestamps in the file), so its SHA-256 can be
signed into the prediction record.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

OVERLAY_ALPHA = 0.45


def grad_cam(
    head: Callable[[torch.Tensor], torch.Tensor],
    features: torch.Tensor,
    classes: torch.Tensor,
    size: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Grad-CAM maps of `classes` for a batch, and the logits they explain.

    Grad-CAM only needs the gradient of the class logit with respect to the last feature maps,
    so the convolutional trunk runs once without autograd and only `head` (pooling + linear) is
    differentiated: an explanation costs little more than the verdict itself.

    Args:
        head: maps (b, c, h, w) feature maps to (b, n_classes) logits.
        features: (b, c, h, w) output of the last convolutional stage.
        classes: (b,) class index to explain per image.
        size: (height, width) of the returned maps.
    Returns:
        cams: (b, height, width) in [0, 1], each scaled by its own maximum (zeros if no
            location has positive evidence).
        logits: (b, n_classes), detached.
    """
    a = features.detach().requires_grad_(True)  # (b, c, h, w)
    with torch.enable_grad():
        logits = head(a)  # (b, n_classes)
        chosen = logits.gather(1, classes.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(chosen, a)  # (b, c, h, w)
    weights = grad.mean(dim=(2, 3), keepdim=True)  # (b, c, 1, 1)
    cam = F.relu((weights * a.detach()).sum(dim=1, keepdim=True))  # (b, 1, h, w)
    cam = F.interpolate(cam, size=size, mode="bilinear", align_corners=False)
    peak = cam.amax(dim=(2, 3), keepdim=True)
    cam = torch.where(peak > 0, cam / peak.clamp_min(1e-12), torch.zeros_like(cam))
    return cam[:, 0], logits.detach()


def _jet(v: np.ndarray) -> np.ndarray:
    """A fixed jet-like colour map, (h, w) in [0, 1] -> (h, w, 3) in [0, 1].

    Written out rather than taken from matplotlib so the PNG bytes (and digests) cannot change
    with a plotting-library upgrade.
    """
    r = np.clip(1.5 - np.abs(4 * v - 3), 0, 1)
    g = np.clip(1.5 - np.abs(4 * v - 2), 0, 1)
    b = np.clip(1.5 - np.abs(4 * v - 1), 0, 1)
    return np.stack([r, g, b], axis=-1)


def overlay_png(image: np.ndarray, cam: np.ndarray) -> bytes:
    """PNG bytes of a grey image with its Grad-CAM map blended on top.

    Args:
        image: (h, w) uint8 grey image.
        cam: (h', w') map in [0, 1]; resized to (h, w) if needed.
    """
    h, w = image.shape
    if cam.shape != (h, w):
        cam = (
            F.interpolate(
                torch.as_tensor(cam, dtype=torch.float32)[None, None],
                size=(h, w),
                mode="bilinear",
                align_corners=False,
            )[0, 0]
            .clamp(0, 1)
            .numpy()
        )
    # Quantise the map to 8 bits first: float noise in the last bits (thread count, batch size)
    # must not change the image or its digest.
    q = np.round(np.asarray(cam, dtype=np.float64) * 255.0) / 255.0
    grey = (image.astype(np.float64) / 255.0)[..., None]
    rgb = (1 - OVERLAY_ALPHA) * grey + OVERLAY_ALPHA * _jet(q)
    out = Image.fromarray(np.round(rgb * 255).astype(np.uint8))  # (h, w, 3) -> RGB
    buf = io.BytesIO()
    out.save(buf, format="PNG")  # optimize=True halves throughput for ~20% fewer bytes
    return buf.getvalue()
