"""Model manifests: safetensors weights plus the JSON document the ledger registers.

A manifest pins everything a third party needs to know which model judged a record: the
SHA-256 of the exact weights file, the architecture and config it was built from, digests of the
training data files, the preprocessing parameters, the metrics measured on validation data, and
library versions. Its own digest (SHA-256 of its RFC 8785 canonical JSON) is what predictions
cite.
"""

from __future__ import annotations

import hashlib
import json
import platform
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rfc8785
from pydantic import BaseModel, ConfigDict, Field

from ml.errors import ManifestError

WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
PROFILE_FILE = "input_profile.json"  # see ml.profile


class ModelManifest(BaseModel):
    """What a model is, what it was trained on, and how well it did."""

    model_config = ConfigDict(extra="forbid")

    name: str
    task: str  # "rul" | "failure" | "defect"
    version: str = "1"
    architecture: str
    config: dict[str, Any]
    weights_sha256: str
    training_data: dict[str, str] = Field(description="file name -> 0x-prefixed SHA-256")
    preprocessing: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    library_versions: dict[str, str] = Field(default_factory=dict)
    created_at: str
    # SHA-256 of `input_profile.json` beside the weights (ml.profile): the training inputs'
    # profile that every prediction's input check uses. Absent from manifests without one, so
    # their digests are what they were before profiles existed.
    input_profile_sha256: str | None = None

    def as_json(self) -> dict[str, Any]:
        """The manifest as JSON, without `input_profile_sha256` when there is none."""
        d = self.model_dump(mode="json")
        if d["input_profile_sha256"] is None:
            del d["input_profile_sha256"]
        return d

    def canonical_bytes(self) -> bytes:
        return rfc8785.dumps(self.as_json())

    def digest(self) -> str:
        """0x-prefixed SHA-256 of the canonical manifest: the id predictions cite."""
        return "0x" + hashlib.sha256(self.canonical_bytes()).hexdigest()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "0x" + h.hexdigest()


def input_digest(values: Any) -> str:
    """0x SHA-256 of an array as float32 little-endian, C order: what a prediction's
    `input_digest` covers."""
    import numpy as np

    return "0x" + hashlib.sha256(np.ascontiguousarray(values, dtype="<f4").tobytes()).hexdigest()


def data_digests(paths: list[Path]) -> dict[str, str]:
    """File name -> SHA-256 for the training data files."""
    return {p.name: sha256_file(p) for p in sorted(paths)}


def library_versions() -> dict[str, str]:
    import numpy
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
    }


def utc_now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def save_model(
    model_dir: Path,
    tensors: Mapping[str, Any],
    *,
    name: str,
    task: str,
    architecture: str,
    config: dict[str, Any],
    training_data: dict[str, str],
    preprocessing: dict[str, Any],
    metrics: dict[str, Any],
) -> ModelManifest:
    """Write `weights.safetensors` and `manifest.json` into `model_dir` atomically.

    `tensors` is a state dict (name -> torch.Tensor); tensors are made contiguous on CPU.
    """
    from safetensors.torch import save_file

    model_dir.mkdir(parents=True, exist_ok=True)
    weights = model_dir / WEIGHTS_FILE
    tmp = weights.with_suffix(".tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp))
    tmp.replace(weights)
    manifest = ModelManifest(
        name=name,
        task=task,
        architecture=architecture,
        config=config,
        weights_sha256=sha256_file(weights),
        training_data=training_data,
        preprocessing=preprocessing,
        metrics=metrics,
        library_versions=library_versions(),
        created_at=utc_now(),
    )
    write_manifest(model_dir, manifest)
    return manifest


def write_manifest(model_dir: Path, manifest: ModelManifest) -> None:
    """Write `manifest.json` into `model_dir` atomically (sorted keys, 2-space indent)."""
    path = model_dir / MANIFEST_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(manifest.as_json(), indent=2, sort_keys=True) + "\n")
    tmp.replace(path)


def load_manifest(model_dir: Path) -> ModelManifest:
    """Read a model directory's manifest and check that the weights file matches it.

    Raises:
        ManifestError: the directory, manifest or weights are missing, or the digest differs.
    """
    path = model_dir / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{model_dir}: no {MANIFEST_FILE} (is this a model directory?)")
    try:
        manifest = ModelManifest.model_validate_json(path.read_text())
    except ValueError as exc:
        raise ManifestError(f"{path}: not a valid manifest: {exc}") from exc
    weights = model_dir / WEIGHTS_FILE
    if not weights.is_file():
        raise ManifestError(f"{model_dir}: no {WEIGHTS_FILE}")
    found = sha256_file(weights)
    if found != manifest.weights_sha256:
        raise ManifestError(
            f"{weights}: SHA-256 is {found}, manifest says {manifest.weights_sha256}"
        )
    if manifest.input_profile_sha256 is not None:
        profile = model_dir / PROFILE_FILE
        if not profile.is_file():
            raise ManifestError(
                f"{model_dir}: manifest commits an input profile, no {PROFILE_FILE}"
            )
        found = sha256_file(profile)
        if found != manifest.input_profile_sha256:
            raise ManifestError(
                f"{profile}: SHA-256 is {found}, manifest says {manifest.input_profile_sha256}"
            )
    return manifest


def load_tensors(model_dir: Path) -> dict[str, Any]:
    """The state dict of a model directory, after `load_manifest` checked its digest."""
    from safetensors.torch import load_file

    return dict(load_file(str(model_dir / WEIGHTS_FILE)))
