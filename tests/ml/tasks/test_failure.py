"""The failure task end to end: tiny training on the sample, the shipped model on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.data.ai4i import read_rows
from ml.errors import MLInputError
from ml.manifest import load_manifest
from ml.tasks import EvalArgs, PredictArgs, TrainArgs, failure
from tests.ml.conftest import AI4I_SAMPLE, FAILURE_MODEL


def test_best_f1_threshold_matches_brute_force() -> None:
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    labels = (rng.random(400) < 0.1).astype(int)
    prob = np.clip(labels * 0.3 + rng.random(400) * 0.8, 0, 1).round(2)  # ties on purpose
    th = failure.best_f1_threshold(labels, prob)
    brute = max(f1_score(labels, prob >= t) for t in np.unique(prob))
    assert f1_score(labels, prob >= th) == pytest.approx(brute)
    with pytest.raises(MLInputError, match="no failures"):
        failure.best_f1_threshold(np.zeros(5, int), prob[:5])


@pytest.mark.slow
def test_train_evaluate_predict_on_the_sample(tmp_path: Path) -> None:
    out = tmp_path / "model"
    metrics = failure.train(TrainArgs(out=out, csv=AI4I_SAMPLE, epochs=40, progress=False))
    assert len(metrics["cv"]["folds"]) == 5
    assert sum(f["n_rows"] for f in metrics["cv"]["folds"]) == 300
    manifest = load_manifest(out)
    assert manifest.preprocessing["excluded_columns"] == [
        "UDI",
        "Product ID",
        "TWF",
        "HDF",
        "PWF",
        "OSF",
        "RNF",
    ]
    got = failure.evaluate(EvalArgs(model=out, csv=AI4I_SAMPLE, progress=False))
    assert got["n_rows"] == 300 and 0 <= got["f1"] <= 1
    records = list(failure.predict(PredictArgs(model=out, input=AI4I_SAMPLE, progress=False)))
    assert len(records) == 300 and records[0]["asset_id"] == "H29432"


def test_shipped_model_scores_the_sample() -> None:
    records = list(
        failure.predict(PredictArgs(model=FAILURE_MODEL, input=AI4I_SAMPLE, progress=False))
    )
    rows = read_rows(AI4I_SAMPLE, require_labels=True)
    assert rows.labels is not None
    prob = np.array([r["failure_probability"] for r in records])
    # In-sample (these rows were training data), so only a sanity check: failures rank high.
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(rows.labels, prob) > 0.9
    manifest = load_manifest(FAILURE_MODEL)
    assert all(r["model_manifest_digest"] == manifest.digest() for r in records)
    assert all(
        r["failure_predicted"] == (r["failure_probability"] >= r["threshold"]) for r in records
    )


def test_shipped_model_cross_validation_meets_recorded_metrics() -> None:
    m = load_manifest(FAILURE_MODEL).metrics
    folds = m["cv"]["folds"]
    assert len(folds) == 5 and sum(f["n_rows"] for f in folds) == 8000
    assert m["f1"] == pytest.approx(np.mean([f["f1"] for f in folds]), abs=1e-4)


@pytest.mark.slow
def test_shipped_model_on_the_dev_set(shared_dir: Path, tmp_path: Path) -> None:
    # The shipped model was fitted on these rows: this guards the weights and the pipeline, the
    # honest estimate is the cross-validation recorded in the manifest.
    got = failure.evaluate(
        EvalArgs(
            model=FAILURE_MODEL,
            csv=shared_dir / "data" / "ai4i2020" / "ai4i2020_dev.csv",
            plots=tmp_path,
            progress=False,
        )
    )
    assert got["n_rows"] == 8000
    assert got["roc_auc"] > 0.95 and got["pr_auc"] > 0.8


def test_evaluate_needs_both_classes(tmp_path: Path) -> None:
    lines = AI4I_SAMPLE.read_text().splitlines()
    only_ok = [lines[0]] + [ln for ln in lines[1:] if ln.split(",")[8] == "0"]
    path = tmp_path / "ok.csv"
    path.write_text("\n".join(only_ok) + "\n")
    with pytest.raises(MLInputError, match="expected both classes"):
        failure.evaluate(EvalArgs(model=FAILURE_MODEL, csv=path, progress=False))
