"""`forgeproof ml ...` through the real command tree."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app
from tests.ml.conftest import AI4I_SAMPLE, CMAPSS_SAMPLE, FAILURE_MODEL, RUL_MODEL

runner = CliRunner()


def test_predict_writes_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "pred.jsonl"
    result = runner.invoke(
        app,
        ["ml", "predict", "--model", str(RUL_MODEL), "--input", str(CMAPSS_SAMPLE), "-o", str(out)],
    )
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 20 and records[0]["kind"] == "rul_prediction"
    result = runner.invoke(
        app, ["ml", "predict", "--model", str(FAILURE_MODEL), "--input", str(AI4I_SAMPLE)]
    )
    assert result.exit_code == 0
    lines = [ln for ln in result.stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 300 and json.loads(lines[0])["kind"] == "failure_risk"


def test_evaluate_failure_json(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "ml",
            "evaluate",
            "--task",
            "failure",
            "--model",
            str(FAILURE_MODEL),
            "--csv",
            str(AI4I_SAMPLE),
            "--plots",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"f1", "pr_auc", "roc_auc", "n_rows"} <= set(got) and got["n_rows"] == 300
    assert (tmp_path / "failure_pr_curve.png").is_file()


def test_bad_input_exits_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    lines = CMAPSS_SAMPLE.read_text().splitlines()
    lines[4] = " ".join(lines[4].split()[:-1])
    bad.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["ml", "predict", "--model", str(RUL_MODEL), "--input", str(bad)])
    assert result.exit_code == 2
    assert "bad.txt:5: expected 26 columns" in result.output
    result = runner.invoke(
        app,
        [
            "ml",
            "evaluate",
            "--task",
            "rul",
            "--model",
            str(RUL_MODEL),
            "--data-dir",
            str(tmp_path),
            "--subset",
            "FD005",
            "--json",
        ],
    )
    assert result.exit_code == 2 and "unknown C-MAPSS subset layout 'FD005'" in result.output
