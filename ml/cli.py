"""`forgeproof ml ...`: train, evaluate and predict.

This module only parses options and dispatches to `ml.tasks.<task>`; heavy imports (torch)
happen there, so the rest of the CLI starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from ml.errors import ManifestError, MLInputError
from ml.tasks import EvalArgs, PredictArgs, TrainArgs, task_module

app = typer.Typer(no_args_is_help=True, help="Train, evaluate and run the forgeproof models.")

Task = Annotated[str, typer.Option(help="rul | failure | defect | demand")]
OptPath = Annotated[Path | None, typer.Option()]


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2) from exc


@app.command()
def train(
    task: Task,
    out: Annotated[Path, typer.Option(help="model directory to write")],
    data_dir: OptPath = None,
    subset: Annotated[str | None, typer.Option(help="C-MAPSS subset, FD001..FD004")] = None,
    csv: OptPath = None,
    images: OptPath = None,
    seed: int = 0,
    epochs: Annotated[int | None, typer.Option(help="override the task's default")] = None,
    weeks: Annotated[
        int | None,
        typer.Option(help="demand: train on the first WEEKS weeks of the CSV (default 44)", min=6),
    ] = None,
    init_seed: Annotated[
        int | None,
        typer.Option(help="defect: random start of the weights and batches (default: --seed)"),
    ] = None,
    members: Annotated[
        int | None, typer.Option(help="defect: nets in an ensemble (default 1)", min=1)
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            help="fit the input profile on the training split and commit it in the manifest"
        ),
    ] = True,
) -> None:
    """Train a model and save weights plus manifest (and, by default, its input profile:
    `forgeproof ml profile` need not be run; `--check` of it then matches)."""
    args = TrainArgs(
        out=out,
        seed=seed,
        data_dir=data_dir,
        subset=subset,
        csv=csv,
        images=images,
        epochs=epochs,
        init_seed=init_seed,
        members=members,
        weeks=weeks,
    )
    try:
        metrics = task_module(task).train(args)
        if profile and task in PROFILED_TASKS:
            metrics = {**metrics, "input_profile": _fit_profile(task, args)}
    except (MLInputError, ManifestError, FileNotFoundError) as exc:
        _fail(exc)
    typer.echo(json.dumps(metrics, indent=2, sort_keys=True))


# Tasks whose predictions carry an input check (ml.profile). A demand forecast's input is the
# product's own history, whose digest the forecast record carries; there is no profile.
PROFILED_TASKS = ("rul", "failure", "defect")


def _fit_profile(task: str, args: TrainArgs) -> dict[str, str]:
    """Fit the freshly trained model's input profile on the data it was trained on (as
    `forgeproof ml profile` would from the data folder) and commit it in its manifest."""
    from ml.tasks.profiling import fit_profile_at, write_profile

    location = {"rul": args.data_dir, "failure": args.csv, "defect": args.images}[task]
    if location is None:
        raise MLInputError(f"{task}: no training data location to fit the input profile on")
    return write_profile(args.out, fit_profile_at(args.out, location))


MODEL_HELP = (
    "model directory, or the name of a shipped model "
    "(rul-fd001, failure-ai4i, defect-neu, demand-weekly)"
)


def _model(model: Path) -> Path:
    """A model directory as given, else the shipped model of that name.

    Raises:
        MLInputError: neither.
    """
    if model.is_dir() or len(model.parts) > 1:
        return model
    from ml.shipped import model_dir

    return model_dir(str(model))


@app.command()
def evaluate(
    task: Task,
    model: Annotated[Path, typer.Option(help=MODEL_HELP)],
    data_dir: OptPath = None,
    subset: Annotated[str | None, typer.Option()] = None,
    truth: OptPath = None,
    csv: OptPath = None,
    images: OptPath = None,
    plots: OptPath = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Evaluate a saved model on labelled data."""
    try:
        model = _model(model)
    except MLInputError as exc:
        _fail(exc)
    args = EvalArgs(
        model=model,
        data_dir=data_dir,
        subset=subset,
        truth=truth,
        csv=csv,
        images=images,
        plots=plots,
        progress=not as_json,
    )
    try:
        metrics = task_module(task).evaluate(args)
    except (MLInputError, ManifestError, FileNotFoundError) as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(metrics, sort_keys=True))
    else:
        for key, value in sorted(metrics.items()):
            typer.echo(f"{key:>20}  {value}")


@app.command()
def predict(
    model: Annotated[Path, typer.Option(help=MODEL_HELP)],
    input: Annotated[Path, typer.Option(help="input file (or folder of images)")],
    output: Annotated[Path | None, typer.Option("-o", "--output", help="JSON lines")] = None,
    explain_dir: Annotated[
        Path | None, typer.Option(help="defect: folder for Grad-CAM PNGs (default ./gradcam)")
    ] = None,
    last_week: Annotated[
        str | None,
        typer.Option(
            help="demand: ISO week (2026-W39) of the CSV's last column; default: last week"
        ),
    ] = None,
) -> None:
    """Write prediction payloads as JSON lines, ready for the ledger.

    An input that cannot be used gets an error record (with an "error" key) in its place, also
    reported on stderr; the others go on, and the exit code is 1 if there was any such record.
    A prediction whose input check flags its input (unlike the training inputs) is written
    with the flag, and the reasons are reported on stderr.
    """
    from ml.manifest import load_manifest

    failed = 0
    try:
        model = _model(model)
        manifest = load_manifest(model)
        args = PredictArgs(model=model, input=input, explain_dir=explain_dir, last_week=last_week)
        rows = task_module(manifest.task).predict(args)
        sink = output.open("w") if output else sys.stdout
        try:
            for row in rows:
                sink.write(json.dumps(row, sort_keys=True) + "\n")
                if "error" in row:
                    failed += 1
                    typer.secho(f"error: {row['error']}", fg=typer.colors.RED, err=True)
                check = row.get("input_check")
                if check and check["status"] == "flag":
                    what = row.get("asset_id") or row.get("image") or "input"
                    typer.secho(
                        f"flag: {what}: {'; '.join(check['reasons'])}",
                        fg=typer.colors.YELLOW,
                        err=True,
                    )
        finally:
            if output:
                sink.close()
    except (MLInputError, ManifestError, FileNotFoundError) as exc:
        _fail(exc)
    if failed:
        raise typer.Exit(1)


@app.command()
def profile(
    model: Annotated[Path, typer.Argument(help=MODEL_HELP)],
    data: Annotated[
        Path, typer.Option(help="data folder with cmapss/, ai4i2020/, neu-det/")
    ] = Path("../shared/data"),
    check: Annotated[
        bool, typer.Option("--check", help="compare with the committed profile, write nothing")
    ] = False,
) -> None:
    """Fit a model's input profile on its training split and commit it in its manifest."""
    from ml.manifest import load_manifest
    from ml.profile import PROFILE_FILE, profile_bytes
    from ml.tasks.profiling import fit_profile, write_profile

    try:
        model = _model(model)
        fitted = fit_profile(model, data)
        if check:
            committed = (
                (model / PROFILE_FILE).read_bytes() if (model / PROFILE_FILE).is_file() else b""
            )
            digest = load_manifest(model).input_profile_sha256
            import hashlib

            same = profile_bytes(fitted) == committed
            ok = same and digest == "0x" + hashlib.sha256(committed).hexdigest()
            typer.echo(json.dumps({"matches": ok, "profile_sha256": digest}, sort_keys=True))
            if not ok:
                raise typer.Exit(1)
            return
        out = write_profile(model, fitted)
    except (MLInputError, ManifestError, FileNotFoundError) as exc:
        _fail(exc)
    typer.echo(json.dumps(out, indent=2, sort_keys=True))


@app.command()
def report(
    section: Annotated[
        list[str] | None,
        typer.Option(help="rul | failure | defect | federated | demand (repeatable; default all)"),
    ] = None,
    data: Annotated[
        Path, typer.Option(help="data folder with cmapss/, ai4i2020/, neu-det/, demand/")
    ] = Path("../shared/data"),
    seeds: Annotated[
        str | None, typer.Option(help="comma-separated seeds (default: each section's own)")
    ] = None,
    quick: Annotated[bool, typer.Option(help="smoke run: fewer seeds and epochs")] = False,
    render_only: Annotated[
        bool, typer.Option("--render-only", help="rewrite the docs' tables, retrain nothing")
    ] = False,
) -> None:
    """Recompute every ML figure the docs quote (docs/results/*.json) and rewrite their tables.

    Retraining takes long (minutes for RUL, tens of minutes for the failure model, about half
    an hour a run for the defect model): pick sections with --section.
    """
    from ml import report as rep

    try:
        if not render_only:
            chosen = [int(s) for s in seeds.split(",")] if seeds else None
            for name in section or list(rep.SECTIONS):
                path = rep.run_section(name, data, seeds=chosen, quick=quick)
                typer.echo(f"wrote {path}", err=True)
        for path in rep.render_docs():
            typer.echo(f"rewrote {path}", err=True)
    except (MLInputError, FileNotFoundError, ValueError) as exc:
        _fail(exc)
