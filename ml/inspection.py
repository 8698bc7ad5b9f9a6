"""Inspection verdicts from a saved defect model: the Python API the service and CLI share.

    predictor = DefectPredictor.from_dir(model_dir("defect-neu"))  # ml.shipped.model_dir
    record = predictor.predict_image(Path("crazing_1.jpg"), explain_dir=Path("out/gradcam"))

The model directory is read and its weights digest checked once; each call then decodes the
image, checks it, classifies it with calibrated probabilities, marks low-confidence verdicts for
review and explains the verdict with a Grad-CAM overlay whose SHA-256 goes into the record.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from ml.data.neu import CLASSES, ImageError, decode_image, preprocess, sha256_bytes
from ml.errors import ManifestError
from ml.gradcam import grad_cam, overlay_png
from ml.manifest import ModelManifest, load_manifest, load_tensors
from ml.models.defect import DefectModel, DefectNetConfig, build_model
from ml.profile import ImageProfile, InputCheck, load_profile

TASK = "defect"
# Test-time views: the first k of the eight symmetries of the square. Defects have no
# preferred orientation, so a verdict may average the logits of turned and flipped copies.
TTA_VIEWS = (1, 2, 4, 8)
_SYMMETRIES: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (
    lambda x: x,
    lambda x: x.flip(-1),
    lambda x: x.flip(-2),
    lambda x: x.flip(-1, -2),
    lambda x: x.rot90(1, (-2, -1)),
    lambda x: x.rot90(-1, (-2, -1)),
    lambda x: x.transpose(-2, -1),
    lambda x: x.flip(-1, -2).transpose(-2, -1),
)


def view_logits(
    model: DefectModel, x: torch.Tensor, views: int, *, batch_size: int = 256
) -> torch.Tensor:
    """(n, 1, s, s) preprocessed inputs -> (n, classes) logits averaged over `views` views."""
    if views not in TTA_VIEWS:
        raise ValueError(f"views is {views}, expected one of {TTA_VIEWS}")
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            out.append(torch.stack([model(t(xb)) for t in _SYMMETRIES[:views]]).mean(dim=0))
    return torch.cat(out)


PROB_DIGITS = 6  # probabilities in records: enough to rank, stable across batch sizes


@dataclass(frozen=True)
class Scored:
    """Calibrated output for a batch of decoded images."""

    logits: torch.Tensor  # (n, classes) raw
    probs: torch.Tensor  # (n, classes) softmax(logits / temperature)
    cams: torch.Tensor | None  # (n, 200, 200) Grad-CAM of the verdict, in [0, 1]
    features: torch.Tensor  # (n, c) last-stage features, average pooled (the input check's)


class DefectPredictor:
    """A loaded defect model with its calibration and review threshold."""

    task: ClassVar[str] = TASK

    def __init__(
        self,
        *,
        model: DefectModel,
        manifest: ModelManifest,
        temperature: float,
        review_threshold: float,
        classes: Sequence[str],
        views: int = 1,
        profile: ImageProfile | None = None,
    ) -> None:
        self.model = model.fused()  # batch norms folded into the convolutions
        self.manifest = manifest
        self.manifest_digest = manifest.digest()
        self.temperature = temperature
        self.review_threshold = review_threshold
        self.classes = tuple(classes)
        self.input_size = model.config.input_size
        self.views = views
        self.profile = profile  # None: no input check (a model without a profile)

    @classmethod
    def from_dir(cls, model_dir: Path, *, with_profile: bool = True) -> DefectPredictor:
        """Load `model_dir` (weights.safetensors + manifest.json) after checking its digest;
        with its input profile unless `with_profile` is false (what fitting one needs).

        Raises:
            ManifestError: missing files, digest mismatch, or not a defect model.
        """
        manifest = load_manifest(model_dir)
        if manifest.task != TASK:
            raise ManifestError(f"{model_dir}: task is {manifest.task!r}, expected {TASK!r}")
        try:
            config = DefectNetConfig.from_dict(manifest.config)
            calib = manifest.preprocessing["calibration"]
            classes = manifest.preprocessing["classes"]
            temperature = float(calib["temperature"])
            threshold = float(calib["review_threshold"])
            views = int(manifest.preprocessing.get("test_time_views", 1))
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{model_dir}: manifest lacks defect-model fields: {exc}") from exc
        if tuple(classes) != CLASSES:
            raise ManifestError(f"{model_dir}: classes are {classes}, expected {list(CLASSES)}")
        try:
            model = build_model(config)
            model.load_state_dict(load_tensors(model_dir))
        except (RuntimeError, ValueError) as exc:
            raise ManifestError(f"{model_dir}: weights do not fit the config: {exc}") from exc
        profile = load_profile(model_dir, manifest.input_profile_sha256) if with_profile else None
        if profile is not None and not isinstance(profile, ImageProfile):
            raise ManifestError(f"{model_dir}: input profile is a {profile.kind!r} profile")
        return cls(
            model=model,
            manifest=manifest,
            temperature=temperature,
            review_threshold=threshold,
            classes=classes,
            views=views,
            profile=profile,
        )

    # -- batched scoring -------------------------------------------------------------------

    def score(self, images: torch.Tensor, *, explain: bool = False) -> Scored:
        """Calibrated probabilities (and Grad-CAM maps) for (n, 200, 200) uint8 images."""
        x = preprocess(images, self.input_size)  # (n, 1, s, s)
        # no_grad rather than inference_mode: Grad-CAM differentiates the head on these features
        with torch.no_grad():
            feats = self.model.features(x)  # (n, c, h, w)
            logits = self.model.classify(feats)
            pooled = feats.mean(dim=(2, 3))  # (n, c)
            # Other views, if any: the identity's logits are already there.
            others = [self.model(t(x)) for t in _SYMMETRIES[1 : self.views]]
            if others:
                logits = torch.stack([logits, *others]).mean(dim=0)
        cams = None
        if explain:
            verdicts = logits.argmax(dim=1)
            cams, _ = grad_cam(
                self.model.classify, feats, verdicts, (images.shape[1], images.shape[2])
            )
        probs = torch.softmax(logits / self.temperature, dim=1)
        return Scored(logits=logits, probs=probs, cams=cams, features=pooled)

    def pooled_features(self, images: torch.Tensor, *, batch_size: int = 128) -> np.ndarray:
        """(n, c) float64 pooled last-stage features of (n, 200, 200) uint8 images."""
        parts = []
        with torch.no_grad():
            for i in range(0, len(images), batch_size):
                x = preprocess(images[i : i + batch_size], self.input_size)
                parts.append(self.model.features(x).mean(dim=(2, 3)).double().numpy())
        return np.concatenate(parts)

    def check(self, images: torch.Tensor, features: torch.Tensor) -> list[InputCheck | None]:
        """The input check of each image (None for all without a profile)."""
        if self.profile is None:
            return [None] * len(images)
        checks = self.profile.check_images(images.numpy(), features.double().numpy())
        return list(checks)

    def probabilities(self, images: torch.Tensor, *, batch_size: int = 128) -> torch.Tensor:
        """(n, classes) calibrated probabilities, scored in batches, no explanations."""
        parts = [
            self.score(images[i : i + batch_size]).probs for i in range(0, len(images), batch_size)
        ]
        return torch.cat(parts)

    # -- records ---------------------------------------------------------------------------

    def record(
        self,
        name: str,
        data: bytes,
        probs: torch.Tensor,
        png: bytes,
        png_path: Path | None,
        check: InputCheck | None = None,
    ) -> dict[str, Any]:
        """The prediction record for one image (what the ledger signs)."""
        p = probs.tolist()
        k = int(np.argmax(p))
        confidence = float(p[k])
        rec = {
            "task": TASK,
            "image": name,
            "image_sha256": sha256_bytes(data),
            "probabilities": {
                c: round(v, PROB_DIGITS) for c, v in zip(self.classes, p, strict=True)
            },
            "verdict": self.classes[k],
            "confidence": round(confidence, PROB_DIGITS),
            "needs_review": confidence < self.review_threshold,
            "review_threshold": round(self.review_threshold, PROB_DIGITS),
            "explanation": {
                "method": "grad-cam",
                "gradcam_png": str(png_path) if png_path is not None else None,
                "gradcam_sha256": sha256_bytes(png),
            },
            "model": self.manifest.name,
            "model_manifest_digest": self.manifest_digest,
        }
        if check is not None:
            rec["input_check"] = check.to_dict()
        return rec

    def error_record(self, name: str, message: str) -> dict[str, Any]:
        return {
            "task": TASK,
            "image": name,
            "error": message,
            "model": self.manifest.name,
            "model_manifest_digest": self.manifest_digest,
        }

    def predict_image_with_overlay(
        self, source: bytes | Path | str, *, name: str | None = None
    ) -> tuple[dict[str, Any], bytes]:
        """One image (file bytes or a path): its record and the Grad-CAM overlay PNG bytes.

        Raises:
            ImageError: the bytes are not a 200x200 grey image.
            FileNotFoundError: a path that does not exist.
        """
        if isinstance(source, bytes):
            data, name = source, name or "<bytes>"
        else:
            path = Path(source)
            data, name = path.read_bytes(), name or path.name
        image = decode_image(data, name)
        scored = self.score(torch.from_numpy(image)[None], explain=True)
        assert scored.cams is not None
        png = overlay_png(image, scored.cams[0].numpy())
        check = self.check(torch.from_numpy(image)[None], scored.features)[0]
        return self.record(name, data, scored.probs[0], png, None, check), png

    def predict_image(
        self,
        source: bytes | Path | str,
        *,
        name: str | None = None,
        explain_dir: Path | None = None,
    ) -> dict[str, Any]:
        """The prediction record of one image; the Grad-CAM PNG is written to `explain_dir`.

        Without `explain_dir` the record still carries the overlay's digest (its path is null);
        use `predict_image_with_overlay` to get the PNG bytes themselves.

        Raises:
            ImageError: the bytes are not a 200x200 grey image.
            FileNotFoundError: a path that does not exist.
        """
        rec, png = self.predict_image_with_overlay(source, name=name)
        if explain_dir is not None:
            rec["explanation"]["gradcam_png"] = str(_write_png(explain_dir, rec["image"], png))
        return rec

    def predict_files(
        self,
        paths: Iterable[Path],
        *,
        explain_dir: Path | None,
        batch_size: int = 32,
    ) -> Iterator[dict[str, Any]]:
        """Records for many files, in order, scored in batches.

        A file that cannot be read or is not a usable image yields an error record
        (`{"image", "error", ...}`) in its place, and the rest go on.
        """
        pending: list[tuple[str, bytes, np.ndarray]] = []

        def flush() -> Iterator[dict[str, Any]]:
            images = torch.from_numpy(np.stack([img for _, _, img in pending]))
            scored = self.score(images, explain=True)
            assert scored.cams is not None
            checks = self.check(images, scored.features)
            for i, (name, data, img) in enumerate(pending):
                png = overlay_png(img, scored.cams[i].numpy())
                where = _write_png(explain_dir, name, png) if explain_dir is not None else None
                yield self.record(name, data, scored.probs[i], png, where, checks[i])
            pending.clear()

        for path in paths:
            try:
                data = path.read_bytes()
                img = decode_image(data, path.name)
            except (ImageError, OSError) as exc:
                yield from flush() if pending else ()
                yield self.error_record(path.name, str(exc))
                continue
            pending.append((path.name, data, img))
            if len(pending) == batch_size:
                yield from flush()
        if pending:
            yield from flush()


def _write_png(folder: Path, image_name: str, png: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{Path(image_name).stem}.gradcam.png"
    path.write_bytes(png)
    return path
