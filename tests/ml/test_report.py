"""ml/report.py: the docs quote the committed results, rendered, never typed in by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ml import report
from ml.errors import MLInputError
from ml.manifest import load_manifest
from ml.shipped import model_dir


def test_render_replaces_only_the_named_blocks() -> None:
    text = (
        "intro\n<!-- report:rul/results -->\nold table\n<!-- /report:rul/results -->\n"
        "between\n<!-- report:rul/coverage -->\n<!-- /report:rul/coverage -->\nend\n"
    )
    out = report.render_text(text, {"rul/results": "| new |\n", "rul/coverage": "| c |\n"})
    assert out == (
        "intro\n<!-- report:rul/results -->\n| new |\n<!-- /report:rul/results -->\n"
        "between\n<!-- report:rul/coverage -->\n| c |\n<!-- /report:rul/coverage -->\nend\n"
    )
    with pytest.raises(MLInputError, match="report:rul/nope"):
        report.render_text("<!-- report:rul/nope -->\n<!-- /report:rul/nope -->", {})


def test_the_docs_are_what_the_committed_results_render() -> None:
    stale = report.stale_blocks()
    assert not stale, "run `forgeproof ml report --render-only`:\n" + "\n".join(stale)
    blocks = sum(p.read_text().count("<!-- report:") for p in report.DOCS if p.is_file())
    assert blocks >= 5  # README and the ML docs quote the report


def test_every_section_has_committed_results() -> None:
    for section in report.SECTIONS:
        results = report.load_results(section)
        assert results.get("quick") is not True, f"{section}: a --quick run is committed"


def _rul() -> dict:
    return json.loads((report.RESULTS / "rul.json").read_text())


def test_rul_intervals_hold_under_the_test_like_protocol() -> None:
    """The promise docs/ml-maintenance.md makes: over the report's seeds, 80 % and 90 %
    intervals cover within 3 points of nominal on held-out engines cut as the test file cuts
    its engines, on FD001 and FD002."""
    runs = _rul()["runs"]
    for subset in ("FD001", "FD002"):
        rs = [r for r in runs if r["subset"] == subset]
        assert len(rs) >= 5
        for level in (80, 90):
            mean = sum(r[f"coverage_{level}"] for r in rs) / len(rs)
            assert abs(mean - level / 100) <= 0.03, (subset, level, mean)


def test_rul_report_states_the_shipped_model_as_shipped() -> None:
    shipped = _rul()["shipped"]
    manifest = load_manifest(model_dir("rul-fd001"))
    assert shipped["manifest_digest"] == manifest.digest()
    for key in ("rmse", "score", "coverage_80", "coverage_90", "rmse_all_windows"):
        assert shipped[key] == manifest.metrics[key], key


def test_rul_tables_render_from_results_alone(tmp_path: Path) -> None:
    from ml.tasks.rul import report_tables

    tables = report_tables(_rul())
    assert {"results", "coverage", "truncation", "design"} <= set(tables)
    assert "mean ± sd" in tables["results"] and "leave one engine out" in tables["coverage"]
