"""Benchmarks for the predictive-maintenance models.

    python bench/ml.py            # training wall time per subset + inference throughput
    python bench/ml.py --quick    # throughput and one training epoch only (< 1 minute)
    python bench/ml.py --json     # ... and the figures as one JSON object on the last line

Inference: windows per second of the shipped FD001 model on CPU, batched (4096 windows per
call) against a naive loop that runs the same model one window at a time, same inputs, same
run. Training: `forgeproof ml train` for FD001 / FD002 (needs ../shared/data/cmapss) and AI4I.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from ml.data.cmapss import read_trajectories  # noqa: E402
from ml.predict import RULPredictor  # noqa: E402
from ml.shipped import MODELS, SAMPLES  # noqa: E402
from ml.tasks import TrainArgs  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
RUL_MODEL = MODELS / "rul-fd001"
SAMPLE = SAMPLES / "cmapss" / "test_FD001.txt"


def windows(predictor: RULPredictor, n: int) -> np.ndarray:
    """n model inputs: every window of the sample engines, tiled."""
    traj = read_trajectories(SAMPLE)
    lengths = {u: s.stop - s.start for u, s in traj.engine_slices().items()}
    ends = {u: np.arange(predictor.prep.min_cycles, length + 1) for u, length in lengths.items()}
    x = predictor.prep.windows(traj, ends)
    return np.ascontiguousarray(np.resize(x, (n, *x.shape[1:])))


def throughput(quick: bool) -> dict[str, Any]:
    predictor = RULPredictor.from_dir(RUL_MODEL)
    n = 16384 if quick else 65536
    x = windows(predictor, n)
    out: dict[str, Any] = {"window": list(x.shape[1:]), "batch": 4096}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        predictor.predict_inputs(x[:4096])  # warm-up
        best = float("inf")
        for _ in range(3):
            t = time.perf_counter()
            predictor.predict_inputs(x, batch=4096)
            best = min(best, time.perf_counter() - t)
        out[f"batched_windows_per_s_{threads}t"] = round(n / best)
    # Naive: one window per forward pass, the way a request handler would if written plainly.
    m = 300 if quick else 1000
    model = predictor.model
    with torch.inference_mode():
        model(torch.from_numpy(x[:1]))
        t = time.perf_counter()
        for i in range(m):
            model(torch.from_numpy(x[i : i + 1]))
        naive = m / (time.perf_counter() - t)
    out["naive_windows_per_s_2t"] = round(naive)
    out["speedup_2t"] = round(out["batched_windows_per_s_2t"] / naive, 1)
    # End to end with explanations: parse a file, predict, integrated gradients, payloads.
    t = time.perf_counter()
    records = list(predictor.predict_trajectories(read_trajectories(SAMPLE)))
    out["records_per_s_with_explanations"] = round(len(records) / (time.perf_counter() - t), 1)
    return out


def train_time(task: str, **kwargs: Any) -> float:
    from ml.tasks import failure, rul

    module = rul if task == "rul" else failure
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        metrics = module.train(TrainArgs(out=Path(tmp) / "m", progress=False, **kwargs))
        elapsed = time.perf_counter() - t
    print(
        f"  {task} {kwargs.get('subset', '')}: {elapsed:.0f} s, metrics "
        f"{ {k: metrics[k] for k in ('rmse', 'f1', 'epochs_run') if k in metrics} }",
        file=sys.stderr,
    )
    return round(elapsed, 1)


def training(quick: bool) -> dict[str, Any]:
    cmapss = SHARED / "cmapss"
    out: dict[str, Any] = {}
    if not cmapss.is_dir():
        return {"skipped": f"{cmapss} not found"}
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    if quick:
        out["rul_FD001_one_epoch_s"] = train_time("rul", data_dir=cmapss, subset="FD001", epochs=1)
        return out
    for subset in ("FD001", "FD002"):
        out[f"rul_{subset}_s"] = train_time("rul", data_dir=cmapss, subset=subset)
    csv = SHARED / "ai4i2020" / "ai4i2020_dev.csv"
    if csv.is_file():
        out["failure_ai4i_s"] = train_time("failure", csv=csv)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    inference = throughput(args.quick)
    train = training(args.quick)
    rows = [
        ("inference, batched, 1 thread", f"{inference['batched_windows_per_s_1t']:,} windows/s"),
        ("inference, batched, 2 threads", f"{inference['batched_windows_per_s_2t']:,} windows/s"),
        ("inference, naive loop, 2 threads", f"{inference['naive_windows_per_s_2t']:,} windows/s"),
        ("batched / naive", f"{inference['speedup_2t']}x"),
        ("payloads with IG explanations", f"{inference['records_per_s_with_explanations']} /s"),
    ]
    rows += [
        (f"training {k.removesuffix('_s')}", f"{v} s") for k, v in train.items() if k != "skipped"
    ]
    if "skipped" in train:
        rows.append(("training", f"skipped: {train['skipped']}"))
    width = max(len(r[0]) for r in rows)
    print(f"{'benchmark':<{width}}  value")
    print(f"{'-' * width}  -----")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if args.json:
        print(json.dumps({"inference": inference, "training": train, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
