"""Broken promises raise signed alarms, delivered to the operator and the affected maintainers."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from api.auth import Caller
from api.delivery import DeliveryWorker
from api.promises import MIN_OUTCOMES, alarm_name
from tests.api.conftest import Hook, Plant, readable_by_policy


@pytest.fixture
def hooks() -> Iterator[dict[str, Hook]]:
    made = {who: Hook() for who in ("operator", "fixit", "other-maint")}
    yield made
    for h in made.values():
        h.close()


def _setup(plant: Plant, hooks: dict[str, Hook]) -> None:
    op = plant.as_("operator")
    for asset, who in (("engine-1", "fixit"), ("engine-2", "fixit"), ("engine-9", "other-maint")):
        r = plant.client.post(
            "/v1/participants/assignments", json={"asset": asset, "maintainer": who}, headers=op
        )
        assert r.status_code == 201, r.text
    for who, hook in hooks.items():
        r = plant.client.post("/v1/subscriptions", json={"url": hook.url}, headers=plant.as_(who))
        assert r.status_code == 201, r.text


def _settle(
    plant: Plant, asset: str, *, error: float, half_width: float = 10.0, **extra: Any
) -> int:
    """A prediction `error` cycles off with +-half_width intervals, and its outcome."""
    rul, last = 60.0, 100
    failure = last + round(rul - error)
    r = plant.predict(
        asset, rul=rul, last_cycle=last,
        intervals={"80": [rul - half_width, rul + half_width],
                   "90": [rul - 1.5 * half_width, rul + 1.5 * half_width]},
        **extra,
    )  # fmt: skip
    assert r.status_code == 201, r.text
    o = plant.submit("line-3", kind="outcome", settles=[r.json()["id"]], asset=asset,
                     observed={"failure_cycle": failure})  # fmt: skip
    assert o.status_code == 201, o.text
    return int(o.json()["index"])


def _alarms(plant: Plant) -> list[dict]:
    r = plant.client.get("/v1/records", params={"kind": "alarm"}, headers=plant.as_("operator"))
    return [a for a in r.json()["data"] if a["record"]["payload"]["alarm"].startswith("promise:")]


def _drain(worker: DeliveryWorker, hooks: dict[str, Hook], until: float = 5.0) -> None:
    deadline = time.monotonic() + until
    while time.monotonic() < deadline:
        worker.run_once()
        time.sleep(0.02)


def test_coverage_far_below_nominal_raises_one_signed_alarm(
    plant: Plant, hooks: dict[str, Hook]
) -> None:
    _setup(plant, hooks)
    for i in range(MIN_OUTCOMES - 1):
        _settle(plant, f"engine-{1 + i % 2}", error=30.0)  # outside both intervals
    assert _alarms(plant) == []  # too few outcomes to accuse the model
    _settle(plant, "engine-1", error=30.0)
    _settle(plant, "engine-2", error=30.0)  # still broken: no second alarm
    [alarm] = _alarms(plant)
    payload = alarm["record"]["payload"]
    assert payload["alarm"] == alarm_name(plant.model())
    assert payload["state"] == "raised"
    assert payload["model_manifest_digest"] == plant.model()
    assert alarm["record"]["producer"]["participant"] == "operator"
    assert payload["affected_assets"] == ["engine-1", "engine-2"]
    broken = {b["promise"]: b for b in payload["broken"]}
    assert {"coverage_80", "coverage_90"} <= set(broken)
    assert broken["coverage_90"]["covered"] == 0 and broken["coverage_90"]["p_value"] < 0.01

    # fixit services the affected engines: it reads the alarm, in its feed too; other-maint not.
    fixit, other = plant.as_("fixit"), plant.as_("other-maint")
    assert plant.client.get(f"/v1/records/{alarm['id']}", headers=fixit).status_code == 200
    assert plant.client.get(f"/v1/records/{alarm['id']}", headers=other).status_code == 403
    feed = plant.client.get("/v1/feed", headers=fixit).json()["data"]
    assert alarm["id"] in [r["id"] for r in feed]
    assert alarm["id"] not in [
        r["id"] for r in plant.client.get("/v1/feed", headers=other).json()["data"]
    ]
    for who, role in (("fixit", "maintainer"), ("other-maint", "maintainer"), ("acme", "supplier")):
        readable_by_policy(plant, Caller(who, role))  # may_read and visible agree

    # Delivered to the operator's and fixit's webhooks, not to other-maint's.
    _drain(DeliveryWorker(plant.service, base_delay_s=0.01), hooks, 2.0)
    got = {who: [json.loads(c.body)["record"]["id"] for c in h.calls] for who, h in hooks.items()}
    assert alarm["id"] in got["operator"]
    assert alarm["id"] in got["fixit"]
    assert alarm["id"] not in got["other-maint"]


def test_kept_promises_raise_nothing_and_a_recovery_clears(
    plant: Plant, hooks: dict[str, Hook]
) -> None:
    _setup(plant, hooks)
    for i in range(2 * MIN_OUTCOMES):
        _settle(plant, "engine-1", error=(i % 5) - 2.0)  # well inside both intervals
    assert _alarms(plant) == []
    card = plant.client.get(f"/v1/models/{plant.model()}/scorecard", headers=plant.as_("tuv"))
    assert card.json()["overall"]["coverage"]["90"]["rate"] == 1.0


def test_error_past_the_bound_raises_then_clears(plant: Plant, hooks: dict[str, Hook]) -> None:
    """Wide intervals cover everything, but the error is far past twice the stated RMSE."""
    _setup(plant, hooks)
    digest = plant.model()
    # The plant's manifest states no RMSE: register one that does.
    m = plant.manifest(name="rul-stated")["record"]["payload"]
    signed = plant.signed("modelworks", kind="model_manifest",
                          **{**m, "name": "rul-stated", "metrics": {"rmse": 5.0}})  # fmt: skip
    r = plant.client.post("/v1/models", json=signed, headers=plant.as_("modelworks"))
    assert r.status_code == 201, r.text
    plant.models["rul-test"] = r.json()["digest"]  # plant.predict cites it from now on
    for _ in range(MIN_OUTCOMES):
        _settle(plant, "engine-1", error=20.0, half_width=100.0)
    [alarm] = _alarms(plant)
    assert [b["promise"] for b in alarm["record"]["payload"]["broken"]] == ["rmse"]
    # Good outcomes bring the RMSE back under the bound: a signed clear follows.
    for _ in range(6 * MIN_OUTCOMES):
        _settle(plant, "engine-1", error=0.0, half_width=100.0)
    states = [a["record"]["payload"]["state"] for a in _alarms(plant)]
    assert states == ["raised", "cleared"]
    assert digest != plant.models["rul-test"]


def test_promises_are_checked_per_prediction_source(plant: Plant, hooks: dict[str, Hook]) -> None:
    """A healthy source does not mask a drifting one (pooled, 60 of 70 covered at 90 % gives
    p = 0.13: no alarm), nor is it blamed for it: the alarm names the broken source and the
    assets of that source only."""
    _setup(plant, hooks)
    for i in range(6 * MIN_OUTCOMES):
        _settle(plant, "engine-1", error=(i % 5) - 2.0, source="fleet-a.txt")  # kept
    assert _alarms(plant) == []
    for _ in range(MIN_OUTCOMES):
        _settle(plant, "engine-2", error=30.0, source="fleet-b.txt")  # outside both intervals
    [alarm] = _alarms(plant)
    payload = alarm["record"]["payload"]
    assert payload["state"] == "raised" and payload["outcomes"] == 7 * MIN_OUTCOMES
    assert {b["source"] for b in payload["broken"]} == {"fleet-b.txt"}
    assert {"coverage_80", "coverage_90"} <= {b["promise"] for b in payload["broken"]}
    assert payload["affected_assets"] == ["engine-2"]
    card = plant.client.get(f"/v1/models/{plant.model()}/scorecard", headers=plant.as_("tuv"))
    assert card.json()["overall"]["coverage"]["90"]["p_value"] > 0.01  # pooled: no evidence


def test_predictions_without_a_source_form_one_group() -> None:
    from api.promises import by_source
    from api.scorecards import Pair

    def pair(source: str | None) -> Pair:
        predicted = {"rul": 1.0} | ({"source": source} if source else {})
        return Pair(1, 2, "e", "2026-01", predicted, {"failure_cycle": 3})

    groups = by_source([pair(None), pair("a.txt"), pair(None)])
    assert {k: len(v) for k, v in groups.items()} == {"input": 2, "a.txt": 1}


def test_sources_too_small_to_test_alone_are_tested_together() -> None:
    """Naming a new source every few predictions does not keep them all untested."""
    from api.promises import SMALL, checked_groups
    from api.scorecards import Pair

    def pair(source: str) -> Pair:
        return Pair(1, 2, "e", "2026-01", {"rul": 1.0, "source": source}, {"failure_cycle": 3})

    big = [pair("fleet.txt") for _ in range(MIN_OUTCOMES)]
    tiny = [pair(f"s{i}.txt") for i in range(MIN_OUTCOMES)]  # one prediction a source
    groups = dict(checked_groups(big + tiny))
    assert set(groups) == {"fleet.txt", SMALL}
    assert len(groups[SMALL]) == MIN_OUTCOMES
