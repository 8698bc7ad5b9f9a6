"""Scorecards from the log: the numbers, the endpoint, the CLI and the offline recomputation."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

from api.scorecards import average_precision, binom_cdf, wilson
from tests.api.conftest import Plant

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "examples" / "recompute_scorecard.py"

# (asset, predicted rul, last cycle, failure cycle): errors 5, -10, 20, 0, -4 cycles.
CASES = [
    ("engine-1", 55.0, 100, 150),
    ("engine-1", 30.0, 120, 160),
    ("engine-2", 80.0, 50, 110),
    ("engine-2", 40.0, 70, 110),
    ("engine-3", 16.0, 80, 100),
]


def settle_cases(plant: Plant) -> list[float]:
    """Predictions with an 80 % interval of +-6 and a 90 % one of +-12 cycles, and outcomes."""
    errors = []
    for asset, rul, last, failure in CASES:
        r = plant.predict(
            asset, rul=rul, last_cycle=last,
            intervals={"80": [rul - 6, rul + 6], "90": [rul - 12, rul + 12]},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        o = plant.submit("operator", kind="outcome", settles=[r.json()["id"]], asset=asset,
                         observed={"failure_cycle": failure})  # fmt: skip
        assert o.status_code == 201, o.text
        errors.append(rul - (failure - last))
    return errors


def test_rul_scorecard_numbers(plant: Plant) -> None:
    errors = settle_cases(plant)
    plant.predict("engine-4", rul=10.0, last_cycle=5)  # never settled: not scored
    card = plant.client.get(
        f"/v1/models/{plant.model()}/scorecard", headers=plant.as_("tuv")
    ).json()
    overall = card["overall"]
    assert overall["n"] == 5
    assert overall["rmse"] == round(math.sqrt(sum(e * e for e in errors) / 5), 6)
    phm = sum(math.exp(-e / 13) - 1 if e < 0 else math.exp(e / 10) - 1 for e in errors)
    assert overall["phm08_score"] == round(phm, 6)
    # |error| <= 6: 5, 0, -4 -> 3 of 5; <= 12: also -10 -> 4 of 5.
    c80, c90 = overall["coverage"]["80"], overall["coverage"]["90"]
    assert (c80["covered"], c80["n"], c90["covered"], c90["n"]) == (3, 5, 4, 5)
    exact = sum(
        math.comb(5, i) * Fraction(8, 10) ** i * Fraction(2, 10) ** (5 - i) for i in range(4)
    )
    assert c80["p_value"] == float(f"{float(exact):.6g}")
    assert c80["wilson95"] == [round(x, 6) for x in wilson(3, 5)]
    assert set(card["by_asset"]) == {"engine-1", "engine-2", "engine-3"}
    assert card["by_asset"]["engine-3"]["n"] == 1
    assert sum(v["n"] for v in card["by_period"].values()) == 5


def test_statistics_against_known_values() -> None:
    # Wilson 95 % for 8/10 (Newcombe 1998, Table I style values: 0.4902-0.9433).
    lo, hi = wilson(8, 10)
    assert (round(lo, 4), round(hi, 4)) == (0.4902, 0.9433)
    exact = sum(math.comb(200, i) * Fraction(9, 10) ** i * Fraction(1, 10) ** (200 - i)
                for i in range(171))  # fmt: skip
    assert math.isclose(binom_cdf(170, 200, 0.9), float(exact), rel_tol=1e-9)
    # Average precision of scores 0.9 (pos), 0.8 (neg), 0.7 (pos): 1/2 * 1 + 1/2 * 2/3.
    assert math.isclose(average_precision([0.9, 0.8, 0.7], [True, False, True]) or 0, 5 / 6)


def test_scorecard_refused_to_other_publishers_and_unknown_models(plant: Plant) -> None:
    digest = plant.model()
    r = plant.client.get("/v1/models/0xabc/scorecard", headers=plant.as_("tuv"))
    assert r.status_code == 404
    ok = plant.client.get(f"/v1/models/{digest}/scorecard", headers=plant.as_("modelworks"))
    assert ok.status_code == 200
    for who in ("fixit", "acme", "line-3"):
        r = plant.client.get(f"/v1/models/{digest}/scorecard", headers=plant.as_(who))
        assert r.status_code == 403, who


def test_bundle_recomputes_offline_exactly(plant: Plant, tmp_path: Path) -> None:
    settle_cases(plant)
    plant.service.dep.log.checkpoint()
    settle_cases(plant)  # after the checkpoint: not in the bundle, which must still agree
    digest = plant.model()
    bundle = plant.client.get(
        f"/v1/models/{digest}/scorecard/bundle", headers=plant.as_("tuv")
    ).json()
    assert bundle["format"] == "forgeproof-scorecard/1"
    assert bundle["scorecard"]["overall"]["n"] == 5
    assert len(bundle["receipts"]) == 10  # five predictions, five outcomes
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    ran = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "recomputed exactly" in ran.stdout
    # The service's live scorecard over the same records gives the same numbers.
    live = plant.client.get(f"/v1/models/{digest}/scorecard", headers=plant.as_("tuv")).json()
    assert live["overall"]["n"] == 10
    # A tampered number is caught.
    bundle["scorecard"]["overall"]["rmse"] += 0.001
    path.write_text(json.dumps(bundle))
    ran = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)
    assert ran.returncode == 1
    # A tampered record is caught too.
    bundle = json.loads(json.dumps(bundle))
    bundle["receipts"][0]["record"]["payload"]["rul"] = 1.0
    path.write_text(json.dumps(bundle))
    ran = subprocess.run([sys.executable, str(SCRIPT), str(path)], capture_output=True, text=True)
    assert ran.returncode != 0


def test_cli_scorecard(plant: Plant, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    settle_cases(plant)
    plant.service.dep.log.checkpoint()
    home = str(plant.service.dep.home)
    out = tmp_path / "b.json"
    args = ["ml", "scorecard", "rul-test", "--home", home, "--json", "--bundle", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    card: dict[str, Any] = json.loads(result.stdout)
    assert card["overall"]["n"] == 5
    assert json.loads(out.read_text())["scorecard"] == card
    result = CliRunner().invoke(app, ["ml", "scorecard", plant.model(), "--home", home])
    assert result.exit_code == 0, result.output
    assert "coverage 80%" in result.output
