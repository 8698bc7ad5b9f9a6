"""Benchmark the steel-defect classifier: training time, inference throughput, plots.

    python bench/defect.py            # full: one complete training run (several minutes)
    python bench/defect.py --quick    # one training epoch, throughput, plots: under a minute
    python bench/defect.py --json     # the figures as one JSON object on the last line

Throughput is measured on the shipped model (models/defect-neu) with 2 threads, batched and
one image at a time in the same run, both for the bare classifier (decoded images in, calibrated
probabilities out) and end to end (file bytes in, records with a Grad-CAM PNG digest out). The
confusion matrix and reliability diagram are drawn for the test split of ../shared (recreated
and checked against the split digests in the manifest): data the model never trained on and no
choice was made on.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from ml.data.neu import list_images  # noqa: E402
from ml.inspect import DefectPredictor  # noqa: E402
from ml.models.defect import DefectNetConfig  # noqa: E402
from ml.tasks.defect import (  # noqa: E402
    TrainConfig,
    classification_metrics,
    fit,
    recreate_split,
    write_plots,
)

MODEL = REPO / "models" / "defect-neu"
SAMPLE = REPO / "data" / "samples" / "neu"
SHARED_IMAGES = REPO.parent / "shared" / "data" / "neu-det" / "IMAGES"
IMG_DIR = REPO / "docs" / "img"


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def timed(fn: Any, repeats: int) -> float:
    """Best of `repeats` wall times: the machine is shared, the minimum is the least noisy."""
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def throughput(predictor: DefectPredictor, files: list[Path], quick: bool) -> dict[str, float]:
    from ml.data.neu import decode_image

    blobs = [p.read_bytes() for p in files]
    images = torch.from_numpy(np.stack([decode_image(b) for b in blobs]))
    n = len(images)
    reps = 2 if quick else 3
    predictor.probabilities(images[:8])  # warm-up: first call allocates
    batched = timed(lambda: predictor.probabilities(images, batch_size=64), reps)
    single_n = min(n, 48 if quick else 128)
    single = timed(
        lambda: [predictor.probabilities(images[i : i + 1]) for i in range(single_n)], reps
    )
    e2e_n = min(n, 96 if quick else 256)
    paths = files[:e2e_n]
    batched_e2e = timed(lambda: list(predictor.predict_files(paths, explain_dir=None)), 1)
    single_e2e_n = min(n, 24 if quick else 64)
    single_e2e = timed(lambda: [predictor.predict_image(b) for b in blobs[:single_e2e_n]], 1)
    return {
        "classify_batched_img_s": rate(n, batched),
        "classify_single_img_s": rate(single_n, single),
        "records_batched_img_s": rate(e2e_n, batched_e2e),
        "records_single_img_s": rate(single_e2e_n, single_e2e),
        "n_images": n,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one training epoch; within a minute")
    ap.add_argument("--json", action="store_true", help="print figures as JSON on the last line")
    ap.add_argument("--no-plots", action="store_true", help="do not rewrite docs/img PNGs")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads for inference")
    opts = ap.parse_args()
    torch.set_num_threads(opts.threads)
    out: dict[str, Any] = {"quick": opts.quick, "threads": torch.get_num_threads()}

    predictor = DefectPredictor.from_dir(MODEL)
    have_shared = SHARED_IMAGES.is_dir()
    if have_shared:
        data, split = recreate_split(predictor.manifest, SHARED_IMAGES)
        test_files = [data.paths[i] for i in split.test]
        te = torch.from_numpy(split.test)
        probs = predictor.probabilities(data.images[te])
        m = classification_metrics(probs, data.labels[te])
        out["test_split"] = {k: m[k] for k in ("n_images", "accuracy", "macro_f1", "ece")}
        if not opts.no_plots:
            write_plots(IMG_DIR / "defect", probs, data.labels[te], title="NEU test split")
            out["plots"] = [
                str(IMG_DIR / "defect" / f) for f in ("confusion.png", "reliability.png")
            ]
    else:
        test_files = list_images(SAMPLE)
    out.update(throughput(predictor, test_files, opts.quick))
    out["batched_vs_single"] = out["classify_batched_img_s"] / out["classify_single_img_s"]

    shipped = predictor.manifest.metrics
    out["shipped_train_seconds"] = shipped.get("train_seconds")
    out["shipped_epochs"] = shipped.get("epochs")
    if have_shared:
        epochs = 1 if opts.quick else TrainConfig.epochs
        threads = torch.get_num_threads()
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            res = fit(
                SHARED_IMAGES,
                Path(tmp) / "m",
                cfg=TrainConfig(epochs=epochs),
                model_cfg=DefectNetConfig(**predictor.model.config.to_dict()),
                progress=False,
            )
            wall = time.perf_counter() - t
        torch.set_num_threads(threads)  # training picks its own thread count
        out["train_epochs"] = epochs
        out["train_wall_seconds"] = wall  # loading, training, calibration, test metrics, save
        out["train_loop_seconds"] = res["train_seconds"]
        out["seconds_per_epoch"] = res["train_seconds"] / epochs
        if not opts.quick:
            out["retrained_test_accuracy"] = res["test"]["accuracy"]

    rows = [
        ("classify, batched (64)", f"{out['classify_batched_img_s']:.0f} img/s"),
        ("classify, one at a time", f"{out['classify_single_img_s']:.0f} img/s"),
        ("batched / one-at-a-time", f"{out['batched_vs_single']:.1f}x"),
        ("records + Grad-CAM, batched", f"{out['records_batched_img_s']:.0f} img/s"),
        ("records + Grad-CAM, one at a time", f"{out['records_single_img_s']:.0f} img/s"),
    ]
    if "test_split" in out:
        t = out["test_split"]
        rows.append(
            (
                f"test split ({t['n_images']} images)",
                f"acc {t['accuracy']:.4f}  macro-F1 {t['macro_f1']:.4f}  ECE {t['ece']:.4f}",
            )
        )
    if "train_wall_seconds" in out:
        rows.append(
            (
                f"training, {out['train_epochs']} epoch(s)",
                f"{out['train_wall_seconds']:.0f} s wall, {out['seconds_per_epoch']:.1f} s/epoch",
            )
        )
    if out["shipped_train_seconds"] is not None:
        rows.append(
            (
                f"shipped model training loop ({out['shipped_epochs']} epochs)",
                f"{out['shipped_train_seconds']:.0f} s",
            )
        )
    width = max(len(r[0]) for r in rows)
    print(f"{f'defect classifier ({opts.threads} threads)':<{width}}  value")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    if opts.json:
        print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main()
