"""ml/inspection.py: the shipped model through the Python API the service uses."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.data.neu import CLASSES, ImageError, label_of, list_images, sha256_bytes
from ml.errors import ManifestError
from ml.inspection import DefectPredictor
from ml.manifest import MANIFEST_FILE, load_manifest
from ml.shipped import MODELS, SAMPLES

REPO = Path(__file__).resolve().parents[2]
MODEL = MODELS / "defect-neu"
SAMPLE = SAMPLES / "neu"


@pytest.fixture(scope="module")
def predictor() -> DefectPredictor:
    return DefectPredictor.from_dir(MODEL)


def test_shipped_model_is_small_and_consistent(predictor: DefectPredictor) -> None:
    assert sum(p.stat().st_size for p in MODEL.iterdir()) < 5_000_000
    manifest = load_manifest(MODEL)
    assert manifest.task == "defect" and manifest.digest() == predictor.manifest_digest
    assert 0.0 < predictor.review_threshold <= 1.0
    assert 0.05 < predictor.temperature < 20.0


def test_shipped_sample_is_attributed_and_covers_every_class() -> None:
    files = list_images(SAMPLE)
    assert sorted({label_of(p.name) for p in files}) == sorted(CLASSES)
    readme = (SAMPLE / "README.md").read_text()
    for needed in ("Song", "Yan", "Applied Surface Science", "no commercial use"):
        assert needed in readme


def test_predict_image_on_the_sample(predictor: DefectPredictor, tmp_path: Path) -> None:
    # The sample images come from the test split: the model never trained on them.
    files = list_images(SAMPLE)
    right = 0
    for path in files:
        rec = predictor.predict_image(path, explain_dir=tmp_path)
        assert rec["image"] == path.name
        assert rec["image_sha256"] == sha256_bytes(path.read_bytes())
        assert set(rec["probabilities"]) == set(CLASSES)
        assert sum(rec["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert rec["verdict"] == max(rec["probabilities"], key=rec["probabilities"].get)
        assert rec["confidence"] == rec["probabilities"][rec["verdict"]]
        assert rec["needs_review"] == (rec["confidence"] < predictor.review_threshold)
        png = Path(rec["explanation"]["gradcam_png"])
        assert png.parent == tmp_path
        assert rec["explanation"]["gradcam_sha256"] == sha256_bytes(png.read_bytes())
        assert rec["model_manifest_digest"] == predictor.manifest_digest
        json.dumps(rec)  # a record must be JSON as it is
        right += rec["verdict"] == label_of(path.name)
    assert right >= len(files) - 1


def test_bytes_path_and_batch_agree(predictor: DefectPredictor) -> None:
    files = list_images(SAMPLE)[:5]
    batch = list(predictor.predict_files(files, explain_dir=None))
    for path, rec in zip(files, batch, strict=True):
        one, png = predictor.predict_image_with_overlay(path.read_bytes(), name=path.name)
        assert one["verdict"] == rec["verdict"]
        assert one["image_sha256"] == rec["image_sha256"]
        for c in CLASSES:
            assert one["probabilities"][c] == pytest.approx(rec["probabilities"][c], abs=1e-4)
        assert sha256_bytes(png) == one["explanation"]["gradcam_sha256"]
        assert Image.open(io.BytesIO(png)).size == (200, 200)


def test_batch_goes_on_past_bad_files(predictor: DefectPredictor, tmp_path: Path) -> None:
    good = list_images(SAMPLE)[:3]
    for p in good:
        shutil.copy(p, tmp_path / p.name)
    (tmp_path / "a_text.jpg").write_text("not an image")
    (tmp_path / "b_truncated.jpg").write_bytes(good[0].read_bytes()[:2000])
    small = Image.fromarray(np.zeros((64, 64), np.uint8))
    small.save(tmp_path / "c_small.png")
    files = list_images(tmp_path)
    recs = list(predictor.predict_files(files, explain_dir=None, batch_size=2))
    assert [r["image"] for r in recs] == [p.name for p in files]  # order kept, nothing dropped
    errors = {r["image"]: r["error"] for r in recs if "error" in r}
    assert set(errors) == {"a_text.jpg", "b_truncated.jpg", "c_small.png"}
    assert "not an image" in errors["a_text.jpg"]
    assert "truncated" in errors["b_truncated.jpg"]
    assert "expected 200x200" in errors["c_small.png"]
    assert sum("verdict" in r for r in recs) == 3


def test_predict_image_raises_on_bad_bytes(predictor: DefectPredictor) -> None:
    with pytest.raises(ImageError, match="not an image"):
        predictor.predict_image(b"\x00\x01garbage", name="x.jpg")


def test_from_dir_refuses_other_tasks_and_tampered_weights(tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(MODEL, other)
    doc = json.loads((other / MANIFEST_FILE).read_text())
    doc["task"] = "rul"
    (other / MANIFEST_FILE).write_text(json.dumps(doc))
    with pytest.raises(ManifestError, match="expected 'defect'"):
        DefectPredictor.from_dir(other)
    tampered = tmp_path / "tampered"
    shutil.copytree(MODEL, tampered)
    w = tampered / "weights.safetensors"
    blob = bytearray(w.read_bytes())
    blob[-1] ^= 1
    w.write_bytes(bytes(blob))
    with pytest.raises(ManifestError, match="SHA-256"):
        DefectPredictor.from_dir(tampered)


def test_test_time_views_are_the_eight_symmetries() -> None:
    import torch

    from ml.inspection import _SYMMETRIES, TTA_VIEWS, view_logits
    from ml.models.defect import DefectNet, DefectNetConfig

    x = torch.arange(16.0).view(1, 1, 4, 4)
    outs = [t(x) for t in _SYMMETRIES]
    assert len({tuple(o.flatten().tolist()) for o in outs}) == 8  # all different
    for o in outs:
        assert sorted(o.flatten().tolist()) == sorted(x.flatten().tolist())
    model = DefectNet(DefectNetConfig(input_size=32, stem_width=4, widths=(4,), blocks=(1,)))
    xs = torch.randn(3, 1, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.allclose(view_logits(model, xs, 1), model(xs))
        flipped = (model(xs) + model(xs.flip(-1))) / 2
    assert torch.allclose(view_logits(model, xs, 2), flipped, atol=1e-6)
    assert TTA_VIEWS == (1, 2, 4, 8)
    with pytest.raises(ValueError, match="expected one of"):
        view_logits(model, xs, 3)
