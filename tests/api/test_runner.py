"""api/runner.py: shipped models found by task, each loaded once by the predictor for its task."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from api.runner import SHIPPED, ModelRunner
from ledger.errors import NotFound
from ml.predict import predictor_for


def test_each_shipped_model_loads_once_with_the_predictor_for_its_task() -> None:
    runner = ModelRunner.shipped()
    assert runner.manifests, "no models shipped in models/"
    for digest, manifest in runner.manifests.items():
        assert runner.digest_for(manifest.task) == digest
        predictor = runner.predictor(digest)
        assert type(predictor) is predictor_for(manifest.task)
        assert predictor.manifest_digest == digest
        assert runner.predictor(digest) is predictor


def test_a_model_of_a_task_no_predictor_runs_is_not_found(tmp_path: Path) -> None:
    model = tmp_path / "weather"
    shutil.copytree(SHIPPED / "failure-ai4i", model)
    manifest = json.loads((model / "manifest.json").read_text())
    (model / "manifest.json").write_text(json.dumps({**manifest, "task": "weather"}))
    runner = ModelRunner([model])
    digest = runner.digest_for("weather")
    with pytest.raises(NotFound, match="this server cannot run weather models"):
        runner.predictor(digest)
