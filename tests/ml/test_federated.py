"""ml/federated.py: federated statistics, aggregation, update bytes and simulated rounds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ml import federated as fed
from ml.data.cmapss import (
    INFORMATIVE_SENSORS,
    Normalizer,
    OperatingConditions,
    Trajectories,
)
from ml.errors import MLInputError
from ml.federated.server import _trim_count
from tests.ml.conftest import synthetic_rows, write_cmapss


def _write_federation(folder: Path, *, fd001: int = 20, fd002: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_cmapss(folder / "train_FD001.txt", synthetic_rows(fd001, seed=1)[0])
    write_cmapss(folder / "train_FD002.txt", synthetic_rows(fd002, seed=3, conditions=6)[0])
    return folder


@pytest.fixture
def fed_dir(tmp_path: Path) -> Path:
    """Synthetic train_FD001.txt (one regime) and train_FD002.txt (six regimes)."""
    return _write_federation(tmp_path)


def _clients(data_dir: Path, seed: int = 0, **split: int) -> list[fed.PlantClient]:
    plants = fed.default_plants(data_dir, seed=seed, **split)
    return [fed.PlantClient.from_dir(p, data_dir, seed) for p in plants]


def test_default_plants_split_engines_by_plant(shared_dir: Path) -> None:
    cmapss = shared_dir / "data" / "cmapss"
    plants = fed.default_plants(cmapss, seed=0)
    assert [(p.name, p.subset, len(p.engines)) for p in plants] == [
        ("fd001", "FD001", 100),
        ("fd002-a", "FD002", 130),
        ("fd002-b", "FD002", 130),
    ]
    assert not set(plants[1].engines) & set(plants[2].engines)
    assert fed.default_plants(cmapss, seed=0) == plants
    assert fed.default_plants(cmapss, seed=1)[1] != plants[1]
    eight = fed.default_plants(cmapss, seed=0, fd001=2, fd002=6)
    assert len(eight) == 8 and sum(len(p.engines) for p in eight) == 360


def test_merged_normalisation_equals_pooled(fed_dir: Path) -> None:
    clients = _clients(fed_dir)
    stats = [c.stats() for c in clients]
    for s in stats:  # aggregates only: per regime, never per row
        k = len(s["centers"])
        assert s["sum"].shape == s["m2"].shape == (k, len(INFORMATIVE_SENSORS))
    prep = fed.merge_stats(stats)
    cond = prep.normalizer.conditions
    assert len(cond.centers) == 6  # FD001's regime is one of FD002's six

    rows = np.concatenate([c.traj.select(c.split["train"]).rows for c in clients])
    pooled = Trajectories(path=Path("pooled"), rows=rows, lines=np.arange(1, len(rows) + 1))
    central = Normalizer.fit(pooled, cond, INFORMATIVE_SENSORS)
    np.testing.assert_allclose(prep.normalizer.mean, central.mean, rtol=1e-10)
    np.testing.assert_allclose(prep.normalizer.std, central.std, rtol=1e-8)
    refit = OperatingConditions.fit(pooled, 6, seed=0)
    np.testing.assert_allclose(cond.centers, refit.centers, rtol=1e-10, atol=1e-12)


def test_merge_rejects_mismatched_sensors(fed_dir: Path) -> None:
    stats = [c.stats() for c in _clients(fed_dir)]
    stats[1]["sensors"] = stats[1]["sensors"][:-1]
    with pytest.raises(MLInputError, match="sensors differ"):
        fed.merge_stats(stats)
    with pytest.raises(MLInputError, match="no plant statistics"):
        fed.merge_stats([])


def _states(n: int, seed: int, scale: float = 1.0) -> list[fed.State]:
    rng = np.random.default_rng(seed)
    return [
        {
            "a.weight": (scale * rng.normal(size=(4, 3))).astype(np.float32),
            "b.bias": (scale * rng.normal(size=5)).astype(np.float32),
        }
        for _ in range(n)
    ]


def test_fedavg_of_identical_updates_is_the_identity_and_weights_by_windows() -> None:
    (s,) = _states(1, seed=0)
    for method in fed.AGGREGATIONS:
        out = fed.aggregate([(s, 5), (s, 7), (s, 1)], method)
        for k in s:
            np.testing.assert_allclose(out[k], s[k], rtol=1e-6)
    a, b = _states(2, seed=1)
    out = fed.aggregate([(a, 1), (b, 3)], "fedavg")
    for k in a:
        np.testing.assert_allclose(out[k], (a[k] + 3 * b[k]) / 4, rtol=1e-6)
        assert out[k].dtype == np.float32
    with pytest.raises(MLInputError, match="unknown aggregation"):
        fed.aggregate([(a, 1)], "mean")
    with pytest.raises(MLInputError, match="different weight names"):
        fed.aggregate([(a, 1), ({"a.weight": a["a.weight"]}, 1)])


def test_robust_aggregation_dampens_a_poisoned_update() -> None:
    (g,) = _states(1, seed=2)
    (common,) = _states(1, seed=3, scale=0.01)  # the honest plants roughly agree on a step
    noise = _states(6, seed=5, scale=0.001)
    steps = [{k: common[k] + n[k] for k in g} for n in noise]
    honest = [{k: g[k] + st[k] for k in g} for st in steps[:5]]
    bad = fed.poisoned({k: g[k] + steps[5][k] for k in g}, g, -10.0)
    target = fed.aggregate([(s, 100) for s in honest], "fedavg")

    def distance(state: fed.State) -> float:
        return float(np.sqrt(sum(np.sum((state[k] - target[k]) ** 2) for k in state)))

    updates = [(s, 100) for s in honest] + [(bad, 100)]
    plain = distance(fed.aggregate(updates, "fedavg"))
    trimmed = distance(fed.aggregate(updates, "trimmed"))
    median = distance(fed.aggregate(updates, "median"))
    assert plain > 0.04  # the poisoned step is 10 honest steps long, a sixth of it stays
    assert trimmed < plain / 5 and median < plain / 5
    # A plant that blows up its window count drags FedAvg further, the median not at all.
    assert distance(fed.aggregate([*updates[:5], (bad, 10_000)], "median")) == median


def test_trim_count() -> None:
    assert [_trim_count(n, 0.2) for n in (1, 2, 3, 4, 5, 6, 10, 11)] == [
        0, 0, 1, 1, 1, 1, 2, 2,
    ]  # fmt: skip


def test_update_bytes_round_trip_and_determinism() -> None:
    (s,) = _states(1, seed=4)
    data = fed.update_bytes(s)
    assert data == fed.update_bytes(dict(reversed(list(s.items()))))
    assert data == fed.update_bytes({k: v.astype(np.float64) for k, v in s.items()})
    back = fed.load_update(data)
    assert list(back) == sorted(s)
    for k in s:
        assert back[k].dtype == np.float32
        np.testing.assert_array_equal(back[k], s[k])
    assert fed.update_bytes(back) == data


def test_local_settings_travel_as_a_flat_config() -> None:
    settings = fed.LocalSettings(epochs=3, lr=5e-4, mu=10.0, seed=42)
    config = settings.to_config()
    assert all(isinstance(v, int | float) for v in config.values())
    assert fed.LocalSettings.from_config(json.loads(json.dumps(config))) == settings


def test_local_fit_is_deterministic_and_fedprox_stays_closer(fed_dir: Path) -> None:
    (client,) = [c for c in _clients(fed_dir) if c.name == "fd001"]
    client.prepare(fed.merge_stats([client.stats()]))
    assert client.config is not None
    start = fed.initial_state(client.config, seed=0)
    base = fed.LocalSettings(epochs=2, lr=3e-3, seed=7)
    one, n, metrics = client.fit(start, base)
    again = client.fit(start, base)[0]
    assert fed.update_bytes(one) == fed.update_bytes(again)
    assert n == len(client.data["train"][1]) and np.isfinite(metrics["validation_rmse"])

    def moved(state: fed.State) -> float:
        return float(sum(np.sum((state[k] - start[k]) ** 2) for k in state))

    prox = client.fit(start, fed.LocalSettings(epochs=2, lr=3e-3, seed=7, mu=1e4))[0]
    assert moved(prox) < moved(one)


def test_simulation_runs_rounds_on_three_plants(fed_dir: Path) -> None:
    clients = _clients(fed_dir)
    settings = fed.FedSettings(rounds=2, local_epochs=1, strategy="fedprox", mu=10.0)
    sim = fed.simulate(clients, settings, seed=0)
    assert [h["round"] for h in sim.history] == [1, 2]
    assert set(sim.history[0]["plants"]) == {"fd001", "fd002-a", "fd002-b"}
    assert sim.best_round in (1, 2)
    assert len(sim.prep.normalizer.conditions.centers) == 6
    # The federated model is an ordinary RUL model of the recipe's preprocessing.
    metrics = clients[0].test(sim.model())
    assert metrics["n_engines"] == len(clients[0].split["holdout"]) and metrics["rmse"] >= 0
    with pytest.raises(MLInputError, match="not one of"):
        fed.simulate(clients, settings, seed=0, poisoned=("nowhere", -1.0))
    with pytest.raises(MLInputError, match="unknown strategy"):
        fed.FedSettings(strategy="scaffold")


def test_a_poisoned_plant_ruins_fedavg_but_not_the_trimmed_mean(tmp_path: Path) -> None:
    data = _write_federation(tmp_path, fd001=20, fd002=40)
    clients = _clients(data, fd001=1, fd002=3)  # four plants, so one is a minority
    prep = fed.merge_stats([c.stats() for c in clients])
    final = {}
    for agg in ("fedavg", "trimmed"):
        sim = fed.simulate(
            clients,
            fed.FedSettings(aggregation=agg, rounds=3, local_epochs=2, lr=3e-3),
            seed=0,
            prep=prep,
            poisoned=("fd002-a", -10.0),
        )
        final[agg] = fed.pooled_rmse([c.evaluate(sim.last_state) for c in clients])
    assert final["fedavg"] > 2 * final["trimmed"], final


def _quick_results(tmp_path: Path) -> dict:
    _write_federation(tmp_path / "cmapss", fd001=20, fd002=40)
    return fed.report(tmp_path, seeds=[0, 1], quick=True, progress=False)


def test_report_runs_and_its_tables_render(tmp_path: Path) -> None:
    results = json.loads(json.dumps(_quick_results(tmp_path)))  # JSON-able
    assert results["seeds"] == [0, 1] and len(results["runs"]) == 2
    run = results["runs"][0]
    assert set(run["models"]) == {
        "central", "fedavg", "fedprox", "local:fd001", "local:fd002-a", "local:fd002-b",
    }  # fmt: skip
    assert set(run["robustness"]["runs"]) == {
        f"{a}:{k}" for a in fed.AGGREGATIONS for k in ("clean", "poisoned")
    }
    tables = fed.report_tables(results)
    assert set(tables) == {"results", "checks", "versus_local", "training", "robustness"}
    assert "mean ± sd" in tables["results"] and "(own)" in tables["results"]
    assert tables["checks"].count("\n") == 2 + 3  # header, rule, a row per plant
    assert tables["versus_local"].count("/2 seeds)") == 2 * 3  # FedAvg, FedProx per plant
    assert "fd002-a sends -10 × its step" in tables["robustness"]
