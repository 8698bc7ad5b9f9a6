"""The RUL task end to end: tiny training on synthetic engines, the shipped model on real data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml.data.cmapss import read_trajectories
from ml.errors import MLInputError
from ml.manifest import load_manifest
from ml.tasks import EvalArgs, PredictArgs, TrainArgs, rul
from tests.ml.conftest import CMAPSS_SAMPLE, RUL_MODEL, write_cmapss


def test_split_is_by_engine_and_seeded() -> None:
    ids = list(range(1, 101))
    split = rul.split_engines(ids, seed=0)
    parts = [set(split[k]) for k in ("train", "validation", "holdout")]
    assert [len(p) for p in parts] == [70, 10, 20]
    assert set.union(*parts) == set(ids) and sum(map(len, parts)) == 100
    assert rul.split_engines(ids, seed=0) == split
    assert rul.split_engines(ids, seed=1) != split
    with pytest.raises(MLInputError, match="too few"):
        rul.split_engines([1, 2, 3], seed=0)


def test_phm08_score_penalises_late_more() -> None:
    assert rul.phm08_score(np.array([10.0]), np.array([10.0])) == 0
    late = rul.phm08_score(np.array([20.0]), np.array([10.0]))
    early = rul.phm08_score(np.array([0.0]), np.array([10.0]))
    assert late == pytest.approx(np.e - 1) and early == pytest.approx(np.exp(10 / 13) - 1)
    assert late > early


@pytest.mark.slow
def test_train_evaluate_predict_on_synthetic_engines(cmapss_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    metrics = rul.train(
        TrainArgs(out=out, data_dir=cmapss_dir, subset="FD001", epochs=2, progress=False)
    )
    manifest = load_manifest(out)
    assert manifest.task == "rul" and manifest.name == "rul-fd001"
    assert set(manifest.training_data) == {"train_FD001.txt"}
    split = manifest.config["training"]["split"]
    assert not set(split["holdout"]) & set(split["train"])
    for key in ("rmse", "score", "coverage_80", "coverage_90", "width_90", "rmse_all_windows"):
        assert key in metrics and np.isfinite(metrics[key])

    # Evaluating without a truth file recomputes the held-out metrics exactly.
    again = rul.evaluate(EvalArgs(model=out, data_dir=cmapss_dir, progress=False))
    assert again["rmse"] == metrics["rmse"] and again["n_engines"] == 4
    for png in again["plots"]:
        assert Path(png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    with_truth = rul.evaluate(
        EvalArgs(model=out, data_dir=cmapss_dir, truth=cmapss_dir / "RUL_FD001.txt", progress=False)
    )
    assert with_truth["n_engines"] == 8
    assert {"rmse", "score", "coverage_80", "coverage_90"} <= set(with_truth)

    records = list(
        rul.predict(PredictArgs(model=out, input=cmapss_dir / "test_FD001.txt", progress=False))
    )
    assert len(records) == 8 and records[0]["model_manifest_digest"] == manifest.digest()


def test_truth_file_must_match_the_test_file(cmapss_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "RUL.txt"
    bad.write_text("10\n20\n")
    with pytest.raises(
        MLInputError, match=r"RUL\.txt: 2 true RUL values, expected one per test engine \(8\)"
    ):
        rul.read_truth(bad, n_engines=8)
    bad.write_text("10\nx\n")
    with pytest.raises(MLInputError, match=r"RUL\.txt:2: true RUL is 'x'"):
        rul.read_truth(bad, n_engines=2)
    bad.write_text("10 3\n")
    with pytest.raises(MLInputError, match=r"RUL\.txt:1: expected 1 column"):
        rul.read_truth(bad, n_engines=1)


def test_train_needs_its_options(tmp_path: Path) -> None:
    with pytest.raises(MLInputError, match="needs --data-dir"):
        rul.train(TrainArgs(out=tmp_path, subset="FD001"))
    with pytest.raises(MLInputError, match="unknown C-MAPSS subset layout 'FD007'"):
        rul.train(TrainArgs(out=tmp_path, data_dir=tmp_path, subset="FD007"))


# --- the shipped model ---------------------------------------------------------------------


def test_shipped_model_predicts_the_sample() -> None:
    records = list(rul.predict(PredictArgs(model=RUL_MODEL, input=CMAPSS_SAMPLE, progress=False)))
    assert [r["asset_id"] for r in records] == [str(u) for u in range(1, 21)]
    manifest = load_manifest(RUL_MODEL)
    for r in records:
        assert r["model_manifest_digest"] == manifest.digest()
        lo80, hi80 = r["intervals"]["80"]
        lo90, hi90 = r["intervals"]["90"]
        assert 0 <= lo90 <= lo80 <= hi80 <= hi90 <= 125
        assert 0 <= r["rul"] <= 125
        prep = manifest.preprocessing
        assert r["explanation"]["attribution_shape"] == [prep["window"], len(prep["channels"])]
        json.dumps(r)  # plain JSON


@pytest.mark.slow
def test_shipped_model_holdout_metrics_reproduce(shared_dir: Path, tmp_path: Path) -> None:
    """The shipped FD001 model on its held-out engines (never trained or early-stopped on)."""
    manifest = load_manifest(RUL_MODEL)
    got = rul.evaluate(
        EvalArgs(
            model=RUL_MODEL,
            data_dir=shared_dir / "data" / "cmapss",
            subset="FD001",
            progress=False,
            plots=tmp_path,
        )
    )
    # Every held-out figure the manifest (and so the report and the docs) states is recomputed
    # from the weights: test-like cuts, uniform cuts, all windows, coverage both ways.
    for key in ("rmse", "score", "rmse_all_windows", "coverage_80", "coverage_90", "width_80"):
        assert got[key] == pytest.approx(manifest.metrics[key], abs=1e-4), key
    for key in ("halves", "uniform_cuts", "truncation"):
        assert got[key] == manifest.metrics[key], key
    assert got["n_engines"] == 20 and got["n_cuts"] == 200
    # The truncation model came from test_FD001.txt's engine lengths.
    assert manifest.config["truncation"]["fitted_on"]["test_file"] == "test_FD001.txt"
    assert got["width_80"] < got["width_90"]


@pytest.mark.slow
def test_truth_path_on_holdout_engines_laid_out_as_a_test_set(
    shared_dir: Path, tmp_path: Path
) -> None:
    """A synthetic test set: the shipped model's held-out engines, cut like test_FD001.txt."""
    manifest = load_manifest(RUL_MODEL)
    holdout = manifest.config["training"]["split"]["holdout"]
    train = read_trajectories(shared_dir / "data" / "cmapss" / "train_FD001.txt")
    rng = np.random.default_rng(7)
    rows, truth = [], []
    for new_id, unit in enumerate(holdout, start=1):
        engine = train.rows[train.units == unit].copy()
        keep = int(rng.integers(31, len(engine)))
        engine = engine[:keep]
        engine[:, 0] = new_id
        rows.append(engine)
        truth.append(len(train.rows[train.units == unit]) - keep)
    folder = tmp_path / "cmapss"
    folder.mkdir()
    write_cmapss(folder / "test_FD001.txt", np.concatenate(rows))
    (folder / "train_FD001.txt").write_text(
        ""
    )  # the layout needs it; evaluate with --truth ignores it
    (folder / "RUL_FD001.txt").write_text("".join(f"{t}\n" for t in truth))
    got = rul.evaluate(
        EvalArgs(
            model=RUL_MODEL,
            data_dir=folder,
            subset="FD001",
            truth=folder / "RUL_FD001.txt",
            plots=tmp_path / "plots",
            progress=False,
        )
    )
    assert got["n_engines"] == len(holdout)
    # Same numbers by hand: last window of each cut engine against min(truth, 125).
    from ml.predict import RULPredictor

    predictor = RULPredictor.from_dir(RUL_MODEL)
    pred = predictor.predict_inputs(
        predictor.prep.last_windows(read_trajectories(folder / "test_FD001.txt")).inputs
    )
    true = np.minimum(truth, 125)
    assert got["rmse"] == pytest.approx(rul.rmse(pred, true), abs=1e-3)
    assert got["score"] == pytest.approx(rul.phm08_score(pred, true), rel=1e-3)
    assert got["rmse"] < 20
