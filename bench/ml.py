"""Benchmarks for the predictive-maintenance models.

    python bench/ml.py            # training wall time per subset + inference throughput
    python bench/ml.py --quick    # throughput and one training epoch only (< 1 minute)
    python bench/ml.py --json     # ... and the figures as one JSON object on the last line

Inference: windows per second of the shipped FD001 model on CPU, batched (4096 windows per
call) against a naive loop that runs the same model one window at a time, same inputs, same
run. Input checks (ml/profile.py): the time to check the same inputs against the model's
input profile, as a share of batched inference on them (goal: under 10 %; best of 5, 3 for
images, timed alternately with inference, same run), for the three shipped models:
  * RUL: a fleet's engine histories scored at every cycle from `min_cycles` (the sample
    engines, copied), checked from the raw rows by `check_histories` (range, NaN, stuck, window
    summary and OOD score; baseline rows range-checked too) vs the network's forward pass on
    the same windows, preprocessed beforehand; also vs raw rows -> RUL (preprocessing included),
    vs one request's payload, and, for comparison, full windows checked as independent inputs
    (`check_windows`);
  * AI4I rows: `check_batch` vs `predict_proba` on the same rows (feature engineering,
    scaling, the ensemble);
  * NEU images: the check given the forward pass's pooled features (intensity statistics, the
    distance) vs the forward pass (`score`) on the same images.
Demand forecasts (ml/tasks/demand.py): forecasts per second for all 811 products of the shipped
weekly set by the shipped demand model, batched (one call for every product) against one call
per product, same run, 2 threads; both as network forecasts (`forecast`) and as complete record
payloads (`DemandPredictor.forecast`: input checks, digests, ISO weeks, rounding), the model
loaded once.
Training: `forgeproof ml train` for FD001 / FD002 (needs ../shared/data/cmapss) and AI4I.
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
from ml.data.cmapss import Trajectories, read_trajectories  # noqa: E402
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


def demand_forecasts(quick: bool) -> dict[str, Any]:
    from ml.data.demand import load_weekly
    from ml.forecast import DemandPredictor, forecast
    from ml.tasks import demand

    torch.set_num_threads(2)
    model = MODELS / demand.NAME
    predictor = DemandPredictor.from_dir(model)
    net = predictor.net
    sales = load_weekly(demand.default_csv())
    histories = list(sales.units)
    by_product = {p: sales.units[i] for i, p in enumerate(sales.products)}
    n = len(histories)
    one = n if not quick else 200  # products timed one call at a time
    out: dict[str, Any] = {"products": n, "weeks": sales.weeks}
    batched = best_of(lambda: forecast(net, histories), 5, warmup=True)
    single = best_of(lambda: [forecast(net, [h]) for h in histories[:one]], 1, warmup=False)
    out["net_batched_per_s"] = round(n / batched)
    out["net_one_at_a_time_per_s"] = round(one / single)
    out["net_speedup"] = round(out["net_batched_per_s"] / out["net_one_at_a_time_per_s"], 1)

    def payloads_batched() -> None:
        predictor.forecast(by_product, last_week="2026-W39")

    def payloads_single() -> None:
        for p in sales.products[:one]:
            predictor.forecast({p: by_product[p]}, last_week="2026-W39")

    batched = best_of(payloads_batched, 3, warmup=True)
    single = best_of(payloads_single, 1)
    out["payloads_batched_per_s"] = round(n / batched)
    out["payloads_one_at_a_time_per_s"] = round(one / single)
    out["payloads_speedup"] = round(
        out["payloads_batched_per_s"] / out["payloads_one_at_a_time_per_s"], 1
    )
    return out


def _best(fn: Any, repeat: int = 3) -> float:
    return best_of(fn, repeat, warmup=True)


def _pair(infer: Any, check: Any, repeat: int = 5) -> tuple[float, float]:
    """Best-of times of inference and of the check on the same inputs, taken alternately
    (after one untimed call of each), so both see the same load on a shared machine."""
    times: list[list[float]] = [[], []]
    infer(), check()
    for _ in range(repeat):
        for k, fn in enumerate((infer, check)):
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    return min(times[0]), min(times[1])


def input_checks(quick: bool) -> dict[str, Any]:
    """Seconds to check inputs against the profile vs. batched inference on the same inputs."""
    torch.set_num_threads(2)
    out: dict[str, Any] = {}
    # RUL: a fleet's histories scored at every cycle (consecutive windows share all but one
    # row): the sample engines, copied under new unit numbers until there are n windows. The
    # check reads the raw rows (check_histories: each row once, running sums per window); the
    # network gets the same windows, preprocessed beforehand (normalised, baseline, padding).
    rul = RULPredictor.from_dir(RUL_MODEL)
    assert rul.profile is not None
    profile = rul.profile
    n = 4096 if quick else 16384
    fleet, ends = _fleet(read_trajectories(SAMPLE), rul.prep.min_cycles, n)
    m_windows = sum(len(e) for e in ends.values())
    x = rul.prep.windows(fleet, ends)
    baseline = rul.prep.baseline_cycles
    infer, check = _pair(
        lambda: rul.predict_inputs(x, batch=4096),
        lambda: profile.check_histories(fleet.rows, ends, baseline=baseline),
    )
    out["rul"] = _share(m_windows, infer, check)
    # ... against the batched pipeline from raw rows (normalise, window, forward), same windows.
    pipeline = _best(lambda: rul.predict_inputs(rul.prep.windows(fleet, ends), batch=4096))
    out["rul"]["pipeline_share_pct"] = round(100 * check / pipeline, 1)
    # ... and, for comparison, the same number of full windows checked as independent inputs
    # (check_windows: every window reads all its window x 24 values, as when windows come
    # from unrelated requests).
    full = np.concatenate([e[e >= rul.prep.window] for e in ends.values()])
    slices = fleet.engine_slices()
    raw = np.stack(
        [
            fleet.rows[slices[u]][e - rul.prep.window : e]
            for u, es in ends.items()
            for e in es
            if e >= rul.prep.window
        ]
    ).astype(np.float32)
    assert len(raw) == len(full)
    full_x = x[np.concatenate([e >= rul.prep.window for e in ends.values()])]
    infer_full = _best(lambda: rul.predict_inputs(full_x, batch=4096))
    check_full = _best(lambda: profile.check_windows(raw))
    out["rul"]["independent_windows_share_pct"] = round(100 * check_full / infer_full, 1)
    # One request as the service serves it: a payload (forward, integrated gradients) vs its check.
    traj = read_trajectories(SAMPLE)
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
    row_profile = failure.profile
    infer, check = _pair(
        lambda: failure.predict_proba(table), lambda: row_profile.check_batch(table)
    )
    out["failure"] = _share(m, infer, check)
    # Images: the NEU samples, tiled to a batch; forward pass vs. check given its features.
    defect = DefectPredictor.from_dir(MODELS / "defect-neu")
    assert defect.profile is not None
    pics = [decode_image(p.read_bytes(), p.name) for p in sorted((SAMPLES / "neu").glob("*.jpg"))]
    k = 32 if quick else 128
    images = torch.from_numpy(np.resize(np.stack(pics), (k, *pics[0].shape)))
    scored = defect.score(images)
    infer, check = _pair(
        lambda: defect.score(images), lambda: defect.check(images, scored.features), repeat=3
    )
    out["defect"] = _share(k, infer, check)
    out["max_share_pct"] = max(v["check_share_pct"] for v in out.values())
    return out


def _fleet(traj: Trajectories, min_cycles: int, n: int) -> tuple[Trajectories, dict[int, Any]]:
    """Copies of `traj`'s engines (units renumbered) with every cycle from `min_cycles` on as a
    window end, until there are at least `n` windows; the ends then cut to exactly `n`."""
    lengths = [s.stop - s.start for s in traj.engine_slices().values()]
    per_copy = sum(max(0, length - min_cycles + 1) for length in lengths)
    copies = -(-n // per_copy)
    rows = np.concatenate([traj.rows] * copies)
    step = int(traj.rows[:, 0].max())
    rows[:, 0] += np.repeat(np.arange(copies) * step, len(traj.rows))
    fleet = Trajectories(path=traj.path, rows=rows, lines=np.tile(traj.lines, copies))
    ends: dict[int, Any] = {}
    left = n
    for u, s in fleet.engine_slices().items():
        e = np.arange(min_cycles, s.stop - s.start + 1)[:left]
        if len(e):
            ends[u] = e
            left -= len(e)
    return fleet, ends


def _share(n: int, infer: float, check: float) -> dict[str, Any]:
    return {
        "inputs": n,
        "inference_s": round(infer, 4),
        "check_s": round(check, 4),
        "check_share_pct": round(100 * check / infer, 1),
    }


def train_time(task: str, **kwargs: Any) -> float:
    from ml.tasks import task_module

    module = task_module(task)
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        metrics = module.train(TrainArgs(out=Path(tmp) / "m", progress=False, **kwargs))
        elapsed = time.perf_counter() - t
    print(
        f"  {task} {kwargs.get('subset', '')}: {elapsed:.0f} s, metrics "
        f"{ {k: metrics[k] for k in ('rmse', 'f1', 'epochs_run', 'final_loss') if k in metrics} }",
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
    out["demand_weekly_s"] = train_time("demand")  # the shipped weekly set, 44 weeks
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    inference = throughput(args.quick)
    checks = input_checks(args.quick)
    forecasts = demand_forecasts(args.quick)
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
                f"{c['per_request_share_pct']} % of one request's payload; "
                f"{c['independent_windows_share_pct']} % for independent full windows"
                if "pipeline_share_pct" in c
                else ""
            ),
        )
        for task, c in checks.items()
        if isinstance(c, dict)
    ]
    rows += [
        (
            f"demand forecasts, {forecasts['products']} products, batched",
            f"{forecasts['net_batched_per_s']:,} /s "
            f"(payloads {forecasts['payloads_batched_per_s']:,} /s)",
        ),
        (
            "demand forecasts, one product per call",
            f"{forecasts['net_one_at_a_time_per_s']:,} /s (payloads "
            f"{forecasts['payloads_one_at_a_time_per_s']:,} /s)",
        ),
        (
            "demand batched / one at a time",
            f"{forecasts['net_speedup']}x (payloads {forecasts['payloads_speedup']}x)",
        ),
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
        figures = {
            "inference": inference,
            "input_checks": checks,
            "demand_forecasts": forecasts,
            "training": train,
        }
        print(json.dumps({**figures, "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
