"""`forgeproof ml report --section defect`: ml.tasks.defect.report and report_tables."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ml.report import ROOT, load_results, render_text
from ml.tasks.defect import REPORT_SPLITS, exact_interval, report, report_tables

# The data beside the checkout. These tests need it: a missing folder fails them, never skips.
DATA = ROOT.parent / "shared" / "data"
DOC = ROOT / "docs" / "ml-inspection.md"
TABLES = {"results", "settings", "calibration", "errors", "calibration_pool", "robustness"}


def _data() -> Path:
    if not (DATA / "neu-det" / "IMAGES").is_dir():
        pytest.fail(f"{DATA}/neu-det/IMAGES is missing: the defect report needs the real images")
    return DATA


def _split(correct: int, n: int, robust: dict[str, int], errors: list[dict[str, Any]]) -> dict:
    def count(k: int) -> dict[str, Any]:
        return {"correct": k, "n": n, "accuracy": k / n, "ci95": exact_interval(k, n)}

    wrong = n - correct
    sent = sum(e["sent_to_review"] for e in errors)
    return {
        **count(correct),
        "macro_f1": 0.9,
        "ece": 0.02,
        "ece_uncalibrated": 0.1,
        "nll": 0.05,
        "nll_uncalibrated": 0.2,
        "confusion": [],
        "review": {
            "threshold": 0.8,
            "sent": sent + 1,
            "errors": wrong,
            "errors_sent": sent,
            "accepted": n - sent - 1,
            "accepted_correct": correct - 1,
        },
        "robustness": {k: {**count(v), "nll": 0.1} for k, v in robust.items()},
        "errors": errors,
    }


def _results() -> dict[str, Any]:
    wrong = {
        "image": "inclusion_7.jpg",
        "true": "inclusion",
        "verdict": "patches",
        "confidence": 0.61,
        "sent_to_review": True,
    }
    results = {
        "runs": [
            {
                "shipped": True,
                "validation": _split(10, 10, {"blur": 10, "noise": 9}, []),
                "test": _split(19, 20, {"blur": 20, "noise": 18}, [wrong]),
            }
        ],
        "settings": {
            "temperature": 0.5,
            "review_threshold": 0.8,
            "target_risk": 0.01,
            "test_time_views": 1,
        },
        "calibration_refit": {
            "temperature": 0.52,
            "review_threshold": 0.81,
            "target_risk": 0.01,
            "pool_errors": [["as they are", 0], ["noise", 1], ["training augmentation, draw 1", 2]],
            "n": 10,
        },
        "perturbations": [
            {"kind": "noise", "params": {"sigma": 10.0}},
            {"kind": "blur", "params": {"sigma_px": 1.5}},
        ],
        "goals": {"accuracy": 0.99, "robustness": 0.95, "ece": 0.03},
    }
    # As committed: the results file is written with sorted keys.
    return dict(json.loads(json.dumps(results, sort_keys=True)))


def test_tables_render_from_the_results_alone() -> None:
    results = _results()
    before = copy.deepcopy(results)
    tables = report_tables(results)
    assert results == before  # rendering reads, never changes
    assert set(tables) == TABLES
    lines = tables["results"].splitlines()
    assert (
        "| accuracy | 100.00% (10 / 10) | 95.00% (19 / 20) | ≥ 99%: validation met, test not met |"
        in lines
    )
    lo, hi = exact_interval(19, 20)
    assert (
        f"| exact 95% interval | 69.15% - 100.00% | {100 * lo:.2f}% - {100 * hi:.2f}% |  |" in lines
    )
    assert "| ECE (15 bins), calibrated | 0.020 | 0.020 | ≤ 0.03: met on both |" in lines
    # Robustness: validation beside test, in the order the results list the perturbations.
    rows = tables["robustness"].splitlines()
    assert rows[2].startswith("| none (clean images, as above) | 100.00% (10 / 10) | 95.00%")
    assert rows[3].startswith("| Gaussian noise, std 10 grey levels | 90.00% (9 / 10) | 90.00%")
    assert rows[3].endswith("| ≥ 95%: validation not met, test not met |")
    assert rows[4].startswith("| Gaussian blur, sigma 1.5 px | 100.00% (10 / 10) | 100.00% (20")
    assert rows[4].endswith("| ≥ 95%: met on both |")
    assert "| validation | no error | | | | |" in tables["errors"]
    assert "| test | `inclusion_7.jpg` | inclusion | patches | 0.610 | yes |" in tables["errors"]
    assert "| temperature T | 0.500 | 0.520 |" in tables["settings"]
    assert "| Gaussian noise, std 10 grey levels | 1 |" in tables["calibration_pool"]
    calib = tables["calibration"].splitlines()
    assert (
        calib[2] == "| sent to review (confidence < 0.800) | 1 of 10 (10.00%) | 2 of 20 (10.00%) |"
    )
    assert calib[3] == "| errors among them (of all errors) | 0 of 0 | 1 of 1 |"


def test_exact_interval_known_answers() -> None:
    # All right: the lower end is (alpha / 2) ** (1 / n), the upper end 1.
    lo, hi = exact_interval(10, 10)
    assert lo == pytest.approx(0.025 ** (1 / 10)) and hi == 1.0
    lo, hi = exact_interval(287, 288)
    assert lo == pytest.approx(0.98081, abs=1e-5) and hi == pytest.approx(0.99991, abs=1e-5)


def test_quick_report_on_the_real_images() -> None:
    results = report(_data(), quick=True, progress=False)
    text = json.dumps(results, allow_nan=False, sort_keys=True)  # JSON-able, no NaN
    assert results["quick"] is True
    (run,) = results["runs"]
    assert run["shipped"] and run["init_seed"] == 1
    for name in REPORT_SPLITS:
        split = run[name]
        assert split["n"] == results["split"][name] == 24  # 4 per class
        assert set(split["robustness"]) == {"blur", "noise", "lighting"}
        assert len(split["errors"]) == split["n"] - split["correct"]
        assert split["review"]["errors"] == len(split["errors"])
        lo, hi = split["ci95"]
        assert lo <= split["accuracy"] <= hi
    assert [c for c, _ in results["calibration_refit"]["pool_errors"]][:4] == [
        "as they are",
        "blur",
        "noise",
        "lighting",
    ]
    assert set(report_tables(json.loads(text))) == TABLES


def test_committed_results_are_the_shipped_models_and_the_doc_quotes_them() -> None:
    results = load_results("defect")
    assert results["quick"] is False
    (run,) = results["runs"]
    from ml.inspection import DefectPredictor
    from ml.shipped import MODELS

    manifest = DefectPredictor.from_dir(MODELS / "defect-neu").manifest
    assert run["weights_sha256"] == manifest.weights_sha256
    assert run["test"]["accuracy"] == pytest.approx(manifest.metrics["test"]["accuracy"])
    assert run["validation"]["n"] == 216 and run["test"]["n"] == 288
    # The refit reproduces the shipped calibration.
    refit = results["calibration_refit"]
    assert refit["temperature"] == pytest.approx(results["settings"]["temperature"], rel=1e-3)
    # Every defect block in the doc is exactly what the results render to.
    rendered = {f"defect/{k}": v.rstrip("\n") + "\n" for k, v in report_tables(results).items()}
    text = DOC.read_text()
    for name in rendered:
        assert f"<!-- report:{name} -->" in text, name
    assert render_text(text, rendered, source=str(DOC)) == text
