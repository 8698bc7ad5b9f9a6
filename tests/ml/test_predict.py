"""The Python API the service calls: load once, predict many."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from ml.data.cmapss import read_trajectories
from ml.errors import ManifestError, MLError, MLInputError
from ml.manifest import load_manifest
from ml.predict import (
    PREDICTORS,
    FailurePredictor,
    Predictor,
    RULPredictor,
    input_digest,
    predictor_for,
)
from ml.shipped import MODELS
from ml.tasks import TASKS
from tests.ml.conftest import CMAPSS_SAMPLE, FAILURE_MODEL, RUL_MODEL


@pytest.fixture(scope="module")
def rul_predictor() -> RULPredictor:
    return RULPredictor.from_dir(RUL_MODEL)


@pytest.fixture(scope="module")
def failure_predictor() -> FailurePredictor:
    return FailurePredictor.from_dir(FAILURE_MODEL)


def test_predict_window_matches_file_prediction(rul_predictor: RULPredictor) -> None:
    traj = read_trajectories(CMAPSS_SAMPLE)
    from_file = list(rul_predictor.predict_trajectories(traj))
    engine = traj.rows[traj.units == 3]
    one = rul_predictor.predict_window(engine)
    twin = from_file[2]
    assert one["rul"] == twin["rul"] and one["intervals"] == twin["intervals"]
    assert one["input_digest"] == twin["input_digest"]
    assert one["explanation"]["attribution_sha256"] == twin["explanation"]["attribution_sha256"]


def test_input_digest_covers_exactly_the_rows_used(rul_predictor: RULPredictor) -> None:
    traj = read_trajectories(CMAPSS_SAMPLE)
    window = rul_predictor.prep.window
    lengths = {u: int(np.sum(traj.units == u)) for u in traj.engine_ids()}
    engine = traj.rows[traj.units == 1][: window - 5]  # shorter than the window: all rows used
    record = rul_predictor.predict_window(engine)
    expected = hashlib.sha256(engine.astype("<f4").tobytes()).hexdigest()
    assert record["input_digest"] == "0x" + expected
    assert record["input_shape"] == [len(engine), 26]
    base = rul_predictor.prep.baseline_cycles
    long_unit = next(u for u, n in lengths.items() if n > base + window + 10)
    long = traj.rows[traj.units == long_unit]
    rows = rul_predictor.prep.used_rows(len(long))
    assert len(rows) == base + window < len(long)
    assert input_digest(long[rows]) == rul_predictor.predict_window(long)["input_digest"]
    # A change in a row the model does not see leaves the prediction and digest alone...
    unused = next(i for i in range(len(long)) if i not in set(rows.tolist()))
    edited = long.copy()
    edited[unused, 10] += 1
    assert rul_predictor.predict_window(edited) == rul_predictor.predict_window(long)
    # ...and a change in one it sees moves the digest.
    edited[-1, 10] += 1
    assert rul_predictor.predict_window(edited)["input_digest"] != input_digest(long[rows])


def test_service_rows_without_unit_and_cycle(rul_predictor: RULPredictor) -> None:
    """The API sends settings + sensors only (24 columns); cycles are numbered from 1."""
    traj = read_trajectories(CMAPSS_SAMPLE)
    engine = traj.rows[traj.units == 3]
    from_file = rul_predictor.predict_window(engine)
    renumbered = engine.copy()
    renumbered[:, 0], renumbered[:, 1] = 1, np.arange(1, len(engine) + 1)
    from_service = rul_predictor.predict_window(engine[:, 2:], asset="engine-3")
    assert from_service["asset_id"] == "engine-3"
    assert from_service["rul"] == from_file["rul"]
    assert from_service["input_digest"] == rul_predictor.predict_window(renumbered)["input_digest"]


def test_batch_path_agrees_with_single_windows(rul_predictor: RULPredictor) -> None:
    last = rul_predictor.prep.last_windows(read_trajectories(CMAPSS_SAMPLE))
    batch = rul_predictor.predict_inputs(last.inputs)
    single = np.concatenate(
        [rul_predictor.predict_inputs(last.inputs[i : i + 1]) for i in range(5)]
    )
    np.testing.assert_allclose(batch[:5], single, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (np.ones((40, 25)), r"input: expected rows of 26 columns"),
        (
            np.column_stack([np.ones(10), np.arange(1, 11), np.ones((10, 24))]),
            r"input:10: engine 1 has 10 cycles, expected at least 15",
        ),
        (
            np.column_stack(
                [
                    np.r_[np.ones(20), np.full(20, 2)],
                    np.r_[np.arange(1, 21), np.arange(1, 21)],
                    np.ones((40, 24)) * 100,
                ]
            ),
            r"rows of 2 engines",
        ),
        (np.ones((40, 23)), r"input: expected rows of 26 columns"),
        (
            np.column_stack([np.ones(20), np.arange(5, 25), np.ones((20, 24))]),
            r"input:1: engine 1 starts at cycle 5, expected its history from cycle 1",
        ),
        (np.ones((10, 24)), r"input:10: engine 1 has 10 cycles, expected at least 15"),
    ],
)
def test_predict_window_rejects_bad_input(
    rul_predictor: RULPredictor, rows: np.ndarray, message: str
) -> None:
    with pytest.raises(MLInputError, match=message):
        rul_predictor.predict_window(rows)


def test_nan_in_window_is_rejected(rul_predictor: RULPredictor) -> None:
    engine = read_trajectories(CMAPSS_SAMPLE).rows[:31].copy()
    engine[30, 9] = np.nan
    with pytest.raises(MLInputError, match=r"input:31: column 10 \(s5\) is nan"):
        rul_predictor.predict_window(engine)


def test_failure_predict_one(failure_predictor: FailurePredictor) -> None:
    calm = failure_predictor.predict_one(
        asset_id="M1",
        product_type="M",
        air_temperature=298.1,
        process_temperature=308.6,
        rotational_speed=1551,
        torque=42.8,
        tool_wear=0,
    )
    # Power = 60 Nm x 1200 rpm is fine, but 1200 rpm with a 7 K margin cannot shed heat.
    hot = failure_predictor.predict_one(
        asset_id="M2",
        product_type="L",
        air_temperature=302.5,
        process_temperature=309.5,
        rotational_speed=1250,
        torque=60.0,
        tool_wear=120,
    )
    assert calm["failure_probability"] < 0.05 < hot["failure_probability"]
    assert calm["input_digest"] == input_digest(np.array([1, 298.1, 308.6, 1551, 42.8, 0]))
    assert {f["feature"] for f in hot["explanation"]["top_features"]}
    with pytest.raises(MLInputError, match="product type is 'Q'"):
        failure_predictor.predict_one(
            asset_id="M3",
            product_type="Q",
            air_temperature=1,
            process_temperature=1,
            rotational_speed=1,
            torque=1,
            tool_wear=1,
        )
    with pytest.raises(MLInputError, match=r"Torque \[Nm\] is nan"):
        failure_predictor.predict_one(
            asset_id="M3",
            product_type="L",
            air_temperature=1,
            process_temperature=1,
            rotational_speed=1,
            torque=float("nan"),
            tool_wear=1,
        )


def test_wrong_task_and_tampered_weights_are_refused(tmp_path) -> None:
    with pytest.raises(ManifestError, match="a 'failure' model, expected a 'rul' model"):
        RULPredictor.from_dir(FAILURE_MODEL)
    import shutil

    copy = tmp_path / "m"
    shutil.copytree(RUL_MODEL, copy)
    data = bytearray((copy / "weights.safetensors").read_bytes())
    data[-1] ^= 1
    (copy / "weights.safetensors").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="SHA-256 is"):
        RULPredictor.from_dir(copy)


def test_the_registry_runs_every_task_and_every_shipped_model() -> None:
    assert set(PREDICTORS) == set(TASKS)
    assert all(cls.task == task for task, cls in PREDICTORS.items())
    shipped = sorted(p.parent for p in MODELS.glob("*/manifest.json"))
    assert shipped, "no models shipped in models/"
    for model_dir in shipped:
        manifest = load_manifest(model_dir)
        predictor = predictor_for(manifest.task).from_dir(model_dir)
        assert isinstance(predictor, Predictor)
        assert type(predictor).task == manifest.task
        assert predictor.manifest_digest == manifest.digest() == predictor.manifest.digest()


def test_a_task_no_predictor_runs_is_refused_by_name() -> None:
    with pytest.raises(MLError, match=r"no predictor for task 'weather'; expected one of rul, "):
        predictor_for("weather")
