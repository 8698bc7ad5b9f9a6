"""Both halves of the demo's drift demonstration (`forgeproof up --demo`): the FD001 model on
FD001 engines it held out of training keeps its promises and raises no alarm; on FD002 engines
(other operating conditions) its interval coverage collapses and the alarm is signed.

No exact coverage is asserted: the shipped model may be retrained (same seed and split, other
interval calibration); what is asserted is the alarm's behaviour and what the demo prints."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from rich.console import Console
from sqlalchemy import select

from api.config import Settings
from api.demo import DRIFT_CUTS, OWN_SAMPLE, seed
from api.promises import ALPHA, alarm_name
from api.scorecards import compute, gather
from api.server import Running, build
from api.tables import AlarmRow
from ledger.log import stored_from_row
from ledger.store.models import RecordRow
from ml.data.cmapss import read_trajectories
from ml.manifest import load_manifest
from ml.shipped import SAMPLES, model_dir


@dataclass
class Seeded:
    running: Running
    text: str  # what the seed printed
    digest: str  # the RUL model's manifest digest


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    home = tmp_path_factory.mktemp("demo") / "home"
    running = build(Settings(home=home, checkpoint_every=10_000))
    try:
        runner = running.service.runner
        assert runner is not None
        out = io.StringIO()
        seed(running, base_url="http://127.0.0.1:8000", console=Console(file=out, width=1000))
        yield Seeded(running, out.getvalue(), runner.digest_for("rul"))
    finally:
        running.close()


def _records(running: Running, kind: str) -> list[tuple[int, dict[str, Any]]]:
    with running.service.dep.store.reading() as conn:
        rows = conn.execute(
            select(RecordRow).where(RecordRow.kind == kind).order_by(RecordRow.leaf_index)
        ).all()
    return [(s.index, s.record().payload) for s in map(stored_from_row, rows)]


def test_the_own_subset_sample_is_the_models_holdout() -> None:
    split = load_manifest(model_dir("rul-fd001")).config["training"]["split"]
    engines = set(read_trajectories(SAMPLES / "cmapss" / OWN_SAMPLE).engine_slices())
    assert engines and engines <= set(split["holdout"])
    assert not engines & (set(split["train"]) | set(split["validation"]))


def test_no_alarm_on_the_own_subset_then_the_drift_alarm(seeded: Seeded) -> None:
    outcomes = _records(seeded.running, "outcome")
    # (The demo's demand outcomes name a product, not an asset.)
    own = [i for i, p in outcomes if p.get("asset", "").startswith("fd001-engine-")]
    drift = [i for i, p in outcomes if p.get("asset", "").startswith("fd002-engine-")]
    assert own and drift and max(own) < min(drift)  # the own subset is settled first
    name = alarm_name(seeded.digest)
    alarms = [(i, p) for i, p in _records(seeded.running, "alarm") if p["alarm"] == name]
    # No alarm record at all while only the own subset's outcomes were in: none raised, none
    # raised and cleared. The first comes with an FD002 outcome, and it is a raise.
    assert alarms, "the drift case raises the model's alarm"
    assert min(i for i, _ in alarms) > min(drift)
    first = alarms[0][1]
    assert first["state"] == "raised" and first["broken"]
    # Promises are checked per prediction source: what broke is the FD002 sample's.
    assert {b["source"] for b in first["broken"]} == {"train_FD002.txt"}
    assert {b["promise"] for b in first["broken"]} & {"coverage_80", "coverage_90"}
    assert all(a.startswith("fd002-engine-") for a in first["affected_assets"])
    with seeded.running.service.dep.store.reading() as conn:
        state = conn.execute(select(AlarmRow.raised_by).where(AlarmRow.name == name)).scalar()
    assert state is not None  # still raised at the end of the seed

    # Each case's own figures: the own subset keeps its promises, the drift case breaks them.
    pairs = gather(seeded.running.service, seeded.digest).pairs
    own_card = compute("rul", [p for p in pairs if (p.asset or "").startswith("fd001-")])["overall"]
    drift_card = compute("rul", [p for p in pairs if (p.asset or "").startswith("fd002-")])[
        "overall"
    ]
    n_engines = len(read_trajectories(SAMPLES / "cmapss" / OWN_SAMPLE).engine_slices())
    assert own_card["n"] == n_engines * len(DRIFT_CUTS)
    assert all(c["p_value"] >= ALPHA for c in own_card["coverage"].values()), own_card
    assert all(c["p_value"] < ALPHA for c in drift_card["coverage"].values()), drift_card


def test_the_demo_prints_both_outcomes(seeded: Seeded) -> None:
    lines = seeded.text.splitlines()
    own = next(line for line in lines if line.startswith("own subset: "))
    drift = next(line for line in lines if line.startswith("drift: "))
    assert lines.index(own) < lines.index(drift)
    for line in (own, drift):
        assert "interval coverage" in line and "one-sided p" in line
    assert own.endswith("; no alarm"), own
    assert "; alarm raised (record " in drift, drift


def test_the_demo_scores_its_suppliers_demand_forecasts(seeded: Seeded) -> None:
    """api/demo/demand.py: the shipped demand model's forecasts of the suppliers' products,
    their first two weeks settled from the sample, one scorecard line per supplier; each
    supplier reads its own products' forecasts only."""
    from api.auth import Caller
    from api.demo.demand import SETTLED, SUPPLY
    from api.routes.records import select_records

    lines = [line for line in seeded.text.splitlines() if line.startswith("demand: ")]
    assert [line.split(" on ")[0] for line in lines] == [
        f"demand: scorecard of {s}" for s, _ in sorted(SUPPLY)
    ]
    for (supplier, count), line in zip(sorted(SUPPLY), lines, strict=True):
        assert f"{count * SETTLED} settled forecast weeks: MASE " in line, line
        assert "interval coverage" in line
        mine = select_records(Caller(supplier, "supplier"), seeded.running.service,
                              kinds=("forecast",), limit=500).data  # fmt: skip
        assert len(mine) == count
        assert {r.participant for r in mine} == {seeded.running.service.dep.operator}
