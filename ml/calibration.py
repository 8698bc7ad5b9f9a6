"""Confidence calibration: temperature scaling, expected calibration error, review threshold.

Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017) divides
the logits by one scalar T fitted by maximum likelihood on held-out data; it changes confidence
but never the verdict. ECE is the bin-weighted gap between confidence and accuracy over
equal-width confidence bins (Naeini et al. 2015, as used by Guo et al.).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ml.errors import CalibrationError


def _check(logits_or_probs: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> None:
    n, m = len(logits_or_probs), len(labels)
    if n == 0:
        raise CalibrationError("no examples: calibration needs at least one")
    if n != m:
        raise CalibrationError(f"{n} predictions but {m} labels")


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 200) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) on these examples.

    Args:
        logits: (n, classes) held-out logits (never the training set's: they are overconfident).
        labels: (n,) class indices.
    Raises:
        CalibrationError: empty or mismatched inputs.
    """
    _check(logits, labels)
    logits = logits.detach().double()
    labels = labels.detach().long()
    # Optimise log T: keeps T positive without a constraint.
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


@dataclass(frozen=True)
class Reliability:
    """Per-bin statistics of a reliability diagram (equal-width confidence bins)."""

    edges: np.ndarray  # (bins + 1,)
    count: np.ndarray  # (bins,) examples per bin
    confidence: np.ndarray  # (bins,) mean confidence in the bin (nan when empty)
    accuracy: np.ndarray  # (bins,) accuracy in the bin (nan when empty)

    @property
    def ece(self) -> float:
        used = self.count > 0
        gap = np.abs(self.accuracy[used] - self.confidence[used])
        return float((gap * self.count[used]).sum() / self.count.sum())


def reliability(
    probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *, bins: int = 15
) -> Reliability:
    """Bin max-probability confidence against correctness.

    Raises:
        CalibrationError: empty or mismatched inputs.
    """
    _check(probs, labels)
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Right-closed bins, (lo, hi], with 0 falling in the first: a confidence of exactly 1.0
    # belongs to the top bin.
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)
    count = np.bincount(which, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, weights=conf, minlength=bins) / count
        acc = np.bincount(which, weights=correct, minlength=bins) / count
    return Reliability(edges=edges, count=count, confidence=mean_conf, accuracy=acc)


def expected_calibration_error(
    probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, *, bins: int = 15
) -> float:
    """ECE with `bins` equal-width bins of max-probability confidence."""
    return reliability(probs, labels, bins=bins).ece


def choose_threshold(
    probs: np.ndarray | torch.Tensor,
    labels: np.ndarray | torch.Tensor,
    *,
    target_risk: float = 0.005,
) -> float:
    """The lowest confidence threshold whose accepted verdicts meet `target_risk`.

    A verdict with calibrated confidence below the threshold goes to a person. On the given
    (validation) examples, the accepted set must satisfy both the observed error rate and the
    error rate the calibrated probabilities themselves predict (mean of 1 - confidence): the
    second keeps the threshold honest when the validation set has too few errors to measure.

    Raises:
        CalibrationError: empty or mismatched inputs, or a target outside (0, 1).
    """
    _check(probs, labels)
    if not 0.0 < target_risk < 1.0:
        raise CalibrationError(f"target_risk is {target_risk}, expected a value in (0, 1)")
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    conf = p.max(axis=1)
    wrong = (p.argmax(axis=1) != y).astype(np.float64)
    order = np.argsort(-conf, kind="stable")  # most confident first
    conf, wrong = conf[order], wrong[order]
    n_acc = np.arange(1, len(conf) + 1)
    observed = np.cumsum(wrong) / n_acc
    expected = np.cumsum(1.0 - conf) / n_acc
    ok = np.maximum(observed, expected) <= target_risk
    # Accept the k most confident where the largest such k still meets the target; examples
    # tied in confidence are accepted or refused together.
    good = np.flatnonzero(ok & np.append(conf[1:] < conf[:-1], True))
    if len(good) == 0:
        return 1.0  # nothing meets the target: every verdict goes to review
    k = int(good.max())
    return float(conf[k])


def plot_reliability(rel: Reliability, path: Path, *, title: str) -> None:
    """Reliability diagram (accuracy vs confidence per bin, with counts) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axc) = plt.subplots(
        2, 1, figsize=(5.0, 5.6), height_ratios=(3, 1), sharex=True, constrained_layout=True
    )
    width = np.diff(rel.edges)
    used = rel.count > 0
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfect calibration")
    ax.bar(
        rel.edges[:-1][used],
        rel.accuracy[used],
        width=width[used],
        align="edge",
        edgecolor="black",
        color="#4c72b0",
        alpha=0.8,
        label="accuracy in bin",
    )
    ax.plot(
        rel.confidence[used], rel.accuracy[used], "o", color="#dd8452", ms=4, label="mean conf."
    )
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}\nECE = {rel.ece:.4f} ({len(rel.count)} bins, n = {rel.count.sum()})")
    ax.legend(loc="upper left", fontsize=8)
    axc.bar(rel.edges[:-1], rel.count, width=width, align="edge", color="grey", edgecolor="black")
    axc.set_yscale("symlog")
    axc.set_ylabel("images")
    axc.set_xlabel("calibrated confidence (max class probability)")
    axc.set_xlim(0, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
