"""Steel-surface defect classification on NEU images: train, evaluate, predict.

Training cuts a class-stratified split of the image folder: `train` fits the weights,
`validation` picks the epoch (early stopping), the softmax temperature and the review threshold,
and `test` is used for nothing but the numbers reported in the manifest. With
`TrainConfig.members` > 1, that many nets are trained on the same split from different random
starts (`fit`), then `assemble` averages them into an ensemble and makes the validation-time
choices for the whole (more accurate on average, slower by the number of members).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix, f1_score

from ml.calibration import (
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    plot_reliability,
    reliability,
)
from ml.data.neu import (
    CLASSES,
    IMAGE_SIZE,
    PERTURBATIONS,
    AugmentConfig,
    LabelledImages,
    Split,
    augment,
    list_images,
    load_folder,
    perturb,
    preprocess,
    stratified_split,
)
from ml.errors import ManifestError, MLInputError
from ml.inspection import TTA_VIEWS, DefectPredictor, view_logits
from ml.manifest import (
    ModelManifest,
    data_digests,
    load_manifest,
    load_tensors,
    save_model,
)
from ml.models.defect import (
    DefectEnsemble,
    DefectModel,
    DefectNet,
    DefectNetConfig,
    build_model,
    n_parameters,
)
from ml.shipped import MODELS as MODELS_DIR
from ml.tasks import EvalArgs, PredictArgs, TrainArgs

MODEL_NAME = "defect-neu"
ARCHITECTURE = "DefectNet: residual CNN (4 stages of basic blocks), grey input, from scratch"


def architecture(config: DefectNetConfig) -> str:
    if config.members == 1:
        return ARCHITECTURE
    return (
        f"ensemble of {config.members} nets trained from different random starts, logits "
        f"averaged; each a {ARCHITECTURE}"
    )


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 80
    members: int = 1  # > 1: nets trained from different random starts, averaged by `assemble`
    batch_size: int = 48
    lr: float = 4e-3  # OneCycle peak
    weight_decay: float = 5e-4 * 48  # AdamW decoupled decay, scaled like SGD's 5e-4 at lr ~0.1
    label_smoothing: float = 0.1
    validation: float = 0.15  # fraction of each class
    test: float = 0.2
    ema_decay: float = 0.99  # weights averaged over ~100 steps are evaluated and kept
    target_risk: float = 0.005  # wanted error rate among verdicts accepted without review
    # One thread: on a shared, oversubscribed 2-core machine a second intra-op thread made a
    # training step 2.5x slower (threads wait for each other at every op).
    threads: int = 1


def _set_threads(n: int) -> None:
    torch.set_num_threads(n)


def _logits(model: DefectModel, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """(n, 1, s, s) preprocessed inputs -> (n, classes) logits, eval mode, no autograd."""
    return view_logits(model, x, 1, batch_size=batch_size)


def classification_metrics(probs: torch.Tensor, labels: torch.Tensor) -> dict[str, Any]:
    """Accuracy, macro-F1, ECE, NLL and the confusion matrix of (n, classes) probabilities."""
    pred = probs.argmax(dim=1).numpy()
    y = labels.numpy()
    k = len(CLASSES)
    return {
        "n_images": len(y),
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(
            f1_score(y, pred, average="macro", labels=list(range(k)), zero_division=0)
        ),
        "ece": expected_calibration_error(probs, labels),
        "nll": float(F.nll_loss(probs.clamp_min(1e-12).log(), labels)),
        "confusion": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
    }


def choose_views(
    model: DefectModel, x: torch.Tensor, labels: torch.Tensor, *, alpha: float = 0.05
) -> tuple[int, torch.Tensor, dict[str, Any]]:
    """The number of test-time views to use, their logits on `x`, and the evidence.

    Starting from one view, a larger number replaces the current choice only if, among the
    images on which the two disagree in correctness, it is right significantly more often
    (one-sided exact sign test, McNemar's test for small counts, at level `alpha`).
    """
    from scipy.stats import binomtest

    logits = {v: view_logits(model, x, v) for v in TTA_VIEWS}
    right = {v: logits[v].argmax(1) == labels for v in TTA_VIEWS}
    chosen = TTA_VIEWS[0]
    evidence: dict[str, Any] = {}
    for v in TTA_VIEWS[1:]:
        fixed = int((right[v] & ~right[chosen]).sum())
        broken = int((~right[v] & right[chosen]).sum())
        p = binomtest(fixed, fixed + broken, 0.5, alternative="greater").pvalue if fixed else 1.0
        evidence[str(v)] = {
            "accuracy": float(right[v].float().mean()),
            "against": chosen,
            "fixed": fixed,
            "broken": broken,
            "p_value": round(float(p), 4),
        }
        if p < alpha:
            chosen = v
    evidence[str(TTA_VIEWS[0])] = {"accuracy": float(right[TTA_VIEWS[0]].float().mean())}
    evidence["chosen"] = chosen
    return chosen, logits[chosen], evidence


# Random training views of each validation image added to the calibration pool (fixed seed).
CALIBRATION_AUGMENTED_DRAWS = 4


def calibration_temperature(
    model: DefectModel,
    images: torch.Tensor,
    labels: torch.Tensor,
    logits: torch.Tensor,
    views: int,
    aug: AugmentConfig,
) -> float:
    """Softmax temperature fitted on validation `images` (uint8) as they are and under the
    conditions the model is meant to work in, each half the weight.

    The conditions: each of PERTURBATIONS, and CALIBRATION_AUGMENTED_DRAWS random draws of
    the training augmentation `aug` (lighting, tone, blur, noise, crop, turns). `logits` are
    the clean images' (already computed). Clean validation alone is not enough: a model that
    classifies every clean validation image right gives temperature scaling no error to learn
    from, its likelihood keeps rising as T -> 0, and it would ship overconfident (this
    happened: T hit its floor of 0.05). The fixed perturbations alone were not enough either:
    a later run made no error on any of them (T at the floor again). The augmentation draws
    span the conditions more widely, and every run so far has errors there to learn from.
    """
    size = model.config.input_size
    conditions = [
        view_logits(model, preprocess(perturb(images, k), size), views) for k in PERTURBATIONS
    ]
    gen = torch.Generator().manual_seed(0)
    conditions += [
        view_logits(model, augment(images, size, aug, gen), views)
        for _ in range(CALIBRATION_AUGMENTED_DRAWS)
    ]
    k = len(conditions)
    return fit_temperature(torch.cat([logits] * k + conditions), labels.repeat(2 * k))


def review_metrics(probs: torch.Tensor, labels: torch.Tensor, threshold: float) -> dict[str, Any]:
    """What the review threshold does: how many go to a person, how good the rest are."""
    conf, pred = probs.max(dim=1)
    flagged = conf < threshold
    wrong = pred != labels
    accepted = ~flagged
    n_acc = int(accepted.sum())
    return {
        "review_threshold": threshold,
        "review_rate": float(flagged.float().mean()),
        "accepted_accuracy": float((~wrong[accepted]).float().mean()) if n_acc else None,
        "errors": int(wrong.sum()),
        "errors_flagged": int((wrong & flagged).sum()),
    }


def robustness(
    score: Any, images: torch.Tensor, labels: torch.Tensor, *, seed: int = 0
) -> dict[str, float]:
    """Accuracy under each of PERTURBATIONS; `score` maps uint8 images to probabilities."""
    out: dict[str, float] = {}
    for kind in PERTURBATIONS:
        probs = score(perturb(images, kind, seed=seed))
        out[kind] = float((probs.argmax(dim=1) == labels).float().mean())
    return out


def train(args: TrainArgs) -> dict[str, Any]:
    """Train on a NEU image folder and save weights plus manifest to `args.out`.

    `args.seed` cuts the split, `args.init_seed` (default: the same) draws the initial
    weights and batches. With more than one member, member k is trained from random start
    `init_seed + k` into `args.out/members/k` (a model directory of its own), then the members
    are assembled into `args.out`. A member already there, trained with the same settings, is
    kept: an interrupted run picks up where it stopped.

    Raises:
        MLInputError: no image folder given, or it holds no usable labelled images.
    """
    if args.images is None:
        raise MLInputError("the defect task needs --images DIR (NEU images, class = prefix)")
    cfg = TrainConfig(
        epochs=args.epochs or TrainConfig.epochs, members=args.members or TrainConfig.members
    )
    images, model_cfg = args.images, DefectNetConfig()
    init_seed = args.seed if args.init_seed is None else args.init_seed

    def run(out: Path, k: int) -> dict[str, Any]:
        return fit(
            images,
            out,
            cfg=cfg,
            model_cfg=model_cfg,
            seed=args.seed,
            init_seed=init_seed + k,
            progress=args.progress,
        )

    if cfg.members == 1:
        return run(args.out, 0)
    member_dirs = [args.out / "members" / str(k) for k in range(cfg.members)]
    for k, member_dir in enumerate(member_dirs):
        if not _trained_alike(member_dir, cfg, model_cfg, args.seed, init_seed + k):
            run(member_dir, k)
    return assemble(member_dirs, images, args.out)


def _trained_alike(
    model_dir: Path, cfg: TrainConfig, model_cfg: DefectNetConfig, seed: int, init_seed: int
) -> bool:
    """Whether `model_dir` holds a finished member trained exactly as asked."""
    try:
        manifest = load_manifest(model_dir)
    except ManifestError:  # missing, unreadable or torn: train it again
        return False
    return (
        DefectNetConfig.from_dict(manifest.config) == model_cfg
        and manifest.preprocessing.get("training") == _training_record(cfg)
        and manifest.metrics.get("split", {}).get("seed") == seed
        and manifest.metrics.get("init_seed") == init_seed
    )


def _training_record(cfg: TrainConfig) -> dict[str, Any]:
    """What a manifest records of a TrainConfig: everything that shapes the weights."""
    return {k: v for k, v in vars(cfg).items() if k not in ("threads", "members")}


def fit(
    images_dir: Path,
    out: Path,
    *,
    cfg: TrainConfig,
    model_cfg: DefectNetConfig,
    seed: int = 0,
    init_seed: int | None = None,
    progress: bool = True,
    limit_per_class: int | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """The training run behind `train`.

    `seed` cuts the split; `init_seed` (default: `seed`) draws the initial weights and the
    batches, so runs on the same split can differ in nothing else. `limit_per_class` keeps
    tests small; `on_epoch` receives each epoch's history row.
    """
    _set_threads(cfg.threads)
    init_seed = seed if init_seed is None else init_seed
    torch.manual_seed(init_seed)
    data = load_folder(images_dir, progress=progress)
    images, labels, names = data.images, data.labels, data.names
    if limit_per_class is not None:
        keep = np.concatenate(
            [np.flatnonzero(labels.numpy() == c)[:limit_per_class] for c in range(len(CLASSES))]
        )
        images, labels, names = images[keep], labels[keep], [names[i] for i in keep]
    missing = [c for i, c in enumerate(CLASSES) if not (labels == i).any()]
    if missing:
        raise MLInputError(f"{images_dir}: no images of class {', '.join(missing)}")
    split = stratified_split(labels, names, validation=cfg.validation, test=cfg.test, seed=seed)
    tr, va = torch.from_numpy(split.train), torch.from_numpy(split.validation)
    x_val = preprocess(images[va], model_cfg.input_size)

    model = DefectNet(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(tr) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.2
    )
    gen = torch.Generator().manual_seed(init_seed)
    aug = AugmentConfig()
    # Exponential moving average of weights and BN statistics: steadier than the raw weights
    # at the end of a noisy small-data run, and what gets validated and saved.
    ema = torch.optim.swa_utils.AveragedModel(
        model,
        multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay),
        use_buffers=True,
    )
    history: list[dict[str, float]] = []
    best: tuple[float, float, int] | None = None  # (-val accuracy, val nll, epoch)
    best_state: dict[str, torch.Tensor] = {}
    started = time.perf_counter()

    def one_epoch(epoch: int) -> dict[str, float]:
        nonlocal best, best_state
        model.train()
        order = tr[torch.randperm(len(tr), generator=gen)]
        total, seen = 0.0, 0
        for i in range(0, len(order), cfg.batch_size):
            idx = order[i : i + cfg.batch_size]
            if len(idx) < 2:  # batch norm needs two
                continue
            x = augment(images[idx], model_cfg.input_size, aug, gen)  # (b, 1, s, s)
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=cfg.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            ema.update_parameters(model)
            total += loss.item() * len(idx)
            seen += len(idx)
        logits = _logits(ema.module, x_val)  # type: ignore[arg-type]
        val_nll = float(F.cross_entropy(logits, labels[va]))
        val_acc = float((logits.argmax(1) == labels[va]).float().mean())
        row = {
            "epoch": epoch + 1,
            "train_loss": total / max(seen, 1),
            "val_accuracy": val_acc,
            "val_nll": val_nll,
        }
        # Early stopping by validation accuracy, ties broken by validation NLL.
        key = (-val_acc, val_nll, epoch)
        if best is None or key < best:
            best = key
            best_state = copy.deepcopy(ema.module.state_dict())
        return row

    if progress:
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            job = bar.add_task("training", total=cfg.epochs)
            for epoch in range(cfg.epochs):
                row = one_epoch(epoch)
                history.append(row)
                bar.update(
                    job,
                    advance=1,
                    description=f"epoch {epoch + 1} loss {row['train_loss']:.3f} "
                    f"val acc {row['val_accuracy']:.3f}",
                )
    else:
        for epoch in range(cfg.epochs):
            history.append(one_epoch(epoch))
            if on_epoch is not None:
                on_epoch(history[-1])
    train_seconds = time.perf_counter() - started
    assert best is not None
    model.load_state_dict(best_state)
    trained = {
        "init_seed": init_seed,
        "best_epoch": best[2] + 1,
        "epochs": cfg.epochs,
        "train_seconds": round(train_seconds, 1),
        "history": [{k: round(v, 5) for k, v in row.items()} for row in history],
    }
    used = LabelledImages(images=images, labels=labels, names=names, paths=[], errors=data.errors)
    return finalize(
        model,
        used,
        split,
        out=out,
        images_dir=images_dir,
        training=_training_record(cfg),
        aug=dict(vars(aug)),
        seed=seed,
        trained=trained,
    )


def finalize(
    model: DefectModel,
    data: LabelledImages,
    split: Split,
    *,
    out: Path,
    images_dir: Path,
    training: dict[str, Any],
    aug: dict[str, Any],
    seed: int,
    trained: dict[str, Any],
) -> dict[str, Any]:
    """Choose test-time views, temperature and review threshold on validation; measure on
    test; save weights and manifest to `out`. Returns the manifest's metrics.

    `training` and `aug` are recorded as given (a TrainConfig / AugmentConfig as a dict);
    `training["target_risk"]` sets the review threshold.
    """
    model.eval()
    images, labels, names = data.images, data.labels, data.names
    va, te = torch.from_numpy(split.validation), torch.from_numpy(split.test)
    size = model.config.input_size

    # Test-time views: each costs a forward pass, a certain cost, so more views only for a
    # demonstrated gain: they must fix significantly more validation images than they break.
    x_val = preprocess(images[va], size)
    views, val_logits, view_choice = choose_views(model, x_val, labels[va])

    # Calibration and threshold: validation only.
    temperature = calibration_temperature(
        model, images[va], labels[va], val_logits, views, AugmentConfig(**aug)
    )
    val_probs = torch.softmax(val_logits / temperature, dim=1)
    target_risk = float(training["target_risk"])
    threshold = choose_threshold(val_probs, labels[va], target_risk=target_risk)

    # Test: reported, never used for a choice.
    def score(imgs: torch.Tensor) -> torch.Tensor:
        return torch.softmax(view_logits(model, preprocess(imgs, size), views) / temperature, 1)

    x_test = preprocess(images[te], size)
    test_logits = view_logits(model, x_test, views)
    test_probs = torch.softmax(test_logits / temperature, dim=1)
    test = classification_metrics(test_probs, labels[te])
    test["ece_uncalibrated"] = expected_calibration_error(torch.softmax(test_logits, 1), labels[te])
    test.update(review_metrics(test_probs, labels[te], threshold))
    test["robustness"] = robustness(score, images[te], labels[te], seed=seed)
    single = test_logits if views == 1 else view_logits(model, x_test, 1)
    test["accuracy_single_view"] = float((single.argmax(1) == labels[te]).float().mean())
    validation = classification_metrics(val_probs, labels[va])
    validation.update(review_metrics(val_probs, labels[va], threshold))
    validation["ece_uncalibrated"] = expected_calibration_error(
        torch.softmax(val_logits, 1), labels[va]
    )
    validation["test_time_views"] = view_choice

    metrics: dict[str, Any] = {
        "test": test,
        "validation": validation,
        "split": {
            "seed": seed,
            "train": len(split.train),
            "validation": len(split.validation),
            "test": len(split.test),
            "digests": split.digests(names),
        },
        **trained,
        "parameters": n_parameters(model),
    }
    kept = set(names)
    used = [p for p in list_images(images_dir) if p.name in kept]
    save_model(
        out,
        model.state_dict(),
        name=MODEL_NAME,
        task="defect",
        architecture=architecture(model.config),
        config=model.config.to_dict(),
        training_data=data_digests(used),
        preprocessing={
            "classes": list(CLASSES),
            "image": f"{IMAGE_SIZE}x{IMAGE_SIZE} grey (L, or RGB with equal channels)",
            "resize": f"area to {size}x{size}",
            "normalise": "per-image zero mean, unit variance",
            "test_time_views": views,
            "augmentation": aug,
            "training": training,
            "calibration": {
                "method": "temperature scaling, fitted on the validation split as it is and "
                "under each robustness perturbation and "
                f"{CALIBRATION_AUGMENTED_DRAWS} draws of the training augmentation (half the "
                "weight each); review threshold on the validation split as it is",
                "temperature": temperature,
                "review_threshold": threshold,
                "target_risk": target_risk,
            },
            "robustness_perturbations": PERTURBATIONS,
        },
        metrics=metrics,
    )
    return metrics


# Metrics that finalize computes; the rest of a manifest's metrics record the training.
_FINALIZED = ("test", "validation", "split", "parameters")


def refinalize(model_dir: Path, images_dir: Path, out: Path) -> dict[str, Any]:
    """Redo the validation-time choices of a trained model (views, temperature, threshold)
    and its test metrics, keeping its weights and training record, into `out`.
    """
    manifest = load_manifest(model_dir)
    model = build_model(DefectNetConfig.from_dict(manifest.config))
    model.load_state_dict(load_tensors(model_dir))
    data, split = recreate_split(manifest, images_dir)
    training = dict(manifest.preprocessing["training"])
    # As recorded: what the weights were trained with (code may have moved on since).
    aug = dict(manifest.preprocessing["augmentation"])
    trained = {k: v for k, v in manifest.metrics.items() if k not in _FINALIZED}
    return finalize(
        model,
        data,
        split,
        out=out,
        images_dir=images_dir,
        training=training,
        aug=aug,
        seed=manifest.metrics["split"]["seed"],
        trained=trained,
    )


def assemble(member_dirs: list[Path], images_dir: Path, out: Path) -> dict[str, Any]:
    """Average trained members into one ensemble model in `out`: views, temperature and
    review threshold are chosen for the ensemble on validation, and test measured, as for
    one net. Each member's own validation and test accuracy is kept in the manifest.

    Raises:
        MLInputError: fewer than two members, members trained on different splits or with
            different settings, or the same weights twice.
    """
    if len(member_dirs) < 2:
        raise MLInputError(f"an ensemble needs 2 or more members, got {len(member_dirs)}")
    manifests = [load_manifest(d) for d in member_dirs]
    first = manifests[0]
    for d, m in zip(member_dirs[1:], manifests[1:], strict=True):
        for what, mine, theirs in (
            ("split", m.metrics["split"], first.metrics["split"]),
            (
                "config",
                DefectNetConfig.from_dict(m.config),
                DefectNetConfig.from_dict(first.config),
            ),
            ("training", m.preprocessing["training"], first.preprocessing["training"]),
        ):
            if mine != theirs:
                raise MLInputError(f"{d}: {what} differs from {member_dirs[0]}'s")
    digests = [m.weights_sha256 for m in manifests]
    if len(set(digests)) != len(digests):
        raise MLInputError("the same weights appear twice among the members")
    nets = []
    for d, m in zip(member_dirs, manifests, strict=True):
        net = DefectNet(DefectNetConfig.from_dict(m.config))
        net.load_state_dict(load_tensors(d))
        nets.append(net)
    data, split = recreate_split(first, images_dir)
    members = [
        {
            "init_seed": m.metrics.get("init_seed", m.metrics["split"]["seed"]),
            "weights_sha256": m.weights_sha256,
            "best_epoch": m.metrics["best_epoch"],
            "train_seconds": m.metrics["train_seconds"],
            "validation_accuracy": m.metrics["validation"]["accuracy"],
            "test_accuracy": m.metrics["test"]["accuracy"],
            "history": m.metrics["history"],
        }
        for m in manifests
    ]
    trained = {
        "epochs": first.metrics["epochs"],
        "train_seconds": round(sum(m["train_seconds"] for m in members), 1),
        "members": members,
    }
    return finalize(
        DefectEnsemble.of(nets),
        data,
        split,
        out=out,
        images_dir=images_dir,
        training=dict(first.preprocessing["training"]),
        aug=dict(first.preprocessing["augmentation"]),
        seed=first.metrics["split"]["seed"],
        trained=trained,
    )


def evaluate(args: EvalArgs) -> dict[str, Any]:
    """Metrics of a saved model on a folder of labelled NEU images (class = file-name prefix).

    Files that are not usable images are left out and listed under `rejected`.

    Raises:
        MLInputError: no image folder, or a file name without a known class.
        ManifestError: the model directory is missing or does not match its manifest.
    """
    if args.images is None:
        raise MLInputError("the defect task needs --images DIR (NEU images, class = prefix)")
    torch.set_num_threads(2)
    predictor = DefectPredictor.from_dir(args.model)
    data = load_folder(args.images, progress=args.progress)
    probs = predictor.probabilities(data.images)
    out = classification_metrics(probs, data.labels)
    out.update(review_metrics(probs, data.labels, predictor.review_threshold))
    out["robustness"] = robustness(predictor.probabilities, data.images, data.labels)
    out["per_class_recall"] = {
        c: float((probs.argmax(1)[data.labels == i] == i).float().mean())
        for i, c in enumerate(CLASSES)
        if (data.labels == i).any()
    }
    out["rejected"] = data.errors
    out["model_manifest_digest"] = predictor.manifest_digest
    plots = args.plots if args.plots is not None else args.model / "eval-plots"
    write_plots(plots, probs, data.labels, title=f"{args.images.name} ({len(data.labels)} images)")
    out["plots"] = str(plots)
    return out


def write_plots(folder: Path, probs: torch.Tensor, labels: torch.Tensor, *, title: str) -> None:
    """confusion.png and reliability.png for calibrated probabilities."""
    folder.mkdir(parents=True, exist_ok=True)
    plot_confusion(
        confusion_matrix(labels.numpy(), probs.argmax(1).numpy(), labels=list(range(len(CLASSES)))),
        folder / "confusion.png",
        title=title,
    )
    plot_reliability(reliability(probs, labels), folder / "reliability.png", title=title)


def plot_confusion(cm: np.ndarray, path: Path, *, title: str) -> None:
    """Confusion matrix (rows: true class, columns: verdict) as a PNG with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    fig, ax = plt.subplots(figsize=(6.2, 5.4), constrained_layout=True)
    rows = cm.sum(axis=1, keepdims=True).clip(min=1)
    ax.imshow(cm / rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            if cm[i, j] or i == j:
                colour = "white" if cm[i, j] / rows[i, 0] > 0.5 else "black"
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color=colour, fontsize=10)
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=35, ha="right")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("verdict")
    ax.set_ylabel("true class")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title}\naccuracy {acc:.4f} ({np.trace(cm)}/{cm.sum()})")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def predict(args: PredictArgs) -> Iterator[dict[str, Any]]:
    """Prediction records for one image or every image in a folder (sorted by name).

    Grad-CAM overlays go to `args.explain_dir` (default: ./gradcam). Unusable files yield an
    error record and the rest go on.

    Raises:
        FileNotFoundError: the input path does not exist.
        MLInputError: a folder with no image files.
    """
    torch.set_num_threads(2)
    predictor = DefectPredictor.from_dir(args.model)
    if args.input.is_dir():
        paths = list_images(args.input)
        if not paths:
            raise MLInputError(f"{args.input}: no image files in this folder")
    elif args.input.exists():
        paths = [args.input]
    else:
        raise FileNotFoundError(f"{args.input}: no such file or folder")
    explain_dir = args.explain_dir if args.explain_dir is not None else Path("gradcam")
    yield from predictor.predict_files(paths, explain_dir=explain_dir)


def recreate_split(manifest: ModelManifest, images_dir: Path) -> tuple[LabelledImages, Split]:
    """The train / validation / test split a saved model was trained with, cut again from
    `images_dir`, checked against the digests in its manifest.

    Raises:
        MLInputError: the folder does not give the same split (other files, other seed).
    """
    training = manifest.preprocessing["training"]
    recorded = manifest.metrics["split"]
    data = load_folder(images_dir)
    split = stratified_split(
        data.labels,
        data.names,
        validation=training["validation"],
        test=training["test"],
        seed=recorded["seed"],
    )
    found = split.digests(data.names)
    if found != recorded["digests"]:
        raise MLInputError(
            f"{images_dir}: split digests {found} differ from the manifest's "
            f"{recorded['digests']}: not the folder this model was trained on"
        )
    return data, split


# -- `forgeproof ml report --section defect` ------------------------------------------------

# Goals the docs state (docs/ml-inspection.md): accuracy and robustness per perturbation at
# least these, calibrated ECE at most this.
GOAL_ACCURACY = 0.99
GOAL_ROBUSTNESS = 0.95
GOAL_ECE = 0.03
REPORT_SPLITS = ("validation", "test")
QUICK_PER_CLASS = 4  # images per class and split in a quick (smoke) report


def exact_interval(k: int, n: int, level: float = 0.95) -> list[float]:
    """Exact (Clopper-Pearson) `level` interval for a binomial proportion of k in n."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return [float(ci.low), float(ci.high)]


def _count(correct: torch.Tensor) -> dict[str, Any]:
    k, n = int(correct.sum()), len(correct)
    return {"correct": k, "n": n, "accuracy": k / n, "ci95": exact_interval(k, n)}


def _split_report(
    pred: DefectPredictor, images: torch.Tensor, labels: torch.Tensor, names: list[str], seed: int
) -> dict[str, Any]:
    """Every figure the defect tables quote for one split, from the predictor as shipped."""
    scored = [pred.score(images[i : i + 128]) for i in range(0, len(images), 128)]
    logits = torch.cat([s.logits for s in scored])
    probs = torch.cat([s.probs for s in scored])
    raw = torch.softmax(logits, dim=1)
    m = classification_metrics(probs, labels)
    conf, verdict = probs.max(dim=1)
    right = verdict == labels
    sent = conf < pred.review_threshold
    accepted = ~sent
    robust = {}
    for kind in PERTURBATIONS:
        p = pred.probabilities(perturb(images, kind, seed=seed))
        nll = float(F.nll_loss(p.clamp_min(1e-12).log(), labels))
        robust[kind] = {**_count(p.argmax(dim=1) == labels), "nll": nll}
    return {
        **_count(right),
        "macro_f1": m["macro_f1"],
        "ece": m["ece"],
        "ece_uncalibrated": expected_calibration_error(raw, labels),
        "nll": m["nll"],
        "nll_uncalibrated": float(F.cross_entropy(logits, labels)),
        "confusion": m["confusion"],
        "review": {
            "threshold": pred.review_threshold,
            "sent": int(sent.sum()),
            "errors": int((~right).sum()),
            "errors_sent": int((~right & sent).sum()),
            "accepted": int(accepted.sum()),
            "accepted_correct": int((right & accepted).sum()),
        },
        "robustness": robust,
        "errors": [
            {
                "image": names[i],
                "true": CLASSES[int(labels[i])],
                "verdict": CLASSES[int(verdict[i])],
                "confidence": round(float(conf[i]), 4),
                "sent_to_review": bool(sent[i]),
            }
            for i in np.flatnonzero(~right.numpy())
        ],
    }


def _calibration_check(
    pred: DefectPredictor, images: torch.Tensor, labels: torch.Tensor
) -> dict[str, Any]:
    """Refit the temperature and review threshold on the validation images exactly as
    `finalize` did (same pool, same seed), and count the errors in each part of the pool."""
    manifest = pred.manifest
    aug = AugmentConfig(**manifest.preprocessing["augmentation"])
    target_risk = float(manifest.preprocessing["calibration"]["target_risk"])
    size = pred.input_size
    logits = view_logits(pred.model, preprocess(images, size), pred.views)
    temperature = calibration_temperature(pred.model, images, labels, logits, pred.views, aug)
    probs = torch.softmax(logits / temperature, dim=1)
    threshold = choose_threshold(probs, labels, target_risk=target_risk)
    pool = [("as they are", logits)]
    for kind in PERTURBATIONS:
        x = preprocess(perturb(images, kind), size)
        pool.append((kind, view_logits(pred.model, x, pred.views)))
    gen = torch.Generator().manual_seed(0)
    for d in range(CALIBRATION_AUGMENTED_DRAWS):
        x = augment(images, size, aug, gen)
        pool.append(
            (f"training augmentation, draw {d + 1}", view_logits(pred.model, x, pred.views))
        )
    return {
        "temperature": temperature,
        "review_threshold": threshold,
        "target_risk": target_risk,
        # A list, not a dict: the results file is written with sorted keys.
        "pool_errors": [[k, int((v.argmax(1) != labels).sum())] for k, v in pool],
        "n": len(labels),
    }


def report(
    data: Path,
    *,
    seeds: Sequence[int] | None = None,
    quick: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """The shipped defect model's figures on its validation and test splits (ml/report.py).

    Nothing is retrained (a training run takes about half an hour): the shipped weights are
    scored as shipped (temperature, review threshold and test-time views from the manifest),
    on the split `recreate_split` cuts again from `data/neu-det/IMAGES` and checks against the
    manifest. `seeds` is ignored: there is one shipped run, and the weights of the other runs
    in the docs' log were not kept. The perturbations are drawn with the split seed, as in the
    manifest. `quick` scores QUICK_PER_CLASS images per class and split (a smoke run).
    """
    from ml._progress import progress as bar

    started = time.perf_counter()
    torch.set_num_threads(2)
    model_dir = MODELS_DIR / MODEL_NAME
    pred = DefectPredictor.from_dir(model_dir)
    manifest = pred.manifest
    split_seed = int(manifest.metrics["split"]["seed"])
    steps = len(REPORT_SPLITS) + 2
    with bar("defect report", steps, enabled=progress) as advance:
        loaded, split = recreate_split(manifest, data / "neu-det" / "IMAGES")
        advance(note="split recreated")
        parts = {"validation": split.validation, "test": split.test}
        if quick:
            parts = {
                name: np.concatenate(
                    [
                        idx[loaded.labels.numpy()[idx] == c][:QUICK_PER_CLASS]
                        for c in range(len(CLASSES))
                    ]
                )
                for name, idx in parts.items()
            }
        splits = {}
        for name in REPORT_SPLITS:
            idx = torch.from_numpy(parts[name])
            names = [loaded.names[i] for i in parts[name]]
            splits[name] = _split_report(
                pred, loaded.images[idx], loaded.labels[idx], names, split_seed
            )
            advance(note=name)
        va = torch.from_numpy(parts["validation"])
        check = _calibration_check(pred, loaded.images[va], loaded.labels[va])
        advance(note="calibration refit")
    calib = manifest.preprocessing["calibration"]
    shipped = {
        "init_seed": manifest.metrics.get("init_seed"),
        "shipped": True,
        "model": f"ml/shipped/models/{MODEL_NAME}",
        "manifest_digest": pred.manifest_digest,
        "weights_sha256": manifest.weights_sha256,
        **splits,
    }
    return {
        "section": "defect",
        "quick": quick,
        "seeds": "ignored: the shipped model is one training run, scored as shipped",
        "split": {
            "seed": split_seed,
            **{k: len(v) for k, v in parts.items()},
            "digests": manifest.metrics["split"]["digests"],
        },
        "settings": {
            "temperature": pred.temperature,
            "review_threshold": pred.review_threshold,
            "target_risk": float(calib["target_risk"]),
            "test_time_views": pred.views,
        },
        "calibration_refit": check,
        # A list, not a dict: the results file is written with sorted keys.
        "perturbations": [{"kind": k, "params": p} for k, p in PERTURBATIONS.items()],
        "perturbation_seed": split_seed,
        "goals": {"accuracy": GOAL_ACCURACY, "robustness": GOAL_ROBUSTNESS, "ece": GOAL_ECE},
        "runs": [shipped],
        "seconds": round(time.perf_counter() - started, 1),
    }


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def _frac(k: int, n: int) -> str:
    return f"{_pct(k / n)} ({k} / {n})" if n else "none"


def _goal(ok: dict[str, bool], goal: str) -> str:
    if all(ok.values()):
        return f"{goal}: met on both"
    return f"{goal}: " + ", ".join(f"{s} {'met' if v else 'not met'}" for s, v in ok.items())


def _describe(kind: str, params: dict[str, float]) -> str:
    if kind == "blur":
        return f"Gaussian blur, sigma {params['sigma_px']:g} px"
    if kind == "noise":
        return f"Gaussian noise, std {params['sigma']:g} grey levels"
    if kind == "lighting":
        p = params["peak_to_peak"]
        return f"lighting ramp, gain {1 - p / 2:g} -> {1 + p / 2:g}"
    return kind


def report_tables(results: dict[str, Any]) -> dict[str, str]:
    """Markdown tables from `report`'s results alone: results, settings, calibration, errors,
    calibration_pool, robustness."""
    run = next(r for r in results["runs"] if r.get("shipped"))
    s = {name: run[name] for name in REPORT_SPLITS}
    goals = results["goals"]
    head = "| | validation | test | goal |\n|---|---:|---:|---|\n"

    def row(label: str, cells: list[str], goal: str = "") -> str:
        return f"| {label} | {' | '.join(cells)} | {goal} |\n"

    def each(f: Callable[[dict[str, Any]], str]) -> list[str]:
        return [f(s[name]) for name in REPORT_SPLITS]

    def ci(r: dict[str, Any]) -> str:
        lo, hi = r["ci95"]
        return f"{_pct(lo)} - {_pct(hi)}"

    acc_goal = _goal(
        {n: s[n]["accuracy"] >= goals["accuracy"] for n in REPORT_SPLITS},
        f"≥ {100 * goals['accuracy']:g}%",
    )
    ece_goal = _goal({n: s[n]["ece"] <= goals["ece"] for n in REPORT_SPLITS}, f"≤ {goals['ece']:g}")
    results_table = (
        head
        + row("images", each(lambda r: str(r["n"])))
        + row("accuracy", each(lambda r: _frac(r["correct"], r["n"])), acc_goal)
        + row("exact 95% interval", each(ci))
        + row("macro-F1", each(lambda r: f"{r['macro_f1']:.3f}"))
        + row("ECE (15 bins), calibrated", each(lambda r: f"{r['ece']:.3f}"), ece_goal)
        + row("ECE (15 bins), uncalibrated", each(lambda r: f"{r['ece_uncalibrated']:.3f}"))
        + row("NLL, calibrated", each(lambda r: f"{r['nll']:.4f}"))
        + row("NLL, uncalibrated", each(lambda r: f"{r['nll_uncalibrated']:.4f}"))
    )

    st, refit = results["settings"], results["calibration_refit"]
    settings = (
        "| setting (chosen on validation) | shipped (manifest) | refitted by this report |\n"
        "|---|---:|---:|\n"
        f"| temperature T | {st['temperature']:.3f} | {refit['temperature']:.3f} |\n"
        f"| review threshold | {st['review_threshold']:.3f} | {refit['review_threshold']:.3f} |\n"
        f"| target risk | {_pct(st['target_risk'])} | {_pct(refit['target_risk'])} |\n"
        f"| test-time views | {st['test_time_views']} | |\n"
    )

    def sent(r: dict[str, Any]) -> str:
        v = r["review"]
        return f"{v['sent']} of {r['n']} ({_pct(v['sent'] / r['n'])})"

    calibration = (
        "| | validation | test |\n|---|---:|---:|\n"
        f"| sent to review (confidence < {st['review_threshold']:.3f}) | "
        + " | ".join(each(sent))
        + " |\n| errors among them (of all errors) | "
        + " | ".join(each(lambda r: f"{r['review']['errors_sent']} of {r['review']['errors']}"))
        + " |\n| accuracy of the accepted verdicts | "
        + " | ".join(
            each(lambda r: _frac(r["review"]["accepted_correct"], r["review"]["accepted"]))
        )
        + " |\n"
    )

    errors = "| split | image | true class | verdict | confidence | sent to review |\n"
    errors += "|---|---|---|---|---:|---|\n"
    for name in REPORT_SPLITS:
        if not s[name]["errors"]:
            errors += f"| {name} | no error | | | | |\n"
        for e in s[name]["errors"]:
            errors += (
                f"| {name} | `{e['image']}` | {e['true']} | {e['verdict']} | "
                f"{e['confidence']:.3f} | {'yes' if e['sent_to_review'] else 'no'} |\n"
            )

    pool = f"| validation images scored | errors (of {refit['n']}) |\n|---|---:|\n"
    params = {p["kind"]: p["params"] for p in results["perturbations"]}
    for cond, k in refit["pool_errors"]:
        label = _describe(cond, params[cond]) if cond in params else cond
        pool += f"| {label} | {k} |\n"

    robust = (
        "| perturbation | validation accuracy | test accuracy | validation NLL | test NLL "
        "| goal |\n"
        "|---|---:|---:|---:|---:|---|\n"
    )
    robust += row(
        "none (clean images, as above)",
        [_frac(s[n]["correct"], s[n]["n"]) for n in REPORT_SPLITS]
        + [f"{s[n]['nll']:.4f}" for n in REPORT_SPLITS],
    )
    for p in results["perturbations"]:
        cells = [s[n]["robustness"][p["kind"]] for n in REPORT_SPLITS]
        ok = {
            n: c["accuracy"] >= goals["robustness"]
            for n, c in zip(REPORT_SPLITS, cells, strict=True)
        }
        robust += row(
            _describe(p["kind"], p["params"]),
            [_frac(c["correct"], c["n"]) for c in cells] + [f"{c['nll']:.4f}" for c in cells],
            _goal(ok, f"≥ {100 * goals['robustness']:g}%"),
        )
    return {
        "results": results_table,
        "settings": settings,
        "calibration": calibration,
        "errors": errors,
        "calibration_pool": pool,
        "robustness": robust,
    }
