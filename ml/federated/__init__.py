"""Federated RUL training across plants: the ML core under the Flower rounds (issue #20).

Modules: `client` (a plant's side), `server` (the operator's side and `simulate`),
`experiment` (the report and the tuning); every public name is re-exported here.

Plants share a model, never their rows. Each plant holds C-MAPSS engines of its own (one plant
flies FD001's single operating condition, others FD002's six: non-IID by construction) and
splits them train / validation / holdout by seed exactly as `ml.tasks.rul.fit` does.

What crosses the boundary, and who computes it (each function is one side's, stateless enough
to run in separate processes: a Flower client wraps `PlantClient` (`client`), a Flower server
calls the functions of `server`):

  1. normalisation, federated: each plant sends `PlantClient.stats()` — the regime centres of
     its training engines' settings (k-means as `OperatingConditions.fit`, k from its subset's
     layout) and, per regime, the count, sum and centred sum of squares of every informative
     sensor. `merge_stats` (server) matches regimes within `SETTING_TOLERANCE` (FD001's sea-level
     regime is one of FD002's six), merges the moments exactly (Chan et al.) and returns an
     ordinary `Preprocessing`, equal to the one fitted on the pooled training rows;
  2. rounds: the server sends the global weights and a `LocalSettings` (plain scalars: epochs,
     learning rate of this round, FedProx mu, RNG seed); `PlantClient.fit` runs `local_fit` —
     a few epochs of the recipe's AdamW from the global weights, FedProx adding
     mu/2 ||w - w_global||^2 — and returns (weights, training windows, validation RMSE);
  3. `aggregate` (server): FedAvg (weighted by windows), or the robust coordinate-wise trimmed
     mean / median, which a plant sending a poisoned update cannot drag far;
  4. `PlantClient.evaluate` returns the global model's RMSE on the plant's validation engines
     (a number, not the engines); the server keeps the round with the best pooled validation
     RMSE, as central training keeps its best epoch. `PlantClient.test` scores a model on the
     plant's held-out engines with the recipe's test-like protocol.

Weights travel as `update_bytes` (safetensors, float32, keys sorted: the bytes the ledger
hashes) and come back with `load_update`. `simulate` drives the same functions in one process.
The report (`forgeproof ml report --section federated`) compares the federated model with a
central model on all plants' training engines and with each plant's local-only model.
"""

from ml.federated.client import (
    LOCAL_EPOCHS,
    RECIPE,
    LocalSettings,
    Plant,
    PlantClient,
    State,
    Windows,
    default_plants,
    load_update,
    local_fit,
    model_config,
    model_from_state,
    poisoned,
    state_of,
    update_bytes,
)
from ml.federated.experiment import (
    POISON,
    REPORT_SEEDS,
    ROBUST_PLANTS,
    ROBUST_ROUNDS,
    TUNING_GRID,
    TUNING_SEED,
    fit_central,
    fit_local,
    report,
    report_tables,
    robustness_runs,
    run_seed,
    tune,
)
from ml.federated.server import (
    AGGREGATIONS,
    MU,
    ROUNDS,
    STRATEGIES,
    TRIM,
    Federated,
    FedSettings,
    aggregate,
    initial_state,
    merge_stats,
    pooled_rmse,
    round_settings,
    simulate,
)

__all__ = [
    "AGGREGATIONS",
    "LOCAL_EPOCHS",
    "MU",
    "POISON",
    "RECIPE",
    "REPORT_SEEDS",
    "ROBUST_PLANTS",
    "ROBUST_ROUNDS",
    "ROUNDS",
    "STRATEGIES",
    "TRIM",
    "TUNING_GRID",
    "TUNING_SEED",
    "FedSettings",
    "Federated",
    "LocalSettings",
    "Plant",
    "PlantClient",
    "State",
    "Windows",
    "aggregate",
    "default_plants",
    "fit_central",
    "fit_local",
    "initial_state",
    "load_update",
    "local_fit",
    "merge_stats",
    "model_config",
    "model_from_state",
    "poisoned",
    "pooled_rmse",
    "report",
    "report_tables",
    "robustness_runs",
    "round_settings",
    "run_seed",
    "simulate",
    "state_of",
    "tune",
    "update_bytes",
]
