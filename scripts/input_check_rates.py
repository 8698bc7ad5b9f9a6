"""Flag rates of the shipped models' input checks: clean held-out inputs and corruptions.

    python scripts/input_check_rates.py [--data ../shared/data] [--json]

Prints the table docs/input-checks.md quotes. Clean inputs are held out from the profile:
rul-fd001's validation and holdout engines (each cut at 5 random points, seed 19), failure-ai4i
rows of outer fold 0 checked by a profile fitted on the other four folds (the shipped profile
uses every row), defect-neu's validation images. Corruptions are made from the clean inputs.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml.data import ai4i  # noqa: E402
from ml.data.cmapss import read_trajectories  # noqa: E402
from ml.inspection import DefectPredictor  # noqa: E402
from ml.predict import FailurePredictor, RULPredictor  # noqa: E402
from ml.profile import RowProfile  # noqa: E402
from ml.shipped import MODELS  # noqa: E402
from ml.tasks.defect import recreate_split  # noqa: E402
from ml.tasks.profiling import held_out_cuts, sensor_column  # noqa: E402


def rul_rates(data: Path) -> dict[str, float]:
    predictor = RULPredictor.from_dir(MODELS / "rul-fd001")
    profile = predictor.profile
    assert profile is not None
    engines = held_out_cuts(predictor.manifest, data)

    def rate(change: Callable[[np.ndarray], np.ndarray]) -> float:
        flags = [profile.check_window(change(e.copy())).status == "flag" for e in engines]
        return round(float(np.mean(flags)), 3)

    def stuck(rows: np.ndarray, sensor: str) -> np.ndarray:
        k = min(profile.window, len(rows))
        rows[-k:, sensor_column(sensor)] = rows[-k, sensor_column(sensor)]
        return rows

    def shift(rows: np.ndarray, sensor: str, by: float) -> np.ndarray:
        rows[:, sensor_column(sensor)] += by
        return rows

    def swap(rows: np.ndarray, a: str, b: str) -> np.ndarray:
        ia, ib = sensor_column(a), sensor_column(b)
        rows[:, [ia, ib]] = rows[:, [ib, ia]]
        return rows

    def nan(rows: np.ndarray) -> np.ndarray:
        rows[-1, sensor_column("s4")] = np.nan
        return rows

    out = {"clean (validation + holdout engines)": 1 - rate(lambda r: r)}
    out["stuck sensor (each of the 14 read, mean)"] = round(
        float(np.mean([rate(lambda r, s=s: stuck(r, s)) for s in profile.stuck_checked])), 3
    )
    out["NaN in one value"] = rate(nan)
    for s, name in (("s1", "T2"), ("s2", "T24"), ("s3", "T30"), ("s4", "T50")):
        out[f"{name} ({s}) minus 273.15"] = rate(lambda r, s=s: shift(r, s, -273.15))
    for a, b in (("s2", "s3"), ("s7", "s12"), ("s11", "s15"), ("s20", "s21"), ("s8", "s13")):
        out[f"{a} and {b} swapped"] = rate(lambda r, a=a, b=b: swap(r, a, b))
    fd002 = read_trajectories(data / "cmapss" / "train_FD002.txt")
    flags = [
        profile.check_window(fd002.rows[s]).status == "flag" for s in fd002.engine_slices().values()
    ]
    out["FD002 engines (other operating conditions)"] = round(float(np.mean(flags)), 3)
    return out


def failure_rates(data: Path) -> dict[str, float]:
    rows = ai4i.read_rows(data / "ai4i2020" / "ai4i2020_dev.csv", require_labels=True)
    assert rows.labels is not None
    held = ai4i.stratified_folds(rows.labels, 5, 0)[0]
    train = np.setdiff1d(np.arange(len(rows)), held)
    crossfit = RowProfile.fit(rows.raw[train], fitted_on={})
    clean = [c.status == "pass" for c in crossfit.check_rows(rows.raw[held])]
    profile = FailurePredictor.from_dir(MODELS / "failure-ai4i").profile
    assert profile is not None
    base = rows.raw[held]

    def rate(change: Callable[[np.ndarray], None]) -> float:
        raw = base.copy()
        change(raw)
        return round(float(np.mean([c.status == "flag" for c in profile.check_rows(raw)])), 3)

    def minus(col: int) -> Callable[[np.ndarray], None]:
        return lambda raw: raw.__setitem__((slice(None), col), raw[:, col] - 273.15)

    def swap(a: int, b: int) -> Callable[[np.ndarray], None]:
        return lambda raw: raw.__setitem__((slice(None), [a, b]), raw[:, [b, a]])

    return {
        "clean (fold 0, profile fitted on folds 1-4)": round(float(np.mean(clean)), 3),
        "air temperature minus 273.15": rate(minus(1)),
        "process temperature minus 273.15": rate(minus(2)),
        "air and process temperature swapped": rate(swap(1, 2)),
        "speed and torque swapped": rate(swap(3, 4)),
        "torque and tool wear swapped": rate(swap(4, 5)),
        "NaN torque": rate(lambda raw: raw.__setitem__((slice(None), 4), np.nan)),
    }


def defect_rates(data: Path) -> dict[str, float]:
    predictor = DefectPredictor.from_dir(MODELS / "defect-neu")
    loaded, split = recreate_split(predictor.manifest, data / "neu-det" / "IMAGES")
    images = loaded.images[torch.from_numpy(split.validation)]
    checks = predictor.check(images, torch.from_numpy(predictor.pooled_features(images)))
    out = {
        "clean (validation images)": round(
            float(np.mean([c is not None and c.status == "pass" for c in checks])), 3
        )
    }
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:200, :200]
    photo = 120 + 60 * np.sin(xx / 30) * np.cos(yy / 45)
    photo += 40 * np.exp(-((xx - 120) ** 2 + (yy - 80) ** 2) / 800) + rng.normal(0, 3, (200, 200))
    scene = 90 + yy * 0.4 + np.where((xx - 60) ** 2 + (yy - 70) ** 2 < 900, 200, 0)
    scene += np.where((xx > 110) & (xx < 180) & (yy > 100) & (yy < 170), 40, 0)
    foreign = {
        "checkerboard": ((yy // 25) + (xx // 25)) % 2 * 255,
        "low-contrast checkerboard": ((yy // 25) + (xx // 25)) % 2 * 60 + 100,
        "constant grey": np.full((200, 200), 128),
        "uniform noise": rng.integers(0, 256, (200, 200)),
        "gaussian noise": rng.normal(128, 20, (200, 200)),
        "photo-like shading": photo,
        "flat shapes on a ramp (not caught)": scene + rng.normal(0, 2, (200, 200)),
    }
    for name, img in foreign.items():
        buf = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="PNG")
        record = predictor.predict_image(buf.getvalue(), name=name)
        out[name] = 1.0 if record["input_check"]["status"] == "flag" else 0.0
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    tables = {
        "rul-fd001": rul_rates(args.data),
        "failure-ai4i": failure_rates(args.data),
        "defect-neu": defect_rates(args.data),
    }
    print("| model | input | flagged (clean: passed) |")
    print("|---|---|---|")
    for model, rows in tables.items():
        for name, value in rows.items():
            print(f"| {model} | {name} | {value:.1%} |")
    if args.json:
        print(json.dumps(tables, sort_keys=True))


if __name__ == "__main__":
    main()
