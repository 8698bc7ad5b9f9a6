"""One module per task (`rul`, `failure`, `defect`, `demand`), each exposing the same three
functions:

    train(args: TrainArgs) -> dict            metrics of the saved model
    evaluate(args: EvalArgs) -> dict          one JSON-able object of metrics
    predict(args: PredictArgs) -> Iterator[dict]   prediction payloads, one per input

The CLI (ml/cli.py) only parses options and dispatches here, so a task module can be used from
Python (the API, the demo) exactly as the CLI uses it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ml.errors import MLInputError

TASKS = ("rul", "failure", "defect", "demand")


@dataclass(frozen=True, kw_only=True)
class TrainArgs:
    out: Path
    seed: int = 0
    data_dir: Path | None = None  # rul: folder with train_FD00x.txt / test_FD00x.txt
    subset: str | None = None  # rul: FD001..FD004
    csv: Path | None = None  # failure: AI4I 2020 CSV; demand: the weekly sales CSV
    images: Path | None = None  # defect: folder of NEU images, class = file-name prefix
    weeks: int | None = None  # demand: train on the first `weeks` weeks; None: the task's default
    epochs: int | None = None  # None: the task's default
    init_seed: int | None = None  # defect: random start of the weights; None: seed
    members: int | None = None  # defect: nets in the ensemble; None: the task's default
    progress: bool = True


@dataclass(frozen=True, kw_only=True)
class EvalArgs:
    model: Path
    data_dir: Path | None = None
    subset: str | None = None
    truth: Path | None = None  # rul: RUL_FD00x.txt, one true RUL per test engine
    csv: Path | None = None
    images: Path | None = None
    plots: Path | None = None  # folder for PNG plots; None: beside the model
    progress: bool = True


@dataclass(frozen=True, kw_only=True)
class PredictArgs:
    model: Path
    input: Path
    explain_dir: Path | None = None  # defect: folder for Grad-CAM PNGs; None: ./gradcam
    last_week: str | None = None  # demand: ISO week of the input's last column; None: last week
    progress: bool = True


def task_module(task: str) -> ModuleType:
    if task not in TASKS:
        raise MLInputError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return importlib.import_module(f"ml.tasks.{task}")
