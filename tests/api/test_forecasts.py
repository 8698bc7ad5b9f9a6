"""Demand forecasts (issue #21): signed forecasts, products assigned to suppliers, who reads
what, settlement by outcomes, the demand scorecard, and the forecast route."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from api.delivery import DeliveryWorker
from api.runner import ModelRunner
from api.scorecards import binom_cdf, wilson
from api.tables import Delivery, ProductAssignment, Subscription
from ledger.receipts import verify_receipt
from ledger.records import Record
from ledger.signing import Domain, verify_record_signature
from ml.shipped import MODELS
from tests.api.conftest import Hook, Plant

ROOT = Path(__file__).resolve().parents[2]
RECOMPUTE = ROOT / "docs" / "examples" / "recompute_scorecard.py"
MISSING = "0x" + "ab" * 32


def _size(plant: Plant) -> int:
    return plant.service.dep.log.committed_size()


def _forecast(plant: Plant, product: str = "P17", **kw: Any) -> dict[str, Any]:
    r = plant.forecast(product, **kw)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _settle(plant: Plant, leaves: list[str], product: str, week: str, units: Any) -> Any:
    return plant.submit("line-3", kind="outcome", settles=leaves, product=product,
                        observed={"week": week, "units": units})  # fmt: skip


@pytest.fixture
def hooks() -> Iterator[tuple[Hook, Hook]]:
    a, b = Hook(), Hook()
    yield a, b
    a.close()
    b.close()


# --- the record ----------------------------------------------------------------------------------


def test_forecast_round_trip_sign_append_receipt_verify(plant: Plant) -> None:
    assert plant.assign_product("P17", "acme").status_code == 201
    made = _forecast(plant)
    got = plant.client.get(f"/v1/records/{made['id']}", headers=plant.as_("acme"))
    assert got.status_code == 200, got.text
    record = Record.parse(got.json()["record"])
    assert record.kind == "forecast" and record.payload["product"] == "P17"
    assert record.producer.participant == "line-3"
    plant.service.dep.log.checkpoint()
    r = plant.client.get(f"/v1/records/{made['id']}/receipt", headers=plant.as_("acme"))
    assert r.status_code == 200, r.text
    receipt = r.json()["receipt"]
    assert receipt["record"]["payload"]["weeks"] == ["2026-W40", "2026-W41"]
    assert verify_receipt(receipt).ok  # offline: leaf hash, signature, inclusion
    verified = plant.client.post("/v1/verify", json={"receipt": receipt}, headers=plant.as_("acme"))
    assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text
    # Filtered by product, as a supplier lists its forecasts.
    listed = plant.client.get(
        "/v1/records", params={"kind": "forecast", "product": "P17"}, headers=plant.as_("acme")
    ).json()["data"]
    assert [x["id"] for x in listed] == [made["id"]]


def test_a_supplier_cannot_sign_a_forecast(plant: Plant) -> None:
    assert plant.assign_product("P17", "acme").status_code == 201
    plant.demand_model()
    before = _size(plant)
    r = plant.forecast("P17", who="acme")
    assert r.status_code == 403, r.text
    assert "may not sign forecast" in r.json()["detail"]
    # Nor does anyone sign one for it with a key it does not hold, or submit line-3's.
    signed = plant.signed_payload("line-3", "forecast", plant.forecast_payload("P17"))
    r = plant.client.post("/v1/records", json=signed, headers=plant.as_("acme"))
    assert r.status_code == 403
    # Nor run the model.
    r = plant.client.post(
        "/v1/predictions/demand",
        json={"product": "P17", "history": [1.0] * 10, "last_week": "2026-W39"},
        headers=plant.as_("acme"),
    )
    assert r.status_code == 403
    assert _size(plant) == before


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("kind", "forecast", "payload.kind"),
        ("product", "", "payload.product"),
        ("product", None, "payload.product"),
        ("origin", "2026-W54", "payload.origin"),
        ("origin", "2026-40", "payload.origin"),
        ("weeks", ["2026-W40", "2026-W42"], "payload.weeks[1]"),
        ("weeks", [f"2026-W{w}" for w in range(40, 49)], "payload.weeks"),
        ("weeks", [], "payload.weeks"),
        ("point", [10.0], "payload.point"),
        ("point", [10.0, -1.0], "payload.point[1]"),
        ("point", [10.0, "12"], "payload.point[1]"),
        ("point", [10.0, True], "payload.point[1]"),
        ("intervals", {}, "payload.intervals"),
        ("intervals", {"80": [[1, 2]]}, "payload.intervals.80"),
        ("intervals", {"80": [[1, 2], [5, 3]]}, "payload.intervals.80[1]"),
        ("intervals", {"eighty": [[1, 2], [3, 4]]}, "payload.intervals"),
        ("intervals", {"80": [[1, 2], [3]]}, "payload.intervals.80[1]"),
        ("input_digest", "abc", "payload.input_digest"),
        ("input_shape", [], "payload.input_shape"),
        ("scale", -1.0, "payload.scale"),
        ("scale", None, "payload.scale"),
        ("model", None, "payload.model"),
        ("model_manifest_digest", "0x12", "payload.model_manifest_digest"),
        ("model_manifest_digest", MISSING, "not registered"),
    ],
)
def test_malformed_forecasts_are_refused_and_change_nothing(
    plant: Plant, field: str, value: Any, needle: str
) -> None:
    payload = plant.forecast_payload("P17")
    if value is None:
        del payload[field]
    else:
        payload[field] = value
    before = _size(plant)
    r = plant.submit_payload("line-3", "forecast", payload)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert needle in r.json()["detail"], r.json()["detail"]
    assert _size(plant) == before


def test_a_forecast_cites_a_demand_model_and_only_forecasts_do(plant: Plant) -> None:
    plant.model(), plant.demand_model()
    before = _size(plant)
    r = plant.forecast("P17", model_manifest_digest=plant.model())  # a rul model
    assert r.status_code == 422 and "a rul model" in r.json()["detail"], r.text
    r = plant.submit("line-3", kind="prediction", asset="e-1", rul=3.0,
                     model_manifest_digest=plant.demand_model())  # fmt: skip
    assert r.status_code == 422 and "a demand model" in r.json()["detail"], r.text
    assert _size(plant) == before


# --- product assignments -----------------------------------------------------------------------


def test_product_assignments(plant: Plant) -> None:
    r = plant.assign_product("P17", "acme")
    assert r.status_code == 201, r.text
    assert r.json()["product"] == "P17" and r.json()["supplier"] == "acme"
    size = _size(plant)
    assert plant.assign_product("P17", "acme").status_code == 409  # nothing appended
    assert plant.assign_product("P17", "fixit").status_code == 403  # not a supplier
    assert plant.assign_product("P17", "nobody").status_code == 404
    assert _size(plant) == size
    assert plant.assign_product("P17", "nordic").status_code == 201
    assert plant.assign_product("P18", "nordic").status_code == 201
    # The assignment is an operator-signed record, read by those who read everything only.
    rec = plant.client.get(f"/v1/records/{r.json()['record_id']}", headers=plant.as_("tuv"))
    assert rec.json()["kind"] == "product_assignment"
    assert rec.json()["record"]["producer"]["participant"] == "operator"
    for who in ("acme", "nordic", "fixit"):
        assert (
            plant.client.get(
                f"/v1/records/{r.json()['record_id']}", headers=plant.as_(who)
            ).status_code
            == 403
        )

    def listed(who: str) -> Any:
        return plant.client.get("/v1/participants/product-assignments", headers=plant.as_(who))

    every = [(a["product"], a["supplier"]) for a in listed("tuv").json()]
    assert every == [("P17", "acme"), ("P17", "nordic"), ("P18", "nordic")]
    # A supplier sees its own products, not who else supplies them.
    assert [(a["product"], a["supplier"]) for a in listed("acme").json()] == [("P17", "acme")]
    assert "acme" not in listed("nordic").text
    assert listed("fixit").status_code == 403
    # Not through /v1/records, where it would be logged without its row.
    signed = plant.signed("operator", kind="product_assignment", product="P9", supplier="acme")
    r = plant.client.post("/v1/records", json=signed, headers=plant.as_("operator"))
    assert r.status_code == 422 and "product-assignments" in r.json()["detail"]


# --- who reads what ----------------------------------------------------------------------------


def _deliveries(plant: Plant, who: str) -> list[int]:
    with plant.service.dep.store.reading() as conn:
        return list(
            conn.execute(
                select(Delivery.leaf_index)
                .join(Subscription, Subscription.id == Delivery.subscription)
                .where(Subscription.participant == who)
                .order_by(Delivery.leaf_index)
            ).scalars()
        )


def test_another_supplier_cannot_tell_a_forecast_from_a_missing_record(
    plant: Plant, hooks: tuple[Hook, Hook]
) -> None:
    acme_hook, nordic_hook = hooks
    for who, hook in (("acme", acme_hook), ("nordic", nordic_hook)):
        r = plant.client.post("/v1/subscriptions", json={"url": hook.url}, headers=plant.as_(who))
        assert r.status_code == 201, r.text
    assert plant.assign_product("P17", "acme").status_code == 201
    assert plant.assign_product("P18", "nordic").status_code == 201
    mine = _forecast(plant, "P17")
    theirs = _forecast(plant, "P18")
    plant.service.dep.log.checkpoint()
    nordic = plant.as_("nordic")
    # GET and receipt: the same answer as for a record that does not exist.
    for suffix in ("", "/receipt"):
        exists = plant.client.get(f"/v1/records/{mine['id']}{suffix}", headers=nordic)
        by_index = plant.client.get(f"/v1/records/{mine['index']}{suffix}", headers=nordic)
        missing = plant.client.get(f"/v1/records/{MISSING}{suffix}", headers=nordic)
        assert exists.status_code == by_index.status_code == missing.status_code == 403
        assert json.loads(exists.text) == json.loads(missing.text) == json.loads(by_index.text)
    # The acme's receipt, once cached (the fast path), still refuses nordic.
    assert plant.client.get(f"/v1/records/{mine['id']}/receipt",
                            headers=plant.as_("acme")).status_code == 200  # fmt: skip
    again = plant.client.get(f"/v1/records/{mine['id']}/receipt", headers=nordic)
    assert again.status_code == 403 and json.loads(again.text) == json.loads(missing.text)
    # Lists and feeds: each supplier its own products' forecasts.
    for who, own, other in (("nordic", theirs, mine), ("acme", mine, theirs)):
        listed = plant.client.get("/v1/records", headers=plant.as_(who)).json()["data"]
        assert [x["id"] for x in listed] == [own["id"]], who
        feed = plant.client.get("/v1/feed", headers=plant.as_(who)).json()["data"]
        assert [x["id"] for x in feed] == [own["id"]], who
        assert other["id"] not in json.dumps(listed) + json.dumps(feed)
    # Nobody else reads them: a maintainer, a model publisher.
    for who in ("fixit", "modelworks"):
        assert (
            plant.client.get(f"/v1/records/{mine['id']}", headers=plant.as_(who)).status_code == 403
        )
    assert (
        plant.client.get(f"/v1/records/{mine['id']}", headers=plant.as_("tuv")).status_code == 200
    )
    # Webhooks deliver exactly what a GET allows.
    assert _deliveries(plant, "acme") == [mine["index"]]
    assert _deliveries(plant, "nordic") == [theirs["index"]]
    worker = DeliveryWorker(plant.service, base_delay_s=0.05)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (acme_hook.calls and nordic_hook.calls):
        worker.run_once()
        time.sleep(0.02)
    domain = Domain.from_json(plant.service.dep.domain.to_json())
    for hook, own in ((acme_hook, mine), (nordic_hook, theirs)):
        bodies = [json.loads(c.body) for c in hook.calls]
        assert [b["record"]["id"] for b in bodies] == [own["id"]]
        delivered = Record.parse(bodies[0]["record"]["record"])
        signature = bytes.fromhex(bodies[0]["record"]["signature"][2:])
        verify_record_signature(domain, delivered, signature)  # raises if not line-3's


def test_a_forecast_made_before_the_assignment_is_read_after_it(plant: Plant) -> None:
    """Reads follow the assignment table, as for maintainers' assets."""
    made = _forecast(plant, "P20")
    assert (
        plant.client.get(f"/v1/records/{made['id']}", headers=plant.as_("acme")).status_code == 403
    )
    assert plant.assign_product("P20", "acme").status_code == 201
    assert (
        plant.client.get(f"/v1/records/{made['id']}", headers=plant.as_("acme")).status_code == 200
    )


def test_a_leaked_supplier_key_reads_only_that_suppliers_products(plant: Plant) -> None:
    """nordic's key in the wrong hands: it reads what nordic reads, never acme's forecasts,
    assigns nothing; once revoked it reads nothing at all."""
    assert plant.assign_product("P17", "acme").status_code == 201
    assert plant.assign_product("P18", "nordic").status_code == 201
    mine = _forecast(plant, "P17")
    theirs = _forecast(plant, "P18")
    plant.service.dep.log.checkpoint()
    leaked = plant.as_("nordic")
    assert plant.client.get(f"/v1/records/{mine['id']}", headers=leaked).status_code == 403
    assert plant.client.get(f"/v1/records/{theirs['id']}", headers=leaked).status_code == 200
    r = plant.client.post(
        "/v1/participants/product-assignments",
        json={"product": "P17", "supplier": "nordic"},
        headers=leaked,
    )
    assert r.status_code == 403
    listed = plant.client.get("/v1/records", params={"product": "P17"}, headers=leaked).json()
    assert listed["data"] == []
    # Revoked: refused everywhere, the cached receipt's fast path included.
    assert (
        plant.client.get(f"/v1/records/{theirs['id']}/receipt", headers=leaked).status_code == 200
    )
    keys = plant.client.get("/v1/api-keys", headers=leaked).json()
    r = plant.client.post(f"/v1/api-keys/{keys[0]['id']}/revoke", headers=leaked)
    assert r.status_code == 200, r.text
    time.sleep(0.6)  # every process re-reads a key within a second
    for path in (f"/v1/records/{theirs['id']}", f"/v1/records/{theirs['id']}/receipt",
                 "/v1/feed", "/v1/records"):  # fmt: skip
        assert plant.client.get(path, headers=leaked).status_code == 401, path


# --- settlement --------------------------------------------------------------------------------


def test_an_outcome_settles_a_forecast_week(plant: Plant) -> None:
    a = _forecast(plant, "P17")
    b = _forecast(plant, "P17", origin="2026-W41", point=(11.0,))
    r = _settle(plant, [a["id"], b["id"]], "P17", "2026-W41", 14)
    assert r.status_code == 201, r.text
    r = _settle(plant, [a["id"]], "P17", "2026-W40", 0.5)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("wrong-product", "is about 'P17'"),
        ("no-product", "is about 'P17'"),
        ("week-not-forecast", "not one of the cited forecast's weeks"),
        ("bad-week", "observed.week"),
        ("negative-units", "observed.units"),
        ("bool-units", "observed.units"),
        ("rul-observed", "observed.week"),
        ("mixed", "different tasks"),
        ("not-a-forecast", "supplier_record"),
    ],
)
def test_refused_settlements_change_nothing(plant: Plant, case: str, needle: str) -> None:
    leaf = _forecast(plant, "P17")["id"]
    other = _forecast(plant, "P18")["id"]
    body: dict[str, Any] = {"settles": [leaf], "product": "P17",
                            "observed": {"week": "2026-W40", "units": 3}}  # fmt: skip
    if case == "wrong-product":
        body["settles"] = [leaf, other]
        body["product"] = "P18"
        needle = "is about 'P17'"
    elif case == "no-product":
        del body["product"]
    elif case == "week-not-forecast":
        body["observed"]["week"] = "2026-W42"
    elif case == "bad-week":
        body["observed"]["week"] = "W40"
    elif case == "negative-units":
        body["observed"]["units"] = -1
    elif case == "bool-units":
        body["observed"]["units"] = True
    elif case == "rul-observed":
        body["observed"] = {"failure_cycle": 10}
    elif case == "mixed":
        rul = plant.predict("engine-1", rul=3.0, last_cycle=1).json()["id"]
        body["settles"] = [rul, leaf]
        body["asset"] = "engine-1"
        body["observed"] = {"failure_cycle": 10, "week": "2026-W40", "units": 3}
    elif case == "not-a-forecast":
        body["settles"] = [plant.submit("acme", lot="L9").json()["id"]]
    before = _size(plant)
    r = plant.submit("line-3", kind="outcome", **body)
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "invalid_input"
    assert needle in r.json()["detail"], r.json()["detail"]
    assert _size(plant) == before


# --- the scorecard -------------------------------------------------------------------------------


def _scored(plant: Plant) -> dict[str, str]:
    """acme supplies P17, nordic P18; forecasts A (P17), B (P18, scale 0); then nordic also
    supplies P17 and forecast C (P17) follows. Settled:
        A W40: 14, then corrected to 11 (the latest counts)   y 11, yhat 10
        A W41 and C W41 (one outcome): 12                     y 12, yhat 12 (A), 13 (C)
        B W40: 0                                              y 0,  yhat 0
        B W41: 9                                              y 9,  yhat 5
    """
    assert plant.assign_product("P17", "acme").status_code == 201
    assert plant.assign_product("P18", "nordic").status_code == 201
    a = _forecast(plant, "P17", point=(10.0, 12.0), half80=2.0, half90=4.0, scale=2.0)
    b = _forecast(plant, "P18", point=(0.0, 5.0), half80=1.0, half90=2.0, scale=0.0)
    assert plant.assign_product("P17", "nordic").status_code == 201
    c = _forecast(plant, "P17", origin="2026-W41", point=(13.0,), half80=1.0, half90=2.0,
                  scale=1.0)  # fmt: skip
    for leaves, product, week, units in (
        ([a["id"]], "P17", "2026-W40", 14),
        ([a["id"]], "P17", "2026-W40", 11),
        ([a["id"], c["id"]], "P17", "2026-W41", 12),
        ([b["id"]], "P18", "2026-W40", 0),
        ([b["id"]], "P18", "2026-W41", 9.0),
    ):
        r = _settle(plant, leaves, product, week, units)
        assert r.status_code == 201, r.text
    _forecast(plant, "P17", point=(1.0,))  # never settled: not scored
    return {"a": a["id"], "b": b["id"], "c": c["id"]}


def _r(x: float) -> float:
    return round(x, 6)


def test_demand_scorecard_on_a_hand_computed_example(plant: Plant) -> None:
    _scored(plant)
    card = plant.client.get(
        f"/v1/models/{plant.demand_model()}/scorecard", headers=plant.as_("tuv")
    ).json()
    assert card["task"] == "demand"
    o = card["overall"]
    # Pairs in leaf and week order: A W40, A W41, B W40, B W41, C W41.
    y = [11, 12, 0, 9, 12]
    yhat = [10, 12, 0, 5, 13]
    assert o["n"] == 5
    assert o["mae"] == _r((1 + 0 + 0 + 4 + 1) / 5)
    # MASE over the forecasts with a scale: A (scale 2): 1/2, 0; C (scale 1): 1. B left out.
    assert o["mase"] == 0.5 and o["mase_n"] == 3 and o["scale_zero"] == 2
    smape = [
        2 * abs(a - b) / (abs(a) + abs(b)) if a or b else 0.0 for a, b in zip(y, yhat, strict=True)
    ]
    assert smape[2] == 0.0
    assert o["smape"] == _r((2 / 21 + 0 + 0 + 8 / 14 + 2 / 25) / 5)
    # 80 %: A [8,12] holds 11, [10,14] 12; B [-1,1] 0, [4,6] misses 9; C [12,14] 12.
    c80, c90 = o["coverage"]["80"], o["coverage"]["90"]
    assert (c80["covered"], c80["n"]) == (4, 5)
    assert (c90["covered"], c90["n"]) == (4, 5)  # B W41: [3, 7] misses 9
    assert c80["wilson95"] == [_r(x) for x in wilson(4, 5)]
    assert c80["p_value"] == float(f"{binom_cdf(4, 5, 0.8):.6g}")
    exact = 1 - 0.8**5
    assert math.isclose(c80["p_value"], exact, rel_tol=1e-5)
    # Per product.
    assert set(card["by_product"]) == {"P17", "P18"}
    p18 = card["by_product"]["P18"]
    assert p18["n"] == 2 and p18["mase"] is None and p18["scale_zero"] == 2
    assert p18["mae"] == 2.0 and p18["smape"] == _r((0 + 8 / 14) / 2)
    assert card["by_product"]["P17"]["n"] == 3
    # Per supplier, as assigned when each forecast was logged: nordic took P17 after A.
    assert card["by_supplier"]["acme"]["n"] == 3  # A W40, A W41, C W41
    assert card["by_supplier"]["nordic"]["n"] == 3  # B W40, B W41, C W41
    assert card["by_supplier"]["nordic"]["mae"] == _r((0 + 4 + 1) / 3)
    assert sum(v["n"] for v in card["by_period"].values()) == 5
    assert card["by_asset"] == {}
    # The auditor's model page shows the same figures per product and supplier.
    from tests.portal.test_portal_access import sign_in

    page = sign_in(plant, "tuv").get("/portal/audit/model", params={"model": plant.demand_model()})
    assert page.status_code == 200, page.text
    assert 'id="scorecard-suppliers"' in page.text and 'id="scorecard-products"' in page.text
    assert 'data-metric="mase">0.5000' in page.text
    # And the command line.
    from typer.testing import CliRunner

    from api.cli import app

    home = str(plant.service.dep.home)
    result = CliRunner().invoke(app, ["ml", "scorecard", plant.demand_model(), "--home", home])
    assert result.exit_code == 0, result.output
    assert "supplier nordic: 3 settled weeks" in result.output
    assert "mase leaves out 2 weeks" in result.output


def test_demand_bundle_recomputes_offline_exactly(plant: Plant, tmp_path: Path) -> None:
    _scored(plant)
    plant.service.dep.log.checkpoint()
    digest = plant.demand_model()
    bundle = plant.client.get(
        f"/v1/models/{digest}/scorecard/bundle", headers=plant.as_("tuv")
    ).json()
    kinds = sorted(r["record"]["kind"] for r in bundle["receipts"])
    # 3 forecasts, 4 outcomes (the superseded one is not used), 3 assignments.
    assert kinds == ["forecast"] * 3 + ["outcome"] * 4 + ["product_assignment"] * 3
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    ran = subprocess.run([sys.executable, str(RECOMPUTE), str(path)], capture_output=True,
                         text=True)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "recomputed exactly" in ran.stdout
    # A supplier's figures changed by hand are caught.
    bundle["scorecard"]["by_supplier"]["nordic"]["mae"] += 0.001
    path.write_text(json.dumps(bundle))
    ran = subprocess.run([sys.executable, str(RECOMPUTE), str(path)], capture_output=True)
    assert ran.returncode == 1


# --- the route ---------------------------------------------------------------------------------


def _fake_model(tmp_path: Path) -> Path:
    """A demand model directory the runner accepts (its weights are not a network: the
    forecasting function is replaced in these tests)."""
    from ml.manifest import ModelManifest

    d = tmp_path / "demand-fake"
    d.mkdir()
    weights = b"not weights"
    (d / "weights.safetensors").write_bytes(weights)
    manifest = ModelManifest(
        name="demand-fake",
        task="demand",
        architecture="fake",
        config={},
        weights_sha256="0x" + hashlib.sha256(weights).hexdigest(),
        training_data={},
        created_at="2026-11-01T00:00:00Z",
    )
    (d / "manifest.json").write_text(json.dumps(manifest.as_json()))
    return d


class FakeForecaster:
    """Stands in for `ml.forecast.DemandPredictor` of the fake model: a level forecast, every
    call recorded."""

    def __init__(self, model_dir: Path, calls: list[dict[str, Any]]) -> None:
        from ml.manifest import load_manifest

        self.digest = load_manifest(model_dir).digest()
        self.calls = calls

    def forecast(
        self, histories: dict[str, list[float]], *, last_week: str, horizon: int = 8
    ) -> list[dict[str, Any]]:
        from api.forecasts import next_week
        from ml.errors import MLInputError

        self.calls.append({"histories": histories, "last_week": last_week, "horizon": horizon})
        digest = self.digest
        out = []
        for product, h in histories.items():
            if len(h) < 8:
                raise MLInputError(f"{product}: {len(h)} weeks of history, expected at least 8")
            weeks = [next_week(last_week)]
            while len(weeks) < horizon:
                weeks.append(next_week(weeks[-1]))
            level = sum(h[-4:]) / 4
            out.append({
                "kind": "demand_forecast", "model": "demand-fake",
                "model_manifest_digest": digest, "product": product, "origin": weeks[0],
                "weeks": weeks, "point": [level] * horizon,
                "intervals": {"80": [[level - 1, level + 1]] * horizon,
                              "90": [[level - 2, level + 2]] * horizon},
                "input_digest": "0x" + hashlib.sha256(json.dumps(h).encode()).hexdigest(),
                "input_shape": [len(h)],
                "scale": sum(abs(a - b) for a, b in zip(h[1:], h[:-1], strict=True)) / (len(h) - 1),
            })  # fmt: skip
        return out


def test_the_demand_route_signs_what_the_model_forecasts(
    plant: Plant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.server import register_shipped

    calls: list[dict[str, Any]] = []
    model = _fake_model(tmp_path)
    runner = ModelRunner([model])
    fake = FakeForecaster(model, calls)
    monkeypatch.setattr(runner, "predictor", lambda digest: fake)
    plant.service.runner = runner
    register_shipped(plant.service, runner)
    assert plant.assign_product("P17", "acme").status_code == 201
    history = [float(i % 5) for i in range(44)]
    r = plant.client.post(
        "/v1/predictions/demand",
        json={"product": "P17", "history": history, "last_week": "2026-W39", "horizon": 4},
        headers=plant.as_("line-3"),
    )
    assert r.status_code == 201, r.text
    payload = r.json()["record"]["payload"]
    assert payload["weeks"] == ["2026-W40", "2026-W41", "2026-W42", "2026-W43"]
    assert payload["requested_by"] == "line-3" and payload["product"] == "P17"
    assert r.json()["record"]["kind"] == "forecast"
    assert r.json()["record"]["producer"]["participant"] == "operator"
    assert calls[-1] == {"histories": {"P17": history}, "last_week": "2026-W39", "horizon": 4}
    got = plant.client.get(f"/v1/records/{r.json()['id']}", headers=plant.as_("acme"))
    assert got.status_code == 200
    # The batch: one forecast per product, in order; refusals sign none.
    size = _size(plant)
    body = {"histories": {"P18": history, "P17": history[:20]}, "last_week": "2026-W52"}
    r = plant.client.post("/v1/predictions/demand/batch", json=body, headers=plant.as_("operator"))
    assert r.status_code == 201, r.text
    made = r.json()["forecasts"]
    assert [f["record"]["payload"]["product"] for f in made] == ["P18", "P17"]
    assert made[0]["record"]["payload"]["weeks"][:2] == ["2026-W53", "2027-W01"]
    assert _size(plant) == size + 2
    for bad, needle in (
        ({"histories": {"P1": history, "P2": [1.0] * 3}, "last_week": "2026-W39"}, "P2: 3 weeks"),
        ({"histories": {"P1": history}, "last_week": "2027-W53"}, "last_week"),
        ({"histories": {"P1": [1.0, -2.0] * 5}, "last_week": "2026-W39"}, "greater than"),
        ({"histories": {"P1": history}, "last_week": "2026-W39", "horizon": 5}, "horizon"),
    ):
        r = plant.client.post("/v1/predictions/demand/batch", json=bad, headers=plant.as_("line-3"))
        assert r.status_code == 422, r.text
        assert needle in r.text, r.text
    assert _size(plant) == size + 2
    # An unknown model digest is not on this server.
    r = plant.client.post(
        "/v1/predictions/demand",
        json={"product": "P1", "history": history, "last_week": "2026-W39", "model": MISSING},
        headers=plant.as_("line-3"),
    )
    assert r.status_code == 404, r.text


def test_the_shipped_demand_model_forecasts_the_shipped_sample(plant: Plant) -> None:
    """The real model (ml/shipped/models/demand-weekly) on the shipped sample, through the
    route, settled and scored."""
    from api.demo.demand import HISTORY
    from api.server import register_shipped
    from ml.data.demand import load_weekly
    from ml.tasks.demand import default_csv

    runner = ModelRunner.shipped()
    plant.service.runner = runner
    register_shipped(plant.service, runner)
    digest = runner.digest_for("demand")
    sales = load_weekly(default_csv())
    sample = {p: sales.units[i].tolist() for i, p in enumerate(sales.products)}
    products = list(sample)[:2]
    for p in products:
        assert plant.assign_product(p, "acme").status_code == 201
    body = {"histories": {p: sample[p][:HISTORY] for p in products}, "last_week": "2026-W44",
            "horizon": 8}  # fmt: skip
    r = plant.client.post("/v1/predictions/demand/batch", json=body, headers=plant.as_("line-3"))
    assert r.status_code == 201, r.text
    for f, p in zip(r.json()["forecasts"], products, strict=True):
        payload = f["record"]["payload"]
        assert payload["model_manifest_digest"] == digest and payload["product"] == p
        assert payload["weeks"][0] == "2026-W45" and len(payload["weeks"]) == 8
        o = _settle(plant, [f["id"]], p, payload["weeks"][0], sample[p][HISTORY])
        assert o.status_code == 201, o.text
    card = plant.client.get(f"/v1/models/{digest}/scorecard", headers=plant.as_("tuv")).json()
    assert card["overall"]["n"] == 2 and card["by_supplier"]["acme"]["n"] == 2
    with plant.service.dep.store.reading() as conn:
        assert conn.execute(select(func.count()).select_from(ProductAssignment)).scalar() == 2


def test_the_demo_step_assigns_forecasts_settles_and_scores(
    plant: Plant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up --demo`'s demand step (api/demo/demand.py) on the shipped sample with the shipped
    model: the suppliers' products, one forecast each, two settled weeks each, and one
    scorecard line per supplier."""
    from api.demo import demand
    from api.server import register_shipped

    monkeypatch.setattr(demand, "SUPPLY", (("acme", 3), ("nordic", 1)))
    runner = ModelRunner([MODELS / "demand-weekly"])
    register_shipped(plant.service, runner)
    lines = demand.forecast_demand(plant.service, runner)
    assert [line.split(" on ")[0] for line in lines] == [
        "demand: scorecard of acme",
        "demand: scorecard of nordic",
    ]
    assert "3 products" in lines[0] and "6 settled forecast weeks" in lines[0]
    assert "1 product (" in lines[1] and "2 settled forecast weeks" in lines[1]
    feed = plant.client.get("/v1/feed", headers=plant.as_("acme")).json()["data"]
    assert len(feed) == 3 and {f["kind"] for f in feed} == {"forecast"}
    assert feed[0]["record"]["payload"]["weeks"][0] == "2026-W45"  # W44 of the sample
