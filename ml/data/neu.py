"""NEU steel surface defect images: decoding, checking, splitting, preprocessing, augmentation.

The NEU-CLS images (K. Song and Y. Yan, Northeastern University) are 200x200 grey pictures of
hot-rolled steel strip, six classes of 300 images each (1,440 of them are in ../shared). The class
is the file-name prefix before the last `_NNN`: `rolled-in_scale_12.jpg` is `rolled-in_scale`.

Everything here works on whole batches of tensors: the data set is small enough to hold in
memory as one uint8 tensor, so an epoch never touches the disk or decodes a JPEG twice, and
augmentation is a handful of batched tensor ops instead of a per-image PIL pipeline (the
machine has two shared cores).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ml.errors import MLInputError

CLASSES: tuple[str, ...] = (
    "crazing",
    "inclusion",
    "patches",
    "pitted_surface",
    "rolled-in_scale",
    "scratches",
)
IMAGE_SIZE = 200  # NEU images are 200x200; anything else is not an image this model knows
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
# JPEG stores NEU's grey pictures as RGB with three identical channels; a larger spread means a
# colour picture, which this model was never shown.
GREY_TOLERANCE = 8
_NAME = re.compile(r"^(?P<label>.+)_(?P<num>\d+)$")
# Decompression-bomb guard: refuse to decode anything much larger than a NEU image.
_MAX_PIXELS = 4 * IMAGE_SIZE * IMAGE_SIZE


class ImageError(MLInputError):
    """A file is not a usable inspection image (not an image, corrupt, wrong size or mode)."""


def label_of(name: str) -> str:
    """The class of a NEU file name (`pitted_surface_7.jpg` -> `pitted_surface`).

    Raises:
        MLInputError: the name is not `<class>_<number>.<ext>` with a known class.
    """
    stem = Path(name).stem
    m = _NAME.match(stem)
    if m is None or m["label"] not in CLASSES:
        raise MLInputError(
            f"{name}: expected a file name <class>_<number>.<ext> with class one of "
            f"{', '.join(CLASSES)}; found prefix {stem.rsplit('_', 1)[0]!r}"
        )
    return m["label"]


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside `folder`, sorted by name (hidden files skipped).

    Raises:
        FileNotFoundError: `folder` is not a directory.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: expected a folder of images")
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


def sha256_bytes(data: bytes) -> str:
    return "0x" + hashlib.sha256(data).hexdigest()


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode and check one inspection image: (200, 200) uint8 grey levels.

    Accepts 8-bit grey (`L`) and RGB whose three channels agree (how JPEG stores NEU's grey
    images). Everything else is refused rather than silently converted, because a verdict on a
    picture unlike the training data would carry a confidence it has not earned.

    Raises:
        ImageError: not an image, truncated or corrupt, not 200x200, or not grey.
    """
    if not data:
        raise ImageError(f"{name}: empty file, expected a {IMAGE_SIZE}x{IMAGE_SIZE} grey image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > _MAX_PIXELS:
                raise ImageError(
                    f"{name}: image is {img.width}x{img.height}, expected {IMAGE_SIZE}x{IMAGE_SIZE}"
                )
            img.load()  # decodes fully: truncated or corrupt data fails here, not later
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not an image file PIL can read ({len(data)} bytes)") from exc
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: corrupt or truncated image: {exc}") from exc
    if img.size != (IMAGE_SIZE, IMAGE_SIZE):
        raise ImageError(
            f"{name}: image is {img.width}x{img.height}, expected {IMAGE_SIZE}x{IMAGE_SIZE}"
        )
    if img.mode == "L":
        return np.asarray(img, dtype=np.uint8).copy()
    if img.mode == "RGB":
        rgb = np.asarray(img, dtype=np.int16)
        spread = int(np.abs(rgb - rgb[..., :1]).max())
        if spread > GREY_TOLERANCE:
            raise ImageError(
                f"{name}: colour image (channels differ by up to {spread} levels), "
                "expected a grey image"
            )
        return rgb[..., 0].astype(np.uint8)
    raise ImageError(f"{name}: image mode is {img.mode!r}, expected 8-bit grey ('L') or grey RGB")


def read_image(path: Path) -> tuple[np.ndarray, bytes]:
    """Read and decode one file; returns the (200, 200) uint8 image and the raw file bytes.

    Raises:
        ImageError: the file is not a usable image.
        FileNotFoundError: the file does not exist.
    """
    data = path.read_bytes()
    return decode_image(data, path.name), data


@dataclass(frozen=True)
class LabelledImages:
    """A folder of NEU images held in memory."""

    images: torch.Tensor  # (n, 200, 200) uint8
    labels: torch.Tensor  # (n,) int64 index into CLASSES
    names: list[str]
    paths: list[Path]
    errors: list[str]  # one message per file that was skipped


def load_folder(folder: Path, *, labelled: bool = True, progress: bool = False) -> LabelledImages:
    """Decode every image in `folder` once. Bad files are skipped and reported in `errors`.

    Raises:
        FileNotFoundError: not a folder.
        MLInputError: no usable image, or (labelled) a file name without a known class.
    """
    paths = list_images(folder)
    if not paths:
        raise MLInputError(f"{folder}: no image files ({', '.join(IMAGE_SUFFIXES)}) found")
    images: list[np.ndarray] = []
    labels: list[int] = []
    kept: list[Path] = []
    errors: list[str] = []
    for path in _track(paths, "reading images", progress):
        label = CLASSES.index(label_of(path.name)) if labelled else -1
        try:
            img, _ = read_image(path)
        except ImageError as exc:
            errors.append(str(exc))
            continue
        images.append(img)
        labels.append(label)
        kept.append(path)
    if not images:
        raise MLInputError(f"{folder}: none of {len(paths)} files is a usable image: {errors[0]}")
    return LabelledImages(
        images=torch.from_numpy(np.stack(images)),
        labels=torch.tensor(labels, dtype=torch.int64),
        names=[p.name for p in kept],
        paths=kept,
        errors=errors,
    )


def _track(items: Sequence[Path], what: str, progress: bool) -> Iterable[Path]:
    if not progress:
        return items
    from rich.progress import track

    return track(items, description=what, transient=True)


@dataclass(frozen=True)
class Split:
    train: np.ndarray  # indices
    validation: np.ndarray
    test: np.ndarray

    def digests(self, names: Sequence[str]) -> dict[str, str]:
        """SHA-256 of each part's sorted, newline-joined file names: pins the split."""
        return {
            part: sha256_bytes("\n".join(sorted(names[i] for i in idx)).encode())
            for part, idx in (
                ("train", self.train),
                ("validation", self.validation),
                ("test", self.test),
            )
        }


def stratified_split(
    labels: torch.Tensor | np.ndarray,
    names: Sequence[str],
    *,
    validation: float,
    test: float,
    seed: int,
) -> Split:
    """Class-stratified train / validation / test split, reproducible from the names and seed.

    Within each class the files are sorted by name and shuffled with `seed`, so the same folder
    always splits the same way whatever order the disk lists it in.

    Raises:
        MLInputError: a class has too few images to put one in every part.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for c in np.unique(labels):
        idx = sorted(np.flatnonzero(labels == c).tolist(), key=lambda i: names[i])
        idx = [idx[i] for i in rng.permutation(len(idx))]
        n_test = round(len(idx) * test)
        n_val = round(len(idx) * validation)
        if min(n_test, n_val, len(idx) - n_test - n_val) < 1:
            raise MLInputError(
                f"class {CLASSES[int(c)]} has {len(idx)} images, too few to split into "
                "train / validation / test"
            )
        parts["test"] += idx[:n_test]
        parts["validation"] += idx[n_test : n_test + n_val]
        parts["train"] += idx[n_test + n_val :]
    return Split(**{k: np.array(sorted(v), dtype=np.int64) for k, v in parts.items()})


def preprocess(images: torch.Tensor, size: int) -> torch.Tensor:
    """Model input from uint8 images: (n, 200, 200) uint8 -> (n, 1, size, size) float.

    Area-downscaled, then standardised per image: the classes differ in texture, not in
    overall brightness, and per-image standardisation makes the model blind to exposure and
    contrast changes between cameras.
    """
    x = images.unsqueeze(1).float() / 255.0  # (n, 1, 200, 200)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="area")
    return standardise(x)


def standardise(x: torch.Tensor) -> torch.Tensor:
    """(n, 1, h, w) -> same, each image to zero mean and unit variance."""
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    std = x.std(dim=(1, 2, 3), keepdim=True).clamp_min(1e-3)
    return (x - mean) / std


@dataclass(frozen=True, kw_only=True)
class AugmentConfig:
    """Augmentation suited to grey steel texture: no colour, any orientation, mild optics.

    There is no brightness or linear contrast jitter: per-image standardisation cancels both
    exactly. Gamma changes the tone curve, which standardisation does not undo. Lighting, blur
    and noise are applied at camera resolution (200 px, grey levels), before resampling, as a
    camera delivers them: noise added after downscaling is whiter than sensor noise seen through
    the model's area downscale, and a model trained on one is not robust to the other.
    """

    min_scale: float = 0.85  # random crop side, as a fraction of the image side
    max_shift: float = 0.1  # crop centre shift, fraction of the side
    gamma: float = 0.25  # tone curve x ** g with log g uniform in +/- log(1 + gamma)
    gradient: float = 0.8  # uneven lighting: a linear ramp of gain, peak-to-peak
    p_blur: float = 0.3
    max_blur_sigma: float = 2.0  # in camera pixels
    p_noise: float = 0.5
    max_noise: float = 0.08  # Gaussian noise std in [0, 1] grey units (0.08 = 20 grey levels)


def augment(
    images: torch.Tensor, size: int, cfg: AugmentConfig, generator: torch.Generator
) -> torch.Tensor:
    """Random training views of a batch: (n, 200, 200) uint8 -> (n, 1, size, size) float.

    Photometric jitter at camera resolution, then one `grid_sample` for crop, shift, both flips
    and 90-degree turns at once (defects have no preferred orientation on a strip), then
    standardisation.
    """
    n = images.shape[0]
    g = generator
    x = images.unsqueeze(1).float() / 255.0  # (n, 1, 200, 200)

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(*(shape or (n,)), generator=g)

    # Photometric, at camera resolution: tone curve, lighting ramp, blur, sensor noise.
    side = x.shape[-1]
    log_g = math.log(1 + cfg.gamma)
    x = x.clamp_min(1e-4) ** u(-log_g, log_g).exp().view(n, 1, 1, 1)
    x = x * lighting_ramp(n, side, u(0, cfg.gradient), u(0, 2 * math.pi))
    blur = torch.rand(n, generator=g) < cfg.p_blur
    if blur.any():
        sigma = u(0.3, cfg.max_blur_sigma, int(blur.sum()))
        x[blur] = gaussian_blur(x[blur], sigma)
    noisy = torch.rand(n, generator=g) < cfg.p_noise
    if noisy.any():
        m = int(noisy.sum())
        noise = torch.randn(m, 1, side, side, generator=g) * u(0, cfg.max_noise, m).view(m, 1, 1, 1)
        x[noisy] += noise
    x = x.clamp(0.0, 1.0)

    # Geometric: crop, shift, flips and 90-degree turns in one grid_sample.
    scale = u(cfg.min_scale, 1.0)
    k = torch.randint(0, 4, (n,), generator=g).float() * (math.pi / 2)
    flip = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(k), torch.sin(k)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = cos * scale * flip
    theta[:, 0, 1] = -sin * scale
    theta[:, 1, 0] = sin * scale * flip
    theta[:, 1, 1] = cos * scale
    # Shift the crop centre only as far as it stays inside the image.
    room = (1.0 - scale).clamp_min(0.0)
    theta[:, 0, 2] = u(-1, 1) * torch.minimum(room, torch.full((n,), 2 * cfg.max_shift))
    theta[:, 1, 2] = u(-1, 1) * torch.minimum(room, torch.full((n,), 2 * cfg.max_shift))
    grid = F.affine_grid(theta, [n, 1, size, size], align_corners=False)
    # Sampling a 200-px image onto a ~100-px grid with bilinear taps aliases fine texture, so
    # downscale by area to about the crop's output resolution first.
    pre = F.interpolate(x, size=(round(size * 1.25), round(size * 1.25)), mode="area")
    x = F.grid_sample(pre, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return standardise(x)


def lighting_ramp(n: int, size: int, strength: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """(n, 1, size, size) gain maps: 1 +/- strength/2 along a direction `angle` (radians)."""
    coords = torch.linspace(-0.5, 0.5, size)
    yy, xx = torch.meshgrid(coords, coords, indexing="ij")  # (size, size)
    proj = torch.cos(angle).view(n, 1, 1) * xx + torch.sin(angle).view(n, 1, 1) * yy
    return (1.0 + strength.view(n, 1, 1) * proj).unsqueeze(1)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of (n, 1, h, w) with its own Gaussian `sigma` (n,), in pixels."""
    n = x.shape[0]
    radius = max(1, math.ceil(3 * float(sigma.max())))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t.view(1, -1) / sigma.view(n, 1)) ** 2)
    k = k / k.sum(dim=1, keepdim=True)  # (n, 2r+1)
    # Separable blur as a grouped conv: images become channels so each gets its own kernel.
    y = x.transpose(0, 1)  # (1, n, h, w)
    y = F.pad(y, (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k.view(n, 1, 1, -1), groups=n)
    y = F.conv2d(y, k.view(n, 1, -1, 1), groups=n)
    return y.transpose(0, 1)


# Fixed, mild perturbations for the robustness report: what a dirty lens, a noisy sensor and an
# unevenly lit strip do to an image. Applied at full resolution and re-quantised to uint8, as a
# camera would deliver them.
PERTURBATIONS: dict[str, dict[str, float]] = {
    "blur": {"sigma_px": 1.5},  # Gaussian blur, std in pixels of the 200x200 image
    "noise": {"sigma": 10.0},  # additive Gaussian noise, std in grey levels (of 255)
    "lighting": {"peak_to_peak": 0.6},  # linear gain ramp 0.7 -> 1.3 across the image
}


def perturb(images: torch.Tensor, kind: str, *, seed: int = 0) -> torch.Tensor:
    """A perturbed copy of (n, 200, 200) uint8 images; `kind` is a key of PERTURBATIONS.

    Raises:
        MLInputError: unknown kind.
    """
    if kind not in PERTURBATIONS:
        raise MLInputError(f"unknown perturbation {kind!r}; expected one of {list(PERTURBATIONS)}")
    g = torch.Generator().manual_seed(seed)
    p = PERTURBATIONS[kind]
    n, h, _ = images.shape
    x = images.unsqueeze(1).float()  # (n, 1, h, w) in grey levels
    if kind == "blur":
        x = gaussian_blur(x, torch.full((n,), p["sigma_px"]))
    elif kind == "noise":
        x = x + torch.randn(x.shape, generator=g) * p["sigma"]
    else:  # lighting: each image gets its own ramp direction
        angle = torch.rand(n, generator=g) * 2 * math.pi
        x = x * lighting_ramp(n, h, torch.full((n,), p["peak_to_peak"]), angle)
    return x.round().clamp(0, 255).to(torch.uint8)[:, 0]
