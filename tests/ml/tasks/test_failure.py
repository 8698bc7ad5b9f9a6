"""The failure task end to end: the threshold rule, tiny training on the sample, the report,
the shipped model on real data."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ml import report as rep
from ml.data.ai4i import read_rows
from ml.errors import MLInputError
from ml.manifest import load_manifest
from ml.models.failure import FailureConfig
from ml.tasks import EvalArgs, PredictArgs, TrainArgs, failure
from tests.ml.conftest import AI4I_SAMPLE, FAILURE_MODEL

DOC = rep.ROOT / "docs" / "ml-failure.md"


def _sample_data(tmp_path: Path) -> Path:
    """A data folder whose ai4i2020/ai4i2020_dev.csv is the shipped 300-row sample."""
    (tmp_path / "ai4i2020").mkdir()
    shutil.copy(AI4I_SAMPLE, tmp_path / "ai4i2020" / "ai4i2020_dev.csv")
    return tmp_path


def test_threshold_rule_known_answer() -> None:
    """Two groups of rows, raw OOF probability 0.1 (10 of 100 fail) and 0.9 (80 of 100 fail):
    Platt scaling has two parameters for two groups, so it calibrates each group to its failure
    rate exactly (0.1 and 0.8). Best F1 on the calibrated predictions: flag the second group,
    F1* = 2*80 / (2*80 + 20 + 10) = 16/19; the cut is F1*/2 = 8/19 on the calibrated scale,
    i.e. sigmoid((logit(8/19) - b) / a) on the raw one."""
    prob = np.r_[np.full(100, 0.1), np.full(100, 0.9)]
    labels = np.r_[np.ones(10), np.zeros(90), np.ones(80), np.zeros(20)].astype(int)
    a = (math.log(4) - math.log(1 / 9)) / (2 * math.log(9))  # logit 0.1 -> logit 0.1, 0.9 -> 0.8
    b = math.log(4) - a * math.log(9)
    choice = failure.platt_threshold(labels, prob)
    assert choice.platt_slope == pytest.approx(a, abs=1e-9)
    assert choice.platt_intercept == pytest.approx(b, abs=1e-9)
    assert choice.f1_star == pytest.approx(16 / 19)
    assert choice.calibrated_cut == pytest.approx(8 / 19)
    cut = 8 / 19
    raw = 1 / (1 + math.exp(-(math.log(cut / (1 - cut)) - b) / a))
    assert choice.threshold == pytest.approx(raw, abs=1e-9)
    assert choice.threshold == pytest.approx(0.52665, abs=1e-5)
    assert choice.argmax_threshold == pytest.approx(0.9)  # the old rule, for comparison
    d = choice.to_dict()
    assert d["name"] == "platt_half_f1" and d["threshold"] == choice.threshold
    assert d["platt"] == {"slope": choice.platt_slope, "intercept": choice.platt_intercept}
    assert d["f1_star"] == choice.f1_star


def test_threshold_rule_cut_is_half_the_calibrated_f1() -> None:
    """On noisy scores: the raw cut, mapped through the fitted Platt curve, is F1*/2, and F1* is
    the best F1 over every threshold on the calibrated predictions (brute force)."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    labels = (rng.random(2000) < 0.05).astype(int)
    score = rng.normal(size=2000) + 2.5 * labels
    prob = 1 / (1 + np.exp(-(1.7 * score - 4)))  # overconfident, miscalibrated scores
    choice = failure.platt_threshold(labels, prob)
    logit = math.log(choice.threshold / (1 - choice.threshold))
    mapped = 1 / (1 + math.exp(-(choice.platt_slope * logit + choice.platt_intercept)))
    assert mapped == pytest.approx(choice.f1_star / 2, abs=1e-9)
    calibrated = 1 / (
        1 + np.exp(-(choice.platt_slope * np.log(prob / (1 - prob)) + choice.platt_intercept))
    )
    brute = max(f1_score(labels, calibrated >= t) for t in np.unique(calibrated))
    assert choice.f1_star == pytest.approx(brute)


def test_platt_fit_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(0)
    q = rng.uniform(0.001, 0.999, 50_000)
    z = np.log(q / (1 - q))
    labels = (rng.random(len(q)) < 1 / (1 + np.exp(-(0.5 * z - 1)))).astype(int)
    a, b = failure.platt_fit(labels, q)
    assert a == pytest.approx(0.5, abs=0.03) and b == pytest.approx(-1.0, abs=0.05)


def test_threshold_rule_refuses_degenerate_inputs() -> None:
    with pytest.raises(MLInputError, match="no failures"):
        failure.platt_threshold(np.zeros(5, int), np.linspace(0.1, 0.5, 5))
    with pytest.raises(MLInputError, match="separated"):
        failure.platt_threshold(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9]))
    with pytest.raises(MLInputError, match="do not rank"):
        rng = np.random.default_rng(0)
        labels = (rng.random(500) < 0.2).astype(int)
        failure.platt_threshold(labels, 0.3 - 0.1 * labels + 0.4 * rng.random(500))


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


_TINY = failure.TrainSettings(steps=30, unary_steps=15)
_TINY_CONFIG = FailureConfig(n_features=14, thresholds=8, members=3)


def test_threshold_is_fitted_on_training_rows_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each outer fold's threshold sees only that fold's training rows: the rule is called with
    exactly the training folds' labels, and changing every input of the scored fold changes
    its scores but not its threshold, scaler fit or Platt coefficients."""
    rows = read_rows(AI4I_SAMPLE, require_labels=True)
    assert rows.labels is not None
    seen: list[int] = []
    rule = failure.platt_threshold

    def spy(labels: np.ndarray, oof: np.ndarray) -> failure.ThresholdChoice:
        seen.append(len(labels))
        return rule(labels, oof)

    monkeypatch.setattr(failure, "platt_threshold", spy)
    cv = failure.cross_validate(rows, _TINY_CONFIG, _TINY, seed=0, show=False)
    test_sizes = [f["n_rows"] for f in cv["folds"]]
    assert seen == [len(rows) - n for n in test_sizes]

    from ml.data.ai4i import stratified_folds

    held = stratified_folds(rows.labels, failure.OUTER_FOLDS, 0)[0]
    raw = rows.raw.copy()
    raw[held, 1:] = raw[held, 1:][::-1] * 1.1  # scrambled, rescaled inputs in the scored fold
    moved = failure.cross_validate(
        rows.__class__(rows.path, rows.ids, raw, rows.labels, rows.lines),
        _TINY_CONFIG,
        _TINY,
        seed=0,
        show=False,
    )
    for key in ("threshold", "platt_slope", "platt_intercept", "f1_star", "argmax_threshold"):
        assert moved["folds"][0][key] == cv["folds"][0][key]
    assert moved["folds"][0]["roc_auc"] != cv["folds"][0]["roc_auc"]


def test_cross_validation_spread_is_the_sample_sd() -> None:
    rows = read_rows(AI4I_SAMPLE, require_labels=True)
    cv = failure.cross_validate(rows, _TINY_CONFIG, _TINY, seed=1, show=False)
    f1 = [f["f1"] for f in cv["folds"]]
    assert cv["f1_sd"] == pytest.approx(np.std(f1, ddof=1), abs=1e-4)
    assert {"argmax_f1", "argmax_threshold", "platt_slope", "f1_star"} <= set(cv["folds"][0])


def _fake_fold(f1: float, fold: int) -> dict[str, Any]:
    return {
        "fold": fold,
        "f1": f1,
        "precision": 0.9,
        "recall": 0.8,
        "pr_auc": 0.85,
        "roc_auc": 0.97,
        "n_rows": 60,
        "n_failures": 8,
        "threshold": 0.3,
        "platt_slope": 1.1,
        "platt_intercept": -0.2,
        "f1_star": 0.88,
        "calibrated_cut": 0.44,
        "argmax_threshold": 0.5,
        "argmax_f1": f1 - 0.01,
        "argmax_precision": 0.95,
        "argmax_recall": 0.75,
    }


def test_report_summary_and_tables_from_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With canned fold figures (seed means 0.80, 0.85, 0.90): the summary is the mean and
    sample sd over all 15 folds, the CI the t-interval on the 3 seed means
    (0.85 +- t(0.975, 2) * 0.05 / sqrt 3), and the tables render from the JSON alone."""
    spread = (-0.02, -0.01, 0.0, 0.01, 0.02)

    def fake_cv(rows: Any, config: Any, settings: Any, *, seed: int, show: bool) -> dict[str, Any]:
        base = {0: 0.80, 1: 0.85, 2: 0.90}[seed]
        folds = [_fake_fold(round(base + d, 4), i) for i, d in enumerate(spread)]
        return {"seed": seed, "folds": folds, **failure._summarise(folds)}

    monkeypatch.setattr(failure, "cross_validate", fake_cv)
    results = json.loads(json.dumps(failure.report(_sample_data(tmp_path), progress=False)))
    assert results["seeds"] == [0, 1, 2] and not results["quick"]
    s = results["summary"]
    all_f1 = [0.80 + d for d in spread] + [0.85 + d for d in spread] + [0.90 + d for d in spread]
    assert s["f1_mean"] == pytest.approx(0.85) and s["n_folds"] == 15
    assert s["f1_sd"] == pytest.approx(np.std(all_f1, ddof=1), abs=1e-4)
    half = 4.302653 * 0.05 / math.sqrt(3)
    ci = s["f1_ci95"]
    assert ci["df"] == 2 and ci["t"] == pytest.approx(4.3027, abs=1e-4)
    assert ci["low"] == pytest.approx(0.85 - half, abs=1e-4)
    assert ci["high"] == pytest.approx(0.85 + half, abs=1e-4)
    assert s["argmax_f1_ci95"]["mean"] == pytest.approx(0.84)

    tables = failure.report_tables(results)
    assert set(tables) == {"ceiling", "per_seed", "summary", "folds"}
    assert "Stated rule: the interval contains the F1 goal 0.88" in tables["summary"]
    assert (
        f"| F1, 95 % CI of the mean over seeds | 0.850 [{0.85 - half:.3f}, {0.85 + half:.3f}]"
        in (tables["summary"])
    )
    assert "| 1 | 0.850 ± 0.016 |" in tables["per_seed"]
    assert len([ln for ln in tables["folds"].splitlines() if ln.startswith("| ")]) == 1 + 15
    with_block = "x\n<!-- report:failure/summary -->\nSTALE\n<!-- /report:failure/summary -->\n"
    rendered = rep.render_text(with_block, {f"failure/{k}": v for k, v in tables.items()})
    assert tables["summary"] in rendered and "STALE" not in rendered


def test_report_quick_runs_on_the_sample(tmp_path: Path) -> None:
    results = failure.report(_sample_data(tmp_path), seeds=None, quick=True, progress=False)
    assert results["quick"] and results["seeds"] == [0]
    assert len(results["runs"]) == 1 and len(results["runs"][0]["folds"]) == 5
    assert sum(f["n_rows"] for f in results["runs"][0]["folds"]) == 300
    assert results["summary"]["f1_ci95"]["low"] is None  # one seed: no interval
    assert "quick smoke run" in failure.report_tables(results)["summary"].lower()


def test_generator_rules_match_the_failure_modes_on_the_sample() -> None:
    """The stated HDF/PWF/OSF rules reproduce the sample's mode columns, and the ceiling
    counts what they imply (analysis of the target only: the modes are never inputs)."""
    from ml.data import ai4i

    rows = read_rows(AI4I_SAMPLE, require_labels=True)
    modes = ai4i.read_failure_modes(AI4I_SAMPLE)
    assert modes.shape == (300, 5)
    assert (ai4i.generator_rules(rows.raw) == modes[:, 1:4].astype(bool)).all()
    c = failure.data_ceiling(AI4I_SAMPLE, rows)
    assert c["n_failures"] == 40 and c["threshold_failures"] + c["other_failures"] == 40
    bound = c["threshold_failures_only"]
    assert bound["precision"] == 1.0
    assert bound["recall"] == pytest.approx(c["threshold_failures"] / 40, abs=1e-4)


def test_report_needs_the_dev_csv(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"ai4i2020_dev\.csv"):
        failure.report(tmp_path, seeds=[0], quick=True, progress=False)


def test_docs_quote_the_committed_report() -> None:
    """docs/ml-failure.md's failure tables are exactly what docs/results/failure.json renders."""
    results = rep.load_results("failure")
    assert not results["quick"] and len(results["seeds"]) >= 2
    rendered = {
        f"failure/{k}": v.rstrip("\n") + "\n" for k, v in failure.report_tables(results).items()
    }
    text = DOC.read_text()
    for name in rendered:
        assert f"<!-- report:{name} -->" in text
    assert rep.render_text(text, rendered, source=str(DOC)) == text


def test_shipped_threshold_follows_the_stated_rule() -> None:
    config = load_manifest(FAILURE_MODEL).config
    rule = config["threshold_rule"]
    assert rule["name"] == "platt_half_f1"
    a, b, f1_star = rule["platt"]["slope"], rule["platt"]["intercept"], rule["f1_star"]
    assert a > 0 and 0 < f1_star <= 1 and rule["calibrated_cut"] == pytest.approx(f1_star / 2)
    cut = f1_star / 2
    raw = 1 / (1 + math.exp(-(math.log(cut / (1 - cut)) - b) / a))
    assert config["threshold"] == pytest.approx(raw, abs=1e-9) == rule["threshold"]


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
    assert m["cv"]["f1_sd"] == pytest.approx(np.std([f["f1"] for f in folds], ddof=1), abs=1e-4)


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
