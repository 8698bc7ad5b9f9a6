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
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml import _progress
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
from ml.truncation import Truncation

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


def engine_lengths(traj: Trajectories, units: list[int]) -> dict[int, int]:
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


def score_ends(
    model: RULNet,
    prep: Preprocessing,
    traj: Trajectories,
    lengths: dict[int, int],
    ends: dict[int, np.ndarray],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(predictions, capped true RUL, engine id) of the windows ending at `ends`."""
    pred = rul_predictions(model, prep.windows(traj, ends), cap=prep.cap)
    engine = np.concatenate([np.full(len(e), u) for u, e in ends.items()])
    return pred, targets(lengths, ends, prep.cap), engine


Scored = tuple[np.ndarray, np.ndarray, np.ndarray]


def crossfit_coverage(
    cal: Scored, scored: Scored, groups: list[np.ndarray], cap: float
) -> dict[str, float]:
    """Coverage and width of intervals scored only on engines that did not calibrate them:
    for each group of engines, calibrate on the others' residuals and score the group."""
    hits: dict[float, list[np.ndarray]] = {lv: [] for lv in LEVELS}
    widths: dict[float, list[np.ndarray]] = {lv: [] for lv in LEVELS}
    for group in groups:
        keep = ~np.isin(cal[2], group)
        ci = calibrate_intervals(cal[0][keep], cal[1][keep], cap)
        m = np.isin(scored[2], group)
        for lv in LEVELS:
            lo, hi = ci.interval(scored[0][m], lv)
            hits[lv].append((scored[1][m] >= lo) & (scored[1][m] <= hi))
            widths[lv].append(hi - lo)
    out = {}
    for lv in LEVELS:
        pct = round(lv * 100)
        out[f"coverage_{pct}"] = round(float(np.mean(np.concatenate(hits[lv]))), 4)
        out[f"width_{pct}"] = round(float(np.mean(np.concatenate(widths[lv]))), 3)
    return out


def calibration_scores(
    model: RULNet,
    prep: Preprocessing,
    traj: Trajectories,
    holdout: list[int],
    seed: int,
    truncation: Truncation,
) -> Scored:
    """The conformal calibration set: `CAL_CUTS` test-like cuts of each held-out engine, from a
    random stream of their own (apart from the scored cuts), so every engine weighs the same and
    the residuals follow the distribution the intervals are judged on."""
    lengths = engine_lengths(traj, holdout)
    return score_ends(
        model, prep, traj, lengths, truncation.cuts(lengths, seed, n=CAL_CUTS, stream=5)
    )


def holdout_report(
    model: RULNet,
    prep: Preprocessing,
    traj: Trajectories,
    holdout: list[int],
    seed: int,
    truncation: Truncation,
) -> tuple[dict[str, Any], ConformalIntervals]:
    """Metrics on held-out engines under the test-like protocol (cuts drawn as the test file
    cuts its engines, `truncation`) and under uniform cuts, and the conformal intervals
    calibrated on test-like cuts of all held-out engines."""
    lengths = engine_lengths(traj, holdout)
    cap = prep.cap
    test_like = score_ends(
        model, prep, traj, lengths, truncation.cuts(lengths, seed, n=N_CUTS, stream=2)
    )
    cal = calibration_scores(model, prep, traj, holdout, seed, truncation)
    uniform = score_ends(model, prep, traj, lengths, cut_points(lengths, seed, prep.min_cycles))
    uniform_cal = score_ends(
        model, prep, traj, lengths, cut_points(lengths, seed, prep.min_cycles, n=CAL_CUTS, stream=5)
    )
    every = score_ends(model, prep, traj, lengths, all_window_ends(lengths, prep.min_cycles))

    # Coverage of the shipped kind of interval (calibrated on all held-out engines but one) is
    # measured leaving one engine out at a time; the halves (calibrate on one half, score the
    # other) are the earlier, more pessimistic estimate, kept for comparison.
    order = np.array(holdout)
    np.random.default_rng([seed, 3]).shuffle(order)
    halves = [order[: len(order) // 2], order[len(order) // 2 :]]
    singles = [np.array([u]) for u in holdout]

    metrics: dict[str, Any] = {
        "protocol": "held-out engines cut as the test file cuts its engines, last window scored",
        "truncation": truncation.to_dict(),
        "n_engines": len(holdout),
        "n_cuts": len(test_like[1]),
        "rmse": round(rmse(test_like[0], test_like[1]), 4),
        "score": round(phm08_score(test_like[0], test_like[1]) / N_CUTS, 4),
        **crossfit_coverage(cal, test_like, singles, cap),
        "halves": crossfit_coverage(cal, test_like, halves, cap),
        "uniform_cuts": {
            "protocol": "cuts uniform over [min_cycles, life - 1], calibrated alike (before #19)",
            "rmse": round(rmse(uniform[0], uniform[1]), 4),
            "score": round(phm08_score(uniform[0], uniform[1]) / N_CUTS, 4),
            "halves": crossfit_coverage(uniform_cal, uniform, halves, cap),
            "halves_on_test_like_cuts": crossfit_coverage(uniform_cal, test_like, halves, cap),
        },
        "rmse_all_windows": round(rmse(every[0], every[1]), 4),
        "n_windows": len(every[1]),
    }
    return metrics, calibrate_intervals(cal[0], cal[1], cap)


def calibrate_intervals(pred: np.ndarray, true: np.ndarray, cap: float) -> ConformalIntervals:
    return ConformalIntervals.calibrate(
        pred, true, levels=LEVELS, edges=BIN_EDGES, lower=0.0, upper=cap
    )


def fit_truncation(traj: Trajectories, train_units: list[int], test_file: Path) -> Truncation:
    """How the subset's test file cuts its engines (ml/truncation.py), fitted on the lives of
    the training engines and the lengths of the test file's engines; uniform cuts when there is
    no test file beside the training file."""
    if not test_file.is_file():
        return Truncation.uniform(MIN_CYCLES, f"{test_file.name} not found: cuts uniform over life")
    test = read_trajectories(test_file)
    return Truncation.fit(
        engine_lengths(traj, train_units).values(),
        engine_lengths(test, test.engine_ids()).values(),
        min_cycles=MIN_CYCLES,
        source=test_file.name,
    )


def manifest_truncation(config: dict[str, Any], min_cycles: int) -> Truncation:
    """The manifest's truncation model; uniform cuts for a model trained before it existed."""
    if "truncation" in config:
        return Truncation.from_dict(config["truncation"])
    return Truncation.uniform(min_cycles, "manifest has no truncation model: cuts uniform")


def _require(value: Any, option: str, task: str) -> Any:
    if value is None:
        raise MLInputError(f"{task} needs {option}")
    return value


@dataclass(frozen=True, kw_only=True)
class Recipe:
    """The input design: window length, cycles pooled, baseline cycles (0: no baseline)."""

    window: int = WINDOW
    input_pool: int = INPUT_POOL
    baseline_cycles: int = BASELINE_CYCLES


@dataclass(frozen=True)
class Fitted:
    model: RULNet
    config: RULConfig
    prep: Preprocessing
    split: dict[str, list[int]]
    truncation: Truncation
    conformal: ConformalIntervals
    metrics: dict[str, Any]


def fit(
    train_file: Path,
    test_file: Path,
    subset: str,
    seed: int,
    *,
    settings: TrainSettings,
    recipe: Recipe = Recipe(),
    show: bool = False,
) -> Fitted:
    """Split, preprocess, train, and measure on the held-out engines: the whole recipe."""
    layout = subset_layout(subset)
    started = time.perf_counter()
    set_seed(seed)
    traj = read_trajectories(train_file)
    split = split_engines(traj.engine_ids(), seed)
    train_traj = traj.select(split["train"])
    conditions = OperatingConditions.fit(train_traj, layout.conditions, subset=subset, seed=seed)
    normalizer = Normalizer.fit(train_traj, conditions, INFORMATIVE_SENSORS)
    prep = Preprocessing(
        normalizer=normalizer,
        window=recipe.window,
        min_cycles=MIN_CYCLES,
        cap=CAP,
        baseline_cycles=recipe.baseline_cycles,
    )
    data = {}
    for part in ("train", "validation"):
        lengths = engine_lengths(traj, split[part])
        ends = all_window_ends(lengths, MIN_CYCLES)
        data[part] = (prep.windows(traj, ends), targets(lengths, ends, CAP))
    config = RULConfig(
        n_features=len(prep.channels),
        window=recipe.window,
        input_pool=recipe.input_pool,
        target_scale=CAP,
    )
    model, history = fit_network(
        data["train"], data["validation"], config, settings, cap=CAP, show=show
    )
    truncation = fit_truncation(traj, split["train"], test_file)
    metrics, conformal = holdout_report(model, prep, traj, split["holdout"], seed, truncation)
    metrics.update(history)
    metrics["train_seconds"] = round(time.perf_counter() - started, 1)
    metrics["n_train_windows"] = len(data["train"][1])
    return Fitted(model, config, prep, split, truncation, conformal, metrics)


def train(args: TrainArgs) -> dict[str, Any]:
    """Train on `train_<subset>.txt` in `args.data_dir` and save the model in `args.out`."""
    from ml.manifest import data_digests, save_model

    data_dir = _require(args.data_dir, "--data-dir", "train --task rul")
    subset = _require(args.subset, "--subset", "train --task rul").upper()
    train_file, test_file = subset_files(Path(data_dir), subset)
    settings = TrainSettings(epochs=args.epochs) if args.epochs else TrainSettings()
    done = fit(train_file, test_file, subset, args.seed, settings=settings, show=args.progress)
    name = f"rul-{subset.lower()}"
    manifest = save_model(
        Path(args.out),
        done.model.state_dict(),
        name=name,
        task="rul",
        architecture="RULNet: 1D CNN over a window of cycles (ml/models/rul.py)",
        config={
            "model": done.config.to_dict(),
            "training": {
                **asdict(settings),
                "seed": args.seed,
                "subset": subset,
                "loss": "mse",
                "optimizer": "AdamW, cosine decay, early stopping on validation RMSE",
                "split": done.split,
            },
            "conformal": done.conformal.to_dict(),
            "truncation": done.truncation.to_dict(),
        },
        training_data=data_digests([train_file]),
        preprocessing={"subset": subset, **done.prep.to_dict()},
        metrics=done.metrics,
    )
    return {
        "model": name,
        "out": str(args.out),
        "manifest_digest": manifest.digest(),
        **done.metrics,
    }


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
        truncation = manifest_truncation(predictor.manifest.config, predictor.prep.min_cycles)
        with progress("evaluating", 1, enabled=args.progress) as advance:
            metrics, _ = holdout_report(
                predictor.model, predictor.prep, traj, holdout, seed, truncation
            )
            advance()
        # Plot one cut per engine (the first), as a test set would show it.
        lengths = engine_lengths(traj, holdout)
        cuts = {u: e[:1] for u, e in truncation.cuts(lengths, seed, n=N_CUTS, stream=2).items()}
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


# `forgeproof ml report --section rul` (ml/report.py): every RUL figure the docs quote.
REPORT_SEEDS = (0, 1, 2, 3, 4)
REPORT_SUBSETS = ("FD001", "FD002")
TUNING_SEEDS = (10, 11, 12, 13, 14)  # the input design was chosen on these FD001 splits
DESIGNS = (
    Recipe(window=30, input_pool=1, baseline_cycles=0),
    Recipe(window=60, input_pool=2, baseline_cycles=20),
    Recipe(window=60, input_pool=2, baseline_cycles=30),
    Recipe(window=60, input_pool=2, baseline_cycles=40),
    Recipe(window=90, input_pool=2, baseline_cycles=20),
    Recipe(window=90, input_pool=2, baseline_cycles=30),
    Recipe(window=90, input_pool=3, baseline_cycles=30),
    Recipe(window=120, input_pool=2, baseline_cycles=30),
)


def _run_summary(seed: int, subset: str, m: dict[str, Any]) -> dict[str, Any]:
    u = m["uniform_cuts"]
    return {
        "seed": seed,
        "subset": subset,
        "n_engines": m["n_engines"],
        "rmse": m["rmse"],
        "score": m["score"],
        "rmse_uniform": u["rmse"],
        "score_uniform": u["score"],
        "rmse_all_windows": m["rmse_all_windows"],
        **{k: m[k] for k in ("coverage_80", "coverage_90", "width_80", "width_90")},
        "halves": m["halves"],
        "uniform_halves": u["halves"],
        "uniform_on_test_like": u["halves_on_test_like_cuts"],
        "best_epoch": m["best_epoch"],
        "train_seconds": m["train_seconds"],
    }


def report(
    data: Path, *, seeds: Sequence[int] | None, quick: bool, progress: bool
) -> dict[str, Any]:
    """Train the recipe on every (subset, seed), evaluate the shipped model, and rerun the
    input-design comparison on the tuning seeds (skipped with `quick`)."""
    from ml.predict import RULPredictor
    from ml.shipped import model_dir

    cmapss = Path(data) / "cmapss"
    chosen = tuple(seeds) if seeds else ((0,) if quick else REPORT_SEEDS)
    subsets = ("FD001",) if quick else REPORT_SUBSETS
    settings = TrainSettings(epochs=2) if quick else TrainSettings()
    designs = () if quick else DESIGNS
    total = len(chosen) * len(subsets) + len(designs) * len(TUNING_SEEDS) + 1
    runs: list[dict[str, Any]] = []
    truncations: dict[str, dict[str, Any]] = {}  # subset -> seed -> fit on its train engines
    design: list[dict[str, Any]] = []
    with _progress.progress("rul report", total, enabled=progress) as advance:
        for subset in subsets:
            train_file, test_file = subset_files(cmapss, subset)
            for seed in chosen:
                done = fit(train_file, test_file, subset, seed, settings=settings)
                runs.append(_run_summary(seed, subset, done.metrics))
                truncations.setdefault(subset, {})[str(seed)] = done.truncation.to_dict()
                advance(note=f"{subset} seed {seed}: RMSE {done.metrics['rmse']:.2f}")
        # The shipped model, from its own weights and manifest.
        shipped = RULPredictor.from_dir(model_dir("rul-fd001"))
        training = shipped.manifest.config["training"]
        train_file, _ = subset_files(cmapss, training["subset"])
        metrics, _ = holdout_report(
            shipped.model,
            shipped.prep,
            read_trajectories(train_file),
            list(training["split"]["holdout"]),
            int(training["seed"]),
            manifest_truncation(shipped.manifest.config, shipped.prep.min_cycles),
        )
        metrics.update(best_epoch=None, train_seconds=None)
        advance(note="shipped model")
        train_file, test_file = subset_files(cmapss, "FD001")
        for recipe in designs:
            for seed in TUNING_SEEDS:
                done = fit(train_file, test_file, "FD001", seed, settings=settings, recipe=recipe)
                design.append({**asdict(recipe), **_run_summary(seed, "FD001", done.metrics)})
                advance(note=f"design {recipe.window}/{recipe.input_pool}/{recipe.baseline_cycles}")
    return {
        "quick": quick,
        "settings": asdict(settings),
        "runs": runs,
        "truncation": truncations,
        "shipped": {
            "model": shipped.manifest.name,
            "manifest_digest": shipped.manifest.digest(),
            **_run_summary(int(training["seed"]), training["subset"], metrics),
        },
        "design": design,
        "shipped_design": asdict(Recipe()),
    }


def _ms(values: Sequence[float], digits: int = 2, scale: float = 1.0) -> str:
    """Mean ± sample sd (ddof 1)."""
    a = np.asarray(values, dtype=np.float64) * scale
    if len(a) < 2:
        return f"{a.mean():.{digits}f}"
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def report_tables(results: dict[str, Any]) -> dict[str, str]:
    """Markdown tables of the RUL report, from its results alone."""
    runs = results["runs"]
    head = (
        "| subset | seed | held-out engines | RMSE, test-like cuts | PHM08 score | "
        "RMSE, uniform cuts | RMSE, all windows | coverage 80 % | coverage 90 % | "
        "width 80 / 90 % | train s |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )

    def row(r: dict[str, Any], label: str) -> str:
        secs = "" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        return (
            f"| {r['subset']} | {label} | {r['n_engines']} | {r['rmse']:.2f} | {r['score']:.1f} | "
            f"{r['rmse_uniform']:.2f} | {r['rmse_all_windows']:.2f} | {_pct(r['coverage_80'])} | "
            f"{_pct(r['coverage_90'])} | {r['width_80']:.1f} / {r['width_90']:.1f} | {secs} |\n"
        )

    body = ""
    coverage = (
        "| subset | intervals calibrated on | scored on | coverage measured by | "
        "coverage 80 % | coverage 90 % | width 80 / 90 % |\n"
        "|---|---|---|---|---:|---:|---:|\n"
    )
    for subset in dict.fromkeys(r["subset"] for r in runs):
        rs = [r for r in runs if r["subset"] == subset]
        body += "".join(row(r, str(r["seed"])) for r in rs)

        def col(key: str, rs: list[dict[str, Any]] = rs) -> list[float]:
            return [r[key] for r in rs]

        body += (
            f"| **{subset}** | **mean ± sd** | | **{_ms(col('rmse'))}** | {_ms(col('score'), 1)} | "
            f"{_ms(col('rmse_uniform'))} | {_ms(col('rmse_all_windows'))} | "
            f"**{_ms(col('coverage_80'), 1, 100)} %** | **{_ms(col('coverage_90'), 1, 100)} %** | "
            f"{np.mean(col('width_80')):.1f} / {np.mean(col('width_90')):.1f} | "
            f"{np.mean(col('train_seconds')):.0f} |\n"
        )
        if results["shipped"]["subset"] == subset:
            body += row(results["shipped"], f"shipped (seed {results['shipped']['seed']})")
        for label, key, scored, how in (
            ("uniform cuts", "uniform_halves", "uniform cuts", "halves (before #19)"),
            ("uniform cuts", "uniform_on_test_like", "test-like cuts", "halves"),
            ("test-like cuts", "halves", "test-like cuts", "halves"),
        ):
            c80 = [r[key]["coverage_80"] for r in rs]
            c90 = [r[key]["coverage_90"] for r in rs]
            w = (
                np.mean([r[key]["width_80"] for r in rs]),
                np.mean([r[key]["width_90"] for r in rs]),
            )
            coverage += (
                f"| {subset} | {label} | {scored} | {how} | {_ms(c80, 1, 100)} % | "
                f"{_ms(c90, 1, 100)} % | {w[0]:.1f} / {w[1]:.1f} |\n"
            )
        coverage += (
            f"| {subset} | **test-like cuts** | **test-like cuts** | **leave one engine out** | "
            f"**{_ms(col('coverage_80'), 1, 100)} %** | **{_ms(col('coverage_90'), 1, 100)} %** | "
            f"{np.mean(col('width_80')):.1f} / {np.mean(col('width_90')):.1f} |\n"
        )
    truncation = (
        "| subset | seed | test engines | Beta a | Beta b | mean share of life | "
        "Wasserstein distance (cycles) | KS p-value |\n|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    for subset, fits in results["truncation"].items():
        for seed, tr in fits.items():
            f = tr["fitted_on"]
            truncation += (
                f"| {subset} | {seed} | {f.get('test_engines', '')} | {tr['a']:.2f} | "
                f"{tr['b']:.2f} | {f.get('mean_share_of_life', 0.5):.3f} | "
                f"{f.get('wasserstein_cycles', '')} | {f.get('ks_p_value', '')} |\n"
            )
    summary = (
        "| subset | RMSE, test-like cuts | PHM08 score | 80 % / 90 % intervals cover | "
        "before #19: RMSE, uniform cuts | before #19: coverage |\n"
        "|---|---:|---:|---:|---:|---:|\n"
    )
    for subset in dict.fromkeys(r["subset"] for r in runs):
        rs = [r for r in runs if r["subset"] == subset]
        n = len(rs)

        def get(key: str, sub: str | None = None, rs: list[dict[str, Any]] = rs) -> list[float]:
            return [r[sub][key] if sub else r[key] for r in rs]

        shipped = results["shipped"]
        also = f" (shipped: {shipped['rmse']:.2f})" if shipped["subset"] == subset else ""
        summary += (
            f"| {subset}, {n} seeds, {rs[0]['n_engines']} held-out engines each | "
            f"**{_ms(get('rmse'))}**{also} | {_ms(get('score'), 1)} | "
            f"**{_ms(get('coverage_80'), 1, 100)} % / {_ms(get('coverage_90'), 1, 100)} %** | "
            f"{_ms(get('rmse_uniform'))} | "
            f"{_ms(get('coverage_80', 'uniform_halves'), 1, 100)} % / "
            f"{_ms(get('coverage_90', 'uniform_halves'), 1, 100)} % |\n"
        )
    out = {
        "summary": summary,
        "results": head + body,
        "coverage": coverage,
        "truncation": truncation,
    }
    if results["design"]:
        shipped = results["shipped_design"]
        table = (
            "| window | pooled | baseline cycles | RMSE, test-like cuts | RMSE, uniform cuts | "
            "coverage 80 / 90 % |\n|---:|---:|---:|---:|---:|---:|\n"
        )
        keys = ("window", "input_pool", "baseline_cycles")
        for combo in dict.fromkeys(tuple(d[k] for k in keys) for d in results["design"]):
            ds = [d for d in results["design"] if tuple(d[k] for k in keys) == combo]
            bold = "**" if combo == tuple(shipped[k] for k in keys) else ""
            base = combo[2] or "none"
            table += (
                f"| {bold}{combo[0]}{bold} | {bold}{combo[1]}{bold} | {bold}{base}{bold} | "
                f"{bold}{_ms([d['rmse'] for d in ds])}{bold} | "
                f"{_ms([d['rmse_uniform'] for d in ds])} | "
                f"{_pct(float(np.mean([d['coverage_80'] for d in ds])))} / "
                f"{_pct(float(np.mean([d['coverage_90'] for d in ds])))} |\n"
            )
        out["design"] = table
    return out
