"""Fixtures for the ML tests: small synthetic C-MAPSS files and the shipped models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ml.shipped import MODELS, SAMPLES

REPO = Path(__file__).resolve().parents[2]
RUL_MODEL = MODELS / "rul-fd001"
FAILURE_MODEL = MODELS / "failure-ai4i"
CMAPSS_SAMPLE = SAMPLES / "cmapss" / "test_FD001.txt"
AI4I_SAMPLE = SAMPLES / "ai4i" / "ai4i2020_sample.csv"

# Regime centres of the six-condition subsets (altitude kft, Mach, TRA).
REGIMES = np.array(
    [[0, 0, 100], [10, 0.25, 100], [20, 0.7, 100], [25, 0.62, 60], [35, 0.84, 100], [42, 0.84, 100]]
)


def synthetic_rows(
    n_engines: int, *, seed: int, conditions: int = 1, truncate: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Run-to-failure engines whose sensors drift with wear; (rows (n, 26), true RUL per engine).

    With `truncate`, each engine stops at a random cycle, as in a C-MAPSS test file, and the
    second array holds the cycles it had left.
    """
    rng = np.random.default_rng(seed)
    rows, ruls = [], []
    for unit in range(1, n_engines + 1):
        life = int(rng.integers(60, 140))
        stop = int(rng.integers(20, life)) if truncate else life
        t = np.arange(1, stop + 1)
        wear = np.exp((t - life) / 25.0)  # (stop,) grows towards failure
        regime = rng.integers(0, conditions, size=stop) if conditions > 1 else np.zeros(stop, int)
        settings = REGIMES[regime] + rng.normal(0, 0.001, size=(stop, 3))
        sensors = 100 + 10 * regime[:, None] + rng.normal(0, 0.3, size=(stop, 21))
        sensors[:, :14] += wear[:, None] * np.linspace(1, 3, 14)
        rows.append(np.column_stack([np.full(stop, unit), t, settings, sensors]))
        ruls.append(life - stop)
    return np.concatenate(rows), np.array(ruls)


def write_cmapss(path: Path, rows: np.ndarray) -> Path:
    lines = []
    for r in rows:
        lines.append(f"{int(r[0])} {int(r[1])} " + " ".join(f"{v:.4f}" for v in r[2:]) + "  ")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def cmapss_dir(tmp_path: Path) -> Path:
    """A folder with synthetic train_FD001.txt and test_FD001.txt (+ RUL_FD001.txt)."""
    train, _ = synthetic_rows(20, seed=1)
    test, rul = synthetic_rows(8, seed=2, truncate=True)
    write_cmapss(tmp_path / "train_FD001.txt", train)
    write_cmapss(tmp_path / "test_FD001.txt", test)
    (tmp_path / "RUL_FD001.txt").write_text("".join(f"{r}\n" for r in rul))
    return tmp_path
