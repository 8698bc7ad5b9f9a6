"""The plant's side of the federation (ml/federated/__init__.py): its engines and split, the
statistics it shares, and its local training step. Nothing here sends a row anywhere."""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.data.cmapss import (
    INFORMATIVE_SENSORS,
    OperatingConditions,
    Preprocessing,
    Trajectories,
    read_trajectories,
    subset_files,
    subset_layout,
)
from ml.errors import MLInputError
from ml.models.rul import RULConfig, RULNet
from ml.predict import rul_predictions
from ml.tasks.rul import (
    MIN_CYCLES,
    Recipe,
    all_window_ends,
    engine_lengths,
    fit_truncation,
    holdout_report,
    rmse,
    split_engines,
    targets,
)
from ml.truncation import Truncation

State = dict[str, np.ndarray]
RECIPE = Recipe()  # the shipped input design (window, pooling, baseline)
LOCAL_EPOCHS = 1  # chosen on tuning seed 10 with the server's ROUNDS and MU


# ---------------------------------------------------------------------------- plants and data


@dataclass(frozen=True)
class Plant:
    """A plant: a name, the C-MAPSS subset its engines fly, and which engines of that file."""

    name: str
    subset: str
    engines: tuple[int, ...]


def _read(path: Path) -> Trajectories:
    """The file, parsed once per version of it (plants and the report read it repeatedly)."""
    path = Path(path)
    return _read_version(path, path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_version(path: Path, mtime_ns: int) -> Trajectories:
    return read_trajectories(path)


def _parts(ids: Sequence[int], n: int, seed: int, stream: int) -> list[tuple[int, ...]]:
    order = np.array(sorted(ids))
    np.random.default_rng([seed, stream]).shuffle(order)
    return [tuple(sorted(int(u) for u in part)) for part in np.array_split(order, n)]


def default_plants(data_dir: Path, *, seed: int = 0, fd001: int = 1, fd002: int = 2) -> list[Plant]:
    """The federation: FD001's training engines cut into `fd001` plants and FD002's into
    `fd002` plants, by engine, shuffled with the seed. The default is three plants: "fd001"
    (all FD001 engines, one operating condition) and "fd002-a", "fd002-b" (six conditions)."""
    plants = []
    for subset, n, stream in (("FD001", fd001, 7), ("FD002", fd002, 8)):
        if n < 1:
            continue
        train_file, _ = subset_files(Path(data_dir), subset)
        parts = _parts(_read(train_file).engine_ids(), n, seed, stream)
        for i, part in enumerate(parts):
            name = subset.lower() if n == 1 else f"{subset.lower()}-{chr(ord('a') + i)}"
            plants.append(Plant(name=name, subset=subset, engines=part))
    return plants


def model_config(prep: Preprocessing, recipe: Recipe = RECIPE) -> RULConfig:
    """The network every party trains: the recipe's RULNet for this preprocessing."""
    return RULConfig(
        n_features=len(prep.channels),
        window=prep.window,
        input_pool=recipe.input_pool,
        target_scale=prep.cap,
    )


def model_from_state(state: Mapping[str, np.ndarray], config: RULConfig) -> RULNet:
    model = RULNet(config)
    model.load_state_dict({k: torch.from_numpy(np.array(v, np.float32)) for k, v in state.items()})
    model.eval()
    return model


def state_of(model: RULNet) -> State:
    return {k: v.detach().numpy().astype(np.float32).copy() for k, v in model.state_dict().items()}


def update_bytes(state: Mapping[str, np.ndarray]) -> bytes:
    """The weights as safetensors bytes: float32, keys sorted, no metadata — the same state
    gives the same bytes (what the ledger hashes)."""
    from safetensors.numpy import save

    return bytes(save({k: np.ascontiguousarray(state[k], dtype=np.float32) for k in sorted(state)}))


def load_update(data: bytes) -> State:
    """Weights from `update_bytes`."""
    from safetensors.numpy import load

    return {k: np.asarray(v) for k, v in sorted(load(data).items())}


# ------------------------------------------------------------------------------- client side


@dataclass(frozen=True, kw_only=True)
class LocalSettings:
    """What the server sends with the global weights for one round (plain scalars, so they fit
    a Flower config dict: `to_config` / `from_config`)."""

    epochs: int = LOCAL_EPOCHS
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 256
    mu: float = 0.0  # FedProx proximal weight; 0 is FedAvg's local step
    seed: int = 0  # the client's RNG for shuffling and dropout this round

    def to_config(self) -> dict[str, float | int]:
        return dict(asdict(self))

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> LocalSettings:
        return cls(
            epochs=int(config["epochs"]),
            lr=float(config["lr"]),
            weight_decay=float(config["weight_decay"]),
            batch_size=int(config["batch_size"]),
            mu=float(config["mu"]),
            seed=int(config["seed"]),
        )


Windows = tuple[np.ndarray, np.ndarray]


def local_fit(
    global_state: Mapping[str, np.ndarray],
    train: Windows,
    validation: Windows,
    config: RULConfig,
    settings: LocalSettings,
) -> tuple[State, int, float]:
    """`settings.epochs` epochs of AdamW from the global weights on this plant's training
    windows; FedProx (`mu` > 0) adds mu/2 ||w - w_global||^2 to the loss. Deterministic given
    `settings.seed`. Returns (new weights, training windows, validation RMSE of the new
    weights)."""
    torch.manual_seed(settings.seed)
    gen = torch.Generator().manual_seed(settings.seed)
    model = model_from_state(global_state, config)
    anchor = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    x = torch.from_numpy(train[0])
    y = torch.from_numpy(train[1])
    for _ in range(settings.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), settings.batch_size):
            idx = perm[i : i + settings.batch_size]
            loss = torch.mean((model(x[idx]) - y[idx]) ** 2)
            if settings.mu > 0:
                prox = sum(
                    torch.sum((p - a) ** 2) for p, a in zip(model.parameters(), anchor, strict=True)
                )
                loss = loss + settings.mu / 2 * prox
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    score = rmse(rul_predictions(model, validation[0], cap=config.target_scale), validation[1])
    return state_of(model), len(x), score


def poisoned(
    state: Mapping[str, np.ndarray], global_state: Mapping[str, np.ndarray], factor: float
) -> State:
    """A malicious update: the honest step from the global weights scaled by `factor` (-1 flips
    its sign, 10 blows it up)."""
    return {
        k: (global_state[k] + factor * (state[k] - global_state[k])).astype(np.float32)
        for k in state
    }


class PlantClient:
    """One plant's side: its engines, its split, and what it answers the server. Its rows never
    leave it; `stats`, `fit`, `evaluate` and `test` return aggregates, weights and metrics."""

    def __init__(
        self,
        plant: Plant,
        traj: Trajectories,
        seed: int,
        truncation: Truncation | None = None,
        *,
        recipe: Recipe = RECIPE,
    ) -> None:
        self.plant = plant
        self.seed = seed
        self.recipe = recipe
        self.traj = traj.select(plant.engines)
        missing = sorted(set(plant.engines) - set(self.traj.engine_ids()))
        if missing:
            raise MLInputError(f"plant {plant.name}: engines {missing} are not in {traj.path}")
        self.split = split_engines(list(plant.engines), seed)
        self.truncation = truncation or Truncation.uniform(MIN_CYCLES, "no test file given")
        self.prep: Preprocessing | None = None
        self.config: RULConfig | None = None
        self.data: dict[str, Windows] = {}

    @classmethod
    def from_dir(
        cls, plant: Plant, data_dir: Path, seed: int, *, recipe: Recipe = RECIPE
    ) -> PlantClient:
        """The plant's engines from `train_<subset>.txt` in `data_dir`; held-out engines are
        cut as the subset's test file cuts its engines (uniformly when there is none)."""
        train_file, test_file = subset_files(Path(data_dir), plant.subset)
        traj = _read(train_file)
        client = cls(plant, traj, seed, recipe=recipe)
        client.truncation = fit_truncation(client.traj, client.split["train"], test_file)
        return client

    @property
    def name(self) -> str:
        return self.plant.name

    def stats(self) -> dict[str, Any]:
        """Regime centres of the training engines' settings and, per regime, count, sum and
        centred sum of squares (`m2`) of each informative sensor: all the server needs to
        build the global normaliser."""
        train = self.traj.select(self.split["train"])
        k = subset_layout(self.plant.subset).conditions
        cond = OperatingConditions.fit(train, k, subset=self.plant.subset, seed=self.seed)
        labels = cond.assign(train)
        values = train.sensors(INFORMATIVE_SENSORS)
        count = np.bincount(labels, minlength=k).astype(np.int64)
        sums = np.stack([values[labels == j].sum(axis=0) for j in range(k)])
        means = sums / np.maximum(count, 1)[:, None]
        m2 = np.stack([((values[labels == j] - means[j]) ** 2).sum(axis=0) for j in range(k)])
        return {
            "plant": self.name,
            "sensors": list(INFORMATIVE_SENSORS),
            "centers": cond.centers,
            "count": count,
            "sum": sums,
            "m2": m2,
        }

    def prepare(self, prep: Preprocessing) -> None:
        """Take the global preprocessing and build this plant's training and validation
        windows with it."""
        self.prep = prep
        self.config = model_config(prep, self.recipe)
        self.data = {}
        for part in ("train", "validation"):
            lengths = engine_lengths(self.traj, self.split[part])
            ends = all_window_ends(lengths, prep.min_cycles)
            self.data[part] = (prep.windows(self.traj, ends), targets(lengths, ends, prep.cap))

    def ready(self) -> tuple[Preprocessing, RULConfig]:
        if self.prep is None or self.config is None:
            raise MLInputError(f"plant {self.name}: no preprocessing yet (call prepare first)")
        return self.prep, self.config

    def fit(
        self,
        global_state: Mapping[str, np.ndarray],
        settings: LocalSettings,
        *,
        poison: float | None = None,
    ) -> tuple[State, int, dict[str, Any]]:
        """One round: `local_fit` from the global weights. Returns (weights, training windows,
        metrics). `poison` (tests and experiments only) scales the step, see `poisoned`."""
        _, config = self.ready()
        started = time.perf_counter()
        state, n, score = local_fit(
            global_state, self.data["train"], self.data["validation"], config, settings
        )
        if poison is not None:
            state = poisoned(state, global_state, poison)
        return (
            state,
            n,
            {
                "plant": self.name,
                "validation_rmse": round(score, 4),
                "seconds": round(time.perf_counter() - started, 2),
            },
        )

    def evaluate(self, global_state: Mapping[str, np.ndarray]) -> tuple[float, int]:
        """(RMSE of the global weights on this plant's validation windows, their number)."""
        _, config = self.ready()
        x, y = self.data["validation"]
        model = model_from_state(global_state, config)
        return rmse(rul_predictions(model, x, cap=config.target_scale), y), len(y)

    def test(self, model: RULNet, prep: Preprocessing | None = None) -> dict[str, Any]:
        """Held-out metrics of `model` (with `prep`, default the global one) on this plant's
        held-out engines: `ml.tasks.rul.holdout_report`, test-like cuts."""
        prep = prep or self.ready()[0]
        metrics, _ = holdout_report(
            model, prep, self.traj, self.split["holdout"], self.seed, self.truncation
        )
        return metrics
