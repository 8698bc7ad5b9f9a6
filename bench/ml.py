"""Benchmarks for the predictive-maintenance models.

    python bench/ml.py            # training wall time per subset + inference throughput
    python bench/ml.py --quick    # throughput and one training epoch only (< 1 minute)
    python bench/ml.py --json     # ... and the figures as one JSON object on the last line

Inference: windows per second of the shipped FD001 model on CPU, batched (4096 windows per
call) against a naive loop that runs the same model one window at a time, same inputs, same
run. Input checks (ml/profile.py): the time to check the same inputs against the model's
input profile, as a share of batched inference on them (goal: under 10 %), for the three
shipped models — RUL windows, AI4I rows, NEU images (the image check reuses the features of the
forward pass, so its cost is the statistics and the distance). Training: `forgeproof ml train`
for FD001 / FD002 (needs ../shared/data/cmapss) and AI4I.
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

from bench._common import best_of  # noqa: E402
from ml.data import ai4i  # noqa: E402
from ml.data.cmapss import read_trajectories  # noqa: E402
from ml.data.neu import decode_image  # noqa: E402
from ml.inspection import DefectPredictor  # noqa: E402
from ml.predict import FailurePredictor, RULPredictor  # noqa: E402
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


def _best(fn: Any, repeat: int = 3) -> float:
    return best_of(fn, repeat, warmup=True)


def input_checks(quick: bool) -> dict[str, Any]:
    """Seconds to check inputs against the profile vs. batched inference on the same inputs."""
    torch.set_num_threads(2)
    out: dict[str, Any] = {}
    # RUL: full windows of the sample engines (raw rows for the check, model inputs for the
    # network), tiled to n.
    rul = RULPredictor.from_dir(RUL_MODEL)
    assert rul.profile is not None
    traj = read_trajectories(SAMPLE)
    w = rul.prep.window
    raw, ends = [], {}
    for u, s in traj.engine_slices().items():
        n_rows = s.stop - s.start
        if n_rows >= w:
            ends[u] = np.arange(w, n_rows + 1)
            raw += [traj.rows[s][e - w : e] for e in ends[u]]
    n = 4096 if quick else 16384
    x = np.ascontiguousarray(
        np.resize(rul.prep.windows(traj, ends), (n, w, len(rul.prep.channels)))
    )
    rows = np.resize(np.stack(raw), (n, w, traj.rows.shape[1])).astype(np.float32)
    infer = _best(lambda: rul.predict_inputs(x, batch=4096))
    profile = rul.profile
    check = _best(lambda: profile.check_windows(rows))
    out["rul"] = _share(n, infer, check)
    # ... and against the batched pipeline from raw rows (normalise, window, forward), per window.
    m_windows = sum(len(e) for e in ends.values())
    pipeline = _best(lambda: rul.predict_inputs(rul.prep.windows(traj, ends), batch=4096))
    out["rul"]["pipeline_share_pct"] = round(100 * (check / n) / (pipeline / m_windows), 1)
    # One request as the service serves it: a payload (forward, integrated gradients) vs its check.
    engine = traj.rows[next(iter(traj.engine_slices().values()))]
    one = _best(lambda: rul.predict_window(engine))
    one_check = _best(lambda: profile.check_window(engine))
    out["rul"]["per_request_share_pct"] = round(100 * one_check / one, 2)
    # Failure: the AI4I sample rows, tiled.
    failure = FailurePredictor.from_dir(MODELS / "failure-ai4i")
    assert failure.profile is not None
    sample = ai4i.read_rows(SAMPLES / "ai4i" / "ai4i2020_sample.csv", require_labels=False)
    m = 8192 if quick else 32768
    table = np.resize(sample.raw, (m, sample.raw.shape[1]))
    infer = _best(lambda: failure.predict_proba(table))
    row_profile = failure.profile
    check = _best(lambda: row_profile.check_batch(table))
    out["failure"] = _share(m, infer, check)
    # Images: the NEU samples, tiled to a batch; forward pass vs. check given its features.
    defect = DefectPredictor.from_dir(MODELS / "defect-neu")
    assert defect.profile is not None
    pics = [decode_image(p.read_bytes(), p.name) for p in sorted((SAMPLES / "neu").glob("*.jpg"))]
    k = 32 if quick else 128
    images = torch.from_numpy(np.resize(np.stack(pics), (k, *pics[0].shape)))
    scored = defect.score(images)
    infer = _best(lambda: defect.score(images), repeat=2)
    check = _best(lambda: defect.check(images, scored.features), repeat=2)
    out["defect"] = _share(k, infer, check)
    out["max_share_pct"] = max(v["check_share_pct"] for v in out.values())
    return out


def _share(n: int, infer: float, check: float) -> dict[str, Any]:
    return {
        "inputs": n,
        "inference_s": round(infer, 4),
        "check_s": round(check, 4),
        "check_share_pct": round(100 * check / infer, 1),
    }


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
    checks = input_checks(args.quick)
    train = training(args.quick)
    rows = [
        ("inference, batched, 1 thread", f"{inference['batched_windows_per_s_1t']:,} windows/s"),
        ("inference, batched, 2 threads", f"{inference['batched_windows_per_s_2t']:,} windows/s"),
        ("inference, naive loop, 2 threads", f"{inference['naive_windows_per_s_2t']:,} windows/s"),
        ("batched / naive", f"{inference['speedup_2t']}x"),
        ("payloads with IG explanations", f"{inference['records_per_s_with_explanations']} /s"),
    ]
    rows += [
        (
            f"input check, {task} ({c['inputs']} inputs, 2 threads)",
            f"{c['check_share_pct']} % of batched inference "
            f"({c['check_s'] * 1e3:.1f} ms vs {c['inference_s'] * 1e3:.1f} ms)"
            + (
                f"; {c['pipeline_share_pct']} % of raw rows -> RUL; "
                f"{c['per_request_share_pct']} % of one request's payload"
                if "pipeline_share_pct" in c
                else ""
            ),
        )
        for task, c in checks.items()
        if isinstance(c, dict)
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
        figures = {"inference": inference, "input_checks": checks, "training": train}
        print(json.dumps({**figures, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
