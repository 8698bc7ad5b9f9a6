"""Fit a saved model's input profile on its own training split, and commit it in the manifest.

    forgeproof ml profile MODEL_DIR --data ../shared/data           # writes input_profile.json
    forgeproof ml profile MODEL_DIR --data ../shared/data --check   # compares, writes nothing

`forgeproof ml train` fits and commits the profile itself, with the same code (`fit_profile_at`
on the data it trained on), so a freshly trained model directory has its profile.

Only the rows, engines or images the weights were trained on are used, found from the manifest:
  * rul: the `train` engines of `config.training.split` in the train file it names;
  * failure: every row of the CSV it names (the shipped model's final fit uses them all);
  * defect: the `train` part of the split recorded in `metrics.split` (checked by digest).
The data files must be the ones the manifest's `training_data` digests name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from ml.errors import MLInputError
from ml.manifest import ModelManifest, load_manifest, sha256_file, write_manifest
from ml.profile import (
    PROFILE_FILE,
    ImageProfile,
    Profile,
    RowProfile,
    WindowProfile,
    profile_bytes,
)


def _training_file(manifest: ModelManifest, path: Path) -> Path:
    """`path`, after checking it is the file the manifest's training data digest names."""
    want = manifest.training_data.get(path.name)
    if want is None:
        raise MLInputError(f"{path.name} is not among the model's training data files")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (the model's training data)")
    found = sha256_file(path)
    if found != want:
        raise MLInputError(f"{path}: SHA-256 is {found}, the manifest's training data is {want}")
    return path


def rul_training_rows(manifest: ModelManifest, cmapss: Path) -> np.ndarray:
    """(n, 26) rows of the engines the RUL model was trained on, from its train file in the
    folder `cmapss`."""
    from ml.data.cmapss import read_trajectories

    name = next(iter(manifest.training_data))
    traj = read_trajectories(_training_file(manifest, cmapss / name))
    engines = manifest.config["training"]["split"]["train"]
    return traj.select(engines).rows


def fit_rul(manifest: ModelManifest, cmapss: Path) -> WindowProfile:
    """The profile of a RUL model, its train file found in the folder `cmapss`."""
    from ml.data.cmapss import Preprocessing

    prep = Preprocessing.from_dict(manifest.preprocessing)
    rows = rul_training_rows(manifest, cmapss)
    split = manifest.config["training"]["split"]
    return WindowProfile.fit(
        rows,
        window=prep.window,
        sensors=prep.normalizer.sensors,
        min_cycles=prep.min_cycles,
        fitted_on={
            "file": next(iter(manifest.training_data)),
            "engines": list(split["train"]),
            "part": "train split of config.training.split (validation and holdout not used)",
            "windows": "every window ending at min_cycles.. of each engine, as predictions "
            "see them",
        },
    )


def fit_failure(manifest: ModelManifest, csv: Path) -> RowProfile:
    """The profile of a failure model, fitted on the CSV file `csv` (its training data)."""
    from ml.data import ai4i

    rows = ai4i.read_rows(_training_file(manifest, csv), require_labels=True)
    return RowProfile.fit(
        rows.raw,
        fitted_on={"file": csv.name, "rows": len(rows), "part": "every row (the final fit's data)"},
    )


def fit_defect(manifest: ModelManifest, model_dir: Path, images_dir: Path) -> ImageProfile:
    """The profile of a defect model, its training images found in the folder `images_dir`."""
    import torch

    from ml.inspection import DefectPredictor
    from ml.tasks.defect import recreate_split

    loaded, split = recreate_split(manifest, images_dir)
    predictor = DefectPredictor.from_dir(model_dir, with_profile=False)
    images = loaded.images[torch.from_numpy(split.train)]
    features = predictor.pooled_features(images)
    return ImageProfile.fit(
        images.numpy(),
        features,
        loaded.labels[torch.from_numpy(split.train)].numpy(),
        fitted_on={
            "folder": "neu-det/IMAGES",
            "images": len(split.train),
            "part": "train part of metrics.split (validation and test not used)",
            "train_digest": manifest.metrics["split"]["digests"]["train"],
        },
    )


def fit_profile(model_dir: Path, data: Path) -> Profile:
    """The input profile of the model in `model_dir`, fitted on its training split found in
    `data` (a folder like ../shared/data: cmapss/, ai4i2020/, neu-det/IMAGES).

    Raises:
        MLInputError: the data are not the model's training data, or the task is unknown.
        FileNotFoundError: a data file is missing.
    """
    manifest = load_manifest(model_dir)
    location = {
        "rul": data / "cmapss",
        "failure": data / "ai4i2020" / next(iter(manifest.training_data), ""),
        "defect": data / "neu-det" / "IMAGES",
    }.get(manifest.task)
    if location is None:
        raise MLInputError(f"no input profile for task {manifest.task!r}")
    return fit_profile_at(model_dir, location)


def fit_profile_at(model_dir: Path, location: Path) -> Profile:
    """The input profile of the model in `model_dir`, its training data at `location`: the
    folder of the C-MAPSS train file (rul), the CSV file (failure), the folder of images
    (defect) — what `forgeproof ml train` takes as --data-dir, --csv, --images.

    Raises:
        MLInputError: the data are not the model's training data, or the task is unknown.
        FileNotFoundError: a data file is missing.
    """
    manifest = load_manifest(model_dir)
    if manifest.task == "rul":
        return fit_rul(manifest, location)
    if manifest.task == "failure":
        return fit_failure(manifest, location)
    if manifest.task == "defect":
        return fit_defect(manifest, model_dir, location)
    raise MLInputError(f"no input profile for task {manifest.task!r}")


def write_profile(model_dir: Path, profile: Profile) -> dict[str, Any]:
    """Write `input_profile.json` and commit its SHA-256 in the manifest.

    Returns the old and new manifest digests and the profile digest.
    """
    manifest = load_manifest(model_dir)
    data = profile_bytes(profile)
    tmp = model_dir / (PROFILE_FILE + ".tmp")
    tmp.write_bytes(data)
    digest = "0x" + hashlib.sha256(data).hexdigest()
    updated = manifest.model_copy(update={"input_profile_sha256": digest})
    # The manifest last: a crash in between leaves the old manifest, which the old profile
    # file no longer matches, so the model refuses to load rather than check with the wrong one.
    tmp.replace(model_dir / PROFILE_FILE)
    write_manifest(model_dir, updated)
    return {
        "profile_sha256": digest,
        "manifest_digest_before": manifest.digest(),
        "manifest_digest": updated.digest(),
    }


def sensor_column(sensor: str) -> int:
    """The column of C-MAPSS sensor `sN` in a 26-column row (unit, cycle, 3 settings, s1..s21)."""
    return 5 + int(sensor[1:]) - 1


def held_out_cuts(
    manifest: ModelManifest, data_dir: Path, *, per_engine: int = 5, seed: int = 19
) -> list[np.ndarray]:
    """Histories of a RUL model's validation and holdout engines (never in its profile), each
    cut at `per_engine` random points, as a prediction would see them: the clean inputs whose
    pass rate the profile is judged by."""
    from ml.data.cmapss import read_trajectories

    split = manifest.config["training"]["split"]
    traj = read_trajectories(data_dir / "cmapss" / "train_FD001.txt")
    slices = traj.engine_slices()
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for unit in split["validation"] + split["holdout"]:
        rows = traj.rows[slices[unit]]
        out += [rows[:end].copy() for end in rng.integers(15, len(rows) + 1, size=per_engine)]
    return out
