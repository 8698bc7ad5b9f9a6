"""Weekly demand: no window sees its targets, the metrics are the textbook ones, and the shipped
model's forecasts are what the records promise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from ml.errors import ManifestError, MLInputError
from ml.forecast import (
    DemandPredictor,
    Forecasts,
    forecast,
    iso_weeks_after,
    naive_scale,
)
from ml.manifest import input_digest, load_manifest, sha256_file
from ml.shipped import MODELS, SAMPLES
from ml.tasks import demand

WEEKLY = SAMPLES / "demand" / "Sales_Transactions_Dataset_Weekly.csv"
MODEL = MODELS / demand.NAME


def _units(seed: int = 0, n: int = 30, weeks: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).poisson(3.0, size=(n, weeks)).astype(np.float32)


# ------------------------------------------------------------------------------- leakage
def test_no_window_sees_a_week_at_or_after_the_origin() -> None:
    units = _units()
    before = demand.windows(units, 30, 16, 8)
    changed = units.copy()
    changed[:, 30:] = 1000  # every week from the origin on
    after = demand.windows(changed, 30, 16, 8)
    for field in ("values", "mask", "target", "target_mask", "summary", "start"):
        assert np.array_equal(getattr(before, field), getattr(after, field)), field
    assert (before.target[before.target_mask == 0] == 0).all()
    assert (before.start + before.target_mask.sum(axis=1) <= 30).all()


@pytest.mark.parametrize("t", [4, 9, 16, 29])
def test_no_window_input_sees_its_own_targets(t: int) -> None:
    """Changing the weeks from t on changes nothing a window starting at t is given as input."""
    units = _units(1)
    w = demand.windows(units, 30, 16, 8)
    changed = units.copy()
    changed[:, t:] += 50
    w2 = demand.windows(changed, 30, 16, 8)
    rows = w.start == t
    assert rows.sum() == len(units)
    for field in ("values", "mask", "summary"):
        assert np.array_equal(getattr(w, field)[rows], getattr(w2, field)[rows]), field
    assert not np.array_equal(w.target[rows], w2.target[rows])  # the targets did move


def test_a_window_ends_the_week_before_its_first_target() -> None:
    units = _units(2)
    w = demand.windows(units, 30, 16, 8)
    for i in range(0, len(w.start), 37):
        p, t = int(w.product[i]), int(w.start[i])
        assert w.values[i, -1] == units[p, t - 1]
        assert w.target[i, 0] == units[p, t]
        known = int(w.mask[i].sum())
        assert np.array_equal(w.values[i, 16 - known :], units[p, t - known : t])


def test_an_origin_outside_the_data_is_refused() -> None:
    with pytest.raises(MLInputError, match="origin 41"):
        demand.windows(_units(), 41, 16, 8)


# ------------------------------------------------------------------------------- metrics
def test_the_metrics_on_a_hand_computed_example() -> None:
    truth = np.array([[2.0, 0.0, 4.0, 4.0], [0.0, 0.0, 0.0, 0.0]])
    point = np.array([[1.0, 0.0, 4.0, 6.0], [0.0, 1.0, 0.0, 0.0]])
    lo, hi = point - 1, point + 1
    f = Forecasts(point, {80: (lo, hi), 90: (lo - 1, hi + 1)})
    scale = np.array([2.0, 0.0])  # the second product's history never changed: left out
    m = demand.score(truth, f, scale)
    assert m["n_scale_zero"] == 1
    assert m["mase_4"] == pytest.approx((1 + 0 + 0 + 2) / 4 / 2)
    # sMAPE: 200|e|/(|y|+|f|): 200/3, 0 (both 0), 0, 400/10; then 0, 200 (y=0, f=1), 0, 0
    assert m["smape_4"] == pytest.approx((200 / 3 + 40 + 200) / 8)
    assert m["coverage_80"] == pytest.approx(7 / 8)  # only 4 vs [5, 7] is outside
    assert m["coverage_90"] == pytest.approx(1.0)
    assert m["width_80"] == pytest.approx(2.0)


def test_naive_scale_is_the_mean_week_to_week_change() -> None:
    assert naive_scale(np.array([[1, 3, 2, 2]])).tolist() == [1.0]
    assert naive_scale(np.array([[5]])).tolist() == [0.0]


def test_syntetos_boylan_classes() -> None:
    h = np.array(
        [
            [5, 5, 6, 5, 5, 6, 5, 5],  # sells every week, steady: smooth
            [1, 20, 2, 30, 1, 25, 3, 1],  # every week, wildly: erratic
            [0, 0, 3, 0, 0, 3, 0, 3],  # rarely, steady sizes: intermittent
            [0, 0, 1, 0, 0, 30, 0, 2],  # rarely, wild sizes: lumpy
            [0, 0, 0, 0, 0, 0, 0, 0],
        ]
    )
    assert demand.segments(h).tolist() == ["smooth", "erratic", "intermittent", "lumpy", "none"]


def test_iso_weeks_cross_the_year() -> None:
    assert iso_weeks_after("2026-W52", 3) == ["2026-W53", "2027-W01", "2027-W02"]
    assert iso_weeks_after("2026-W09", 1) == ["2026-W10"]
    with pytest.raises(MLInputError, match="ISO week"):
        iso_weeks_after("2026-09", 1)
    with pytest.raises(MLInputError, match="ISO week"):
        iso_weeks_after("2025-W53", 1)  # 2025 has 52 ISO weeks


# ------------------------------------------------------------------------ shipped model
@pytest.fixture(scope="module")
def predictor() -> DemandPredictor:
    return DemandPredictor.from_dir(MODEL)


def test_the_shipped_model_says_what_it_was_trained_on() -> None:
    manifest = load_manifest(MODEL)
    assert manifest.task == "demand"
    assert manifest.config["training"]["weeks"] == demand.SHIPPED_ORIGIN
    assert manifest.training_data == {WEEKLY.name: sha256_file(WEEKLY)}


def test_forecast_payloads_keep_their_promises(predictor: DemandPredictor) -> None:
    from ml.data.demand import load_weekly

    sales = load_weekly(WEEKLY).head(demand.SHIPPED_ORIGIN)
    hist = {p: sales.history(p) for p in ("P1", "P2", "P400", "P811")}
    out = predictor.forecast(hist, last_week="2026-W39", horizon=8)
    assert [p["product"] for p in out] == list(hist)
    for p in out:
        assert p["model_manifest_digest"] == load_manifest(MODEL).digest()
        assert p["weeks"] == iso_weeks_after("2026-W39", 8) and p["origin"] == "2026-W40"
        assert p["input_digest"] == input_digest(hist[p["product"]])
        assert p["input_shape"] == [44]
        assert p["scale"] == pytest.approx(float(naive_scale(hist[p["product"]])[0]), abs=1e-6)
        assert len(p["point"]) == 8 and min(p["point"]) >= 0
        for k in range(8):
            lo90, hi90 = p["intervals"]["90"][k]
            lo80, hi80 = p["intervals"]["80"][k]
            assert 0 <= lo90 <= lo80 <= p["point"][k] <= hi80 <= hi90
        json.dumps(p)  # JSON-able as it stands


def test_batched_and_one_at_a_time_forecasts_agree(predictor: DemandPredictor) -> None:
    units = _units(3, n=12, weeks=20)
    together = forecast(predictor.net, list(units))
    alone = np.concatenate([forecast(predictor.net, [u]) for u in units])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-5)
    # histories of different lengths in one batch are each their own
    mixed = forecast(predictor.net, [units[0], units[1, :6]])
    np.testing.assert_allclose(mixed[1], forecast(predictor.net, [units[1, :6]])[0], atol=1e-5)


@pytest.mark.parametrize(
    ("history", "kwargs", "message"),
    [
        ([1.0, 2.0, 3.0], {}, r"history of P1: 3 weeks, at least 4 needed"),
        ([1.0, 2.0, float("nan"), 3.0, 4.0], {}, r"history of P1, week 2"),
        ([1.0, 2.0, -3.0, 3.0, 4.0], {}, r"negative"),
        ([1.0] * 10, {"horizon": 9}, r"horizon 9: expected 1..8"),
        ([1.0] * 10, {"horizon": 0}, r"horizon 0"),
        ([1.0] * 10, {"last_week": "W39"}, r"ISO week"),
    ],
)
def test_a_bad_request_is_refused_before_anything_is_forecast(
    predictor: DemandPredictor, history: list[float], kwargs: dict, message: str
) -> None:
    args = {"last_week": "2026-W39", **kwargs}
    with pytest.raises(MLInputError, match=message):
        predictor.forecast({"P0": [5.0] * 10, "P1": history}, **args)


def test_another_tasks_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="a 'rul' model, expected a 'demand' model"):
        DemandPredictor.from_dir(MODELS / "rul-fd001")


# -------------------------------------------------------------------------- train / CLI
def test_train_predict_evaluate_through_the_cli(tmp_path: Path) -> None:
    from api.cli import app

    rows = ["Product_Code," + ",".join(f"W{i}" for i in range(26))]
    for i, u in enumerate(_units(4, n=25, weeks=26)):
        rows.append(f"Q{i}," + ",".join(str(int(v)) for v in u))
    csv = tmp_path / "weekly.csv"
    csv.write_text("\n".join(rows) + "\n")
    runner = CliRunner()
    model = tmp_path / "m"
    res = runner.invoke(
        app,
        [
            "ml",
            "train",
            "--task",
            "demand",
            "--out",
            str(model),
            "--csv",
            str(csv),
            "--weeks",
            "18",
            "--epochs",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    trained = json.loads(res.stdout)
    assert trained["manifest_digest"] == load_manifest(model).digest()
    assert "next_weeks" in trained  # 18 + 8 <= 26: scored on the weeks it never saw
    res = runner.invoke(
        app,
        ["ml", "predict", "--model", str(model), "--input", str(csv), "--last-week", "2026-W30"],
    )
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert [p["product"] for p in lines] == [f"Q{i}" for i in range(25)]
    assert all(p["origin"] == "2026-W31" and p["input_shape"] == [26] for p in lines)
    res = runner.invoke(
        app,
        ["ml", "evaluate", "--task", "demand", "--model", str(model), "--csv", str(csv), "--json"],
    )
    assert res.exit_code == 0, res.output
    scored = json.loads(res.stdout)
    assert scored["origin"] == 18 and scored["n_products"] == 25
    assert {"mase_8", "coverage_90", "baseline_AutoETS_mase_8"} <= set(scored)


def test_baselines_forecast_every_row_in_order() -> None:
    units = _units(5, n=6, weeks=20)
    units[3] = 0  # a product that never sold
    units[4, :] = np.arange(20)  # a trend: naive repeats the last week
    out = demand.baselines(units, 16, 4, ("Naive", "HistoricAverage", "TSB"))
    assert set(out) == {"Naive", "HistoricAverage", "TSB"}
    assert out["Naive"].point.shape == (6, 4)
    assert out["Naive"].point[4].tolist() == [15.0] * 4
    np.testing.assert_allclose(
        out["HistoricAverage"].point[:, 0], units[:, :16].mean(axis=1), rtol=1e-5
    )
    assert (out["TSB"].point[3] == 0).all()
    for f in out.values():
        lo, hi = f.intervals[90]
        assert (lo <= hi + 1e-9).all() and (lo >= 0).all()
