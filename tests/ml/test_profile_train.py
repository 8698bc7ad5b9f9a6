"""`forgeproof ml train` fits the model's input profile itself and commits it in the manifest:
what `forgeproof ml profile --check` recomputes from the data folder matches it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from api.cli import app
from ml.data.cmapss import read_trajectories
from ml.manifest import load_manifest
from ml.predict import RULPredictor
from ml.profile import PROFILE_FILE, WindowProfile
from tests.ml.conftest import synthetic_rows, write_cmapss


def _data(root: Path) -> Path:
    """A data folder laid out like ../shared/data, with synthetic C-MAPSS engines."""
    cmapss = root / "data" / "cmapss"
    cmapss.mkdir(parents=True)
    train, _ = synthetic_rows(20, seed=1)
    write_cmapss(cmapss / "train_FD001.txt", train)
    test, _ = synthetic_rows(4, seed=2, truncate=True)
    write_cmapss(cmapss / "test_FD001.txt", test)
    return root / "data"


def _train(data: Path, out: Path, *extra: str) -> dict:
    args = ["ml", "train", "--task", "rul", "--out", str(out), "--subset", "FD001"]
    args += ["--data-dir", str(data / "cmapss"), "--epochs", "1", *extra]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_train_commits_the_profile_that_profile_check_recomputes(tmp_path: Path) -> None:
    data = _data(tmp_path)
    out = tmp_path / "model"
    metrics = _train(data, out)
    manifest = load_manifest(out)  # checks the profile file against the committed digest
    committed = (out / PROFILE_FILE).read_bytes()
    assert manifest.input_profile_sha256 == "0x" + hashlib.sha256(committed).hexdigest()
    assert metrics["input_profile"]["profile_sha256"] == manifest.input_profile_sha256
    assert metrics["input_profile"]["manifest_digest"] == manifest.digest()
    # Fitted on the train split only, and used by the predictor as it loads.
    split = manifest.config["training"]["split"]
    assert json.loads(committed)["fitted_on"]["engines"] == split["train"]
    predictor = RULPredictor.from_dir(out)
    assert isinstance(predictor.profile, WindowProfile)
    payload = predictor.predict_window(
        predictor_rows(data / "cmapss" / "test_FD001.txt"), asset="e1"
    )
    assert payload["input_check"]["status"] in ("pass", "flag")

    check = CliRunner().invoke(app, ["ml", "profile", str(out), "--data", str(data), "--check"])
    assert check.exit_code == 0, check.output
    assert json.loads(check.stdout) == {
        "matches": True,
        "profile_sha256": manifest.input_profile_sha256,
    }


def test_train_without_profile_leaves_none(tmp_path: Path) -> None:
    data = _data(tmp_path)
    out = tmp_path / "bare"
    metrics = _train(data, out, "--no-profile")
    assert "input_profile" not in metrics
    assert load_manifest(out).input_profile_sha256 is None
    assert not (out / PROFILE_FILE).exists()


def predictor_rows(path: Path) -> np.ndarray:
    """The rows of the first engine in a C-MAPSS file."""
    traj = read_trajectories(path)
    return traj.rows[next(iter(traj.engine_slices().values()))]
