"""The operator's side of the federation (ml/federated/__init__.py): merge the plants'
statistics, aggregate their updates, plan the rounds, and `simulate` a whole federation in one
process with the same functions a Flower server and clients call."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ml._progress import progress as progress_bar
from ml.data.cmapss import (
    SETTING_TOLERANCE,
    Normalizer,
    OperatingConditions,
    Preprocessing,
)
from ml.errors import MLInputError
from ml.federated.client import (
    LOCAL_EPOCHS,
    RECIPE,
    LocalSettings,
    PlantClient,
    State,
    model_config,
    model_from_state,
    state_of,
)
from ml.models.rul import RULConfig, RULNet
from ml.tasks.rul import (
    CAP,
    MIN_CYCLES,
    Recipe,
)

AGGREGATIONS: tuple[str, ...] = ("fedavg", "trimmed", "median")
STRATEGIES: tuple[str, ...] = ("fedavg", "fedprox")

# Chosen on tuning seed 10 (docs/ml-federated.md), never on the reported seeds; LOCAL_EPOCHS
# is in ml/federated/client.py.
ROUNDS = 20
MU = 10.0  # FedProx proximal weight; the loss is in cycles^2
TRIM = 0.2  # trimmed mean: this share of the plants cut from each end, at least one


# ------------------------------------------------------------------------------- server side


def merge_stats(
    stats: Sequence[Mapping[str, Any]], recipe: Recipe = RECIPE, *, cap: float = CAP
) -> Preprocessing:
    """The global preprocessing from the plants' `stats()`: regimes whose centres lie within
    `SETTING_TOLERANCE` are one regime (centre: the row-weighted mean of theirs), and their
    moments are merged exactly; std as `Normalizer.fit` (population, 1 for a constant sensor).

    Raises:
        MLInputError: no statistics, plants disagree on the sensors, or a merged regime has
            fewer than 2 rows.
    """
    if not stats:
        raise MLInputError("no plant statistics to merge")
    sensors = tuple(stats[0]["sensors"])
    groups: list[dict[str, Any]] = []  # centre, count, sum, m2
    for s in stats:
        if tuple(s["sensors"]) != sensors:
            raise MLInputError(f"plant {s.get('plant')}: sensors differ from the other plants'")
        for c, n, total, m2 in zip(s["centers"], s["count"], s["sum"], s["m2"], strict=True):
            n = int(n)
            if n == 0:
                continue
            c = np.asarray(c, np.float64)
            total = np.asarray(total, np.float64)
            m2 = np.asarray(m2, np.float64)
            for g in groups:
                if np.all(np.abs(g["center"] - c) <= SETTING_TOLERANCE):
                    nn = g["count"] + n
                    delta = total / n - g["sum"] / g["count"]
                    g["m2"] = g["m2"] + m2 + delta**2 * g["count"] * n / nn
                    g["center"] = (g["center"] * g["count"] + c * n) / nn
                    g["sum"] = g["sum"] + total
                    g["count"] = nn
                    break
            else:
                groups.append({"center": c, "count": n, "sum": total, "m2": m2})
    for g in groups:
        if g["count"] < 2:
            raise MLInputError(
                f"operating condition at {g['center'].round(3).tolist()} has {g['count']} "
                "training rows over all plants, expected at least 2 to fit its scaler"
            )
    centers = np.stack([g["center"] for g in groups])
    order = np.lexsort(centers.T[::-1])  # as OperatingConditions.fit: by altitude, Mach, TRA
    groups = [groups[i] for i in order]
    mean = np.stack([g["sum"] / g["count"] for g in groups])
    sd = np.sqrt(np.stack([g["m2"] / g["count"] for g in groups]))
    normalizer = Normalizer(
        sensors=sensors,
        conditions=OperatingConditions(centers=centers[order]),
        mean=mean,
        std=np.where(sd > 1e-8, sd, 1.0),
    )
    return Preprocessing(
        normalizer=normalizer,
        window=recipe.window,
        min_cycles=MIN_CYCLES,
        cap=cap,
        baseline_cycles=recipe.baseline_cycles,
    )


def initial_state(config: RULConfig, seed: int) -> State:
    """The round-0 global weights: a fresh RULNet from the seed."""
    torch.manual_seed(seed)
    return state_of(RULNet(config))


def _trim_count(n: int, trim: float) -> int:
    k = max(1, math.floor(trim * n)) if n >= 3 else 0
    return min(k, (n - 1) // 2)


def aggregate(
    updates: Sequence[tuple[Mapping[str, np.ndarray], int]],
    method: str = "fedavg",
    *,
    trim: float = TRIM,
) -> State:
    """The new global weights from (weights, training windows) per plant.

    "fedavg": the mean weighted by windows. "trimmed": per coordinate, drop the
    max(1, floor(trim * n)) largest and smallest values (none with fewer than 3 plants) and
    average the rest. "median": the per-coordinate median. The robust ones ignore the window
    counts (a plant could lie about them too).
    """
    if not updates:
        raise MLInputError("no updates to aggregate")
    if method not in AGGREGATIONS:
        raise MLInputError(f"unknown aggregation {method!r}; expected {', '.join(AGGREGATIONS)}")
    keys = sorted(updates[0][0])
    for state, _ in updates:
        if sorted(state) != keys:
            raise MLInputError("updates carry different weight names")
    weights = np.asarray([n for _, n in updates], dtype=np.float64)
    if method == "fedavg" and (weights.sum() <= 0 or (weights < 0).any()):
        raise MLInputError("fedavg needs non-negative window counts, not all zero")
    out: State = {}
    for k in keys:
        stack = np.stack([np.asarray(s[k], np.float64) for s, _ in updates])  # (plants, ...)
        if method == "fedavg":
            # Plant by plant, elementwise: the same sum in the same order on any machine (a
            # BLAS dot may split it by threads), so a verifier recomputes the same bytes.
            agg = np.zeros(stack.shape[1:])
            for w, x in zip(weights / weights.sum(), stack, strict=True):
                agg += w * x
        elif method == "median":
            agg = np.median(stack, axis=0)
        else:
            t = _trim_count(len(updates), trim)
            ordered = np.sort(stack, axis=0)
            agg = ordered[t : len(updates) - t].mean(axis=0)
        out[k] = agg.astype(np.float32)
    return out


@dataclass(frozen=True, kw_only=True)
class FedSettings:
    """The server's plan: rounds, local epochs, strategy and aggregation."""

    rounds: int = ROUNDS
    local_epochs: int = LOCAL_EPOCHS
    strategy: str = "fedavg"
    mu: float = MU  # used by "fedprox" only
    aggregation: str = "fedavg"
    trim: float = TRIM
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise MLInputError(f"unknown strategy {self.strategy!r}; expected fedavg or fedprox")
        if self.aggregation not in AGGREGATIONS:
            raise MLInputError(
                f"unknown aggregation {self.aggregation!r}; expected {', '.join(AGGREGATIONS)}"
            )


def round_settings(settings: FedSettings, rnd: int, seed: int, plant: int) -> LocalSettings:
    """What the server sends plant number `plant` in round `rnd` (0-based): the learning rate
    decays over the rounds on a cosine, as central training's over its epochs."""
    lr = settings.lr * 0.5 * (1 + math.cos(math.pi * rnd / settings.rounds))
    return LocalSettings(
        epochs=settings.local_epochs,
        lr=lr,
        weight_decay=settings.weight_decay,
        batch_size=settings.batch_size,
        mu=settings.mu if settings.strategy == "fedprox" else 0.0,
        seed=int(np.random.default_rng([seed, rnd, plant, 9]).integers(2**31)),
    )


def pooled_rmse(evaluations: Sequence[tuple[float, int]]) -> float:
    """RMSE over every plant's windows from (RMSE, windows) per plant."""
    n = sum(k for _, k in evaluations)
    return math.sqrt(sum(r * r * k for r, k in evaluations) / n)


@dataclass
class Federated:
    """What `simulate` returns: the kept global weights (best pooled validation RMSE), the
    last round's, the preprocessing and network config, and per-round metrics."""

    state: State
    last_state: State
    prep: Preprocessing
    config: RULConfig
    best_round: int
    history: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def model(self) -> RULNet:
        return model_from_state(self.state, self.config)


def simulate(
    clients: Sequence[PlantClient],
    settings: FedSettings,
    *,
    seed: int,
    prep: Preprocessing | None = None,
    poisoned: tuple[str, float] | None = None,
    progress: bool = False,
) -> Federated:
    """Run the federation in one process with the functions a Flower server and clients call:
    merge the plants' statistics (unless `prep` is given), then each round send the global
    weights, fit locally, aggregate, and collect validation RMSEs. `poisoned` = (plant name,
    factor): that plant's update is scaled (see `poisoned`)."""
    started = time.perf_counter()
    names = [c.name for c in clients]
    if poisoned is not None and poisoned[0] not in names:
        raise MLInputError(f"poisoned plant {poisoned[0]!r} is not one of {', '.join(names)}")
    if prep is None:
        prep = merge_stats([c.stats() for c in clients], clients[0].recipe)
    for c in clients:
        if c.prep is not prep:
            c.prepare(prep)
    config = model_config(prep, clients[0].recipe)
    state = initial_state(config, seed)
    best: tuple[float, State, int] = (math.inf, state, 0)
    history: list[dict[str, Any]] = []
    label = f"{settings.strategy}/{settings.aggregation}"
    with progress_bar(f"federated {label}", settings.rounds, enabled=progress) as advance:
        for rnd in range(settings.rounds):
            updates = []
            fits = []
            for i, c in enumerate(clients):
                factor = poisoned[1] if poisoned and poisoned[0] == c.name else None
                s, n, m = c.fit(state, round_settings(settings, rnd, seed, i), poison=factor)
                updates.append((s, n))
                fits.append(m)
            state = aggregate(updates, settings.aggregation, trim=settings.trim)
            evals = [c.evaluate(state) for c in clients]
            score = pooled_rmse(evals)
            history.append(
                {
                    "round": rnd + 1,
                    "validation_rmse": round(score, 4),
                    "plants": {
                        c.name: round(r, 4) for c, (r, _) in zip(clients, evals, strict=True)
                    },
                    "local_validation_rmse": {m["plant"]: m["validation_rmse"] for m in fits},
                }
            )
            if score < best[0]:
                best = (score, state, rnd + 1)
            advance(note=f"round {rnd + 1}: val RMSE {score:.2f} (best {best[0]:.2f})")
    return Federated(
        state=best[1],
        last_state=state,
        prep=prep,
        config=config,
        best_round=best[2],
        history=history,
        seconds=round(time.perf_counter() - started, 1),
    )
