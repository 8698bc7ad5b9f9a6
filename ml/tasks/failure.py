"""Machine-failure risk on AI4I 2020: train, evaluate and predict (see ml/tasks/__init__.py).

Cross-validation is stratified 5-fold and leakage-free: in each outer fold, the scaler, the
choice of feature pairs, the ensemble members and the decision threshold are all fitted on the
four training folds only (the threshold maximises F1 on the members' out-of-fold predictions
within those folds), and the fifth fold is scored once. The shipped model repeats the same fit
on all rows.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml._progress import Advance, progress
from ml.data import ai4i
from ml.errors import MLInputError
from ml.models.failure import FailureConfig, FailureEnsemble, FailureNet, rank_pairs
from ml.predict import failure_probabilities
from ml.tasks import EvalArgs, PredictArgs, TrainArgs

OUTER_FOLDS = 5


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    steps: int = 800  # full-batch Adam steps per member (a few thousand rows fit in memory)
    lr: float = 5e-2
    unary_steps: int = 300  # the unary model whose residuals rank the feature pairs
    max_pairs: int = 8  # feature pairs given corner units


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def best_f1_threshold(labels: np.ndarray, prob: np.ndarray) -> float:
    """The probability threshold with the highest F1 on (labels, prob).

    Raises:
        MLInputError: there is no positive label (F1 is undefined).
    """
    if labels.sum() == 0:
        raise MLInputError("no failures among the training rows: cannot choose a threshold")
    order = np.argsort(-prob, kind="stable")
    p, y = prob[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    f1 = 2 * tp / (tp + fp + y.sum())  # predicting the top k rows positive
    last_of_tie = np.r_[p[1:] != p[:-1], True]  # a threshold keeps ties together
    k = int(np.argmax(np.where(last_of_tie, f1, -1)))
    return float(p[k])


def classification_metrics(
    labels: np.ndarray, prob: np.ndarray, threshold: float
) -> dict[str, Any]:
    from sklearn.metrics import (
        average_precision_score,
        f1_score,
        precision_score,
        recall_score,
        roc_auc_score,
    )

    pred = prob >= threshold
    return {
        "f1": round(float(f1_score(labels, pred, zero_division=0)), 4),
        "pr_auc": round(float(average_precision_score(labels, prob)), 4),
        "roc_auc": round(float(roc_auc_score(labels, prob)), 4),
        "precision": round(float(precision_score(labels, pred, zero_division=0)), 4),
        "recall": round(float(recall_score(labels, pred, zero_division=0)), 4),
        "n_rows": len(labels),
        "n_failures": int(labels.sum()),
    }


def _fit_member(
    x: np.ndarray, y: np.ndarray, config: FailureConfig, settings: TrainSettings, seed: int
) -> FailureNet:
    torch.manual_seed(seed)
    member = FailureNet(config)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.float32))
    member.init_thresholds(xt)
    opt = torch.optim.Adam(member.parameters(), lr=settings.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=settings.steps)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    member.train()
    for _ in range(settings.steps):
        loss = loss_fn(member(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return member.eval()


def fit_ensemble(
    raw: np.ndarray,
    labels: np.ndarray,
    config: FailureConfig,
    settings: TrainSettings,
    *,
    seed: int,
    advance: Advance,
) -> tuple[FailureEnsemble, ai4i.Scaler, float, float]:
    """Fit scaler, feature pairs, members (each on all but one inner fold) and the F1
    threshold. `config.pairs` is replaced by the pairs chosen here.

    Returns (ensemble, scaler, threshold, out-of-fold F1 at that threshold).
    """
    features = ai4i.engineer(raw)
    scaler = ai4i.Scaler.fit(features)
    x = scaler.transform(features)
    unary = _fit_member(
        x,
        labels,
        replace(config, pairs=()),
        replace(settings, steps=settings.unary_steps),
        seed * 1000 + config.members,
    )
    with torch.inference_mode():
        prob = torch.sigmoid(unary(torch.from_numpy(x))).numpy()
    pairs = rank_pairs(x, labels, prob, n_linear=config.n_linear)[: settings.max_pairs]
    config = replace(config, pairs=tuple(pairs))
    advance()
    ensemble = FailureEnsemble(config)
    oof = np.zeros(len(labels))
    for k, held in enumerate(ai4i.stratified_folds(labels, config.members, seed)):
        keep = np.setdiff1d(np.arange(len(labels)), held)
        member = _fit_member(x[keep], labels[keep], config, settings, seed * 1000 + k)
        ensemble.members[k].load_state_dict(member.state_dict())
        with torch.inference_mode():
            oof[held] = torch.sigmoid(member(torch.from_numpy(x[held]))).numpy()
        advance()
    ensemble.eval()
    threshold = best_f1_threshold(labels, oof)
    tp = float(np.sum((oof >= threshold) & (labels == 1)))
    oof_f1 = 2 * tp / (np.sum(oof >= threshold) + labels.sum())
    return ensemble, scaler, threshold, float(oof_f1)


def cross_validate(
    rows: ai4i.Rows, config: FailureConfig, settings: TrainSettings, *, seed: int, show: bool
) -> dict[str, Any]:
    """Stratified, leakage-free outer cross-validation (see the module docstring)."""
    assert rows.labels is not None
    labels = rows.labels
    folds = ai4i.stratified_folds(labels, OUTER_FOLDS, seed)
    per_fold = []
    with progress("cross-validation", OUTER_FOLDS * (config.members + 1), enabled=show) as advance:
        for i, test in enumerate(folds):
            train = np.setdiff1d(np.arange(len(labels)), test)
            model, scaler, threshold, _ = fit_ensemble(
                rows.raw[train],
                labels[train],
                config,
                settings,
                seed=seed * 10 + i,
                advance=advance,
            )
            prob = failure_probabilities(model, scaler, rows.raw[test])
            per_fold.append(
                {
                    **classification_metrics(labels[test], prob, threshold),
                    "threshold": round(threshold, 4),
                }
            )
    summary: dict[str, Any] = {"folds": per_fold}
    for key in ("f1", "pr_auc", "roc_auc", "precision", "recall"):
        values = np.array([f[key] for f in per_fold])
        summary[f"{key}_mean"] = round(float(values.mean()), 4)
        summary[f"{key}_std"] = round(float(values.std()), 4)
    return summary


def train(args: TrainArgs) -> dict[str, Any]:
    """Cross-validate, then fit on every row of `args.csv` and save the model in `args.out`."""
    from ml.manifest import data_digests, save_model

    if args.csv is None:
        raise MLInputError("train --task failure needs --csv")
    rows = ai4i.read_rows(Path(args.csv), require_labels=True)
    assert rows.labels is not None
    config = FailureConfig(n_features=len(ai4i.FEATURE_NAMES))
    settings = TrainSettings()
    if args.epochs:  # steps per member; the unary ranking model gets half as many
        settings = TrainSettings(steps=args.epochs, unary_steps=max(1, args.epochs // 2))
    started = time.perf_counter()
    set_seed(args.seed)
    cv = cross_validate(rows, config, settings, seed=args.seed, show=args.progress)
    with progress("final model", config.members + 1, enabled=args.progress) as advance:
        model, scaler, threshold, oof_f1 = fit_ensemble(
            rows.raw,
            rows.labels,
            config,
            settings,
            seed=args.seed * 10 + OUTER_FOLDS,
            advance=advance,
        )
    metrics = {
        "protocol": f"stratified {OUTER_FOLDS}-fold cross-validation, "
        "everything fitted inside the training folds",
        "f1": cv["f1_mean"],
        "pr_auc": cv["pr_auc_mean"],
        "roc_auc": cv["roc_auc_mean"],
        "n_rows": len(rows),
        "n_failures": int(rows.labels.sum()),
        "cv": cv,
        "final_oof_f1": round(oof_f1, 4),
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    name = "failure-ai4i"
    manifest = save_model(
        Path(args.out),
        model.state_dict(),
        name=name,
        task="failure",
        architecture="FailureEnsemble: mean probability of additive networks of learned soft "
        "thresholds and pairwise corners (ml/models/failure.py)",
        config={
            "model": model.config.to_dict(),
            "training": {
                **asdict(settings),
                "seed": args.seed,
                "loss": "binary cross-entropy on Machine failure",
                "optimizer": "Adam full batch, cosine decay; member k trained without inner fold k",
                "pair_rule": "top max_pairs by residual score of a unary model (rank_pairs)",
            },
            "threshold": threshold,
            "threshold_rule": "maximum F1 on the members' out-of-fold predictions",
        },
        training_data=data_digests([Path(args.csv)]),
        preprocessing={
            "inputs": list(ai4i.RAW_INPUT_NAMES),
            "features": list(ai4i.FEATURE_NAMES),
            "excluded_columns": ["UDI", ai4i.ID_COLUMN, *ai4i.LEAKAGE_COLUMNS],
            "scaler": scaler.to_dict(),
        },
        metrics=metrics,
    )
    return {"model": name, "out": str(args.out), "manifest_digest": manifest.digest(), **metrics}


def evaluate(args: EvalArgs) -> dict[str, Any]:
    """F1 at the model's threshold, PR-AUC and ROC-AUC on a labelled AI4I CSV."""
    from ml.predict import FailurePredictor

    if args.csv is None:
        raise MLInputError("evaluate --task failure needs --csv")
    predictor = FailurePredictor.from_dir(Path(args.model))
    rows = ai4i.read_rows(Path(args.csv), require_labels=True)
    assert rows.labels is not None
    if rows.labels.min() == rows.labels.max():
        raise MLInputError(
            f"{args.csv}: every row has Machine failure = {rows.labels[0]}, expected both classes"
        )
    with progress("evaluating", 1, enabled=args.progress) as advance:
        prob = predictor.predict_proba(rows.raw)
        advance()
    metrics = classification_metrics(rows.labels, prob, predictor.threshold)
    metrics["threshold"] = round(predictor.threshold, 4)
    metrics["model"] = predictor.manifest.name
    plots = Path(args.plots) if args.plots else Path(args.model) / "plots"
    metrics["plots"] = [str(write_pr_plot(rows.labels, prob, predictor.threshold, plots))]
    return metrics


def write_pr_plot(labels: np.ndarray, prob: np.ndarray, threshold: float, folder: Path) -> Path:
    """Precision-recall curve with the operating point, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    folder.mkdir(parents=True, exist_ok=True)
    precision, recall, _ = precision_recall_curve(labels, prob)
    pred = prob >= threshold
    tp = float(np.sum(pred & (labels == 1)))
    op_p = tp / max(1.0, float(pred.sum()))
    op_r = tp / float(labels.sum())
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=110)
    ax.plot(recall, precision, color="tab:blue", lw=1.5, label="precision-recall curve")
    ax.plot([op_r], [op_p], "o", color="tab:red", label=f"threshold {threshold:.2f}")
    ax.axhline(labels.mean(), color="grey", lw=1, ls="--", label=f"base rate {labels.mean():.3f}")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Machine failure, {len(labels)} rows")
    ax.legend(loc="lower left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = folder / "failure_pr_curve.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def predict(args: PredictArgs) -> Iterator[dict[str, Any]]:
    """One failure-risk payload per row of an AI4I-format CSV (labels optional)."""
    from ml.predict import FailurePredictor

    predictor = FailurePredictor.from_dir(Path(args.model))
    rows = ai4i.read_rows(Path(args.input), require_labels=False)
    yield from predictor.predict_rows(rows, progress_bar=args.progress)
