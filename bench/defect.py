"""Benchmark the steel-defect classifier: training time, inference throughput, plots.

    python bench/defect.py            # full: trains one member (80 epochs, ~25 min quiet)
    python bench/defect.py --quick    # one training epoch, throughput, plots: under a minute
    python bench/defect.py --json     # the figures as one JSON object on the last line
    python bench/defect.py --quick --no-plots --model DIR   # another model, e.g. an ensemble

Throughput is measured on the shipped model (models/defect-neu) with 2 threads, batched and
one image at a time in the same run, both for the bare classifier (decoded images in, calibrated
probabilities out) and end to end (file bytes in, records with a Grad-CAM PNG digest out); also
with NCHW rather than channels-last weights and, for an ensemble, one member alone, to show what
each gains or costs. The confusion matrix and reliability diagram are drawn for the test split
of ../shared (recreated and checked against the split digests in the manifest): data the model
never trained on and no choice was made on.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench._common import best_of  # noqa: E402
from ml.data.neu import list_images  # noqa: E402
from ml.inspection import DefectPredictor  # noqa: E402
from ml.models.defect import DefectEnsemble, DefectNetConfig  # noqa: E402
from ml.shipped import MODELS, SAMPLES  # noqa: E402
from ml.tasks.defect import (  # noqa: E402
    TrainConfig,
    classification_metrics,
    fit,
    recreate_split,
    write_plots,
)

MODEL = MODELS / "defect-neu"
SAMPLE = SAMPLES / "neu"
SHARED_IMAGES = REPO.parent / "shared" / "data" / "neu-det" / "IMAGES"
IMG_DIR = REPO / "docs" / "img"


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def throughput(predictor: DefectPredictor, files: list[Path], quick: bool) -> dict[str, float]:
    from ml.data.neu import decode_image

    blobs = [p.read_bytes() for p in files]
    images = torch.from_numpy(np.stack([decode_image(b) for b in blobs]))
    n = len(images)
    reps = 2 if quick else 3
    predictor.probabilities(images[:8])  # warm-up: first call allocates
    batched = best_of(lambda: predictor.probabilities(images, batch_size=64), reps)
    # The same batches with one view: what the test-time views cost (nothing to time for one).
    views, batched_1view = predictor.views, batched
    if views > 1:
        predictor.views = 1
        batched_1view = best_of(lambda: predictor.probabilities(images, batch_size=64), reps)
        predictor.views = views
    # What channels-last layout gains (the same folded weights in the default NCHW layout)
    # and, for an ensemble, what its members cost (one member alone).
    fast = predictor.model
    nchw = copy.deepcopy(fast).to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    variants = {"nchw": nchw}
    if isinstance(fast, DefectEnsemble):
        variants["one_member"] = fast.nets[0]
    other: dict[str, float] = {}
    for key, model in variants.items():
        predictor.model = model
        predictor.probabilities(images[:8])
        other[key] = best_of(lambda: predictor.probabilities(images, batch_size=64), reps)
    predictor.model = fast
    single_n = min(n, 48 if quick else 128)
    single = best_of(
        lambda: [predictor.probabilities(images[i : i + 1]) for i in range(single_n)], reps
    )
    e2e_n = min(n, 96 if quick else 256)
    paths = files[:e2e_n]
    batched_e2e = best_of(lambda: list(predictor.predict_files(paths, explain_dir=None)), 1)
    single_e2e_n = min(n, 24 if quick else 64)
    single_e2e = best_of(lambda: [predictor.predict_image(b) for b in blobs[:single_e2e_n]], 1)
    figures = {
        "classify_batched_img_s": rate(n, batched),
        "classify_single_img_s": rate(single_n, single),
        "classify_batched_1view_img_s": rate(n, batched_1view),
        "classify_batched_nchw_img_s": rate(n, other["nchw"]),
        "members": fast.config.members,
        "views": views,
        "records_batched_img_s": rate(e2e_n, batched_e2e),
        "records_single_img_s": rate(single_e2e_n, single_e2e),
        "n_images": n,
    }
    if "one_member" in other:
        figures["classify_batched_one_member_img_s"] = rate(n, other["one_member"])
    return figures


def time_train_steps(model_cfg: DefectNetConfig, steps: int) -> float:
    """Best wall time of one training step (augment, forward, backward, AdamW) as `fit` runs it."""
    import torch.nn.functional as F

    from ml.data.neu import AugmentConfig, augment
    from ml.models.defect import DefectNet

    cfg = TrainConfig()
    torch.set_num_threads(cfg.threads)
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (cfg.batch_size, 200, 200), dtype=torch.uint8, generator=gen)
    labels = torch.randint(0, 6, (cfg.batch_size,), generator=gen)
    model = DefectNet(model_cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def step() -> None:
        x = augment(images, model_cfg.input_size, AugmentConfig(), gen)
        loss = F.cross_entropy(model(x), labels, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    step()  # warm-up
    return best_of(step, steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one training epoch; within a minute")
    ap.add_argument("--json", action="store_true", help="print figures as JSON on the last line")
    ap.add_argument("--no-plots", action="store_true", help="do not rewrite docs/img PNGs")
    ap.add_argument("--threads", type=int, default=2, help="intra-op threads for inference")
    ap.add_argument("--model", type=Path, default=MODEL, help="model directory (default: shipped)")
    opts = ap.parse_args()
    torch.set_num_threads(opts.threads)
    out: dict[str, Any] = {"quick": opts.quick, "threads": torch.get_num_threads()}

    predictor = DefectPredictor.from_dir(opts.model)
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
    # Training time is per member: members are trained one after another, alike.
    model_cfg = replace(predictor.model.config, members=1)
    step_s = time_train_steps(model_cfg, steps=3 if opts.quick else 10)
    steps_per_epoch = -(-int(shipped["split"]["train"]) // TrainConfig.batch_size)
    out["train_step_seconds"] = step_s
    out["estimated_epoch_seconds"] = step_s * steps_per_epoch
    if have_shared and not opts.quick:
        with tempfile.TemporaryDirectory() as tmp:
            t = time.perf_counter()
            res = fit(
                SHARED_IMAGES,
                Path(tmp) / "m",
                cfg=TrainConfig(),
                model_cfg=model_cfg,
                progress=False,
            )
            out["train_wall_seconds"] = time.perf_counter() - t
        out["train_loop_seconds"] = res["train_seconds"]
        out["retrained_test_accuracy"] = res["test"]["accuracy"]
    torch.set_num_threads(opts.threads)  # training picks its own thread count

    setting = f"{out['views']} view" + ("s" if out["views"] > 1 else "")
    rows = [
        (
            f"classify, batched (64), shipped setting ({setting})",
            f"{out['classify_batched_img_s']:.0f} img/s",
        ),
        ("classify, batched (64), 1 view", f"{out['classify_batched_1view_img_s']:.0f} img/s"),
        ("classify, batched, NCHW layout", f"{out['classify_batched_nchw_img_s']:.0f} img/s"),
        ("classify, one at a time", f"{out['classify_single_img_s']:.0f} img/s"),
        ("batched / one-at-a-time", f"{out['batched_vs_single']:.1f}x"),
        ("records + Grad-CAM, batched", f"{out['records_batched_img_s']:.0f} img/s"),
        ("records + Grad-CAM, one at a time", f"{out['records_single_img_s']:.0f} img/s"),
    ]
    if "classify_batched_one_member_img_s" in out:
        one = out["classify_batched_one_member_img_s"]
        rows.insert(2, ("classify, batched, one ensemble member alone", f"{one:.0f} img/s"))
    if "test_split" in out:
        t = out["test_split"]
        rows.append(
            (
                f"test split ({t['n_images']} images)",
                f"acc {t['accuracy']:.4f}  macro-F1 {t['macro_f1']:.4f}  ECE {t['ece']:.4f}",
            )
        )
    rows.append(
        (
            f"training step (batch {TrainConfig.batch_size}, 1 thread)",
            f"{out['train_step_seconds']:.2f} s, "
            f"about {out['estimated_epoch_seconds']:.0f} s/epoch",
        )
    )
    if "train_wall_seconds" in out:
        rows.append(
            (
                f"training one member, {TrainConfig.epochs} epochs, this run",
                f"{out['train_wall_seconds']:.0f} s wall",
            )
        )
    if out["shipped_train_seconds"] is not None:
        rows.append(
            (
                f"shipped model training loops ({out['members']} x {out['shipped_epochs']} epochs)",
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
