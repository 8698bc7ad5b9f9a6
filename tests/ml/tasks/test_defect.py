"""ml/tasks/defect.py and the `forgeproof ml` commands for the defect task."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from ml.cli import app
from ml.data.neu import CLASSES, AugmentConfig, list_images
from ml.errors import MLInputError
from ml.inspection import DefectPredictor
from ml.manifest import load_manifest
from ml.models.defect import DefectEnsemble, DefectNetConfig
from ml.shipped import MODELS, SAMPLES
from ml.tasks import EvalArgs
from ml.tasks.defect import (
    TrainConfig,
    _trained_alike,
    assemble,
    calibration_temperature,
    choose_views,
    classification_metrics,
    evaluate,
    fit,
    recreate_split,
    refinalize,
)

REPO = Path(__file__).resolve().parents[3]
MODEL = MODELS / "defect-neu"
SAMPLE = SAMPLES / "neu"
TINY = DefectNetConfig(input_size=48, stem_width=8, widths=(8, 16), blocks=(1, 1))


@pytest.fixture(scope="module")
def neu_images(shared_dir: Path) -> Path:
    return shared_dir / "data" / "neu-det" / "IMAGES"


@pytest.mark.slow
def test_tiny_training_run_writes_a_usable_model(neu_images: Path, tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    metrics = fit(
        neu_images,
        out,
        cfg=TrainConfig(epochs=2, batch_size=16),
        model_cfg=TINY,
        progress=False,
        limit_per_class=10,
    )
    assert metrics["split"] == {**metrics["split"], "train": 36, "validation": 12, "test": 12}
    assert len(metrics["history"]) == 2 and 1 <= metrics["best_epoch"] <= 2
    for key in ("accuracy", "macro_f1", "ece", "review_rate"):
        assert 0.0 <= metrics["test"][key] <= 1.0
    assert set(metrics["test"]["robustness"]) == {"blur", "noise", "lighting"}
    manifest = load_manifest(out)
    assert manifest.task == "defect" and len(manifest.training_data) == 60
    assert manifest.preprocessing["calibration"]["temperature"] > 0
    json.dumps(manifest.model_dump(mode="json"), allow_nan=False)
    # The saved directory loads and scores; evaluate reads it back.
    pred = DefectPredictor.from_dir(out)
    assert pred.model.config == TINY
    res = evaluate(EvalArgs(model=out, images=SAMPLE, plots=tmp_path / "plots", progress=False))
    assert res["n_images"] == len(list_images(SAMPLE))
    assert (tmp_path / "plots" / "confusion.png").is_file()
    assert (tmp_path / "plots" / "reliability.png").is_file()
    # Its split was cut from 10 images per class: the full folder must not pass for it.
    with pytest.raises(MLInputError, match="not the folder this model was trained on"):
        refinalize(out, neu_images, tmp_path / "again")


@pytest.mark.slow
def test_members_assemble_into_an_ensemble(neu_images: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=1, batch_size=16)

    def member(name: str, *, seed: int = 0, init_seed: int) -> Path:
        fit(
            neu_images,
            tmp_path / name,
            cfg=cfg,
            model_cfg=TINY,
            seed=seed,
            init_seed=init_seed,
            progress=False,
            limit_per_class=10,
        )
        return tmp_path / name

    a, b = member("a", init_seed=0), member("b", init_seed=1)
    # A member on disk is reused only if it was trained exactly as asked.
    assert _trained_alike(a, cfg, TINY, seed=0, init_seed=0)
    assert not _trained_alike(a, cfg, TINY, seed=0, init_seed=1)
    assert not _trained_alike(a, TrainConfig(epochs=2, batch_size=16), TINY, 0, 0)
    assert not _trained_alike(tmp_path / "none", cfg, TINY, 0, 0)
    with pytest.raises(MLInputError, match="the same weights appear twice"):
        assemble([a, a], neu_images, tmp_path / "dup")
    with pytest.raises(MLInputError, match="2 or more members"):
        assemble([a], neu_images, tmp_path / "one")
    other_split = member("c", seed=1, init_seed=2)
    with pytest.raises(MLInputError, match="split differs"):
        assemble([a, other_split], neu_images, tmp_path / "mixed")
    # assemble recreates the split from the folder it is given, checked by digests: the
    # members were cut from 10 images per class, so give it exactly those.
    folder = tmp_path / "images"
    folder.mkdir()
    for name in load_manifest(a).training_data:
        shutil.copy(neu_images / name, folder / name)
    metrics = assemble([a, b], folder, tmp_path / "ens")
    manifest = load_manifest(tmp_path / "ens")
    assert manifest.config["members"] == 2 and manifest.architecture.startswith("ensemble of 2")
    assert [m["init_seed"] for m in metrics["members"]] == [0, 1]
    assert metrics["split"] == load_manifest(a).metrics["split"]
    assert metrics["parameters"] == 2 * load_manifest(a).metrics["parameters"]
    pred = DefectPredictor.from_dir(tmp_path / "ens")
    assert isinstance(pred.model, DefectEnsemble)
    probs = pred.probabilities(torch.zeros((2, 200, 200), dtype=torch.uint8))
    torch.testing.assert_close(probs.sum(dim=1), torch.ones(2))


def test_train_with_members_resumes_and_assembles(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`train --members 3 --init-seed 5`: members from random starts 5, 6, 7 on split seed 0;
    a member already on disk (here: the first) is not trained again."""
    import ml.tasks.defect as D
    from ml.tasks import TrainArgs

    fitted: list[tuple[Path, int, int | None]] = []
    monkeypatch.setattr(
        D, "fit", lambda images, out, **kw: fitted.append((out, kw["seed"], kw["init_seed"]))
    )
    monkeypatch.setattr(D, "_trained_alike", lambda d, cfg, mc, seed, init: init == 5)
    monkeypatch.setattr(D, "assemble", lambda dirs, images, out: {"dirs": dirs, "out": out})
    args = TrainArgs(out=tmp_path / "m", images=tmp_path, init_seed=5, members=3, progress=False)
    res = D.train(args)
    members = tmp_path / "m" / "members"
    assert fitted == [(members / "1", 0, 6), (members / "2", 0, 7)]
    assert res == {"dirs": [members / "0", members / "1", members / "2"], "out": tmp_path / "m"}
    # One member: a plain training run from the given random start.
    fitted.clear()
    D.train(TrainArgs(out=tmp_path / "one", images=tmp_path, seed=2, progress=False))
    assert fitted == [(tmp_path / "one", 2, 2)]


def test_more_views_only_for_a_significant_gain() -> None:
    from ml.inspection import view_logits
    from ml.models.defect import DefectNet

    torch.manual_seed(0)
    model = DefectNet(TINY).eval()
    x = torch.randn(60, 1, 48, 48)
    one, eight = view_logits(model, x, 1).argmax(1), view_logits(model, x, 8).argmax(1)
    # Labels the single view gets all right: no number of views can beat it.
    views, logits, evidence = choose_views(model, x, one)
    assert views == 1 and evidence["chosen"] == 1
    torch.testing.assert_close(logits, view_logits(model, x, 1))
    # Labels eight views get all right, and one view misses many: more views win, on evidence.
    assert int((one != eight).sum()) >= 10
    views, _, evidence = choose_views(model, x, eight)
    assert views > 1
    chosen = evidence[str(views)]
    assert chosen["p_value"] < 0.05 and chosen["fixed"] > chosen["broken"]


class _BandReader(torch.nn.Module):
    """A stand-in model that reads the class from which of six horizontal bands is brightest:
    unshaken by mild blur, noise or a lighting ramp, fooled by the flips and turns of the
    training augmentation."""

    config = TINY

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.mean(dim=(1, 3))  # (n, s)
        bands = rows.view(len(x), len(CLASSES), -1).mean(dim=2)
        return torch.nn.functional.one_hot(bands.argmax(1), len(CLASSES)).float() * 3.0


def test_temperature_is_not_fitted_to_a_perfect_validation_split() -> None:
    """Every clean validation image right, and every perturbed copy too: those logits alone
    drive T to its floor (an overconfident model). The augmentation draws in the pool have
    errors, and T is fitted to them."""
    from ml.calibration import fit_temperature
    from ml.data.neu import PERTURBATIONS, perturb, preprocess

    torch.manual_seed(0)
    labels = torch.arange(24) % len(CLASSES)
    images = (torch.rand(24, 200, 200) * 60).to(torch.uint8)
    for i, c in enumerate(labels.tolist()):
        images[i, 200 * c // 6 + 4 : 200 * (c + 1) // 6 - 4] += 150
    model = _BandReader()
    size = TINY.input_size
    clean = model(preprocess(images, size))
    conditions = [clean] + [model(preprocess(perturb(images, k), size)) for k in PERTURBATIONS]
    for logits in conditions:
        assert bool((logits.argmax(1) == labels).all())
    degenerate = fit_temperature(torch.cat(conditions), labels.repeat(len(conditions)))
    assert degenerate < 0.2  # heading for the floor of 0.05 as far as the optimiser goes
    fitted = calibration_temperature(model, images, labels, clean, views=1, aug=AugmentConfig())
    assert fitted > 3 * degenerate


def test_classification_metrics_known_answer() -> None:
    probs = torch.tensor([[0.9, 0.1, 0, 0, 0, 0], [0.2, 0.8, 0, 0, 0, 0], [0.6, 0.4, 0, 0, 0, 0]])
    labels = torch.tensor([0, 1, 1])
    m = classification_metrics(probs, labels)
    assert m["accuracy"] == pytest.approx(2 / 3)
    assert m["confusion"][1][:2] == [1, 1] and m["confusion"][0][:2] == [1, 0]
    # F1 class 0: p=1/2, r=1 -> 2/3; class 1: p=1, r=1/2 -> 2/3; absent classes count as 0.
    assert m["macro_f1"] == pytest.approx((2 / 3 + 2 / 3) / len(CLASSES))


def test_cli_evaluate_json_on_the_shipped_sample(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--task",
            "defect",
            "--model",
            str(MODEL),
            "--images",
            str(SAMPLE),
            "--plots",
            str(tmp_path),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout.strip().splitlines()[-1])
    for key in ("accuracy", "macro_f1", "ece", "n_images"):
        assert key in m
    assert m["n_images"] == len(list_images(SAMPLE))
    assert m["accuracy"] >= 0.9


def test_cli_predict_writes_records_and_reports_bad_files(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for p in list_images(SAMPLE)[:2]:
        shutil.copy(p, folder / p.name)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    out = tmp_path / "preds.jsonl"
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(MODEL),
            "--input",
            str(folder),
            "-o",
            str(out),
            "--explain-dir",
            str(tmp_path / "cams"),
        ],
    )
    assert res.exit_code == 1  # some input failed, the rest were written
    assert "broken.jpg" in res.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 3
    good = [r for r in rows if "error" not in r]
    assert len(good) == 2
    for r in good:
        assert Path(r["explanation"]["gradcam_png"]).parent == tmp_path / "cams"
        assert r["model_manifest_digest"] == load_manifest(MODEL).digest()
    # A single file works the same way and exits 0.
    one = runner.invoke(
        app,
        [
            "predict",
            "--model",
            str(MODEL),
            "--input",
            str(folder / good[0]["image"]),
            "--explain-dir",
            str(tmp_path / "cams"),
        ],
    )
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["image"] == good[0]["image"]


def test_cli_evaluate_refuses_a_folder_without_model(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["evaluate", "--task", "defect", "--model", str(tmp_path), "--images", str(SAMPLE)]
    )
    assert res.exit_code == 2
    assert "manifest.json" in res.stderr


@pytest.mark.slow
def test_shipped_model_meets_its_goals_on_its_test_split(neu_images: Path) -> None:
    """Real metrics: the shipped weights on the test split they never saw nor were tuned on."""
    pred = DefectPredictor.from_dir(MODEL)
    data, split = recreate_split(pred.manifest, neu_images)
    te = torch.from_numpy(split.test)
    probs = pred.probabilities(data.images[te])
    m = classification_metrics(probs, data.labels[te])
    assert m["n_images"] == 288
    # The goal: 0.99 or more (at most 2 errors in 288).
    assert m["accuracy"] >= 0.99
    assert m["macro_f1"] >= 0.99
    assert m["ece"] <= 0.03
    # The manifest reports what the weights do.
    assert pred.manifest.metrics["test"]["accuracy"] == pytest.approx(m["accuracy"], abs=1e-6)
    # Robustness goal (95%) under each fixed perturbation, with the predictor as shipped.
    from ml.tasks.defect import robustness

    robust = robustness(pred.probabilities, data.images[te], data.labels[te])
    assert set(robust) == {"blur", "noise", "lighting"}
    assert min(robust.values()) >= 0.95, robust
    assert pred.views == 1  # one forward pass per image: what the throughput goal is measured on
