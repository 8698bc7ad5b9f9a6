"""ml/data/neu.py: names, decoding checks, splits, preprocessing and augmentation."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.data.neu import (
    CLASSES,
    AugmentConfig,
    ImageError,
    augment,
    decode_image,
    gaussian_blur,
    label_of,
    list_images,
    load_folder,
    perturb,
    preprocess,
    stratified_split,
)
from ml.errors import MLInputError


def encode(arr: np.ndarray, fmt: str = "PNG", mode: str | None = None) -> bytes:
    img = Image.fromarray(arr)
    if mode is not None:
        img = img.convert(mode)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def texture(seed: int = 0, size: int = 200) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("crazing_1.jpg", "crazing"),
        ("rolled-in_scale_12.jpg", "rolled-in_scale"),
        ("pitted_surface_240.JPG", "pitted_surface"),
        ("scratches_7.png", "scratches"),
    ],
)
def test_label_of_takes_prefix_before_last_number(name: str, label: str) -> None:
    assert label_of(name) == label


@pytest.mark.parametrize("name", ["rust_1.jpg", "crazing.jpg", "crazing_x.jpg", "1.jpg"])
def test_label_of_refuses_unknown_names(name: str) -> None:
    with pytest.raises(MLInputError, match="expected a file name"):
        label_of(name)


def test_decode_accepts_grey_and_grey_rgb_jpeg() -> None:
    arr = texture()
    assert np.array_equal(decode_image(encode(arr)), arr)
    # NEU's own files: JPEG with three equal channels.
    out = decode_image(encode(arr, "JPEG", mode="RGB"))
    assert out.shape == (200, 200) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - arr.astype(int)).mean() < 40  # lossy, but the same picture


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "empty file"),
        (b"hello, I am a text file\n" * 10, "not an image"),
        (encode(texture(size=100)), "is 100x100, expected 200x200"),
        (encode(np.zeros((200, 300), np.uint8)), "is 300x200, expected 200x200"),
        (encode(texture(), mode="RGBA"), "mode is 'RGBA'"),
        (encode(texture(), mode="I;16"), "mode is 'I"),
        (encode(np.random.default_rng(1).integers(0, 256, (200, 200, 3), np.uint8)), "colour"),
        (encode(texture(), "JPEG")[:3000], "corrupt or truncated"),
        (encode(texture(), "PNG")[:-200], "corrupt or truncated"),
        (encode(np.zeros((5000, 5000), np.uint8)), "is 5000x5000"),
    ],
)
def test_decode_refuses_bad_input_with_a_clear_message(data: bytes, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        decode_image(data, "probe.jpg")


def test_load_folder_skips_bad_files_and_reports_them(tmp_path: Path) -> None:
    (tmp_path / "crazing_1.png").write_bytes(encode(texture(1)))
    (tmp_path / "scratches_2.png").write_bytes(encode(texture(2)))
    (tmp_path / "patches_3.jpg").write_bytes(b"not a jpeg")
    (tmp_path / "notes.txt").write_text("ignored: not an image suffix")
    data = load_folder(tmp_path)
    assert data.names == ["crazing_1.png", "scratches_2.png"]
    assert data.labels.tolist() == [CLASSES.index("crazing"), CLASSES.index("scratches")]
    assert data.images.shape == (2, 200, 200) and data.images.dtype == torch.uint8
    assert len(data.errors) == 1 and "patches_3.jpg" in data.errors[0]
    assert [p.name for p in list_images(tmp_path)] == [
        "crazing_1.png",
        "patches_3.jpg",
        "scratches_2.png",
    ]


def test_load_folder_refuses_unlabelled_names(tmp_path: Path) -> None:
    (tmp_path / "photo_1.png").write_bytes(encode(texture()))
    with pytest.raises(MLInputError, match="'photo'"):
        load_folder(tmp_path)


def test_stratified_split_is_disjoint_stratified_and_order_independent() -> None:
    labels = np.repeat(np.arange(6), 40)
    names = [f"{CLASSES[c]}_{i}.jpg" for i, c in enumerate(labels)]
    s = stratified_split(labels, names, validation=0.15, test=0.2, seed=3)
    parts = [set(s.train), set(s.validation), set(s.test)]
    assert sum(map(len, parts)) == 240 and len(set.union(*parts)) == 240
    for idx, per_class in ((s.test, 8), (s.validation, 6), (s.train, 26)):
        assert np.bincount(labels[idx], minlength=6).tolist() == [per_class] * 6
    # Same files in another order: the same names land in the same parts.
    perm = np.random.default_rng(0).permutation(240)
    s2 = stratified_split(labels[perm], [names[i] for i in perm], validation=0.15, test=0.2, seed=3)
    assert s2.digests([names[i] for i in perm]) == s.digests(names)
    s3 = stratified_split(labels, names, validation=0.15, test=0.2, seed=4)
    assert s3.digests(names) != s.digests(names)


def test_stratified_split_refuses_tiny_classes() -> None:
    with pytest.raises(MLInputError, match="too few"):
        stratified_split(
            np.array([0, 0]), ["crazing_1", "crazing_2"], validation=0.2, test=0.2, seed=0
        )


def test_preprocess_standardises_each_image() -> None:
    imgs = torch.from_numpy(np.stack([texture(1), texture(2) // 4 + 100]))
    x = preprocess(imgs, 112)
    assert x.shape == (2, 1, 112, 112)
    assert torch.allclose(x.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-4)
    assert torch.allclose(x.std(dim=(1, 2, 3)), torch.ones(2), atol=1e-3)


def test_augment_is_random_but_seeded() -> None:
    imgs = torch.from_numpy(np.stack([texture(i) for i in range(6)]))
    a = augment(imgs, 96, AugmentConfig(), torch.Generator().manual_seed(0))
    b = augment(imgs, 96, AugmentConfig(), torch.Generator().manual_seed(0))
    c = augment(imgs, 96, AugmentConfig(), torch.Generator().manual_seed(1))
    assert a.shape == (6, 1, 96, 96) and torch.isfinite(a).all()
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_augment_with_no_jitter_is_an_orientation_of_the_image() -> None:
    # A top-left bright quadrant must end up in some corner, whatever flip or turn is drawn.
    img = np.zeros((200, 200), np.uint8)
    img[:100, :100] = 255
    still = AugmentConfig(min_scale=1.0, max_shift=0.0, gamma=0, gradient=0, p_blur=0, p_noise=0)
    out = augment(torch.from_numpy(img)[None].repeat(8, 1, 1), 100, still, torch.Generator())
    for x in out[:, 0]:
        corners = [x[:50, :50], x[:50, 50:], x[50:, :50], x[50:, 50:]]
        bright = [bool(c.mean() > 0) for c in corners]
        assert sum(bright) == 1


def test_gaussian_blur_keeps_flat_images_and_smooths_edges() -> None:
    flat = torch.full((2, 1, 20, 20), 0.5)
    assert torch.allclose(gaussian_blur(flat, torch.tensor([0.5, 2.0])), flat, atol=1e-6)
    step = torch.zeros(1, 1, 20, 20)
    step[..., 10:] = 1.0
    out = gaussian_blur(step, torch.tensor([1.5]))
    assert 0.1 < float(out[0, 0, 5, 9]) < 0.5 < float(out[0, 0, 5, 10]) < 0.9


@pytest.mark.parametrize("kind", ["blur", "noise", "lighting"])
def test_perturb_changes_images_mildly(kind: str) -> None:
    imgs = torch.from_numpy(np.stack([texture(i) // 2 + 64 for i in range(3)]))
    out = perturb(imgs, kind, seed=0)
    assert out.shape == imgs.shape and out.dtype == torch.uint8
    diff = (out.float() - imgs.float()).abs().mean()
    assert 1.0 < float(diff) < 60.0
    assert torch.equal(out, perturb(imgs, kind, seed=0))


def test_perturb_refuses_unknown_kind() -> None:
    with pytest.raises(MLInputError, match="unknown perturbation"):
        perturb(torch.zeros(1, 200, 200, dtype=torch.uint8), "fog")
