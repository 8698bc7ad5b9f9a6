"""Remaining useful life on C-MAPSS: train, evaluate and predict (see ml/tasks/__init__.py).

Protocol (docs/ml-maintenance.md has the reasoning):
  * engines of the training file are split by engine, from the seed: 70% train, 10%
    validation (early stopping only), 20% held out (metrics and conformal calibration);
  * scalers and operating-condition centres are fitted on the training engines only;
  * held-out metrics follow the test-set protocol: each held-out engine is cut at random points
    (uniform over [min_cycles, length - 1], 10 cuts per engine) and the window ending at each cut
    is scored against min(true RUL, cap); RMSE over all cuts, PHM08 score as the mean over cuts
    of the sum over engines (comparable to a test set of that many engines). All-window RMSE is
    reported beside it;
  * conformal intervals are calibrated on held-out engines; their coverage is measured by
    cross-fitting (calibrate on one half of the held-out engines, measure on the other, and
    back), so no interval is scored on the engines that calibrated it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml._progress import progress
from ml.conformal import ConformalIntervals, coverage
from ml.data.cmapss import (
    INFORMATIVE_SENSORS,
    Normalizer,
    OperatingConditions,
    Preprocessing,
    Trajectories,
    read_trajectories,
    rul_target,
    subset_files,
    subset_layout,
)
from ml.errors import MLInputError
from ml.models.rul import RULConfig, RULNet
from ml.predict import rul_predictions
from ml.tasks import EvalArgs, PredictArgs, TrainArgs

WINDOW = 90
MIN_CYCLES = 15
BASELINE_CYCLES = 30  # each sensor is also compared with the engine's own first cycles
INPUT_POOL = 2  # average pairs of cycles: sensor noise is large next to one cycle of wear
CAP = 125.0
LEVELS = (0.8, 0.9)
# Mondrian bins on the predicted RUL: near failure errors are small, mid-life they are large.
BIN_EDGES = (40.0, 80.0)
SPLIT = (0.7, 0.1)  # train, validation; the rest is held out
N_CUTS = 10
CAL_CUTS = 100  # calibration cuts per held-out engine


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    epochs: int = 40
    patience: int = 8  # epochs without a better validation RMSE before stopping
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4


def split_engines(ids: list[int], seed: int) -> dict[str, list[int]]:
    """Shuffle engine ids with the seed and cut them into train / validation / holdout."""
    order = np.array(sorted(ids))
    np.random.default_rng([seed, 1]).shuffle(order)
    n = len(order)
    a = round(SPLIT[0] * n)
    b = a + max(1, round(SPLIT[1] * n))
    if n - b < 2:
        raise MLInputError(f"{n} engines are too few to split into train, validation and holdout")
    return {
        "train": sorted(int(u) for u in order[:a]),
        "validation": sorted(int(u) for u in order[a:b]),
        "holdout": sorted(int(u) for u in order[b:]),
    }


def phm08_score(pred: np.ndarray, true: np.ndarray) -> float:
    """PHM08 asymmetric score, summed: late predictions (d > 0) cost more than early ones."""
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1, np.exp(d / 10.0) - 1)))


def rmse(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(true)) ** 2)))


def _lengths(traj: Trajectories, units: list[int]) -> dict[int, int]:
    slices = traj.engine_slices()
    return {u: slices[u].stop - slices[u].start for u in units}


def all_window_ends(lengths: dict[int, int], start: int) -> dict[int, np.ndarray]:
    return {u: np.arange(start, n + 1) for u, n in lengths.items()}


def cut_points(
    lengths: dict[int, int], seed: int, min_cycles: int, *, n: int = N_CUTS, stream: int = 2
) -> dict[int, np.ndarray]:
    """`n` random cut points per engine, uniform over [min_cycles, length - 1]."""
    rng = np.random.default_rng([seed, stream])
    return {u: rng.integers(min_cycles, m, size=n) for u, m in sorted(lengths.items())}


def targets(lengths: dict[int, int], ends: dict[int, np.ndarray], cap: float) -> np.ndarray:
    return np.concatenate([rul_target(lengths[u], cap)[e - 1] for u, e in ends.items()])


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def fit_network(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: RULConfig,
    settings: TrainSettings,
    *,
    cap: float,
    show: bool,
) -> tuple[RULNet, dict[str, Any]]:
    """Train with AdamW + cosine decay; keep the epoch with the best validation RMSE."""
    model = RULNet(config)
    x = torch.from_numpy(train[0])
    y = torch.from_numpy(train[1])
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps = settings.epochs * -(-len(x) // settings.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    best = (float("inf"), {k: v.clone() for k, v in model.state_dict().items()}, -1)
    curve: list[float] = []
    epoch = 0
    with progress("training", settings.epochs, enabled=show) as advance:
        for epoch in range(settings.epochs):
            model.train()
            perm = torch.randperm(len(x))
            for i in range(0, len(x), settings.batch_size):
                idx = perm[i : i + settings.batch_size]
                loss = torch.mean((model(x[idx]) - y[idx]) ** 2)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            score = rmse(rul_predictions(model, val[0], cap=cap), val[1])
            curve.append(round(score, 3))
            if score < best[0]:
                best = (score, {k: v.clone() for k, v in model.state_dict().items()}, epoch)
            advance(note=f"val RMSE {score:.2f} (best {best[0]:.2f} @ {best[2] + 1})")
            if epoch - best[2] >= settings.patience:
                break
    model.load_state_dict(best[1])
    model.eval()
    return model, {
        "best_epoch": best[2] + 1,
        "epochs_run": epoch + 1,
        "validation_rmse": round(best[0], 4),
        "validation_curve": curve,
    }


def holdout_report(
    model: RULNet, prep: Preprocessing, traj: Trajectories, holdout: list[int], seed: int
) -> tuple[dict[str, Any], ConformalIntervals]:
    """Metrics on held-out engines and the conformal intervals calibrated on all of them."""
    lengths = _lengths(traj, holdout)
    every = all_window_ends(lengths, prep.min_cycles)
    cuts = cut_points(lengths, seed, prep.min_cycles)
    pred_all = rul_predictions(model, prep.windows(traj, every), cap=prep.cap)
    true_all = targets(lengths, every, prep.cap)
    pred_cut = rul_predictions(model, prep.windows(traj, cuts), cap=prep.cap)
    true_cut = targets(lengths, cuts, prep.cap)
    engine_all = np.concatenate([np.full(len(e), u) for u, e in every.items()])
    engine_cut = np.concatenate([np.full(len(e), u) for u, e in cuts.items()])
    # Calibration residuals: CAL_CUTS cuts per engine from their own random stream, so every
    # engine weighs the same (all windows would weigh long-lived engines more) and the
    # residuals follow the distribution the intervals are judged on.
    cal_cuts = cut_points(lengths, seed, prep.min_cycles, n=CAL_CUTS, stream=5)
    pred_cal = rul_predictions(model, prep.windows(traj, cal_cuts), cap=prep.cap)
    true_cal = targets(lengths, cal_cuts, prep.cap)
    engine_cal = np.concatenate([np.full(len(e), u) for u, e in cal_cuts.items()])

    # Cross-fitted coverage: each half of the held-out engines is scored with intervals
    # calibrated on the other half.
    order = np.array(holdout)
    np.random.default_rng([seed, 3]).shuffle(order)
    halves = [order[: len(order) // 2], order[len(order) // 2 :]]
    hits: dict[float, list[np.ndarray]] = {lv: [] for lv in LEVELS}
    hits_all: dict[float, list[np.ndarray]] = {lv: [] for lv in LEVELS}
    widths: dict[float, list[np.ndarray]] = {lv: [] for lv in LEVELS}
    for cal, test in (halves, halves[::-1]):
        cal_mask = np.isin(engine_cal, cal)
        ci = _calibrate(pred_cal[cal_mask], true_cal[cal_mask], prep.cap)
        for lv in LEVELS:
            m = np.isin(engine_cut, test)
            lo, hi = ci.interval(pred_cut[m], lv)
            hits[lv].append((true_cut[m] >= lo) & (true_cut[m] <= hi))
            widths[lv].append(hi - lo)
            ma = np.isin(engine_all, test)
            lo, hi = ci.interval(pred_all[ma], lv)
            hits_all[lv].append((true_all[ma] >= lo) & (true_all[ma] <= hi))

    metrics: dict[str, Any] = {
        "protocol": "held-out engines cut at random points, last window scored",
        "n_engines": len(holdout),
        "n_cuts": len(true_cut),
        "rmse": round(rmse(pred_cut, true_cut), 4),
        "score": round(phm08_score(pred_cut, true_cut) / N_CUTS, 4),
        "rmse_all_windows": round(rmse(pred_all, true_all), 4),
        "n_windows": len(true_all),
    }
    for lv in LEVELS:
        pct = round(lv * 100)
        metrics[f"coverage_{pct}"] = round(float(np.mean(np.concatenate(hits[lv]))), 4)
        metrics[f"coverage_{pct}_all_windows"] = round(
            float(np.mean(np.concatenate(hits_all[lv]))), 4
        )
        metrics[f"width_{pct}"] = round(float(np.mean(np.concatenate(widths[lv]))), 3)
    return metrics, _calibrate(pred_cal, true_cal, prep.cap)


def _calibrate(pred: np.ndarray, true: np.ndarray, cap: float) -> ConformalIntervals:
    return ConformalIntervals.calibrate(
        pred, true, levels=LEVELS, edges=BIN_EDGES, lower=0.0, upper=cap
    )


def _require(value: Any, option: str, task: str) -> Any:
    if value is None:
        raise MLInputError(f"{task} needs {option}")
    return value


def train(args: TrainArgs) -> dict[str, Any]:
    """Train on `train_<subset>.txt` in `args.data_dir` and save the model in `args.out`."""
    from ml.manifest import data_digests, save_model

    data_dir = _require(args.data_dir, "--data-dir", "train --task rul")
    subset = _require(args.subset, "--subset", "train --task rul").upper()
    layout = subset_layout(subset)
    train_file, _ = subset_files(Path(data_dir), subset)
    settings = TrainSettings(epochs=args.epochs) if args.epochs else TrainSettings()
    started = time.perf_counter()
    set_seed(args.seed)
    traj = read_trajectories(train_file)
    split = split_engines(traj.engine_ids(), args.seed)
    train_traj = traj.select(split["train"])
    conditions = OperatingConditions.fit(
        train_traj, layout.conditions, subset=subset, seed=args.seed
    )
    normalizer = Normalizer.fit(train_traj, conditions, INFORMATIVE_SENSORS)
    prep = Preprocessing(
        normalizer=normalizer,
        window=WINDOW,
        min_cycles=MIN_CYCLES,
        cap=CAP,
        baseline_cycles=BASELINE_CYCLES,
    )
    data = {}
    for part in ("train", "validation"):
        lengths = _lengths(traj, split[part])
        ends = all_window_ends(lengths, MIN_CYCLES)
        data[part] = (prep.windows(traj, ends), targets(lengths, ends, CAP))
    config = RULConfig(
        n_features=len(prep.channels), window=WINDOW, input_pool=INPUT_POOL, target_scale=CAP
    )
    model, history = fit_network(
        data["train"], data["validation"], config, settings, cap=CAP, show=args.progress
    )
    metrics, conformal = holdout_report(model, prep, traj, split["holdout"], args.seed)
    metrics.update(history)
    metrics["train_seconds"] = round(time.perf_counter() - started, 1)
    metrics["n_train_windows"] = len(data["train"][1])
    name = f"rul-{subset.lower()}"
    manifest = save_model(
        Path(args.out),
        model.state_dict(),
        name=name,
        task="rul",
        architecture="RULNet: 1D CNN over a window of cycles (ml/models/rul.py)",
        config={
            "model": config.to_dict(),
            "training": {
                **asdict(settings),
                "seed": args.seed,
                "subset": subset,
                "loss": "mse",
                "optimizer": "AdamW, cosine decay, early stopping on validation RMSE",
                "split": split,
            },
            "conformal": conformal.to_dict(),
        },
        training_data=data_digests([train_file]),
        preprocessing={"subset": subset, **prep.to_dict()},
        metrics=metrics,
    )
    return {"model": name, "out": str(args.out), "manifest_digest": manifest.digest(), **metrics}


def evaluate(args: EvalArgs) -> dict[str, Any]:
    """Metrics of a saved model.

    With `args.truth` (RUL_FD00x.txt): last window of every engine in `test_<subset>.txt`
    against the true RUL. Without: the held-out engines named in the manifest, recomputed from
    `train_<subset>.txt` (whose digest must match the manifest).
    """
    from ml.manifest import sha256_file
    from ml.predict import RULPredictor

    data_dir = Path(_require(args.data_dir, "--data-dir", "evaluate --task rul"))
    predictor = RULPredictor.from_dir(args.model)
    subset = (args.subset or predictor.manifest.preprocessing["subset"]).upper()
    train_file, test_file = subset_files(data_dir, subset)
    plots = Path(args.plots) if args.plots else Path(args.model) / "plots"
    if args.truth is None:
        expected = predictor.manifest.training_data.get(train_file.name)
        if expected != sha256_file(train_file):
            raise MLInputError(
                f"{train_file}: SHA-256 is {sha256_file(train_file)}, the model was trained on "
                f"{expected}; held-out engines are only defined for that file (or pass --truth)"
            )
        traj = read_trajectories(train_file)
        seed = int(predictor.manifest.config["training"]["seed"])
        holdout = list(predictor.manifest.config["training"]["split"]["holdout"])
        with progress("evaluating", 1, enabled=args.progress) as advance:
            metrics, _ = holdout_report(predictor.model, predictor.prep, traj, holdout, seed)
            advance()
        # Plot one cut per engine (the first), as a test set would show it.
        lengths = _lengths(traj, holdout)
        cuts = {u: e[:1] for u, e in cut_points(lengths, seed, predictor.prep.min_cycles).items()}
        pred = predictor.predict_inputs(predictor.prep.windows(traj, cuts))
        true = targets(lengths, cuts, predictor.prep.cap)
    else:
        traj = read_trajectories(test_file)
        truth = read_truth(Path(args.truth), n_engines=len(traj.engine_ids()))
        with progress("evaluating", 1, enabled=args.progress) as advance:
            last = predictor.prep.last_windows(traj)
            pred = predictor.predict_inputs(last.inputs)
            advance()
        true = np.minimum(truth, predictor.prep.cap)
        metrics = {
            "protocol": "last window of each test engine",
            "n_engines": len(pred),
            "rmse": round(rmse(pred, true), 4),
            "score": round(phm08_score(pred, true), 4),
            "rmse_uncapped_truth": round(rmse(pred, truth), 4),
        }
        for lv in LEVELS:
            lo, hi = predictor.conformal.interval(pred, lv)
            metrics[f"coverage_{round(lv * 100)}"] = round(coverage(lo, hi, true), 4)
            metrics[f"width_{round(lv * 100)}"] = round(float(np.mean(hi - lo)), 3)
    metrics["model"] = predictor.manifest.name
    metrics["plots"] = [str(p) for p in write_plots(pred, true, predictor.conformal, plots)]
    return metrics


def read_truth(path: Path, *, n_engines: int) -> np.ndarray:
    """True RUL per test engine, one number per line (RUL_FD00x.txt)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    values: list[float] = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        parts = text.split()
        if len(parts) != 1:
            raise MLInputError(f"{path}:{number}: expected 1 column (true RUL), found {len(parts)}")
        try:
            value = float(parts[0])
        except ValueError:
            raise MLInputError(
                f"{path}:{number}: true RUL is {parts[0]!r}, expected a number"
            ) from None
        if not np.isfinite(value) or value < 0:
            raise MLInputError(f"{path}:{number}: true RUL is {parts[0]}, expected a number >= 0")
        values.append(value)
    if len(values) != n_engines:
        raise MLInputError(
            f"{path}: {len(values)} true RUL values, expected one per test engine ({n_engines})"
        )
    return np.asarray(values)


def write_plots(
    pred: np.ndarray, true: np.ndarray, conformal: ConformalIntervals, folder: Path
) -> list[Path]:
    """Predicted vs true RUL with 80/90% intervals, and the error histogram, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    folder.mkdir(parents=True, exist_ok=True)
    order = np.argsort(true, kind="stable")
    x = np.arange(len(order))
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=110)
    for lv, alpha in ((0.9, 0.18), (0.8, 0.3)):
        lo, hi = conformal.interval(pred[order], lv)
        ax.fill_between(
            x, lo, hi, step="mid", color="tab:blue", alpha=alpha, lw=0, label=f"{lv:.0%} interval"
        )
    ax.plot(x, true[order], "k.-", lw=1, ms=4, label="true RUL (capped)")
    ax.plot(x, pred[order], "o", color="tab:red", ms=3.5, label="predicted RUL")
    ax.set_xlabel("engine, sorted by true RUL")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("RUL [cycles]")
    ax.set_title(
        f"Predicted vs true RUL, last window of {len(order)} engines "
        f"(RMSE of these {len(order)}: {rmse(pred, true):.2f})"
    )
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    first = folder / "rul_pred_vs_true.png"
    fig.savefig(first)
    plt.close(fig)

    err = pred - true
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    ax.hist(
        err, bins=min(30, max(5, len(err) // 3)), color="tab:blue", alpha=0.8, edgecolor="white"
    )
    ax.axvline(0, color="k", lw=1)
    ax.set_xlabel("predicted - true RUL [cycles] (right of 0: late, penalised more by PHM08)")
    ax.set_ylabel("engines")
    ax.set_title(f"Error histogram (mean {err.mean():+.2f}, sd {err.std():.2f})")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    second = folder / "rul_error_hist.png"
    fig.savefig(second)
    plt.close(fig)
    return [first, second]


def predict(args: PredictArgs) -> Iterator[dict[str, Any]]:
    """One prediction payload per engine in a C-MAPSS-format file (its last window)."""
    from ml.predict import RULPredictor

    predictor = RULPredictor.from_dir(args.model)
    traj = read_trajectories(Path(args.input))
    yield from predictor.predict_trajectories(traj, progress_bar=args.progress)
