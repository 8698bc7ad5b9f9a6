"""The federated report (`forgeproof ml report --section federated`, ml/report.py): central,
local-only and federated models on every plant's held-out engines, the robust aggregations
against a poisoned plant, and `tune`, which chose rounds, local epochs and mu on seed 10."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml._progress import progress as progress_bar
from ml.federated.client import (
    PlantClient,
    default_plants,
)
from ml.federated.server import (
    AGGREGATIONS,
    STRATEGIES,
    Federated,
    FedSettings,
    merge_stats,
    simulate,
)
from ml.models.rul import RULConfig, RULNet
from ml.tasks.rul import (
    TrainSettings,
    fit_network,
    set_seed,
)

# --------------------------------------------------------------------------------- baselines


def _fit(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    config: RULConfig,
    settings: TrainSettings,
    seed: int,
) -> tuple[RULNet, dict[str, Any]]:
    """The recipe's training (ml.tasks.rul.fit_network) on given windows, timed."""
    set_seed(seed)
    started = time.perf_counter()
    model, history = fit_network(train, val, config, settings, cap=config.target_scale, show=False)
    history["seconds"] = round(time.perf_counter() - started, 1)
    return model, history


def fit_central(
    clients: Sequence[PlantClient], settings: TrainSettings, *, seed: int
) -> tuple[RULNet, dict[str, Any]]:
    """The reference the federation must approach: the recipe's training on every plant's
    training windows pooled (what a data lake would do), validated on all their validation
    windows, with the same (global) preprocessing the clients were prepared with."""
    config = clients[0].ready()[1]
    train = tuple(np.concatenate([c.data["train"][i] for c in clients]) for i in (0, 1))
    val = tuple(np.concatenate([c.data["validation"][i] for c in clients]) for i in (0, 1))
    return _fit((train[0], train[1]), (val[0], val[1]), config, settings, seed)


def fit_local(
    client: PlantClient, settings: TrainSettings, *, seed: int
) -> tuple[RULNet, dict[str, Any]]:
    """A plant alone: the recipe on its own training and validation windows (with the global
    preprocessing, so its model can be scored on the other plants' engines at all)."""
    config = client.ready()[1]
    return _fit(client.data["train"], client.data["validation"], config, settings, seed)


# ------------------------------------------------------------------------------------ report

REPORT_SEEDS = (0, 1, 2)
TUNING_SEED = 10
POISON = ("fd002-a", -10.0)  # the robustness runs: this plant sends -10x its honest step
ROBUST_PLANTS = {"fd001": 2, "fd002": 4}  # six plants, so a trimmed mean is not the median
ROBUST_ROUNDS = 10


def _scores(clients: Sequence[PlantClient], model: RULNet) -> dict[str, dict[str, float]]:
    out = {}
    for c in clients:
        m = c.test(model)
        out[c.name] = {"rmse": m["rmse"], "score": m["score"], "n_engines": m["n_engines"]}
    return out


def run_seed(
    data_dir: Path,
    seed: int,
    *,
    settings: TrainSettings,
    fed: FedSettings,
    robustness: bool = True,
    progress: bool = False,
) -> dict[str, Any]:
    """Every model of one seed, scored on every plant's held-out engines."""
    started = time.perf_counter()
    plants = default_plants(data_dir, seed=seed)
    clients = [PlantClient.from_dir(p, data_dir, seed) for p in plants]
    prep = merge_stats([c.stats() for c in clients])
    for c in clients:
        c.prepare(prep)
    run: dict[str, Any] = {
        "seed": seed,
        "plants": {
            c.name: {
                "subset": c.plant.subset,
                "engines": len(c.plant.engines),
                "train_windows": len(c.data["train"][1]),
                "holdout_engines": len(c.split["holdout"]),
            }
            for c in clients
        },
        "regimes": len(prep.normalizer.conditions.centers),
        "models": {},
    }
    models = run["models"]
    central, hist = fit_central(clients, settings, seed=seed)
    models["central"] = {"holdout": _scores(clients, central), **_brief(hist)}
    for c in clients:
        local, hist = fit_local(c, settings, seed=seed)
        models[f"local:{c.name}"] = {"holdout": _scores(clients, local), **_brief(hist)}
    for strategy in STRATEGIES:
        sim = simulate(
            clients, replace(fed, strategy=strategy), seed=seed, prep=prep, progress=progress
        )
        models[strategy] = {"holdout": _scores(clients, sim.model()), **_fed_brief(sim)}
    if robustness:
        del clients, central  # free the windows before the second federation's
        run["robustness"] = robustness_runs(
            data_dir, seed, replace(fed, rounds=min(fed.rounds, ROBUST_ROUNDS)), progress=progress
        )
    run["seconds"] = round(time.perf_counter() - started, 1)
    return run


def robustness_runs(
    data_dir: Path, seed: int, fed: FedSettings, *, progress: bool = False
) -> dict[str, Any]:
    """Six plants (FD001 in two, FD002 in four), each aggregation with all plants honest and
    with `POISON`'s plant sending a scaled step; every model scored on every plant's held-out
    engines."""
    plants = default_plants(data_dir, seed=seed, **ROBUST_PLANTS)
    clients = [PlantClient.from_dir(p, data_dir, seed) for p in plants]
    prep = merge_stats([c.stats() for c in clients])
    for c in clients:
        c.prepare(prep)
    out: dict[str, Any] = {
        "plants": {
            c.name: {"subset": c.plant.subset, "holdout_engines": len(c.split["holdout"])}
            for c in clients
        },
        "rounds": fed.rounds,
        "runs": {},
    }
    for agg in AGGREGATIONS:
        for poison in (None, POISON):
            sim = simulate(
                clients,
                replace(fed, aggregation=agg),
                seed=seed,
                prep=prep,
                poisoned=poison,
                progress=progress,
            )
            key = f"{agg}:{'poisoned' if poison else 'clean'}"
            out["runs"][key] = {"holdout": _scores(clients, sim.model()), **_fed_brief(sim)}
    return out


def _brief(history: dict[str, Any]) -> dict[str, Any]:
    return {k: history[k] for k in ("best_epoch", "epochs_run", "validation_rmse", "seconds")}


def _fed_brief(sim: Federated) -> dict[str, Any]:
    return {
        "best_round": sim.best_round,
        "validation_rmse": sim.history[sim.best_round - 1]["validation_rmse"],
        "validation_curve": [h["validation_rmse"] for h in sim.history],
        "seconds": sim.seconds,
    }


def report(
    data: Path, *, seeds: Sequence[int] | None, quick: bool, progress: bool
) -> dict[str, Any]:
    """Central, local-only and federated (FedAvg, FedProx) models per seed, each scored on
    every plant's held-out engines, and the robust aggregations against a poisoned plant."""
    cmapss = Path(data) / "cmapss"
    chosen = tuple(seeds) if seeds else ((0,) if quick else REPORT_SEEDS)
    settings = TrainSettings(epochs=2) if quick else TrainSettings()
    fed = FedSettings(rounds=2) if quick else FedSettings()
    runs = []
    with progress_bar("federated report", len(chosen), enabled=progress) as advance:
        for seed in chosen:
            runs.append(run_seed(cmapss, seed, settings=settings, fed=fed, progress=progress))
            advance(note=f"seed {seed}: {runs[-1]['seconds']:.0f} s")
    return {
        "quick": quick,
        "seeds": list(chosen),
        "tuning_seed": TUNING_SEED,
        "settings": asdict(settings),
        "federated": asdict(fed),
        "poison": {"plant": POISON[0], "factor": POISON[1]},
        "runs": runs,
    }


def _ms(values: Sequence[float], digits: int = 2) -> str:
    a = np.asarray(values, dtype=np.float64)
    if len(a) < 2:
        return f"{a.mean():.{digits}f}"
    return f"{a.mean():.{digits}f} ± {a.std(ddof=1):.{digits}f}"


def _rmse(runs: Sequence[dict[str, Any]], model: str, plant: str, where: str = "models") -> list:
    return [r[where][model]["holdout"][plant]["rmse"] for r in runs]


def _better(ours: Sequence[float], theirs: Sequence[float]) -> str:
    """Whether `ours` has the lower mean RMSE, and on how many seeds it is lower."""
    wins = sum(a < b for a, b in zip(ours, theirs, strict=True))
    verdict = "yes" if np.mean(ours) < np.mean(theirs) else "NO"
    return f"{verdict} ({wins}/{len(ours)} seeds)"


def _pooled(holdout: Mapping[str, Mapping[str, Any]], names: Sequence[str]) -> float:
    """RMSE over the held-out cuts of several plants (each engine has the same cuts)."""
    n = sum(holdout[p]["n_engines"] for p in names)
    return math.sqrt(sum(holdout[p]["rmse"] ** 2 * holdout[p]["n_engines"] for p in names) / n)


def _robustness_table(results: dict[str, Any]) -> str:
    runs = [r["robustness"] for r in results["runs"]]
    plants = runs[0]["plants"]
    poison = results["poison"]
    by_subset = {
        sub: [p for p, info in plants.items() if info["subset"] == sub]
        for sub in dict.fromkeys(info["subset"] for info in plants.values())
    }
    head = (
        "| aggregation | plant updates | "
        + " | ".join(f"{sub} held-out engines ({len(ps)} plants)" for sub, ps in by_subset.items())
        + f" | {poison['plant']}'s own held-out engines | kept round |\n|---|---|"
        + "---:|" * (len(by_subset) + 2)
        + "\n"
    )
    body = ""
    for agg, kind in itertools.product(AGGREGATIONS, ("clean", "poisoned")):
        key = f"{agg}:{kind}"
        label = (
            f"**{poison['plant']} sends {poison['factor']:g} × its step**"
            if kind == "poisoned"
            else "all honest"
        )
        cells = [
            _ms([_pooled(r["runs"][key]["holdout"], ps) for r in runs]) for ps in by_subset.values()
        ]
        cells.append(_ms([r["runs"][key]["holdout"][poison["plant"]]["rmse"] for r in runs]))
        cells.append(_ms([r["runs"][key]["best_round"] for r in runs], 1))
        body += f"| {agg} | {label} | " + " | ".join(cells) + " |\n"
    return (
        f"{len(plants)} plants, {runs[0]['rounds']} rounds, RMSE on held-out engines "
        f"(test-like cuts, pooled over the plants of a subset), seeds "
        f"{', '.join(str(s) for s in results['seeds'])} (mean ± sd):\n\n" + head + body
    )


def report_tables(results: dict[str, Any]) -> dict[str, str]:
    """Markdown tables of the federated report, from its results alone."""
    runs = results["runs"]
    plants = list(runs[0]["plants"])
    locals_ = [f"local:{p}" for p in plants]
    seeds = ", ".join(str(s) for s in results["seeds"])
    head = (
        "| held-out engines of | central | FedAvg | FedProx | "
        + " | ".join(f"local-only {p}" for p in plants)
        + " |\n|---|"
        + "---:|" * (3 + len(plants))
        + "\n"
    )
    body = ""
    checks = (
        "| held-out engines of | central | FedAvg / central | FedProx / central | "
        "within 10 % of central: FedAvg / FedProx | seeds within 10 %: FedAvg / FedProx |\n"
        "|---|---:|---:|---:|---|---|\n"
    )
    versus = (
        "| local-only model of | scored on the held-out engines of | its RMSE | FedAvg | "
        "FedProx | central | federated better: FedAvg | FedProx |\n"
        "|---|---|---:|---:|---:|---:|---|---|\n"
    )
    for p in plants:
        info = runs[0]["plants"][p]
        cells = [_ms(_rmse(runs, m, p)) for m in ("central", "fedavg", "fedprox")]
        for loc in locals_:
            cell = _ms(_rmse(runs, loc, p))
            cells.append(f"*{cell}* (own)" if loc == f"local:{p}" else cell)
        body += f"| {p} ({info['subset']}, {info['holdout_engines']}) | " + " | ".join(cells)
        body += " |\n"
        central = np.mean(_rmse(runs, "central", p))
        ratios = {m: np.mean(_rmse(runs, m, p)) / central for m in STRATEGIES}
        within = " / ".join("yes" if ratios[m] <= 1.1 else "NO" for m in STRATEGIES)
        centrals = _rmse(runs, "central", p)
        per_seed = " / ".join(
            f"{sum(a <= 1.1 * c for a, c in zip(_rmse(runs, m, p), centrals, strict=True))}"
            f"/{len(runs)}"
            for m in STRATEGIES
        )
        checks += (
            f"| {p} | {central:.2f} | {ratios['fedavg']:.3f} | {ratios['fedprox']:.3f} | "
            f"{within} | {per_seed} |\n"
        )
        others = [q for q in plants if q != p]
        pooled = {
            m: [_pooled(r["models"][m]["holdout"], others) for r in runs]
            for m in (f"local:{p}", "central", *STRATEGIES)
        }
        mine = pooled[f"local:{p}"]
        versus += (
            f"| {p} | {', '.join(others)} | {_ms(mine)} | {_ms(pooled['fedavg'])} | "
            f"{_ms(pooled['fedprox'])} | {_ms(pooled['central'])} | "
            f"{_better(pooled['fedavg'], mine)} | {_better(pooled['fedprox'], mine)} |\n"
        )
    mean_row = "| **all plants, mean** | " + " | ".join(
        _ms([float(np.mean([r["models"][m]["holdout"][p]["rmse"] for p in plants])) for r in runs])
        for m in ("central", "fedavg", "fedprox", *locals_)
    )
    body += mean_row + " |\n"
    training = "| model | kept epoch / round | validation RMSE | seconds |\n|---|---:|---:|---:|\n"
    for m in ("central", *locals_):
        rs = [r["models"][m] for r in runs]
        training += (
            f"| {m} | {_ms([x['best_epoch'] for x in rs], 1)} of "
            f"{_ms([x['epochs_run'] for x in rs], 1)} epochs run | "
            f"{_ms([x['validation_rmse'] for x in rs])} | {_ms([x['seconds'] for x in rs], 0)} |\n"
        )
    for m in STRATEGIES:
        rs = [r["models"][m] for r in runs]
        training += (
            f"| {m} | round {_ms([x['best_round'] for x in rs], 1)} of "
            f"{results['federated']['rounds']} | {_ms([x['validation_rmse'] for x in rs])} | "
            f"{_ms([x['seconds'] for x in rs], 0)} |\n"
        )
    out = {
        "results": f"RMSE on each plant's held-out engines, test-like cuts, seeds {seeds} "
        "(mean ± sd):\n\n" + head + body,
        "checks": checks,
        "versus_local": versus,
        "training": training,
    }
    if all("robustness" in r for r in runs):
        out["robustness"] = _robustness_table(results)
    return out


# ------------------------------------------------------------------------------------ tuning

TUNING_GRID: tuple[FedSettings, ...] = (
    FedSettings(rounds=30, local_epochs=1),
    FedSettings(rounds=20, local_epochs=1),
    FedSettings(rounds=10, local_epochs=2),
    FedSettings(rounds=20, local_epochs=1, strategy="fedprox", mu=10.0),
    FedSettings(rounds=20, local_epochs=1, strategy="fedprox", mu=100.0),
    FedSettings(rounds=20, local_epochs=1, strategy="fedprox", mu=1000.0),
)


def tune(
    data: Path,
    *,
    seed: int = TUNING_SEED,
    grid: Sequence[FedSettings] = TUNING_GRID,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Rounds, local epochs and mu, compared on the tuning seed only (its plants' validation
    engines choose; held-out RMSE shown beside it): how ROUNDS, LOCAL_EPOCHS and MU were set."""
    cmapss = Path(data) / "cmapss"
    clients = [PlantClient.from_dir(p, cmapss, seed) for p in default_plants(cmapss, seed=seed)]
    prep = merge_stats([c.stats() for c in clients])
    for c in clients:
        c.prepare(prep)
    out = []
    for fed in grid:
        sim = simulate(clients, fed, seed=seed, prep=prep, progress=progress)
        held = _scores(clients, sim.model())
        out.append(
            {
                **asdict(fed),
                **_fed_brief(sim),
                "holdout_rmse_mean": round(float(np.mean([h["rmse"] for h in held.values()])), 4),
            }
        )
    return out
