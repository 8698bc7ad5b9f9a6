"""Weekly demand forecasts: train, evaluate, predict and report (see ml/tasks/__init__.py and
ml/report.py). Forecasting itself, and the payloads of signed forecast records, is
ml/forecast.py (`DemandPredictor`).

One network (ml/models/demand.py) is trained across every product on windows cut from the weeks
before a forecast origin: a window's input is weeks < t, its targets weeks t .. t+7 that are
also < origin (`windows`; tests/ml/tasks/test_demand.py changes every later week and checks that
no window moves). Nothing after the origin is seen by the network, its scaling or its baselines.

Evaluation is rolling-origin (`rolling_origin`): from each origin in `EVAL_ORIGINS` the network
is retrained on the weeks before it, with each of `REPORT_SEEDS`, and forecasts the next 8 weeks
of all 811 products; the statistical baselines (statsforecast) are refitted on the same weeks.
All targets lie in weeks 40..51. The design (context 16 weeks, 3 blocks of width 256, 30 epochs,
the level scaling) was chosen on `VALIDATION_ORIGINS`, whose targets all lie before week 40,
and frozen before any evaluation origin was scored. Metrics (`score`):

- MASE at horizon k: mean over products of (mean |error| of the first k weeks) / (mean |week to
  week change| before the origin), products with a constant history (scale 0) left out and
  counted;
- sMAPE at horizon k: mean of 200 |error| / (|actual| + |forecast|), 0 where both are 0;
- weighted quantile loss over the 5, 10, 50, 90 and 95 % quantiles (the interval bounds and the
  point), each 2 x sum of pinball losses / sum of actuals, averaged (GluonTS's mean wQL);
- coverage and mean width of the 80 and 90 % intervals over all products and 8 weeks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml import _progress
from ml.data.demand import WeeklySales, load_daily, load_weekly
from ml.errors import MLInputError
from ml.forecast import (
    LEVELS,
    MIN_HISTORY,
    DemandPredictor,
    Forecasts,
    context_window,
    forecast,
    last_complete_week,
    naive_scale,
    quantile_forecasts,
)
from ml.models.demand import (
    DemandConfig,
    DemandNet,
    TrainConfig,
    features,
    history_summary,
    pinball,
)
from ml.tasks import EvalArgs, PredictArgs, TrainArgs

NAME = "demand-weekly"
HORIZONS = (4, 8)
VALIDATION_ORIGINS = (24, 28, 32)  # design choices; every target before week 40
EVAL_ORIGINS = (40, 41, 42, 43, 44)  # scored once; every target in weeks 40..51
REPORT_SEEDS = (0, 1, 2, 3, 4)
SHIPPED_ORIGIN = 44  # the shipped model knows weeks 0..43; the demo settles weeks 44 and 45
WEEKLY_FILE = "Sales_Transactions_Dataset_Weekly.csv"
DAILY_FILE = "Daily_Demand_Forecasting_Orders.csv"
DAILY_ORIGINS = tuple(range(45, 56))  # one-week (5 working days) forecasts ending by day 59
DAILY_HORIZON = 5


# ------------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class Windows:
    values: np.ndarray  # (n, context) float32, zeros where unknown
    mask: np.ndarray  # (n, context) 1 where the week is known
    target: np.ndarray  # (n, horizon)
    target_mask: np.ndarray  # (n, horizon) 1 where the week is a target (< origin)
    product: np.ndarray  # (n,) row of the product
    start: np.ndarray  # (n,) t: the first target week; inputs are weeks < t
    summary: np.ndarray  # (n, SUMMARY) of weeks < t (ml.models.demand.history_summary)


def windows(units: np.ndarray, origin: int, context: int, horizon: int) -> Windows:
    """Every training window of `units` (products, weeks) known at `origin`: inputs weeks < t,
    targets weeks t .. t+horizon-1 cut at the origin, for MIN_HISTORY <= t < origin."""
    if not MIN_HISTORY < origin <= units.shape[1]:
        raise MLInputError(f"origin {origin}: expected {MIN_HISTORY + 1}..{units.shape[1]}")
    known = units[:, :origin]  # nothing at or after the origin is read below
    n = len(known)
    parts: list[tuple[np.ndarray, ...]] = []
    for t in range(MIN_HISTORY, origin):
        values, mask = context_window(known[:, :t], context)
        target = np.zeros((n, horizon), np.float32)
        target_mask = np.zeros((n, horizon), np.float32)
        end = min(t + horizon, origin)
        target[:, : end - t] = known[:, t:end]
        target_mask[:, : end - t] = 1
        parts.append(
            (
                values,
                mask,
                target,
                target_mask,
                np.arange(n),
                np.full(n, t),
                history_summary(known[:, :t]),
            )
        )
    return Windows(*(np.concatenate(p) for p in zip(*parts, strict=True)))


# ------------------------------------------------------------------------------ training
def fit_network(
    units: np.ndarray,
    origin: int,
    seed: int,
    *,
    config: DemandConfig | None = None,
    settings: TrainConfig | None = None,
) -> tuple[DemandNet, dict[str, Any]]:
    """Train a network on the windows of `units` known at `origin` (default config and
    settings: the chosen design)."""
    config = config or DemandConfig()
    settings = settings or TrainConfig()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    w = windows(units, origin, config.context, config.horizon)
    x = features(
        torch.from_numpy(w.values),
        torch.from_numpy(w.mask),
        torch.from_numpy(w.summary) if config.summary else None,
    )
    target = torch.from_numpy(w.target) / x.level
    tmask = torch.from_numpy(w.target_mask)
    q = torch.tensor(config.quantiles)
    net = DemandNet(config)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    n = len(target)
    steps = settings.epochs * math.ceil(n / settings.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.lr, total_steps=steps)
    net.train()
    last = 0.0
    for _ in range(settings.epochs):
        order = torch.from_numpy(rng.permutation(n))
        for i in range(0, n, settings.batch):
            b = order[i : i + settings.batch]
            loss = pinball(net(x.x[b]), target[b], tmask[b], q)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            last = float(loss.detach())
    net.eval()
    return net, {
        "windows": n,
        "final_loss": round(last, 5),
        "train_seconds": round(time.perf_counter() - started, 1),
    }


# ------------------------------------------------------------------------------- metrics
def _smape(truth: np.ndarray, point: np.ndarray) -> np.ndarray:
    denom = np.abs(truth) + np.abs(point)
    safe = np.where(denom > 0, denom, 1.0)
    return np.where(denom > 0, 200 * np.abs(truth - point) / safe, 0.0)


def score(truth: np.ndarray, f: Forecasts, scale: np.ndarray) -> dict[str, Any]:
    """The metrics of forecasts `f` of `truth` (n, h); `scale` (n,) is MASE's denominator."""
    ok = scale > 0
    err = np.abs(truth - f.point)
    out: dict[str, Any] = {"n_products": len(truth), "n_scale_zero": int((~ok).sum())}
    for k in HORIZONS:
        if k > truth.shape[1]:
            continue
        out[f"mase_{k}"] = float((err[ok, :k].mean(axis=1) / scale[ok]).mean())
        out[f"smape_{k}"] = float(_smape(truth[:, :k], f.point[:, :k]).mean())
    total = float(np.abs(truth).sum())
    bounds = [(0.5, f.point)]
    for level, (lo, hi) in f.intervals.items():
        tail = (1 - level / 100) / 2
        bounds += [(tail, lo), (1 - tail, hi)]
        inside = (truth >= lo) & (truth <= hi)
        out[f"coverage_{level}"] = float(inside.mean())
        out[f"width_{level}"] = float((hi - lo).mean())
    losses = []
    for q, pred in bounds:
        e = truth - pred
        losses.append(2 * float(np.maximum(q * e, (q - 1) * e).sum()) / max(total, 1e-12))
    out["wql"] = float(np.mean(losses))
    return out


def segments(history: np.ndarray) -> np.ndarray:
    """Syntetos-Boylan class of each history (n, T): smooth, erratic, intermittent or lumpy,
    from the mean interval between sales (ADI, cut 1.32) and the squared coefficient of
    variation of the non-zero sales (CV2, cut 0.49); `none` for a product that sold nothing."""
    out = []
    for h in history:
        sold = h[h > 0]
        if len(sold) == 0:
            out.append("none")
            continue
        adi = len(h) / len(sold)
        cv2 = float((sold.std() / sold.mean()) ** 2)
        out.append(
            ("smooth" if cv2 < 0.49 else "erratic")
            if adi < 1.32
            else ("intermittent" if cv2 < 0.49 else "lumpy")
        )
    return np.array(out)


# ----------------------------------------------------------------------------- baselines
BASELINES = (
    "Naive",
    "HistoricAverage",
    "WindowAverage",
    "AutoETS",
    "CrostonClassic",
    "TSB",
    "ADIDA",
    "IMAPA",
)
# Models with their own interval formula in statsforecast; the others get split-conformal
# intervals from statsforecast's ConformalIntervals over the last CONFORMAL_WINDOWS horizons
# (fewer, down to 2, when the history is too short for that many).
NATIVE_INTERVALS = ("Naive", "HistoricAverage", "AutoETS")
CONFORMAL_WINDOWS = 3


def _statsforecast_models(names: Sequence[str], *, season: int | None = None) -> list[Any]:
    try:
        from statsforecast import models as sm
    except ImportError:  # pragma: no cover - dev/eval extra
        raise MLInputError(
            "the statistical baselines need statsforecast: pip install 'forgeproof[eval]'"
        ) from None
    make = {
        "Naive": lambda: sm.Naive(),
        "SeasonalNaive": lambda: sm.SeasonalNaive(season_length=season or 1),
        "HistoricAverage": lambda: sm.HistoricAverage(),
        "WindowAverage": lambda: sm.WindowAverage(window_size=4),
        "AutoETS": lambda: sm.AutoETS(season_length=1),
        "CrostonClassic": lambda: sm.CrostonClassic(),
        "TSB": lambda: sm.TSB(alpha_d=0.1, alpha_p=0.1),
        "ADIDA": lambda: sm.ADIDA(),
        "IMAPA": lambda: sm.IMAPA(),
    }
    return [make[n]() for n in names]


def baselines(
    units: np.ndarray,
    origin: int,
    horizon: int,
    names: Sequence[str] = BASELINES,
    *,
    season: int | None = None,
) -> dict[str, Forecasts]:
    """Statsforecast's forecasts from the weeks before `origin` of every row of `units`."""
    import warnings

    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.utils import ConformalIntervals

    known = units[:, :origin].astype(np.float64)
    ids = [f"s{i:05d}" for i in range(len(known))]  # sorts in row order
    frame = pd.DataFrame(
        {
            "unique_id": np.repeat(ids, origin),
            "ds": np.tile(np.arange(origin), len(ids)),
            "y": known.ravel(),
        }
    )
    out: dict[str, Forecasts] = {}
    native = [n for n in names if n in NATIVE_INTERVALS or n == "SeasonalNaive"]
    conformal = [n for n in names if n not in native]
    windows_ = min(CONFORMAL_WINDOWS, (origin - 1) // horizon)
    if conformal and windows_ < 2:
        raise MLInputError(
            f"baselines from week {origin}: conformal intervals over {horizon} weeks need at "
            f"least {2 * horizon + 1} weeks of history"
        )
    for group, intervals in (
        (native, None),
        (conformal, ConformalIntervals(h=horizon, n_windows=windows_)),
    ):
        if not group:
            continue
        sf = StatsForecast(models=_statsforecast_models(group, season=season), freq=1, n_jobs=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = sf.forecast(
                df=frame, h=horizon, level=list(LEVELS), prediction_intervals=intervals
            )
        fc = fc.sort_values(["unique_id", "ds"])
        for name in group:

            def col(suffix: str, name: str = name, fc: Any = fc) -> np.ndarray:
                return np.clip(fc[name + suffix].to_numpy().reshape(len(ids), horizon), 0, None)

            out[name] = Forecasts(
                col(""), {lv: (col(f"-lo-{lv}"), col(f"-hi-{lv}")) for lv in LEVELS}
            )
    return out


# -------------------------------------------------------------------------- rolling origin
def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def rolling_origin(
    sales: WeeklySales,
    origins: Sequence[int],
    seeds: Sequence[int],
    *,
    horizon: int = 8,
    settings: TrainConfig | None = None,
    advance: _progress.Advance | None = None,
) -> list[dict[str, Any]]:
    """Score the network (each seed) and the baselines from every origin; one entry per
    origin with per-method metrics and per-segment MASE."""
    config = DemandConfig(horizon=horizon)
    out = []
    for origin in origins:
        if origin + horizon > sales.weeks:
            raise MLInputError(f"origin {origin} + {horizon} weeks is past week {sales.weeks - 1}")
        truth = sales.units[:, origin : origin + horizon].astype(np.float64)
        scale = naive_scale(sales.units[:, :origin])
        seg = segments(sales.units[:, :origin])
        entry: dict[str, Any] = {"origin": origin, "runs": [], "baselines": {}}
        entry["segments"] = {s: int((seg == s).sum()) for s in sorted(set(seg))}

        def by_segment(
            f: Forecasts,
            seg: np.ndarray = seg,
            scale: np.ndarray = scale,
            truth: np.ndarray = truth,
        ) -> dict[str, float]:
            err = np.abs(truth - f.point).mean(axis=1)
            res = {}
            for s in sorted(set(seg)):
                ok = (seg == s) & (scale > 0)
                if ok.any():
                    res[s] = float((err[ok] / scale[ok]).mean())
            return res

        for seed in seeds:
            net, info = fit_network(sales.units, origin, seed, config=config, settings=settings)
            f = quantile_forecasts(forecast(net, list(sales.units[:, :origin])), config)
            entry["runs"].append(
                {"seed": seed, **score(truth, f, scale), "mase_8_by_segment": by_segment(f), **info}
            )
            if advance:
                advance(note=f"origin {origin} seed {seed}: MASE {entry['runs'][-1]['mase_8']:.3f}")
        for name, f in baselines(sales.units, origin, horizon).items():
            entry["baselines"][name] = {
                **score(truth, f, scale),
                "mase_8_by_segment": by_segment(f),
            }
        out.append(entry)
    return out


def summarise(origins: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over origins (and seeds) per method, the best baseline and the goal's figures."""
    keys = ["mase_4", "mase_8", "smape_4", "smape_8", "wql", "coverage_80", "coverage_90"]
    seeds = sorted({r["seed"] for o in origins for r in o["runs"]})
    deep: dict[str, Any] = {}
    for k in keys:
        per_seed = [
            float(np.mean([r[k] for o in origins for r in o["runs"] if r["seed"] == s]))
            for s in seeds
        ]
        deep[k], deep[f"{k}_sd"] = _mean_sd(per_seed)
    base: dict[str, dict[str, float]] = {}
    for name in origins[0]["baselines"]:
        base[name] = {k: float(np.mean([o["baselines"][name][k] for o in origins])) for k in keys}
    out: dict[str, Any] = {"deep": deep, "baselines": base, "seeds": seeds}
    if base:
        for k in ("mase_4", "mase_8"):
            best = min(base, key=lambda n: base[n][k])
            out[f"best_baseline_{k}"] = best
            out[f"gain_{k}"] = 1 - deep[k] / base[best][k]
    return out


# ---------------------------------------------------------------------------- daily check
def daily_check(path: Path, net: DemandNet) -> dict[str, Any]:
    """The daily orders set as a second, small check: one series of 60 working days, forecast
    a week (5 days) ahead from each of DAILY_ORIGINS by the weekly network unchanged (zero-shot:
    its inputs are scaled by the series' level) and by the baselines, seasonal naive with a
    5-day week included."""
    daily = load_daily(path)
    y = daily.total.astype(np.float32)[None, :]
    names = ("Naive", "SeasonalNaive", "HistoricAverage", "WindowAverage", "AutoETS")
    rows: dict[str, list[float]] = {"deep (zero-shot)": [], **{n: [] for n in names}}
    errors: dict[str, list[float]] = {k: [] for k in rows}
    cover: list[float] = []
    for origin in DAILY_ORIGINS:
        truth = y[:, origin : origin + DAILY_HORIZON].astype(np.float64)
        scale = naive_scale(y[:, :origin])
        f = quantile_forecasts(forecast(net, [y[0, :origin]]), net.config)
        f = Forecasts(
            f.point[:, :DAILY_HORIZON],
            {
                lv: (lo[:, :DAILY_HORIZON], hi[:, :DAILY_HORIZON])
                for lv, (lo, hi) in f.intervals.items()
            },
        )
        cover.append(float(((truth >= f.intervals[90][0]) & (truth <= f.intervals[90][1])).mean()))
        methods = {"deep (zero-shot)": f, **baselines(y, origin, DAILY_HORIZON, names, season=5)}
        for name, m in methods.items():
            e = np.abs(truth - m.point)[0]
            rows[name].append(float(e.mean() / scale[0]))
            errors[name].extend(e.tolist())
    summary = {}
    for name, values in rows.items():
        mean, sd = _mean_sd(values)
        summary[name] = {"mase_5": mean, "mase_5_sd_over_origins": sd}
    return {
        "days": int(y.shape[1]),
        "origins": list(DAILY_ORIGINS),
        "horizon": DAILY_HORIZON,
        "methods": summary,
        "deep_coverage_90": float(np.mean(cover)),
    }


# ------------------------------------------------------------------------ train/evaluate/predict
def default_csv() -> Path:
    from ml.shipped import sample

    return sample(f"demand/{WEEKLY_FILE}")


def train(args: TrainArgs) -> dict[str, Any]:
    """Train on the first `args.weeks` weeks (default SHIPPED_ORIGIN) of every product of
    `args.csv` (default: the shipped copy of the UCI weekly set) and save the model."""
    from ml.manifest import data_digests, save_model

    csv = Path(args.csv) if args.csv else default_csv()
    sales = load_weekly(csv)
    origin = args.weeks or SHIPPED_ORIGIN
    settings = TrainConfig(epochs=args.epochs) if args.epochs else TrainConfig()
    config = DemandConfig()
    net, info = fit_network(sales.units, origin, args.seed, config=config, settings=settings)
    metrics: dict[str, Any] = dict(info)
    if origin + config.horizon <= sales.weeks:
        truth = sales.units[:, origin : origin + config.horizon].astype(np.float64)
        f = quantile_forecasts(forecast(net, list(sales.units[:, :origin])), config)
        metrics["next_weeks"] = {
            k: round(v, 4) if isinstance(v, float) else v
            for k, v in score(truth, f, naive_scale(sales.units[:, :origin])).items()
        }
    manifest = save_model(
        Path(args.out),
        net.state_dict(),
        name=NAME,
        task="demand",
        architecture="DemandNet: residual MLP over scaled weekly history, quantile outputs "
        "(ml/models/demand.py)",
        config={
            "model": config.as_dict(),
            "training": {
                **settings.as_dict(),
                "seed": args.seed,
                "weeks": origin,
                "loss": "pinball over the model's quantiles",
                "optimizer": "AdamW, one-cycle learning rate",
            },
            "intervals": {str(lv): "model quantiles" for lv in LEVELS},
        },
        training_data=data_digests([csv]),
        preprocessing={
            "scaling": "mean of the known context weeks + 1 unit",
            "min_history": MIN_HISTORY,
        },
        metrics=metrics,
    )
    return {"model": NAME, "out": str(args.out), "manifest_digest": manifest.digest(), **metrics}


def evaluate(args: EvalArgs) -> dict[str, Any]:
    """Forecast every product of `args.csv` from the weeks the model was trained on and score
    the next 8 weeks, beside the baselines refitted on the same weeks."""
    predictor = DemandPredictor.from_dir(Path(args.model))
    net, manifest = predictor.net, predictor.manifest
    csv = Path(args.csv) if args.csv else default_csv()
    sales = load_weekly(csv)
    origin = int(manifest.config["training"]["weeks"])
    h = net.config.horizon
    if origin + h > sales.weeks:
        raise MLInputError(
            f"{csv}: {sales.weeks} weeks; the model was trained on {origin}, so scoring needs "
            f"{origin + h}"
        )
    truth = sales.units[:, origin : origin + h].astype(np.float64)
    scale = naive_scale(sales.units[:, :origin])
    f = quantile_forecasts(forecast(net, list(sales.units[:, :origin])), net.config)
    out: dict[str, Any] = {"origin": origin, **score(truth, f, scale)}
    for name, b in baselines(sales.units, origin, h).items():
        out[f"baseline_{name}_mase_8"] = score(truth, b, scale)["mase_8"]
    return out


def predict(args: PredictArgs) -> Iterator[dict[str, Any]]:
    """One forecast payload per product of a weekly CSV (the UCI format), from all its weeks."""
    sales = load_weekly(Path(args.input))
    last_week = args.last_week or last_complete_week()
    histories = {p: sales.units[i] for i, p in enumerate(sales.products)}
    yield from DemandPredictor.from_dir(Path(args.model)).forecast(histories, last_week=last_week)


# --------------------------------------------------------------------------------- report
def _data_file(data: Path, name: str) -> Path:
    """`<data>/demand/<name>` when there, else the shipped copy (the same file)."""
    from ml.shipped import sample

    found = Path(data) / "demand" / name
    return found if found.is_file() else sample(f"demand/{name}")


def report(
    data: Path, *, seeds: Sequence[int] | None, quick: bool, progress: bool
) -> dict[str, Any]:
    """Rolling-origin evaluation on EVAL_ORIGINS and the design check on VALIDATION_ORIGINS,
    every seed, with the baselines; the daily-orders check; the shipped model's own scores."""
    from ml.shipped import model_dir

    sales = load_weekly(_data_file(data, WEEKLY_FILE))
    chosen = tuple(seeds) if seeds else ((0,) if quick else REPORT_SEEDS)
    evals = EVAL_ORIGINS[:1] if quick else EVAL_ORIGINS
    vals = () if quick else VALIDATION_ORIGINS
    settings = TrainConfig(epochs=3) if quick else TrainConfig()
    total = (len(evals) + len(vals)) * len(chosen)
    with _progress.progress("demand report", total, enabled=progress) as advance:
        validation = rolling_origin(sales, vals, chosen, settings=settings, advance=advance)
        evaluation = rolling_origin(sales, evals, chosen, settings=settings, advance=advance)
    shipped = DemandPredictor.from_dir(model_dir(NAME)).net
    return {
        "quick": quick,
        "seeds": list(chosen),
        "settings": settings.as_dict(),
        "config": DemandConfig().as_dict(),
        "products": len(sales.products),
        "weeks": sales.weeks,
        "validation": validation,
        "evaluation": evaluation,
        "validation_summary": summarise(validation) if validation else None,
        "summary": summarise(evaluation),
        "daily": daily_check(_data_file(data, DAILY_FILE), shipped),
    }


COLUMNS = ("mase_4", "mase_8", "smape_4", "smape_8", "wql", "coverage_80", "coverage_90")
HEADER = "MASE h4 | MASE h8 | sMAPE h4 | sMAPE h8 | wQL | cover 80 | cover 90"


def _cell(key: str, value: float, sd: float | None = None) -> str:
    """A metric as the tables print it: coverage in percent, sMAPE with one decimal."""
    scale, digits = (100.0, 1) if key.startswith("cov") else (1.0, 1 if "smape" in key else 3)
    text = f"{value * scale:.{digits}f}"
    return text if sd is None else f"{text} ± {sd * scale:.{digits}f}"


def _row(label: str, cells: Sequence[str]) -> str:
    return f"| {label} | " + " | ".join(cells) + " |"


def report_tables(results: dict[str, Any]) -> dict[str, str]:
    """The tables docs/ml-demand.md quotes, from the results alone."""
    out: dict[str, str] = {}
    ev = results["evaluation"]
    lines = [f"| origin | method | {HEADER} |", "|---|---|" + "---|" * len(COLUMNS)]
    for o in ev:
        runs = o["runs"]
        deep = []
        for k in COLUMNS:
            mean, sd = _mean_sd([r[k] for r in runs])
            deep.append(_cell(k, mean, sd if len(runs) > 1 else None))
        lines.append(_row(f"W{o['origin']} | **deep** ({len(runs)} seeds)", deep))
        for n, b in o["baselines"].items():
            lines.append(_row(f"W{o['origin']} | {n}", [_cell(k, b[k]) for k in COLUMNS]))
    out["origins"] = "\n".join(lines) + "\n"

    s = results["summary"]
    d = s["deep"]
    lines = [f"| method | {HEADER} |", "|---|" + "---|" * len(COLUMNS)]
    lines.append(
        _row(
            f"**deep** (mean ± sd over {len(s['seeds'])} seeds)",
            [_cell(k, d[k], d[f"{k}_sd"]) for k in COLUMNS],
        )
    )
    for n, b in sorted(s["baselines"].items(), key=lambda kv: kv[1]["mase_8"]):
        lines.append(_row(n, [_cell(k, b[k]) for k in COLUMNS]))
    out["summary"] = "\n".join(lines) + "\n"

    best8, best4 = s["best_baseline_mase_8"], s["best_baseline_mase_4"]
    out["goal"] = (
        f"- best baseline by MASE over 8 weeks: **{best8}**; the deep model's MASE is "
        f"{100 * s['gain_mase_8']:.1f} % below it (goal: at least 10 %)\n"
        f"- over 4 weeks: best **{best4}**, the deep model {100 * s['gain_mase_4']:.1f} % below\n"
        f"- the deep model's 90 % intervals cover {_cell('coverage_90', d['coverage_90'])} % "
        f"(goal: 85-95 %), its 80 % intervals {_cell('coverage_80', d['coverage_80'])} %\n"
    )

    lines = [
        f"| Syntetos-Boylan class | products (mean over origins) | deep MASE h8 | {best8} MASE h8 "
        "| deep below it by |",
        "|---|---|---|---|---|",
    ]
    for sg in sorted({k for o in ev for k in o["segments"]}):
        count = round(float(np.mean([o["segments"].get(sg, 0) for o in ev])))
        deep_v = [
            r["mase_8_by_segment"][sg]
            for o in ev
            for r in o["runs"]
            if sg in r["mase_8_by_segment"]
        ]
        base_v = [
            o["baselines"][best8]["mase_8_by_segment"][sg]
            for o in ev
            if sg in o["baselines"][best8]["mase_8_by_segment"]
        ]
        if not deep_v or not base_v:
            lines.append(f"| {sg} | {count} | - | - | - |")
            continue
        dm, bm = float(np.mean(deep_v)), float(np.mean(base_v))
        lines.append(f"| {sg} | {count} | {dm:.3f} | {bm:.3f} | {100 * (1 - dm / bm):+.1f} % |")
    out["segments"] = "\n".join(lines) + "\n"

    v = results.get("validation_summary")
    if v:
        vd, vbest = v["deep"], v["best_baseline_mase_8"]
        origins = ", ".join(f"W{o['origin']}" for o in results["validation"])
        out["validation"] = (
            f"Validation origins {origins} (every target before W40): deep MASE h8 "
            f"{vd['mase_8']:.3f} ± {vd['mase_8_sd']:.3f}, best baseline {vbest} "
            f"{v['baselines'][vbest]['mase_8']:.3f} ({100 * v['gain_mase_8']:.1f} % below); "
            f"90 % coverage {_cell('coverage_90', vd['coverage_90'])} %.\n"
        )

    dl = results["daily"]
    lines = [
        f"| method ({len(dl['origins'])} origins, {dl['horizon']}-day forecasts) | MASE "
        "| sd over origins |",
        "|---|---|---|",
    ]
    for n, m in sorted(dl["methods"].items(), key=lambda kv: kv[1]["mase_5"]):
        lines.append(f"| {n} | {m['mase_5']:.3f} | {m['mase_5_sd_over_origins']:.3f} |")
    out["daily"] = "\n".join(lines) + "\n"
    return out
