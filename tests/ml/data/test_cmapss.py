from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.data.cmapss import (
    INFORMATIVE_SENSORS,
    Normalizer,
    OperatingConditions,
    Preprocessing,
    parse_trajectories,
    read_trajectories,
    rul_target,
    subset_files,
    subset_layout,
    trajectories_from_rows,
    windows_ending_at,
)
from ml.errors import MLInputError
from tests.ml.conftest import CMAPSS_SAMPLE, synthetic_rows, write_cmapss

GOOD = "1 1 0.0 0.0 100.0 " + " ".join(["1.0"] * 21) + "  \n"


def row(unit: int, cycle: int, value: str = "1.0") -> str:
    return f"{unit} {cycle} 0.0 0.0 100.0 " + " ".join([value] * 21) + "  \n"


def test_sample_file_parses_with_line_numbers() -> None:
    traj = read_trajectories(CMAPSS_SAMPLE)
    assert traj.rows.shape[1] == 26
    assert traj.engine_ids() == list(range(1, 21))
    assert traj.lines[0] == 1 and traj.lines[-1] == len(traj.rows)
    sl = traj.engine_slices()
    assert sum(s.stop - s.start for s in sl.values()) == len(traj.rows)


def test_wrong_column_count_names_file_and_line() -> None:
    text = row(1, 1) + row(1, 2) + "1 3 0.0 0.0 100.0 1.0 2.0\n"
    with pytest.raises(MLInputError, match=r"x\.txt:3: expected 26 columns .* found 7"):
        parse_trajectories(text, Path("x.txt"))


def test_nan_names_line_and_column() -> None:
    text = row(1, 1) + row(1, 2).replace("100.0", "nan", 1)
    with pytest.raises(MLInputError, match=r"x\.txt:2: column 5 \(setting_3\) is nan"):
        parse_trajectories(text, Path("x.txt"))


def test_non_number_names_line_and_column() -> None:
    text = row(1, 1) + row(1, 2).replace("0.0", "abc", 1)
    with pytest.raises(MLInputError, match=r"x\.txt:2: column 3 \(setting_1\) is 'abc'"):
        parse_trajectories(text, Path("x.txt"))


def test_cycle_gap_and_split_engine_are_rejected() -> None:
    with pytest.raises(MLInputError, match=r":3: engine 1 cycle 4 follows cycle 2, expected 3"):
        parse_trajectories(row(1, 1) + row(1, 2) + row(1, 4), Path("x.txt"))
    with pytest.raises(MLInputError, match=r":3: rows of engine 1 resume here"):
        parse_trajectories(row(1, 1) + row(2, 1) + row(1, 2), Path("x.txt"))
    with pytest.raises(MLInputError, match=r":1: unit is 1.5, expected a positive integer"):
        parse_trajectories(row(1, 1).replace("1 1", "1.5 1", 1), Path("x.txt"))


def test_empty_file_is_rejected() -> None:
    with pytest.raises(MLInputError, match="no data rows"):
        parse_trajectories("\n\n", Path("x.txt"))


def test_unknown_subset_layout() -> None:
    assert subset_layout("fd002").conditions == 6
    with pytest.raises(MLInputError, match="unknown C-MAPSS subset layout 'FD009'"):
        subset_layout("FD009")
    with pytest.raises(MLInputError, match="unknown C-MAPSS subset layout"):
        subset_files(Path("."), "FD009")


def test_multi_condition_file_does_not_fit_single_condition_layout(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(4, seed=0, conditions=6)
    traj = read_trajectories(write_cmapss(tmp_path / "train_FD002.txt", rows))
    with pytest.raises(
        MLInputError, match=r"train_FD002\.txt:\d+: operating settings .* match none"
    ):
        OperatingConditions.fit(traj, 1, subset="FD001")
    conditions = OperatingConditions.fit(traj, 6, subset="FD002")
    assert len(conditions.centers) == 6
    np.testing.assert_allclose(
        np.sort(conditions.centers[:, 0]), [0, 10, 20, 25, 35, 42], atol=0.01
    )


def test_per_condition_normalisation_removes_regime_offsets(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(6, seed=3, conditions=6)
    traj = read_trajectories(write_cmapss(tmp_path / "t.txt", rows))
    norm = Normalizer.fit(traj, OperatingConditions.fit(traj, 6), INFORMATIVE_SENSORS)
    feats = norm.transform(traj)
    labels = norm.conditions.assign(traj)
    # Raw sensors jump by 10 between regimes; normalised ones have mean 0 in every regime.
    for j in range(6):
        np.testing.assert_allclose(feats[labels == j].mean(axis=0), 0, atol=1e-4)
    restored = Normalizer.from_dict(norm.to_dict())
    np.testing.assert_allclose(restored.transform(traj), feats, atol=1e-5)


def test_rul_target_is_piecewise_linear() -> None:
    t = rul_target(200, 125)
    assert t[-1] == 0 and t[-2] == 1 and t[0] == 125 and t[74] == 125 and t[75] == 124


def test_windows_pad_front_with_first_cycle() -> None:
    feats = np.arange(10, dtype=np.float32).reshape(5, 2)  # 5 cycles, 2 features
    w = windows_ending_at(feats, np.array([2, 5]), 4)
    assert w.shape == (2, 4, 2)
    np.testing.assert_array_equal(w[0, :, 0], [0, 0, 0, 2])  # cycles 1,1,1,2
    np.testing.assert_array_equal(w[1, :, 0], [2, 4, 6, 8])  # cycles 2..5


def test_too_few_cycles_for_a_window_names_the_engine(tmp_path: Path) -> None:
    rows, _ = synthetic_rows(3, seed=0)
    traj = read_trajectories(write_cmapss(tmp_path / "t.txt", rows))
    prep = Preprocessing(
        normalizer=Normalizer.fit(traj, OperatingConditions.fit(traj, 1), INFORMATIVE_SENSORS),
        window=30,
        min_cycles=15,
        cap=125.0,
    )
    short = traj.rows[traj.units == 2][:10]
    with pytest.raises(MLInputError, match=r"arr:10: engine 2 has 10 cycles, expected at least 15"):
        prep.last_windows(trajectories_from_rows(short, "arr"))
    last = prep.last_windows(trajectories_from_rows(traj.rows[traj.units == 2][:20], "arr"))
    assert last.inputs.shape == (1, 30, 14)
    assert last.raw[0].shape == (20, 26)
    assert last.cycles[0][:10] == [None] * 10 and last.cycles[0][-1] == 20


def test_in_memory_rows_are_checked() -> None:
    with pytest.raises(MLInputError, match=r"api: expected rows of 26 columns .* shape \(3, 25\)"):
        trajectories_from_rows(np.zeros((3, 25)), "api")
    bad = np.ones((2, 26))
    bad[1, 1] = 2
    bad[1, 7] = np.inf
    with pytest.raises(MLInputError, match=r"api:2: column 8 \(s3\) is inf"):
        trajectories_from_rows(bad, "api")


def test_real_fd002_has_six_tight_conditions(shared_dir: Path) -> None:
    traj = read_trajectories(shared_dir / "data" / "cmapss" / "train_FD002.txt")
    conditions = OperatingConditions.fit(traj, 6, subset="FD002")
    counts = np.bincount(conditions.assign(traj), minlength=6)
    assert (counts > 4000).all()
    fd001 = read_trajectories(shared_dir / "data" / "cmapss" / "train_FD001.txt")
    with pytest.raises(MLInputError, match="match none of the 1 operating condition"):
        OperatingConditions.fit(fd001, 1).assign(traj)
